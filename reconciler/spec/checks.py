"""Semantic checks that need configuration or the clock: pure, with both injected.

A finding names the field it is about (a path into the job document), so the loader can
point at the right line. Contracts:

- `check_job` returns findings in field order; an empty tuple means the job is fine.
- A one-off date in the past is NOT a finding: that job has simply completed. Neither is
  an `end` in the past. A cron schedule that matches no date at all (31 February), or
  none after max(now, start) within 400 years, is CRON_NEVER_FIRES.
- `find_duplicate_names` reports every location of a name declared more than once, each
  naming the other locations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from reconciler.core.moments import rfc3339
from reconciler.core.schedule import next_wall
from reconciler.settings import Settings
from reconciler.spec.catalog import (
    CONFINED_TASKS,
    CatalogError,
    check_arguments,
    extra_checks,
    task_catalog,
)
from reconciler.spec.cron import CronPattern, DayRule, compile_cron
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.model import CronFieldMap, CronSchedule, DateSchedule, JobSpec

# Celery's built-ins (celery.chord_unlock, celery.backend_cleanup, celery.group ...) run
# whatever signatures they are given: never allowed, whatever the allowlist says.
_CELERY_INTERNAL = "celery"
_HORIZON_YEARS = 401


NEVER_FIRES = "this cron schedule never fires (no matching date, e.g. 31 February)"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with one job: the field it is about, a diagnostic code, a message."""

    field: tuple[str | int, ...]
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
    if not findings:
        findings += check_task_arguments(spec, settings=settings)
    if isinstance(spec.schedule, CronSchedule) and not cron_fires(spec, now=now):
        findings.append(Finding(("schedule", "cron"), "CRON_NEVER_FIRES", NEVER_FIRES))
    return tuple(findings)


def past_one_off(spec: JobSpec, *, now: datetime) -> str | None:
    """A WARNING, not a finding: the reason a one-off job whose `at` is not after `now`
    never fires (it may have run already: that run stands). None for any other job."""
    if not isinstance(spec.schedule, DateSchedule):
        return None
    at = spec.zoned(spec.schedule.at)
    if at > now:
        return None
    return (
        f"the one-off time {rfc3339(at)} is in the past: the job is accepted as "
        "completed and never fires (a run it already had stands)"
    )


def never_fires_again(spec: JobSpec, *, now: datetime) -> str | None:
    """Why a job has no fire time after `now` any more (a past one-off, an `end` that has
    passed), for people reading a `completed` job; None when neither holds."""
    reason = past_one_off(spec, now=now)
    if reason is None and spec.end is not None and spec.zoned(spec.end) <= now:
        reason = f"its end {rfc3339(spec.zoned(spec.end))} has passed: it never fires again"
    return reason


def check_task_arguments(spec: JobSpec, *, settings: Settings) -> list[Finding]:
    """UNKNOWN_ARGUMENT / MISSING_ARGUMENT / INVALID_ARGUMENT for `args` and `kwargs`
    that do not fit the task's parameters (see reconciler.spec.catalog), offline."""
    try:
        catalog = task_catalog(settings.task_modules)
    except CatalogError as error:
        return [Finding(("task",), "TASK_MODULE_ERROR", str(error))]
    params = catalog.get(spec.task)
    if params is None:
        return []  # a task no listed module declares: its worker will check
    # The spec's own list: read, never changed, by both checks (no copy per job).
    problems = check_arguments(params, spec.args, spec.kwargs)
    if not problems:
        if spec.task not in CONFINED_TASKS:
            return []
        problems = extra_checks(
            spec.task,
            spec.args,
            spec.kwargs,
            sql_statements=settings.sql_statement_allowlist,
            report_dir=settings.report_dir,
        )
    return [Finding(p.field, p.code, p.message) for p in problems]


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

    Cheap first: whether the pattern can ever match a wall time is a property of the
    expression alone (memoised; see `_cron_calendar`). Only a cron with a year or a
    start is then searched from max(now, start) by the schedule engine (401 years at
    most, the Gregorian cycle)."""
    assert isinstance(spec.schedule, CronSchedule)
    allowed, names_years = _cron_calendar(spec.schedule.cron)
    if not allowed:
        return False
    if spec.start is None and not names_years:
        return True
    # Imported when needed (a cron with a year or a start): it brings in APScheduler.
    from reconciler.core.triggers import build_trigger

    start = spec.zoned(spec.start) if spec.start is not None else now
    # Without `end`: a job whose end has passed completed, it is not a broken schedule.
    unending = spec.model_copy(update={"end": None})
    trigger = build_trigger(unending, with_jitter=False)
    return trigger.get_next_fire_time(None, max(start, now)) is not None


# Process-wide memos (docs/architecture.md): reached from the loader's validation (in forked
# loader processes too), which has no owner to pass in. The first is keyed by the cron as
# written (text or frozen field map): the jobs of a folder share a few crons, and a key of
# the pattern made the map's dump, its compilation and the pattern's hash again for every
# job. The second by what the answer depends on, the months and day rule: distinct crons
# mostly differ in their times of day only ("5 10 * * *", "6 10 * * *"), and the search
# for a matching date was most of a load's checks.
@lru_cache(maxsize=4096)
def _cron_calendar(cron: str | CronFieldMap) -> tuple[bool, bool]:
    """Whether a cron matches any wall time at all, its years aside
    (`_calendar_allows`), and whether it names years."""
    pattern = compile_cron(cron if isinstance(cron, str) else cron.as_mapping())
    return _calendar_allows(pattern.months, pattern.days), pattern.years is not None


@lru_cache(maxsize=1024)
def _calendar_allows(months: frozenset[int], days: DayRule) -> bool:
    """Whether a pattern of these months and days, its years aside, matches any wall
    time at all. Its times of day do not matter: a compiled pattern names at least one
    (each time field is a non-empty set), and every day has every wall time.

    Searched from 2000-01-01 (a leap year: every month/day pair exists) over:
    - 1 year when the weekday and ISO week are free: each date occurs in 2000;
    - 29 years when the weekday is restricted: every date, 29 February included, falls
      on every weekday within 28 years (2000-2028 has no skipped leap year);
    - 401 years when an ISO week is given (the Gregorian calendar repeats every 400).
    A wall time inside a DST gap exists on the other days of the year, so the zone does
    not matter here."""
    if days.weeks is not None:
        years = _HORIZON_YEARS
    elif days.dow == frozenset(range(7)) and not days.dow_positions:
        years = 1
    else:
        years = 29
    midnight = (0,)
    pattern = CronPattern(midnight, midnight, midnight, months, days, real_time=False)
    start = datetime(2000, 1, 1)
    return next_wall(pattern, start, datetime(2000 + years, 1, 1)) is not None


def find_duplicate_names(sites: Iterable[NameSite]) -> list[Diagnostic]:
    """DUPLICATE_JOB at every site of a name declared more than once, sorted."""
    all_sites = list(sites)
    if len({site.name for site in all_sites}) == len(all_sites):
        return []  # the usual case, checked on every daemon pass: keep it cheap
    by_name: dict[str, list[NameSite]] = defaultdict(list)
    for site in all_sites:
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
