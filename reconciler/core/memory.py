"""The speed-up memories of the pure core, in one object that its owner passes in
(kopf's inventory: explicit per-process memories, not module globals).

A long-running process keeps one for its life (the engine's ReconcileCaches); a one-shot
command makes a fresh one, or passes none. Nothing computed ever depends on it: each
memory holds values that its key determines completely, and is bounded (cleared when
full: a recomputation is only a cost).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.core.state import SchedulerJob, SpecFound, scheduler_job, transient
from reconciler.core.triggers import MEMORY_LIMIT, TriggerMemory
from reconciler.spec.model import JobSpec


@dataclass
class CoreMemory:
    """What planning remembers between calls."""

    # The scheduler row content per (spec hash, revision): a full pass over 10,000
    # unchanged jobs then costs a look-up per job instead of building its trigger.
    scheduler_jobs: dict[tuple[str, str | None], SchedulerJob] = field(default_factory=dict)
    # Triggers, fingerprints and fire times (status, previews, first run times).
    triggers: TriggerMemory = field(default_factory=TriggerMemory)

    def scheduler_job(
        self, found: SpecFound, *, spec_hash: str, revision: str | None
    ) -> SchedulerJob:
        """`scheduler_job(...)` of the spec `found` stands for, remembered. A spec
        recorded and not built yet (core.state.RecordedSpec) is built only when the
        memory does not know the job, and not kept (`transient`)."""
        key = (spec_hash, revision)
        known = self.scheduler_jobs.get(key)
        if known is None or known.id != found.name:
            if len(self.scheduler_jobs) >= MEMORY_LIMIT:
                self.scheduler_jobs.clear()
            spec = found if type(found) is JobSpec else transient(found)  # no call for a spec
            known = scheduler_job(
                spec, spec_hash=spec_hash, revision=revision, triggers=self.triggers
            )
            self.scheduler_jobs[key] = known
        return known
