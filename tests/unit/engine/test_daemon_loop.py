"""The leader's loop: which passes list every file. A watch pass lists only the paths its
events named (spec.files.FileListing), so the loop owes a full listing after anything that
may have lost paths: a failed pass (it took the paths, then the database refused it
before the listing was patched), and at least one resync per interval however often
events arrive. Driven with a recording pass and a scripted watcher, no database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from reconciler import metrics
from reconciler.engine import daemon as daemon_module
from reconciler.engine.daemon import Daemon
from reconciler.engine.reconcile import Trigger, Unsettled
from reconciler.settings import Settings


class ScriptedWatcher:
    """Stands for JobsWatcher: every take names one new path."""

    def __init__(self) -> None:
        self.last_event = 0.0
        self.taken = 0

    def take_changes(self) -> set[str] | None:
        self.taken += 1
        return {f"file-{self.taken}.yaml"}


def run_loop(
    tmp_path: Path, outcomes: list[bool], *, resync: float, events_every: float | None
) -> list[tuple[Trigger, set[str] | None]]:
    """Runs Daemon._loop until len(outcomes) passes ran; the k-th pass returns
    outcomes[k]. A file event is set before the loop starts, during every pass and, if
    `events_every`, at that period. Returns each pass's (trigger, paths it was given)."""
    settings = Settings(
        jobs_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path}/unused.db",
        resync_interval=resync,
        settle_seconds=0,
        poll_interval=0.02,
    )
    elector: Any = SimpleNamespace(is_leader=lambda: True, instance_id="test", epoch=1)
    daemon = Daemon(settings=settings, engine=None, elector=elector, make_service=lambda: None)  # type: ignore[arg-type]
    daemon._watcher = ScriptedWatcher()  # type: ignore[assignment]
    daemon._backoff = lambda: 0.05  # type: ignore[method-assign]
    daemon._refresh_gauges = lambda caches: None  # type: ignore[method-assign]
    stop = threading.Event()
    calls: list[tuple[Trigger, set[str] | None]] = []

    def recording_pass(
        trigger: Trigger, caches: object, changed: set[str] | None, settled: object = None
    ) -> bool:
        calls.append((trigger, changed))
        if len(calls) >= len(outcomes):
            stop.set()
        time.sleep(0.02)  # a pass takes time
        daemon._wake.set()  # an event arrives during every pass
        return outcomes[len(calls) - 1]

    daemon._pass = recording_pass  # type: ignore[method-assign]
    runtime: Any = SimpleNamespace(
        store=SimpleNamespace(forget_unreadable=lambda: None),
        scheduler=SimpleNamespace(wakeup=lambda: None),
        failure=lambda: None,
    )

    def events() -> None:
        while events_every is not None and not stop.wait(events_every):
            daemon._wake.set()

    daemon._wake.set()
    feeder = threading.Thread(target=events, daemon=True)
    feeder.start()
    loop = threading.Thread(target=daemon._loop, args=(stop, object(), runtime), daemon=True)
    loop.start()
    loop.join(30)
    stop.set()
    assert not loop.is_alive(), f"the loop did not run {len(outcomes)} passes: {calls}"
    return calls


def test_a_failed_watch_pass_owes_the_next_pass_a_full_listing(tmp_path: Path) -> None:
    calls = run_loop(tmp_path, [False, True, True], resync=3600, events_every=None)
    first, second, third = calls
    assert first == (Trigger.WATCH, {"file-1.yaml"})
    # The second pass (the retry, woken by the event that came during the first) lists
    # everything: the first pass's path may never have reached the listing.
    assert second == (Trigger.WATCH, None), calls
    # Once a pass succeeded, watch passes go back to their events' paths.
    assert third[0] == Trigger.WATCH and third[1] is not None, calls


def test_a_resync_comes_once_per_interval_however_often_events_arrive(tmp_path: Path) -> None:
    started = time.monotonic()
    # An event during every pass (20 ms each), resync every 0.5 s: 60 passes take over
    # 1.2 s, so at least two of them must be resyncs.
    calls = run_loop(tmp_path, [True] * 60, resync=0.5, events_every=0.05)
    resyncs = [i for i, (trigger, _) in enumerate(calls) if trigger == Trigger.RESYNC]
    took = time.monotonic() - started
    assert len(resyncs) >= 2, f"{len(resyncs)} resyncs among {len(calls)} passes in {took:.1f} s"
    assert all(calls[i][1] is None for i in resyncs)  # a resync lists every file


# A plan that writes: the only kind reconcile_once asks `settled` about.
WRITES = SimpleNamespace(has_changes=True, quarantined={})


class SettleRig:
    """Daemon._loop with a scripted watcher (`last_event` set by the test) and a scripted
    pass: `pass_(changed, settled)` stands for reconcile_once (a watch pass calls
    `settled` with a plan that writes). `run(seconds)` runs the loop until `stop` is set
    or that long."""

    def __init__(self, tmp_path: Path, *, settle: float) -> None:
        settings = Settings(
            jobs_dir=tmp_path,
            database_url=f"sqlite:///{tmp_path}/unused.db",
            resync_interval=3600,
            settle_seconds=settle,
            poll_interval=0.02,
        )
        elector: Any = SimpleNamespace(is_leader=lambda: True, instance_id="test", epoch=1)
        no_engine: Any = None
        self.daemon = Daemon(
            settings=settings, engine=no_engine, elector=elector, make_service=lambda: None
        )
        self.watcher = ScriptedWatcher()
        self.daemon._watcher = self.watcher  # type: ignore[assignment]
        self.daemon._refresh_gauges = lambda caches: None  # type: ignore[method-assign]
        self.daemon._compact_counts = lambda: None  # type: ignore[method-assign]
        self.stop = threading.Event()

    def event(self) -> None:
        self.watcher.last_event = time.monotonic()
        self.daemon._wake.set()

    def run(self, pass_: Callable[[set[str] | None, Any], bool], seconds: float) -> None:
        def scripted_pass(
            trigger: Trigger, caches: object, changed: set[str] | None, settled: Any = None
        ) -> bool:
            assert trigger == Trigger.WATCH
            return pass_(changed, settled)

        self.daemon._pass = scripted_pass  # type: ignore[method-assign]
        runtime: Any = SimpleNamespace(
            store=SimpleNamespace(forget_unreadable=lambda: None),
            scheduler=SimpleNamespace(wakeup=lambda: None),
            failure=lambda: None,
        )
        self.event()
        args = (self.stop, object(), runtime)
        loop = threading.Thread(target=self.daemon._loop, args=args, daemon=True)
        loop.start()
        loop.join(seconds)
        self.stop.set()
        loop.join(15)
        assert not loop.is_alive()


