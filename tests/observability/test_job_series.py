"""reconciler.job_series against the prometheus_client families it replaced: the same
random operations (track, fires, misses, duplicates, gauges set and removed, forget,
forget all) through the daemon's real per-job families and through plain Counter/Gauge
objects defined as before, then the same exposition from `generate_latest`.

Compared: every HELP and TYPE line, every sample line (name, labels, value) and the
presence of every `_created` sample. Not compared: the `_created` values (each side
takes its own clock; checked to lie within the test's run instead) and the order of the
samples inside a family (by job here, by creation there; Prometheus ignores it)."""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, generate_latest

from reconciler import metrics

JOB_NAMES = 5


class Before:
    """The per-job families, track_job and forget_job as they were (prometheus_client
    children), in a registry of their own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.FIRES = Counter(
            "reconciler_fires_total",
            "Fires by outcome (published, duplicate, skipped_overlap, missed, unpublished, "
            "expired, fenced)",
            ["job_name", "outcome"],
            registry=r,
        )
        self.DUPLICATE_FIRES = Counter(
            "reconciler_duplicate_fires_suppressed_total",
            "Second fires of a slot (failover, two schedulers) recorded and not published",
            ["job_name"],
            registry=r,
        )
        self.MISSED_SLOTS = Counter(
            "reconciler_missed_slots_total",
            "Slots that were not run, by reason (misfire, coalesced, catch_up_limit, overlap, "
            "expired)",
            ["job_name", "reason"],
            registry=r,
        )
        self.SLOT_ABSENT = Gauge(
            "reconciler_job_slot_absent",
            "1 when a past slot of the job (older than its misfire grace plus 60 s) has no row "
            "in the run ledger and nothing newer has: it neither ran nor was recorded missed or "
            "skipped; 0 otherwise (absent while paused or completed)",
            ["job_name"],
            registry=r,
        )
        self.NEXT_FIRE = Gauge(
            "reconciler_job_next_fire_timestamp_seconds",
            "Next scheduled fire per job (absent while paused)",
            ["job_name"],
            registry=r,
        )
        self.JOB_INTERVAL = Gauge(
            "reconciler_job_interval_seconds",
            "Nominal seconds between two fires of a job: its interval, or the gap between the "
            "next two fires of its cron (absent for a one-off date)",
            ["job_name"],
            registry=r,
        )

    def track_job(
        self, job_name: str, *, interval_seconds: float | None, next_fire: float | None = None
    ) -> None:
        for outcome in metrics.FIRE_OUTCOMES:
            self.FIRES.labels(job_name=job_name, outcome=outcome)
        for reason in metrics.MISS_REASONS:
            self.MISSED_SLOTS.labels(job_name=job_name, reason=reason)
        self.DUPLICATE_FIRES.labels(job_name=job_name)
        self.SLOT_ABSENT.labels(job_name=job_name)
        if interval_seconds is None:
            self.JOB_INTERVAL.remove(job_name)
        else:
            self.JOB_INTERVAL.labels(job_name=job_name).set(interval_seconds)
        if next_fire is None:
            self.NEXT_FIRE.remove(job_name)
        else:
            self.NEXT_FIRE.labels(job_name=job_name).set(next_fire)

    def forget_job(self, job_name: str) -> None:
        for outcome in metrics.FIRE_OUTCOMES:
            self.FIRES.remove(job_name, outcome)
        for reason in metrics.MISS_REASONS:
            self.MISSED_SLOTS.remove(job_name, reason)
        self.DUPLICATE_FIRES.remove(job_name)
        self.JOB_INTERVAL.remove(job_name)
        self.NEXT_FIRE.remove(job_name)
        self.SLOT_ABSENT.remove(job_name)


def random_steps(rng: random.Random, jobs: list[str], count: int) -> list[Callable[[Any], None]]:
    """Operations as the daemon makes them: `side` is the metrics module or a Before."""
    steps: list[Callable[[Any], None]] = []
    values = [None, 0, 1, 60, 300.5, 1_700_000_000, 1_800_000_000.25]
    for _ in range(count):
        job = rng.choice(jobs)
        kind = rng.choice(
            ["track", "track", "fire", "fire", "miss", "duplicate", "gauge", "gauge", "forget"]
            + ["forget_all"] * (rng.random() < 0.1)
        )
        if kind == "track":
            interval, next_fire = rng.choice(values), rng.choice(values)

            def step(side: Any, job: str = job, i: Any = interval, n: Any = next_fire) -> None:
                side.track_job(job, interval_seconds=i, next_fire=n)

        elif kind == "fire":
            outcome, amount = rng.choice(metrics.FIRE_OUTCOMES), rng.choice([1, 1, 2.5])

            def step(side: Any, job: str = job, o: Any = outcome, a: float = amount) -> None:
                if a == 1:
                    side.FIRES.labels(job, o).inc()
                else:
                    side.FIRES.labels(job, o).inc(a)

        elif kind == "miss":
            reason = rng.choice(metrics.MISS_REASONS)

            def step(side: Any, job: str = job, r: Any = reason) -> None:
                side.MISSED_SLOTS.labels(job, r).inc()
                side.FIRES.labels(job, "missed").inc()

        elif kind == "duplicate":

            def step(side: Any, job: str = job) -> None:
                side.DUPLICATE_FIRES.labels(job).inc()
                side.FIRES.labels(job, metrics.FireOutcome.DUPLICATE).inc()

        elif kind == "gauge":
            name = rng.choice(["SLOT_ABSENT", "NEXT_FIRE", "JOB_INTERVAL"])
            value = rng.choice(values)

            def step(side: Any, job: str = job, g: str = name, v: Any = value) -> None:
                if v is None:
                    getattr(side, g).remove(job)
                else:
                    getattr(side, g).labels(job).set(v)

        elif kind == "forget":

            def step(side: Any, job: str = job) -> None:
                side.forget_job(job)

        else:

            def step(side: Any) -> None:
                for job in jobs:  # as GaugeRefresher.forget_all on step-down
                    side.forget_job(job)

        steps.append(step)
    return steps


PER_JOB = {
    family.name for family in metrics.JOB_SERIES.describe()
}  # fires, missed_slots, ... (a counter's without _total)
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?P<labels>\{.*\})? (?P<value>\S+)$")


def exposition(registry: Any, prefix: str, since: float) -> list[tuple[str, list[str]]]:
    """The per-job families of `registry`'s exposition: (HELP and TYPE lines, sorted sample
    lines of the jobs named `prefix...`), `_created` values replaced by "T" once checked."""
    blocks: list[tuple[str, list[str]]] = []
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("# HELP "):
            blocks.append((line, []))
        elif line.startswith("# TYPE "):
            blocks[-1] = (blocks[-1][0] + "\n" + line, blocks[-1][1])
        else:
            sample = _SAMPLE.match(line)
            assert sample, line
            if f'job_name="{prefix}' not in (sample["labels"] or ""):
                continue
            if sample["name"].endswith("_created"):
                assert since <= float(sample["value"]) <= time.time(), line
                line = f"{sample['name']}{sample['labels']} T"
            blocks[-1][1].append(line)
    kept = [
        (head, sorted(lines))
        for head, lines in blocks
        if re.sub(r"_(total|created)$", "", head.split()[2]) in PER_JOB
    ]
    # 6 families, and a `_created` block per counter that has a series.
    assert len(kept) >= len(PER_JOB) == 6, [head for head, _ in kept]
    # Only the blocks holding this prefix's samples: the process-wide registry may also
    # hold other tests' jobs (a `_created` block with none of ours), the reference not.
    return [(head, lines) for head, lines in kept if lines]


@pytest.mark.parametrize("seed", range(25))
def test_the_job_series_export_what_prometheus_client_children_exported(seed: int) -> None:
    rng = random.Random(seed)
    prefix = f"js-{uuid.uuid4().hex[:8]}-"
    jobs = [f"{prefix}{n}" for n in range(JOB_NAMES)]
    before = Before()
    since = time.time()
    try:
        for number, step in enumerate(random_steps(rng, jobs, 120)):
            step(metrics)
            step(before)
            # A job without series holds no row.
            text = generate_latest(before.registry).decode()
            for job in jobs:
                assert (job in metrics.JOB_SERIES) == (f'job_name="{job}"' in text), job
            if number % 4 == 3:
                expected = exposition(before.registry, prefix, since)
                assert exposition(REGISTRY, prefix, since) == expected, (seed, number)
        assert exposition(REGISTRY, prefix, since) == exposition(before.registry, prefix, since)
        # The daemon's own registry serves them too.
        served = metrics.only(metrics.DAEMON_METRICS)
        assert exposition(served, prefix, since) == exposition(before.registry, prefix, since)
    finally:
        for job in jobs:
            metrics.forget_job(job)


def test_created_samples_follow_prometheus_clients_switch() -> None:
    from prometheus_client import disable_created_metrics, enable_created_metrics

    job = f"js-{uuid.uuid4().hex[:8]}"
    metrics.track_job(job, interval_seconds=60)
    try:
        disable_created_metrics()
        assert f'reconciler_fires_created{{job_name="{job}"' not in generate_latest().decode()
        enable_created_metrics()
        assert f'reconciler_fires_created{{job_name="{job}"' in generate_latest().decode()
    finally:
        enable_created_metrics()
        metrics.forget_job(job)


def test_increments_from_many_threads_are_all_counted() -> None:
    job = f"js-{uuid.uuid4().hex[:8]}"

    def fire() -> None:
        for _ in range(2_000):
            metrics.FIRES.labels(job, "published").inc()
            metrics.MISSED_SLOTS.labels(job_name=job, reason="overlap").inc()

    threads = [threading.Thread(target=fire) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        value = REGISTRY.get_sample_value
        assert value("reconciler_fires_total", {"job_name": job, "outcome": "published"}) == 16_000
        assert value("reconciler_missed_slots_total", {"job_name": job, "reason": "overlap"}) == (
            16_000
        )
    finally:
        metrics.forget_job(job)


def test_a_label_value_outside_the_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="outcome"):
        metrics.FIRES.labels("some-job", "exploded")
    with pytest.raises(ValueError, match="Counters can only be incremented"):
        metrics.DUPLICATE_FIRES.labels("some-job").inc(-1)
    with pytest.raises(ValueError, match="label count"):
        metrics.NEXT_FIRE.labels("some-job", "extra")
