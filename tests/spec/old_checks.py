"""The per-job checks and essence as they were before they were cut (December 2026),
kept as the reference the new ones are compared with (test_checks_reference.py): the
never-fires search run on the whole pattern for each cron, the argument checks
building their lists, the essence dumped by pydantic."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from reconciler.core.schedule import next_wall
from reconciler.settings import Settings
from reconciler.spec.catalog import (
    CONFINED_TASKS,
    CatalogError,
    Problem,
    TaskParameters,
    _dotted,
    _fits,
    _hint_text,
    extra_checks,
    task_catalog,
)
from reconciler.spec.checks import NEVER_FIRES, Finding, check_routing
from reconciler.spec.cron import CronPattern, compile_cron
from reconciler.spec.essence import canonical_json, hash_essence
from reconciler.spec.floats import holds_float
from reconciler.spec.model import CronSchedule, JobSpec


def check_job(spec: JobSpec, *, settings: Settings, now: datetime) -> tuple[Finding, ...]:
    findings = list(check_routing(spec.task, spec.queue, settings=settings))
    if not findings:
        findings += check_task_arguments(spec, settings=settings)
    if isinstance(spec.schedule, CronSchedule) and not cron_fires(spec, now=now):
        findings.append(Finding(("schedule", "cron"), "CRON_NEVER_FIRES", NEVER_FIRES))
    return tuple(findings)


def check_task_arguments(spec: JobSpec, *, settings: Settings) -> list[Finding]:
    try:
        catalog = task_catalog(settings.task_modules)
    except CatalogError as error:
        return [Finding(("task",), "TASK_MODULE_ERROR", str(error))]
    params = catalog.get(spec.task)
    if params is None:
        return []
    problems = check_arguments(params, spec.args, spec.kwargs)
    if not problems and spec.task in CONFINED_TASKS:
        problems = extra_checks(
            spec.task,
            spec.args,
            spec.kwargs,
            sql_statements=settings.sql_statement_allowlist,
            report_dir=settings.report_dir,
        )
    return [Finding(p.field, p.code, p.message) for p in problems]


def check_arguments(params: TaskParameters, args: list[Any], kwargs: Any) -> list[Problem]:
    problems = _arity(params, args, kwargs)
    parameters = params.signature.parameters
    given: list[tuple[tuple[str | int, ...], str, Any]] = [
        (("args", index), name, value)
        for index, (name, value) in enumerate(zip(params.positional, args, strict=False))
    ]
    given += [(("kwargs", key), key, value) for key, value in kwargs.items() if key in parameters]
    for field, name, value in given:
        hint = params.hints.get(name)
        if hint is None or hint is Any or _fits(hint, value):
            continue
        message = f"{_dotted(field)}: expected {_hint_text(hint)} for {name!r} of {params.task}"
        problems.append(Problem(field, "INVALID_ARGUMENT", message))
    return problems


def _arity(params: TaskParameters, args: list[Any], kwargs: Any) -> list[Problem]:
    parameters = params.signature.parameters
    positional = params.positional
    problems: list[Problem] = []
    if not params.takes_any_positional and len(args) > len(positional):
        message = (
            f"args: {params.task} takes at most {len(positional)} positional "
            f"argument{'s' if len(positional) != 1 else ''}, {len(args)} given"
        )
        problems.append(Problem(("args",), "INVALID_ARGUMENT", message))
    taken = set(positional[: len(args)])
    for key in kwargs:
        if key in taken:
            message = f"kwargs.{key}: also given as a positional argument (args)"
            problems.append(Problem(("kwargs", key), "INVALID_ARGUMENT", message))
        elif key not in parameters and not params.takes_any_keyword:
            known = ", ".join(parameters) or "none"
            message = f"kwargs.{key}: {params.task} has no parameter {key!r} (it takes: {known})"
            problems.append(Problem(("kwargs", key), "UNKNOWN_ARGUMENT", message))
    for name in params.required:
        if name not in kwargs and name not in taken:
            field: tuple[str | int, ...] = (
                ("kwargs",) if kwargs else ("args",) if args else ("task",)
            )
            message = f"{params.task} needs the argument {name!r} (in kwargs or args)"
            problems.append(Problem(field, "MISSING_ARGUMENT", message))
    return problems


def cron_fires(spec: JobSpec, *, now: datetime) -> bool:
    assert isinstance(spec.schedule, CronSchedule)
    cron = spec.schedule.cron
    pattern = compile_cron(cron if isinstance(cron, str) else cron.as_mapping())
    if not calendar_allows(pattern):
        return False
    if spec.start is None and pattern.years is None:
        return True
    from reconciler.core.triggers import build_trigger

    start = spec.zoned(spec.start) if spec.start is not None else now
    trigger = build_trigger(spec.model_copy(update={"end": None}), with_jitter=False)
    return trigger.get_next_fire_time(None, max(start, now)) is not None


def calendar_allows(pattern: CronPattern) -> bool:
    """On the whole pattern, its times of day included (no memo)."""
    days = pattern.days
    if days.weeks is not None:
        years = 401
    elif days.dow == frozenset(range(7)) and not days.dow_positions:
        years = 1
    else:
        years = 29
    yearless = dataclasses.replace(pattern, years=None)
    start = datetime(2000, 1, 1)
    return next_wall(yearless, start, datetime(2000 + years, 1, 1)) is not None


def essence(spec: JobSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude_none=True, exclude={"previous_names"})


def essence_and_hash(spec: JobSpec) -> tuple[dict[str, Any], str]:
    data = essence(spec)
    assert holds_float(data) == (holds_float(data["args"]) or holds_float(data["kwargs"]))
    canonical_json(data)  # what was hashed: raises as it did (a lone surrogate)
    return data, hash_essence(data)
