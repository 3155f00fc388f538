"""`reconcile next JOB | --cron EXPR [--timezone Z] [--from T] [--count N]`: the next fire
times, as the daemon will fire them, with UTC offsets and a marker on DST-affected ones
(like `systemd-analyze calendar`). No database: a JOB is read from the job files.

Exit 0, or 1 for an unknown job, an invalid cron, zone or time.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from reconciler.commands._common import settings_from
from reconciler.errors import ConfigError

HELP = "the next fire times of a job or a cron expression, with DST markers"
_WHY = {
    "gap-next": "in the DST gap: runs once, at the jump (gap: next)",
    "gap-shift": "in the DST gap: runs shifted by the jump (gap: shift)",
    "repeat-first": "repeated wall time: first occurrence",
    "repeat-second": "repeated wall time: second occurrence",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", nargs="?", metavar="JOB", help="a job name from the job files")
    parser.add_argument("--cron", metavar="EXPR", help="a cron expression instead of a job")
    parser.add_argument("--timezone", metavar="Z", help="zone of --cron (default UTC)")
    parser.add_argument("--gap", choices=("shift", "next", "skip"), help="DST gap policy")
    parser.add_argument("--repeat", choices=("first", "last", "both"), help="DST repeat policy")
    parser.add_argument(
        "--from",
        dest="start",
        metavar="T",
        help="ISO time to count from (default now; a naive time is read in the zone)",
    )
    parser.add_argument("--count", type=int, default=10, metavar="N", help="how many (default 10)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from reconciler.core.triggers import upcoming_fires

    if (args.job is None) == (args.cron is None):
        raise ConfigError("give a JOB or --cron EXPR (one of them)")
    if not 1 <= args.count <= 10_000:
        raise ConfigError("--count must be 1-10000")
    spec = _job_spec(args)
    start = _start(args.start, spec.zoned)
    fires = upcoming_fires(spec, after=start, count=args.count)
    rows = [_row(fire) for fire in fires]
    if args.format == "json":
        document = {
            "job": args.job,
            "timezone": spec.timezone,
            "dst": _policy(spec),
            "fires": rows,
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(_text(args.job or args.cron, spec, rows))
    return 0


def _job_spec(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from reconciler.spec.checks import NEVER_FIRES, cron_fires
    from reconciler.spec.model import JobSpec

    if args.cron is None:
        if args.timezone or args.gap or args.repeat:
            raise ConfigError("--timezone, --gap and --repeat go with --cron (a job has its own)")
        return _load_job(args)
    dst = {k: v for k, v in (("gap", args.gap), ("repeat", args.repeat)) if v}
    document: dict[str, Any] = {
        "name": "cron",
        "task": "reconciler.tasks.example_task",
        "schedule": {"cron": args.cron},
        "timezone": args.timezone or "UTC",
    }
    if dst:
        document["dst"] = dst
    try:
        spec = JobSpec.model_validate(document)
    except ValidationError as error:
        reasons = "; ".join(str(e["msg"]) for e in error.errors())
        raise ConfigError(reasons) from None
    # As in a job file (CRON_NEVER_FIRES): invalid input, not an empty list.
    if not cron_fires(spec, now=datetime.now(UTC)):
        raise ConfigError(NEVER_FIRES)
    return spec


def _load_job(args: argparse.Namespace) -> Any:
    from reconciler.spec.loader import load_paths

    settings = settings_from(args)
    result = load_paths([settings.jobs_dir], settings=settings)
    for job in result.jobs:
        if job.spec.name == args.job:
            return job.spec
    raise ConfigError(f"no job named {args.job!r} in {settings.jobs_dir}")


def _start(text: str | None, zoned: Any) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--from {text!r} is not an ISO time") from None
    try:
        result: datetime = zoned(moment)
        result.astimezone(UTC)
    except OverflowError:
        raise ConfigError(f"--from {text!r} is out of the calendar's range") from None
    return result


def _row(fire: Any) -> dict[str, Any]:
    at: datetime = fire.at
    placement = fire.placement.value
    return {
        "at": at.isoformat(),
        "utc": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "zone": at.tzname(),
        "wall": fire.wall.isoformat(),
        "dst": None if placement == "normal" else placement,
    }


def _policy(spec: Any) -> dict[str, str] | None:
    """The DST policy in force (the default filled in), None for non-cron schedules."""
    from reconciler.core.schedule import resolve_policy
    from reconciler.core.triggers import cron_source
    from reconciler.spec.cron import compile_cron
    from reconciler.spec.model import CronSchedule

    if not isinstance(spec.schedule, CronSchedule):
        return None
    dst = spec.dst
    policy = resolve_policy(
        compile_cron(cron_source(spec.schedule)),
        gap=dst.gap if dst else None,
        repeat=dst.repeat if dst else None,
    )
    return {"gap": policy.gap.value, "repeat": policy.repeat.value}


def _text(title: str, spec: Any, rows: list[dict[str, Any]]) -> str:
    policy = _policy(spec)
    dst = f", dst: gap={policy['gap']} repeat={policy['repeat']}" if policy else ""
    lines = [f"{title} in {spec.timezone}{dst}:"]
    for row in rows:
        at = datetime.fromisoformat(row["at"])
        line = f"  {at:%a %Y-%m-%d %H:%M:%S} {at:%z} {row['zone']:<6} {row['utc']}"
        if row["dst"]:
            wall = datetime.fromisoformat(row["wall"])
            line += f"  * {_WHY[row['dst']]} (wall time {wall:%H:%M:%S})"
        lines.append(line.rstrip())
    if not rows:
        lines.append("  (no future fire)")
    return "\n".join(lines) + "\n"
