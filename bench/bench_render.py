"""Benchmark of rendering a 10,000-change plan as text, JSON and Markdown, in process.

    .venv/bin/python bench/bench_render.py [--changes 10000] [--repeat 5]

Three plans, made by the pure core (no database): over jobs like bench_apply.py's (10
per file, 20 folders), "cold", every job an add (what `reconcile apply` prints on an
empty database), and "mixed", half adds, a quarter updates (a schedule and a label
changed) and a quarter removes; and "corpus cold", every job an add, over the jobs the
process benchmarks run on (bench/corpus.py: a description, kwargs.data.*, labels, a
queue, a zone, a misfire grace; loaded from their YAML text as `reconcile` loads them),
whose text is 5 MB at 10,000 jobs. Each renderer runs `--repeat` times on the same
plan; the figures are the fastest and the median wall time and the median CPU time of
the process (CPU time moves less than wall time on a loaded machine). Target (issue 15):
each format <= 0.1 s. The load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corpus import file_path, file_text

from reconciler.core.plan import Plan, make_plan
from reconciler.core.plan_json import render_json
from reconciler.core.render import render_markdown, render_text
from reconciler.core.state import ActualState, DesiredJob, DesiredState, InventoryRow, Revision
from reconciler.settings import Settings
from reconciler.spec.loader import load_bytes
from reconciler.spec.model import JobSpec

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REVISION = Revision(commit="0123456789abcdef0123456789abcdef01234567")
TARGET_SECONDS = 0.1


def job(index: int, *, cron: str = "*/5 * * * *", team: str | None = None) -> DesiredJob:
    file_index = index // 10
    spec = JobSpec.model_validate(
        {
            "name": f"job-{index:05d}",
            "task": "reconciler.tasks.example_task",
            "schedule": {"cron": cron},
            "kwargs": {"n": index % 10},
            "labels": {"team": team or f"t{file_index % 9}"},
        }
    )
    source = f"team{file_index % 20}/file{file_index:04d}.yaml"
    return DesiredJob.of(spec, source=source, line=1 + 6 * (index % 10))


def applied(jobs: list[DesiredJob]) -> dict[str, InventoryRow]:
    return {
        j.name: InventoryRow(
            name=j.name,
            essence=j.essence,
            spec_hash=j.spec_hash,
            status="active",
            source_file=j.source,
            source_line=j.line,
            revision=REVISION.commit,
        )
        for j in jobs
    }


def cold_plan(changes: int) -> Plan:
    desired = {j.name: j for j in map(job, range(changes))}
    return _plan(desired, {})


def corpus_plan(changes: int) -> Plan:
    """Every job of bench/corpus.py's files (10 per file) added, without next-fire
    previews (as `reconcile apply` plans); `changes` rounded up to whole files."""
    settings, desired = Settings(), {}
    for number in range(-(-changes // 10)):
        source = file_path(Path(), number).as_posix()
        text = file_text(number, 10).encode()
        for loaded in load_bytes(source, text, settings=settings, now=NOW).jobs:
            desired[loaded.name] = DesiredJob.of(loaded.spec, source=source, line=loaded.line)
    return _plan(desired, {}, preview_fires=False)


def mixed_plan(changes: int) -> Plan:
    adds, updates, removes = changes // 2, changes // 4, changes - changes // 2 - changes // 4
    kept = [job(i) for i in range(updates + removes)]
    desired = {j.name: j for j in map(job, range(updates + removes, updates + removes + adds))}
    for index in range(updates):
        desired[f"job-{index:05d}"] = job(index, cron="*/7 * * * *", team="platform")
    return _plan(desired, applied(kept))


def _plan(
    desired: dict[str, DesiredJob],
    inventory: dict[str, InventoryRow],
    *,
    preview_fires: bool = True,
) -> Plan:
    return make_plan(
        DesiredState(jobs=desired, revision=REVISION),
        ActualState(inventory=inventory, scheduler={}),
        now=NOW,
        allow_mass_delete=True,
        preview_fires=preview_fires,
    )


def measure(render: Callable[[Plan], str], plan: Plan, repeat: int) -> dict[str, Any]:
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        text = render(plan)
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return {
        "fastest": min(walls),
        "median": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "megabytes": len(text.encode()) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    formats: dict[str, Callable[[Plan], str]] = {
        "text": render_text,
        "json": render_json,
        "markdown": render_markdown,
    }
    print(f"load average before: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    plans = (("cold", cold_plan), ("mixed", mixed_plan), ("corpus cold", corpus_plan))
    for name, make in plans:
        plan = make(options.changes)
        summary = ", ".join(f"{n} {a}" for a, n in plan.summary.items() if n)
        print(f"\n{name} plan: {len(plan.changes)} changes ({summary})")
        print("  format     fastest   median   CPU (median)   output   target")
        for label, render in formats.items():
            figures = measure(render, plan, options.repeat)
            verdict = "met" if figures["fastest"] <= TARGET_SECONDS else "NOT met"
            print(
                f"  {label:<9} {figures['fastest']:7.3f} s {figures['median']:7.3f} s "
                f"{figures['cpu']:9.3f} s   {figures['megabytes']:5.1f} MB   {verdict}"
            )
    print(f"\nload average after: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")


if __name__ == "__main__":
    main()
