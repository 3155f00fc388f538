"""The Dispatcher's publisher thread with batches ahead of their confirms, on a real
ledger and a scripted broker: a batch is marked only from its own answer (confirmed
rows 'published', the others due again), whatever happens to the batches around it."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from reconciler.core.fires import fire_id
from reconciler.dispatch.dispatcher import Dispatcher
from reconciler.dispatch.publisher import PublishResult
from reconciler.dispatch.request import FireRequest

from .helpers import Fence, make_payload, make_spec, runs, wait_until

pytestmark = pytest.mark.services

SLOT = datetime.now(UTC).replace(microsecond=0)


class ScriptedPipeline:
    """Answers nothing until released; then batch 1 (the second sent) fails after its
    first three messages were acked, the others are confirmed."""

    def __init__(self) -> None:
        self.sent: list[Sequence[FireRequest]] = []
        self.most_pending = 0
        self.settled = 0
        self.release = threading.Event()

    @property
    def pending(self) -> int:
        return len(self.sent) - self.settled

    def send(self, requests: Sequence[FireRequest]) -> None:
        self.sent.append(requests)
        self.most_pending = max(self.most_pending, self.pending)

    def oldest_answered(self) -> bool:
        return self.release.is_set()

    def settle_oldest(self) -> tuple[Sequence[FireRequest], PublishResult]:
        self.release.wait(10)
        batch, index = self.sent[self.settled], self.settled
        self.settled += 1
        if index == 1:
            return batch, PublishResult(frozenset(r.id for r in batch[:3]), error="cut")
        return batch, PublishResult(frozenset(r.id for r in batch))


class ScriptedPublisher:
    connections = 1

    def __init__(self) -> None:
        self.script = ScriptedPipeline()
        self.opened = threading.Event()  # the connection "opens" when the test says so

    @contextmanager
    def pipeline(self) -> Iterator[ScriptedPipeline]:
        self.opened.wait(10)
        yield self.script

    def close(self) -> None:
        pass


def test_batches_in_flight_are_each_marked_from_their_own_answer(engine: sa.Engine) -> None:
    publisher = ScriptedPublisher()
    dispatcher = Dispatcher(
        engine=engine,
        publisher=publisher,  # type: ignore[arg-type]  # the Publisher's interface, scripted
        fence=Fence(True),
        batch_size=10,
        linger=0.5,
        publish_window=3,
    )
    payload = make_payload(make_spec())
    jobs = [f"job-{n:02d}" for n in range(30)]
    for job in jobs:  # queued before the pipeline starts: three batches of ten
        dispatcher.fire(job=job, payload=payload, scheduled_time=SLOT)
    dispatcher.start()
    try:
        script = publisher.script
        # Batch 0 taken by the publisher thread, batches 1 and 2 recorded behind it.
        wait_until(lambda: dispatcher._handoff.qsize() == 2, timeout=10)
        publisher.opened.set()
        wait_until(lambda: len(script.sent) == 3, timeout=10)
        # Three batches written, none answered: nothing marked published yet.
        assert script.most_pending == 3
        assert {row.status for row in runs(engine)} == {"scheduled"}
        script.release.set()
        wait_until(lambda: script.settled == 3 and not dispatcher.in_flight(), timeout=10)
    finally:
        dispatcher.stop()
    rows = {row.id: row for row in runs(engine)}
    cut = [r.id for r in script.sent[1]]
    for request in (r for batch in script.sent for r in batch):
        row = rows[request.id]
        if request.id in cut[3:]:
            assert row.status == "scheduled" and row.published_at is None
            assert row.publish_attempts == 1 and row.next_attempt_at is not None
        else:
            assert row.status == "published" and row.published_at is not None
    assert sorted(rows) == sorted(fire_id(job, SLOT) for job in jobs)


def test_wait_settled_returns_once_every_fire_is_published(engine: sa.Engine) -> None:
    publisher = ScriptedPublisher()
    publisher.opened.set()
    dispatcher = Dispatcher(
        engine=engine,
        publisher=publisher,  # type: ignore[arg-type]  # the Publisher's interface, scripted
        fence=Fence(True),
        batch_size=10,
    )
    payload = make_payload(make_spec())
    dispatcher.start()
    try:
        assert dispatcher.wait_settled(timeout=0)  # nothing fired: settled
        for n in range(10):
            dispatcher.fire(job=f"job-{n:02d}", payload=payload, scheduled_time=SLOT)
        assert not dispatcher.wait_settled(timeout=0.3)  # written, unanswered
        publisher.script.release.set()
        assert dispatcher.wait_settled(timeout=10)
        assert {row.status for row in runs(engine)} == {"published"}
    finally:
        publisher.script.release.set()
        dispatcher.stop()
