"""Helpers of the dispatch tests: a leadership switch, polling, job specs, the ledger,
and reading what reached the broker (consumed with kombu: no worker needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from kombu import Connection

from reconciler.core.fires import FirePayload, fire_payload
from reconciler.spec.essence import essence, spec_hash
from reconciler.spec.model import JobSpec
from reconciler.store.tables import job_runs, scheduled_jobs
from tests.polling import wait_until  # noqa: F401  (re-exported to the tests of this folder)


class Fence:
    """A leadership switch for tests that are not about election (the Fence protocol)."""

    def __init__(self, leader: bool = True) -> None:
        self.leader = leader

    def is_leader(self) -> bool:
        return self.leader


def make_spec(name: str = "billing.sweep", **fields: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": name,
        "task": "reconciler.tasks.noop",
        "schedule": {"interval": {"seconds": 1}},
    }
    data.update(fields)
    return JobSpec.model_validate(data)


def make_payload(spec: JobSpec, revision: str | None = "rev1") -> FirePayload:
    return fire_payload(spec, spec_hash=spec_hash(spec), revision=revision)


def add_to_inventory(engine: sa.Engine, spec: JobSpec) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            scheduled_jobs.insert().values(
                name=spec.name,
                spec=essence(spec),
                spec_hash=spec_hash(spec),
                task=spec.task,
                queue=spec.queue,
                labels={},
                status="active",
                source_file="jobs.d/test.yaml",
                source_line=1,
                created_at=now,
                updated_at=now,
            )
        )


def runs(engine: sa.Engine, job: str | None = None) -> list[sa.Row[Any]]:
    query = sa.select(job_runs).order_by(job_runs.c.scheduled_time)
    if job is not None:
        query = query.where(job_runs.c.job_name == job)
    with engine.connect() as connection:
        return list(connection.execute(query))


def drain_queue(
    url: str,
    queue: str = "default",
    *,
    timeout: float = 1.0,
    transport_options: dict[str, Any] | None = None,
) -> list[Any]:
    """Consume every message in `queue`; return them (headers, body)."""
    messages: list[Any] = []
    with Connection(url, transport_options=transport_options or {}) as connection:
        simple = connection.SimpleQueue(queue)
        try:
            while True:
                message = simple.get(block=True, timeout=timeout)
                messages.append(message)
                message.ack()
        except simple.Empty:
            pass
        finally:
            simple.close()
    return messages
