"""`reconcile status`: leader, last reconcile, revision, jobs by status, quarantined files
and drift — read from the database alone, so it works from any machine that can reach it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from reconciler.commands._common import add_format, open_engine, schema_ready

HELP = "summary: leader, last reconcile, revision, jobs by status, quarantine, drift"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_format(parser, "text", "json")


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import settings_from
    from reconciler.errors import ConfigError
    from reconciler.store.status import read_status

    settings = settings_from(args)
    engine = open_engine(settings)
    try:
        if not schema_ready(engine):
            raise ConfigError("the database has no schema yet: run `reconcile db upgrade`")
        with engine.connect() as connection:
            report = read_status(connection)
    finally:
        engine.dispose()
    if args.format == "json":
        print(json.dumps(report.__dict__, indent=2, default=str))
    else:
        print(render_status(report.__dict__))
    return 0


def render_status(report: dict[str, Any]) -> str:
    leader = report["leader"]
    lines = [
        "Leader:         "
        + (f"{leader['instance']} (epoch {leader['epoch']})" if leader else "none"),
    ]
    last = report["last_reconcile"]
    if last:
        lines.append(
            f"Last reconcile: {last['started_at']} {last['outcome']} via {last['trigger']} "
            f"(+{last['added']} ~{last['updated']} -{last['removed']} !{last['repaired']}, "
            f"{(last['duration_seconds'] or 0):.3f} s)"
        )
    else:
        lines.append("Last reconcile: never")
    applied = report["last_applied"]
    revision = (applied or {}).get("revision") or "(not a git checkout)"
    dirty = " (dirty)" if applied and applied.get("revision_dirty") else ""
    lines.append(f"Revision:       {revision}{dirty}")
    counts = report["jobs_by_status"]
    total = sum(counts.values())
    detail = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    lines.append(f"Jobs:           {total}" + (f" ({detail})" if detail else ""))
    quarantined = report["quarantined"]
    lines.append(f"Quarantined:    {len(quarantined)} files")
    for entry in quarantined:
        for diagnostic in entry["diagnostics"]:
            lines.append(
                f"  {diagnostic['path']}:{diagnostic['line']}:{diagnostic['column']}: "
                f"{diagnostic['code']} {diagnostic['message']}"
            )
    drift = report["missing_rows"] + report["paused_mismatch"]
    lines.append(
        f"Drift:          {len(drift)} jobs" + (f" ({', '.join(drift[:10])})" if drift else "")
    )
    foreign = report["foreign_rows"]
    lines.append(
        f"Foreign rows:   {len(foreign)}" + (f" ({', '.join(foreign[:10])})" if foreign else "")
    )
    return "\n".join(lines)