def test_a_watch_pass_writes_only_a_tree_that_stayed_settled(tmp_path: Path) -> None:
    """A watch pass starts at the first event and waits for the quiet time only before it
    writes (`settled`): an event after it took its paths (a checkout still going, an
    editor's next step) abandons it (Unsettled: nothing written); the next pass waits
    for the quiet time first and then applies what it reads (no `settled`), as every
    pass did before the settle overlapped the pass."""
    rig = SettleRig(tmp_path, settle=0.2)
    seen: list[tuple[set[str] | None, bool | None, float]] = []
    moved_at: list[float] = []

    def pass_(changed: set[str] | None, settled: Any) -> bool:
        started = time.monotonic()
        if len(seen) == 0:  # the checkout goes on while this pass plans
            rig.event()
            moved_at.append(rig.watcher.last_event)
        ok = settled(WRITES) if settled is not None else None
        seen.append((changed, ok, started))
        if ok is False:
            raise Unsettled("moved")
        if len(seen) == 2:  # a later, unrelated event: a watch pass as the first was
            rig.event()
        if len(seen) == 3:
            rig.stop.set()
        return True

    rig.run(pass_, 10)
    (first, first_ok, first_start), (second, second_ok, second_start), third = seen
    assert first_ok is False and moved_at[0] > first_start, "an event after the paths"
    # Started after a quiet time: it applies what it reads, asking nothing.
    assert second_ok is None and second_start - moved_at[0] >= 0.2
    assert first == {"file-1.yaml"} and second == {"file-2.yaml"}
    assert third[1] is True, "a new burst: its first pass waits before it writes again"


def test_events_that_never_stop_for_a_pass_still_let_one_write(tmp_path: Path) -> None:
    """Review repro (807b2e0): events more frequent than plan time + settle, each quiet
    gap longer than the settle time (an editor's autosave, git's own writes). Every
    watch pass the tree moved under was abandoned, for ever: the change waited for the
    resync, and the loop's liveness gauge stood still (healthcheck: "loop stuck").
    Now one quiet gap suffices, as before 807b2e0: the abandoned pass's successor
    settles first and applies; the loop turns after an abandoned pass too."""
    rig = SettleRig(tmp_path, settle=0.3)  # the default settle time
    outcomes: list[bool | None] = []
    gauge_after_abandon: list[float] = []
    abandoned_at: list[float] = []

    def pass_(changed: set[str] | None, settled: Any) -> bool:
        if abandoned_at:
            gauge_after_abandon.append(metrics.DAEMON_LOOP._value.get())
        time.sleep(0.6)  # planning (seconds at 100,000 jobs)
        ok = settled(WRITES) if settled is not None else None
        outcomes.append(ok)
        if ok is False:
            abandoned_at.append(time.time())
            raise Unsettled("moved")
        rig.stop.set()
        return True

    def events() -> None:  # a file touched every 0.4 s: quiet gaps > settle, < pass
        while not rig.stop.wait(0.4):
            rig.event()

    metrics.DAEMON_LOOP.set(0)
    threading.Thread(target=events, daemon=True).start()
    rig.run(pass_, 8)
    assert outcomes[-1] is not False, f"{len(outcomes)} watch passes, every one abandoned"
    assert outcomes.count(False) <= 1, outcomes
    assert gauge_after_abandon and gauge_after_abandon[0] >= abandoned_at[0], (
        "the loop's liveness gauge stood still over an abandoned pass"
    )


def test_the_settle_deadline_counts_from_the_first_pass(tmp_path: Path, monkeypatch: Any) -> None:
    """MAX_SETTLE_SECONDS caps the wait from the first pass of a burst, not per pass: a
    tree that moved under the first pass and then never goes quiet is applied by the
    next pass at that deadline."""
    monkeypatch.setattr(daemon_module, "MAX_SETTLE_SECONDS", 1.0)
    rig = SettleRig(tmp_path, settle=0.3)
    starts: list[float] = []
    feeding = threading.Event()

    def pass_(changed: set[str] | None, settled: Any) -> bool:
        starts.append(time.monotonic())
        if len(starts) == 1:
            rig.event()  # moved while it plans, then quiet: abandoned
            assert settled(WRITES) is False
            rig.event()
            feeding.set()  # from now on, never quiet
            raise Unsettled("moved")
        assert settled is None  # it settled (or gave up waiting) before it started
        rig.stop.set()
        return True

    def events() -> None:
        feeding.wait()
        while not rig.stop.wait(0.05):
            rig.event()

    threading.Thread(target=events, daemon=True).start()
    rig.run(pass_, 8)
    first, second = starts
    assert 0.9 <= second - first < 1.5, f"the second pass started {second - first:.2f} s after"
