"""The leader's loop: which passes list every file. A watch pass lists only the paths its
events named (spec.files.FileListing), so the loop owes a full listing after anything that
may have lost paths: a failed pass (it took the paths, then the database refused it
before the listing was patched), and at least one resync per interval however often
events arrive. Driven with a recording pass and a scripted watcher, no database."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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


def test_a_watch_pass_writes_only_a_tree_that_stayed_settled(tmp_path: Path) -> None:
    """A watch pass starts at the first event and waits for the quiet time only before it
    writes (`settled`): an event after it took its paths (a checkout still going, an
    editor's next step) abandons it (Unsettled: nothing written) and the pass runs again
    on the newer tree; a plan that writes nothing does not wait."""
    settings = Settings(
        jobs_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path}/unused.db",
        resync_interval=3600,
        settle_seconds=0.2,
        poll_interval=0.02,
    )
    elector: Any = SimpleNamespace(is_leader=lambda: True, instance_id="test", epoch=1)
    daemon = Daemon(settings=settings, engine=None, elector=elector, make_service=lambda: None)  # type: ignore[arg-type]
    watcher = ScriptedWatcher()
    daemon._watcher = watcher  # type: ignore[assignment]
    daemon._refresh_gauges = lambda caches: None  # type: ignore[method-assign]
    daemon._compact_counts = lambda: None  # type: ignore[method-assign]
    stop = threading.Event()
    writes = SimpleNamespace(has_changes=True, quarantined={})
    nothing = SimpleNamespace(has_changes=False, quarantined={})
    seen: list[tuple[set[str] | None, bool, float]] = []

    def scripted_pass(
        trigger: Trigger, caches: object, changed: set[str] | None, settled: Any = None
    ) -> bool:
        assert trigger == Trigger.WATCH and settled is not None
        started = time.monotonic()
        if len(seen) == 0:  # the checkout goes on while this pass plans
            watcher.last_event = time.monotonic()
            daemon._wake.set()
        plan = nothing if len(seen) == 2 else writes
        ok = settled(plan)
        seen.append((changed, ok, time.monotonic() - started))
        if len(seen) == 3:
            stop.set()
        if not ok:
            raise Unsettled("moved")
        if len(seen) == 2:  # a later, unrelated event: a pass that writes nothing
            watcher.last_event = time.monotonic()
            daemon._wake.set()
        return True

    daemon._pass = scripted_pass  # type: ignore[method-assign]
    runtime: Any = SimpleNamespace(
        store=SimpleNamespace(forget_unreadable=lambda: None),
        scheduler=SimpleNamespace(wakeup=lambda: None),
        failure=lambda: None,
    )
    watcher.last_event = time.monotonic()
    daemon._wake.set()
    loop = threading.Thread(target=daemon._loop, args=(stop, object(), runtime), daemon=True)
    loop.start()
    loop.join(10)
    stop.set()
    assert not loop.is_alive()
    (first, first_ok, first_wait), (second, second_ok, second_wait), third = seen
    assert not first_ok and first_wait >= 0.2, "an event after the paths were taken"
    # Quiet since the first pass's wait: the files it reads are the settled tree.
    assert second_ok and second_wait < 0.1
    assert first == {"file-1.yaml"} and second == {"file-2.yaml"}
    assert third[1] and third[2] < 0.1, "nothing to write: no wait"
