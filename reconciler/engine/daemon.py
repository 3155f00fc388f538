"""`reconcile run`: the long-running reconciler. Several replicas may run; one leads.

    standby ──(lock acquired)──▶ leader ──(lock lost / SIGTERM)──▶ standby / exit

The leader, in order: reconciles once (so the scheduler starts on converged rows),
starts the firing pipeline (Dispatcher, UnpublishedRetrier), makes due again the slots a
killed predecessor lost between moving next_run_time on and recording them
(OwnedJobStore.rewind_lost_slots; a paused one may still record a slot due by then
when it wakes: Dispatcher.take_over), then starts APScheduler on the same database.
From then on one loop, one pass at a time:
- file events wake it; it runs a pass (watch) at once, which looks in the jobs folder
  only at the paths the events named, and waits for the tree to settle (no event for
  SETTLE_SECONDS) only before it writes, holding no lock meanwhile: a tree that changed
  meanwhile (a checkout in progress, an editor's next step) is not applied; that pass
  is abandoned (it wrote and recorded nothing) and the next one waits for a quiet
  SETTLE_SECONDS first, then applies what it reads, as every pass did before: at most
  MAX_SETTLE_SECONDS of waiting from the first pass, whatever the events do;
- every RESYNC_INTERVAL it runs a full pass anyway (resync: every file listed, every row
  read: missed events, drift);
- every POLL_INTERVAL it wakes the scheduler, so rows written by another process (a CLI
  `reconcile apply`) are live within that interval (our own passes wake it at once);
- a failed pass is recorded and retried with exponential backoff (1 s .. 60 s);
- every turn it checks that APScheduler's thread still runs and its job store still
  writes back: if the thread died (an exception APScheduler 3 does not catch) or the
  store gave a failing write-back up, the daemon gives up the lead and exits 1 (see
  `Daemon._give_up`).
Stopping (SIGTERM, or leadership lost): the scheduler shuts down FIRST (its last pass
still fires: FireExecutor runs it inline into the running pipeline, where stock
APScheduler would lose it), then the retrier, then the Dispatcher drains what is queued
(ledger + publish), and only then is the lock released: no fire is lost.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from reconciler import metrics
from reconciler.core.diff import FieldDiffer
from reconciler.core.plan import Plan
from reconciler.core.render import change_line
from reconciler.core.vocabulary import ReconcileOutcome, Trigger
from reconciler.dispatch.service import FiringService
from reconciler.engine.gauges import JobGauges
from reconciler.engine.gitsource import SourceWatch
from reconciler.engine.leader import LeaderElector
from reconciler.engine.reconcile import (
    ReconcileCaches,
    ReconcileResult,
    Unsettled,
    reconcile_once,
    warm_caches,
)
from reconciler.engine.standby import LeaderWatch
from reconciler.engine.watch import JobsWatcher
from reconciler.errors import RefusedError
from reconciler.logs import job_extra
from reconciler.settings import Settings
from reconciler.spec.diagnostics import Diagnostic
from reconciler.store.change_counts import compact_change_counts
from reconciler.store.jobstore import OwnedJobStore
from reconciler.store.own_writes import OwnWrites

log = logging.getLogger(__name__)
MAX_SETTLE_SECONDS = 10.0
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
GAUGE_REFRESH_SECONDS = 10.0
# A cold apply of 10,000 jobs logs its counts, not 10,000 lines.
CHANGES_LOGGED = 100


@contextmanager
def survivors_frozen() -> Iterator[None]:
    """No cyclic collection during the block; what survives it is then frozen (moved out
    of the collector's generations, `gc.freeze`), not scanned.

    A pass leaves its caches behind: at 100,000 jobs, 3.4 million objects that live
    until a later pass replaces them. The collector, re-enabled, scanned all of them
    again and again (a full collection: 7-9 s holding the GIL at load 6, during which
    the health thread could not confirm the lease and the leader stepped down). Freezing
    them costs nothing. What it gives up: a cycle among frozen objects that becomes
    garbage later is never collected; a pass leaves almost none (30 objects after the
    startup pass, none after a watch pass: a `gc.collect()` after it found that much),
    and objects freed by their reference count (nearly all) are freed as before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def release_free_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`), after
    work that allocated much and kept little: a warm-up, a startup or resync pass, the
    start of firing. At 100,000 jobs those leave 100-200 MB of free heap resident that
    no later allocation needs (daemon_phases in bench/RESULTS.md). It walks the heap
    (~50-90 ms at 100,000 jobs), so a watch pass and a gauge refresh do not call it.
    Nothing happens where the C library has no such call (musl, macOS)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


# Process-wide memo (docs/architecture.md): the C library's function, a constant.
@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        function: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return function


@dataclass
class FiringRuntime:
    """What runs only in the leader: the scheduler and the firing pipeline."""

    scheduler: BackgroundScheduler
    store: OwnedJobStore
    service: FiringService

    def scheduler_alive(self) -> bool:
        """Whether APScheduler's thread still runs. APScheduler 3 calls triggers and
        the job store outside any try in its pass (`_process_jobs`: a trigger's next
        fire time, `update_job`, `remove_job`): an exception there ends the thread
        without a word (`scheduler.running` stays true), and a process that kept the
        lock would fire nothing for good."""
        thread = getattr(self.scheduler, "_thread", None)  # BackgroundScheduler's own
        return thread is not None and thread.is_alive()

    def failure(self) -> str | None:
        """Why this leader cannot fire any more, if it cannot: its scheduler's thread
        died, or its job store gave a failing write-back up (its thread alive, but no
        pass fires anything until the write-back succeeds: OwnedJobStore.failure)."""
        if not self.scheduler_alive():
            return "the scheduler's thread died while this process led"
        return self.store.failure

    def stop(self) -> None:
        """The scheduler FIRST: its last pass still fires, through the running pipeline
        (FireExecutor runs it inline); THEN the pipeline drains and publishes."""
        metrics.SCHEDULER_RUNNING.set(0)
        try:
            self.scheduler.shutdown(wait=True)
        finally:
            self.service.stop()


def start_firing(
    *,
    engine: Engine,
    service: FiringService,
    is_leader: Callable[[], bool],
    own_writes: OwnWrites | None = None,
) -> FiringRuntime:
    """`own_writes`: where the store logs its write-backs for the passes (the caches'
    own: store.own_writes)."""
    service.start()
    store = OwnedJobStore(  # fenced too (jobstore doc)
        engine=engine,
        is_leader=is_leader,
        before_write_back=service.before_write_back,
        own_writes=own_writes,
    )
    # Slots due by now may be recorded late by a paused predecessor: handed over.
    service.dispatcher.take_over(at=datetime.now(UTC))
    store.rewind_lost_slots()  # a killed or fenced predecessor's last slots (jobstore doc)
    scheduler = BackgroundScheduler(
        jobstores={"default": store}, executors={"default": service.executor()}, timezone=UTC
    )
    service.attach(scheduler)
    scheduler.start()
    metrics.SCHEDULER_RUNNING.set(1)
    return FiringRuntime(scheduler, store, service)


class Daemon:
    """Keyword-only wiring; `make_service` builds the firing pipeline for each leadership
    term (a test seam)."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        elector: LeaderElector,
        make_service: Callable[[], FiringService],
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._elector = elector
        self._make_service = make_service
        self._wake = threading.Event()
        self._watcher = JobsWatcher(settings.jobs_dir, on_change=self._wake.set)
        self._failures = 0
        self.passes = 0
        # The quarantine as the last successful pass left it: what changed is logged.
        self._quarantined: Mapping[str, tuple[Diagnostic, ...]] = {}
        self._gauges = JobGauges()
        self._runtime: FiringRuntime | None = None
        self._source = SourceWatch(settings)
        self._leader_watch = LeaderWatch(
            engine=engine, instance_id=elector.instance_id, is_leader=elector.is_leader
        )
        # Why this process stopped by itself (FiringRuntime.failure: it could not fire):
        # `reconcile run` then exits 1 for its supervisor to restart it.
        self.failure: str | None = None

    @property
    def superseded(self) -> bool:
        """This process hung while leading and another one took over: it stopped."""
        return self._elector.superseded

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set. Leads when it can, stands by otherwise."""
        self._watcher.start()
        self._leader_watch.start()
        try:
            while not stop.is_set() and not self._elector.superseded and self.failure is None:
                caches = self._warm(stop)
                if self._elector.wait_for_leadership(stop, poll=0.5):
                    self._leader_watch.took_over(self._elector.epoch)
                    self._lead(stop, caches)
        finally:
            self._leader_watch.stop()
            self._watcher.stop()
            self._elector.close()
            log.info("reconciler stopped")

    def _warm(self, stop: threading.Event) -> ReconcileCaches:
        """Fresh caches, filled while this process does not lead yet: every file parsed,
        every row decoded (warm_caches: nothing planned or written). The leader's
        startup pass then re-reads only what changed meanwhile: at 100,000 jobs a few
        seconds holding the lock instead of a minute, during which the health thread
        had to confirm the lease against a main thread parsing 10,000 files. A stop
        (SIGTERM) cuts the warm-up short: the process then exits without leading."""
        caches = ReconcileCaches(compact=True)
        try:
            with survivors_frozen():
                warm_caches(self._engine, self._settings, caches, stopping=stop.is_set)
        except Exception:  # only a cost: the startup pass reads everything itself
            log.warning("warming the caches failed", exc_info=True)
            return ReconcileCaches(compact=True)
        release_free_heap()
        return caches

    def _lead(self, stop: threading.Event, caches: ReconcileCaches) -> None:
        # A leader without a scheduler yet, on purpose: the healthcheck gives the startup
        # pass (a minute at 100,000 jobs with cold caches) and the rewind its own limit
        # instead of reporting "scheduler not running" (a liveness probe would kill it).
        metrics.STARTUP_PASS.set_to_current_time()
        try:
            self._pass(Trigger.STARTUP, caches)
            if not self._elector.is_leader():  # lost during the pass: no firing, no rewind
                self._elector.release()
                return
            runtime = self._runtime = start_firing(
                engine=self._engine,
                service=self._make_service(),
                is_leader=self._elector.is_leader,
                own_writes=caches.own_writes,
            )
            metrics.DAEMON_LOOP.set_to_current_time()  # the loop's age counts from here
        finally:
            metrics.STARTUP_PASS.set(0)
        release_free_heap()  # after the startup pass, its gauges and the rewind
        try:
            self._loop(stop, caches, runtime)
        finally:
            self._runtime = None
            runtime.stop()
            self._gauges.forget_all()  # a standby exports no per-job values
            if self._elector.is_leader():
                self._elector.release()

    def _loop(self, stop: threading.Event, caches: ReconcileCaches, runtime: FiringRuntime) -> None:
        settings = self._settings
        next_resync = time.monotonic() + settings.resync_interval
        next_gauges = time.monotonic() + GAUGE_REFRESH_SECONDS
        retry_at: float | None = None
        changed = False  # a file event arrived (perhaps during a backoff)
        # A failed pass may have taken its events' paths without patching the listing
        # with them (the database refused it before): the next pass lists every file.
        list_all = False
        # When the pass the tree moved under took its paths (None: the last pass was
        # not abandoned): the next one settles first, within the same deadline.
        abandoned: float | None = None
        while not stop.is_set() and self._elector.is_leader():
            failure = runtime.failure()
            if failure is not None:
                self._give_up(failure)
                return
            if self._wake.wait(timeout=settings.poll_interval):
                self._wake.clear()
                changed = True
            if self._source.moved():  # RECONCILER_SOURCE=git:REF: a new commit
                changed = True
            now = time.monotonic()
            trigger: Trigger | None = None
            if retry_at is not None and now < retry_at:
                pass  # backing off after a failure: the change waits for the retry
            elif changed:
                self._wake.clear()
                # A due resync takes the change with it: events that never stop must
                # not put off the full listing.
                trigger = Trigger.RESYNC if time.monotonic() >= next_resync else Trigger.WATCH
            elif now >= next_resync or retry_at is not None:
                trigger = Trigger.RESYNC
            if trigger is not None and not stop.is_set():
                changed = False
                if abandoned is not None:  # the tree moved under the last pass
                    self._settle(stop, deadline=abandoned + MAX_SETTLE_SECONDS)
                # Taken before the pass lists anything: an event after this wakes the
                # next pass. A resync lists every file, whatever the events said.
                paths = self._watcher.take_changes()
                taken = time.monotonic()
                listed = paths if trigger == Trigger.WATCH and not list_all else None
                # After an abandoned pass (settled above), this one applies what it reads.
                watch = trigger == Trigger.WATCH and abandoned is None
                settled = self._settled(stop, taken) if watch else None
                try:
                    ok = self._pass(trigger, caches, listed, settled)
                except Unsettled:  # nothing written: the pass again, on the newer tree
                    log.info("the jobs folder changed while a pass planned: planning again")
                    changed = True
                    abandoned = taken
                else:
                    abandoned = None
                    list_all = not ok
                    self._compact_counts()
                    runtime.store.forget_unreadable()
                    if trigger == Trigger.RESYNC:
                        release_free_heap()  # it read every row; hourly
                        # Only a resync moves the next one: watch passes list only the
                        # paths their events named, so a folder with events more often
                        # than the interval must still be listed whole (a missed event,
                        # a watcher restart) at least once per interval.
                        next_resync = time.monotonic() + settings.resync_interval
                    retry_at = None if ok else time.monotonic() + self._backoff()
            elif now >= next_gauges:
                with survivors_frozen():
                    self._refresh_gauges(caches)  # next fires move with every fire
            if now >= next_gauges:
                next_gauges = now + GAUGE_REFRESH_SECONDS
            # Rows written by other processes (CLI apply) and our own pass: wake it.
            runtime.scheduler.wakeup()
            metrics.DAEMON_LOOP.set_to_current_time()  # liveness, for the healthcheck

    def _give_up(self, failure: str) -> None:
        """The leader that cannot fire (FiringRuntime.failure) fires nothing while it
        keeps the lock: give the lead up (`_lead` stops what is left, in order, and
        releases the lock: a standby takes over at once) and stop, exiting 1, as a
        Kubernetes controller would crash: a fresh process starts from a known state,
        and its supervisor's restart count shows what happened. Restarting the thread
        in place would hide a fault that may come back on every pass."""
        self.failure = failure
        metrics.SCHEDULER_RUNNING.set(0)
        log.error(
            "%s: %s (the cause is logged above); "
            "giving up the leadership and exiting 1 for a restart",
            self._elector.instance_id,
            self.failure,
        )

    def _settled(self, stop: threading.Event, taken: float) -> Callable[[Plan], bool]:
        """For a watch pass that took the events' paths at `taken`: before it writes
        (reconcile_once calls it holding no lock, for a plan that writes only), wait
        until no file event for settle_seconds (a checkout in progress, an editor
        writing in several steps); then True if no event came after `taken` (the files
        the pass read are the settled tree). True too if the tree is still moving
        MAX_SETTLE_SECONDS after `taken` (as before: applied as it is after the longest
        wait). False: the pass is abandoned, and the next one settles first (`_loop`)."""

        def settled(plan: Plan) -> bool:
            if not self._settle(stop, deadline=taken + MAX_SETTLE_SECONDS):
                return not stop.is_set()  # stopping: write nothing
            return self._watcher.last_event < taken

        return settled

    def _settle(self, stop: threading.Event, *, deadline: float) -> bool:
        """Wait until no file event for settle_seconds (True), or until `deadline`
        (monotonic) or a stop (False)."""
        settle = self._settings.settle_seconds
        while not stop.is_set():
            quiet_for = time.monotonic() - self._watcher.last_event
            if quiet_for >= settle:
                return True
            if time.monotonic() >= deadline:
                return False
            stop.wait(min(settle - quiet_for, max(deadline - time.monotonic(), 0.0)))
        return False

    def _pass(
        self,
        trigger: Trigger,
        caches: ReconcileCaches,
        changed: set[str] | None = None,
        settled: Callable[[Plan], bool] | None = None,
    ) -> bool:
        """One reconcile pass. True when it did not fail (a refusal is not a failure to
        retry: it waits for the next change or resync). `changed`: the paths file events
        named since the last pass (None: every file is listed). Raises Unsettled
        (`settled` said the tree moved: nothing written)."""
        self.passes += 1
        with survivors_frozen():
            return self._pass_and_report(trigger, caches, changed, settled)

    def _pass_and_report(
        self,
        trigger: Trigger,
        caches: ReconcileCaches,
        changed: set[str] | None,
        settled: Callable[[Plan], bool] | None,
    ) -> bool:
        try:
            result = reconcile_once(
                self._engine,
                self._settings,
                trigger=trigger,
                # manual sync: plan and record (pending changes, drift), never write jobs
                apply=self._settings.sync == "auto",
                record=True,
                caches=caches,
                instance=self._elector.instance_id,
                write_guard=self._write_guard,
                changed_files=changed,
                settled=settled,
            )
        except RefusedError as error:
            log.error("reconcile refused: %s", error)
            return True
        except Unsettled:
            raise  # not a failure (the loop runs the pass again)
        except Exception:  # recorded by the pass itself; retried with backoff
            self._failures += 1
            log.exception("reconcile pass (%s) failed", trigger)
            return False
        self._failures = 0
        self._report(result, caches)
        return True

    def _compact_counts(self) -> None:
        """Every writing transaction (each write-back of fired jobs) adds a row to
        `table_changes`; fold them after a pass (store.change_counts)."""
        try:
            with self._engine.begin() as connection:
                compact_change_counts(connection)
        except Exception:  # only a cost: the counts' rows are read by every pass
            log.warning("compacting the change counts failed", exc_info=True)

    def _write_guard(self, plan: Plan) -> AbstractContextManager[object]:
        """While a pass renames jobs, the scheduler must not be between reading a due row
        and moving its next_run_time on: the rename carries that next_run_time over, so
        it must be the one after the fire (else the slot would fire again under the new
        name). APScheduler 3 holds `_jobstores_lock` across exactly that stretch of
        `_process_jobs`; holding it here makes the two take turns."""
        runtime = self._runtime
        if runtime is None or not any(change.renamed_from for change in plan.changes):
            return nullcontext()
        lock: AbstractContextManager[object] = runtime.scheduler._jobstores_lock
        return lock

    def _backoff(self) -> float:
        return BACKOFF[min(self._failures, len(BACKOFF)) - 1]

    def _report(self, result: ReconcileResult, caches: ReconcileCaches) -> None:
        plan = result.plan
        counts = ", ".join(f"{n} {a}" for a, n in plan.summary.items() if n)
        if plan.has_changes and result.outcome == ReconcileOutcome.PLANNED:
            # A RECONCILER_SYNC=manual pass wrote no job: "applied" and "added from" lines
            # would tell whoever tails the log the opposite of what happened.
            log.info(
                "not applied (RECONCILER_SYNC=manual): %s pending for `reconcile apply`, "
                "revision %s",
                counts,
                plan.revision.label(),
            )
        elif plan.has_changes:
            log.info(
                "applied %s in %.3f s, revision %s", counts, result.duration, plan.revision.label()
            )
            differ = FieldDiffer()
            for change in plan.changes[:CHANGES_LOGGED]:
                line = change_line(change, differ=differ)
                log.info("%s", line, extra=job_extra(change.job))
            if len(plan.changes) > CHANGES_LOGGED:
                log.info("... and %d more changes", len(plan.changes) - CHANGES_LOGGED)
        self._report_quarantine(plan.quarantined)
        self._refresh_gauges(caches)

    def _report_quarantine(self, quarantined: Mapping[str, tuple[Diagnostic, ...]]) -> None:
        """Log the files that entered the quarantine (or whose diagnostics changed) and
        those that left it. A broken file pushed to git changes no job (its jobs keep
        their last applied spec), so without these lines the daemon's log an operator
        tails said nothing: only `status`, the API and the metric showed it."""
        entered, left = quarantine_news(self._quarantined, quarantined)
        self._quarantined = dict(quarantined)
        for path in entered[:CHANGES_LOGGED]:
            diagnostics = quarantined[path]
            more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
            log.warning(
                "%s quarantined, its jobs keep their last applied spec: %s%s",
                path,
                diagnostics[0].render(),
                more,
            )
        for path in left[:CHANGES_LOGGED]:
            log.info("%s valid again: out of quarantine", path)
        hidden = max(0, len(entered) - CHANGES_LOGGED) + max(0, len(left) - CHANGES_LOGGED)
        if hidden:
            log.info("... and %d more files in or out of quarantine", hidden)

    def _refresh_gauges(self, caches: ReconcileCaches) -> None:
        """Abandoned when a file event arrives while it reads (`JobGauges.refresh`): the
        pass that event wakes runs at once, and refreshes the gauges after it. (At
        100,000 jobs the read took longer than the pass: an edit waited seconds for it,
        and under load was not applied within a minute.)"""
        try:
            self._gauges.refresh(
                self._engine,
                caches.essences,
                caches.memory.triggers,
                stopping=self._wake.is_set,
            )
        except Exception:  # metrics must never fail the loop
            log.warning("refreshing the job gauges failed", exc_info=True)


def quarantine_news(
    before: Mapping[str, tuple[Diagnostic, ...]], after: Mapping[str, tuple[Diagnostic, ...]]
) -> tuple[list[str], list[str]]:
    """The paths that entered the quarantine between two passes (or stayed with other
    diagnostics: a different mistake is news too), and the paths that left it, sorted."""
    entered = sorted(path for path, found in after.items() if before.get(path) != found)
    left = sorted(path for path in before if path not in after)
    return entered, left
