"""Semantic checks that need configuration or the clock: pure, with both injected.

A finding names the field it is about (a path into the job document), so the loader can
point at the right line. Contracts:

- `check_job` returns findings in field order; an empty tuple means the job is fine.
- A one-off date in the past is NOT a finding: that job has simply completed. Neither is
  an `end` in the past. A cron schedule that has no fire time within the next 400 years
  (the Gregorian calendar repeats every 400 years, so for a cron without a `year` field
  that means never) is CRON_NEVER_FIRES.
- `find_duplicate_names` reports every location of a name declared more than once, each
  naming the other locations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from reconciler.settings import Settings
from reconciler.spec.cron import cron_fields
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.model import CronSchedule, JobSpec

# Celery's built-ins (celery.chord_unlock, celery.backend_cleanup, celery.group ...) run
# whatever signatures they are given: never allowed, whatever the allowlist says.
_CELERY_INTERNAL = "celery"
_HORIZON_YEARS = 401


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with one job: the field it is about, a diagnostic code, a message."""

    field: tuple[str, ...]
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class NameSite:
    """Where a job name is declared."""

    name: str
    source: str
    line: int
    column: int


def check_job(spec: JobSpec, *, settings: Settings, now: datetime) -> tuple[Finding, ...]:
    """Findings about `spec` under `settings` at `now` (an aware datetime)."""
    findings = list(check_routing(spec.task, spec.queue, settings=settings))
    if isinstance(spec.schedule, CronSchedule) and not cron_fires(spec, now=now):
        message = "this cron schedule never fires (no matching date, e.g. 31 February)"
        findings.append(Finding(("schedule", "cron"), "CRON_NEVER_FIRES", message))
    return tuple(findings)


def check_routing(task: object, queue: object, *, settings: Settings) -> tuple[Finding, ...]:
    """TASK_NOT_ALLOWED and UNKNOWN_QUEUE findings. Takes raw values, so that a document
    that fails validation elsewhere still gets these reported; non-text is ignored."""
    findings: list[Finding] = []
    if isinstance(task, str) and not is_task_allowed(task, settings.task_allowlist):
        findings.append(Finding(("task",), "TASK_NOT_ALLOWED", _task_message(task, settings)))
    if isinstance(queue, str) and queue not in settings.queues:
        known = ", ".join(settings.queues)
        message = f"unknown queue {queue!r}; configured queues: {known}"
        findings.append(Finding(("queue",), "UNKNOWN_QUEUE", message))
    return tuple(findings)


def is_task_allowed(task: str, allowlist: Sequence[str]) -> bool:
    """True if `task` is named exactly, or under a prefix ending in '.' or '*'.

    `celery` and `celery.*` are refused even when the allowlist names them."""
    if task == _CELERY_INTERNAL or task.startswith(_CELERY_INTERNAL + "."):
        return False
    for entry in allowlist:
        if entry.endswith(("*", ".")):
            if task.startswith(entry.rstrip("*")):
                return True
        elif task == entry:
            return True
    return False


def _task_message(task: str, settings: Settings) -> str:
    if task == _CELERY_INTERNAL or task.startswith(_CELERY_INTERNAL + "."):
        return f"task {task!r} is a Celery internal: celery.* tasks are never allowed"
    allowed = ", ".join(settings.task_allowlist) or "(empty)"
    return f"task {task!r} is not on the allowlist ({allowed}; RECONCILER_TASK_ALLOWLIST)"


def cron_fires(spec: JobSpec, *, now: datetime) -> bool:
    """True if the cron schedule of `spec` has a fire time after max(now, start).

    The search is bounded to 400 years (APScheduler's own search runs to the year 9999
    and takes up to half a second for an impossible date)."""
    assert isinstance(spec.schedule, CronSchedule)
    cron = spec.schedule.cron
    source = cron if isinstance(cron, str) else cron.as_mapping()
    yearless = isinstance(cron, str) or "year" not in source
    if spec.start is None and yearless:
        # Without a year or a start, whether it ever fires does not depend on `now`.
        key = source if isinstance(source, str) else tuple(sorted(source.items()))
        return _yearless_cron_fires(key, spec.timezone)
    fields = tuple(sorted(cron_fields(source).items()))
    start = spec.zoned(spec.start) if spec.start is not None else now
    return _next_fire(fields, spec.timezone, max(start, now)) is not None


@lru_cache(maxsize=4096)
def _yearless_cron_fires(cron: str | tuple[tuple[str, str | int], ...], timezone: str) -> bool:
    # Memoised: thousands of jobs share a handful of expressions, and the answer for a
    # yearless cron is the same from any starting point (see the module docstring).
    fields = cron_fields(cron if isinstance(cron, str) else dict(cron))
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return _next_fire(tuple(sorted(fields.items())), timezone, start) is not None


def _next_fire(
    fields: tuple[tuple[str, str], ...], timezone: str, start: datetime
) -> datetime | None:
    from apscheduler.triggers.cron import CronTrigger

    horizon = start.replace(year=min(start.year + _HORIZON_YEARS, 9999), month=1, day=1)
    trigger = CronTrigger(timezone=timezone, end_date=horizon, **dict(fields))
    fire: datetime | None = trigger.get_next_fire_time(None, start)
    return fire


def find_duplicate_names(sites: Iterable[NameSite]) -> list[Diagnostic]:
    """DUPLICATE_JOB at every site of a name declared more than once, sorted."""
    by_name: dict[str, list[NameSite]] = defaultdict(list)
    for site in sites:
        by_name[site.name].append(site)
    diagnostics: list[Diagnostic] = []
    for name, group in by_name.items():
        if len(group) < 2:
            continue
        for site in group:
            others = [f"{o.source}:{o.line}" for o in group if o is not site]
            message = f"job {name!r} is also declared at {', '.join(others)}"
            diagnostics.append(
                Diagnostic(site.source, site.line, site.column, "DUPLICATE_JOB", message)
            )
    return sorted(diagnostics)
