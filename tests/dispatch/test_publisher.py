"""Publisher against a real RabbitMQ vhost: confirms, the exact message, a dead broker."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import pytest

from reconciler.dispatch.publisher import Publisher
from reconciler.dispatch.request import make_request, send_task_arguments

from .conftest import Broker
from .helpers import drain_queue, make_payload, make_spec

pytestmark = pytest.mark.services


def requests(count: int, queue: str = "default", **fields: object):
    now = datetime.now(UTC)
    payload = make_payload(make_spec(queue=queue, **fields))
    return [
        make_request(job=f"job-{i}", payload=payload, scheduled_time=now, now=now)
        for i in range(count)
    ]


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}//"


def test_a_batch_is_confirmed_and_delivered(broker: Broker) -> None:
    publisher = Publisher(broker_url=broker.url, timeout=5)
    batch = requests(300, broker.queue)
    try:
        result = publisher.publish(batch)
    finally:
        publisher.close()
    assert result.error is None
    assert result.confirmed == {r.id for r in batch}
    messages = drain_queue(broker.url, broker.queue)
    assert sorted(m.headers["id"] for m in messages) == sorted(r.id for r in batch)


def test_the_message_is_what_send_task_sends(broker: Broker) -> None:
    (request,) = requests(
        1,
        broker.queue,
        args=[1, "x"],
        kwargs={"n": 2},
        expires_seconds=600,
        time_limit_seconds=30,
        retries=2,
    )
    publisher = Publisher(broker_url=broker.url, timeout=5)
    try:
        publisher.publish([request])
        (ours,) = drain_queue(broker.url, broker.queue)
        with publisher._app.connection_for_write() as connection:
            publisher._app.send_task(**send_task_arguments(request), connection=connection)
        (theirs,) = drain_queue(broker.url, broker.queue)
    finally:
        publisher.close()
    assert ours.body == theirs.body
    differs = {"origin", "ignore_result", "expires"}  # host/pid, None vs None, ms apart
    assert {k: v for k, v in ours.headers.items() if k not in differs} == {
        k: v for k, v in theirs.headers.items() if k not in differs
    }
    assert ours.headers["expires"] == theirs.headers["expires"]
    assert ours.properties["correlation_id"] == request.id
    for key in ("delivery_mode", "priority", "content_type", "content_encoding", "reply_to"):
        assert ours.properties.get(key) == theirs.properties.get(key), key
    assert abs(int(ours.properties["expiration"]) - int(theirs.properties["expiration"])) < 5000
    assert ours.headers["job"] == request.job and ours.headers["max_retries"] == 2


def test_secret_kwargs_are_redacted_in_the_repr_headers(broker: Broker) -> None:
    (request,) = requests(1, broker.queue, kwargs={"api_token": "hunter2", "n": 1})
    publisher = Publisher(broker_url=broker.url, timeout=5)
    try:
        publisher.publish([request])
    finally:
        publisher.close()
    (message,) = drain_queue(broker.url, broker.queue)
    assert "hunter2" not in message.headers["kwargsrepr"]
    assert message.decode()[1] == {"api_token": "hunter2", "n": 1}  # the task still gets it


def test_a_dead_broker_is_reported_quickly_not_raised() -> None:
    publisher = Publisher(broker_url=closed_port_url(), timeout=2)
    started = time.monotonic()
    result = publisher.publish(requests(5))
    assert time.monotonic() - started < 2.5
    assert result.confirmed == frozenset()
    assert result.error
    publisher.close()


def test_a_broker_that_never_answers_costs_one_timeout() -> None:
    # A listening socket nobody serves: TCP connects, AMQP never answers (a hung broker).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        publisher = Publisher(broker_url=f"amqp://guest:guest@127.0.0.1:{port}//", timeout=1)
        started = time.monotonic()
        result = publisher.publish(requests(5))
        elapsed = time.monotonic() - started
        publisher.close()
    assert result.confirmed == frozenset() and result.error
    assert elapsed < 2  # one timeout (1 s) plus slack


def test_the_embedded_filesystem_transport_works_without_confirms(tmp_path) -> None:
    folders = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),  # else kombu writes ./control
    }
    publisher = Publisher(broker_url="filesystem://", timeout=2, transport_options=folders)
    batch = requests(3)
    try:
        result = publisher.publish(batch)
    finally:
        publisher.close()
    assert result.error is None and result.confirmed == {r.id for r in batch}
    messages = drain_queue("filesystem://", "default", transport_options=folders)
    assert sorted(m.headers["id"] for m in messages) == sorted(r.id for r in batch)


def test_a_large_non_ascii_fire_arrives_as_send_task_sends_it(broker: Broker) -> None:
    """A body several times the negotiated frame_max goes out in several body frames;
    an idempotency key and kwargs beyond ASCII go through the headers."""
    now = datetime.now(UTC)
    payload = make_payload(
        make_spec(
            name="rapport.uber",
            queue=broker.queue,
            kwargs={"text": "é☃ x" * 120_000, "n": 1.5},
            idempotency_key="clé-{job}-{scheduled_time}",
        )
    )
    request = make_request(job="rapport.uber", payload=payload, scheduled_time=now, now=now)
    publisher = Publisher(broker_url=broker.url, timeout=10)
    try:
        result = publisher.publish([request])
        (ours,) = drain_queue(broker.url, broker.queue)
        with publisher._app.connection_for_write() as connection:
            frame_max = connection.default_channel.connection.frame_max
            publisher._app.send_task(**send_task_arguments(request), connection=connection)
        (theirs,) = drain_queue(broker.url, broker.queue)
    finally:
        publisher.close()
    assert result.confirmed == {request.id}
    assert len(ours.body) > 3 * frame_max
    assert ours.body == theirs.body
    assert ours.decode()[1]["text"] == "é☃ x" * 120_000
    # argsrepr: a list's repr here, send_task's is the tuple it makes of the list.
    differs = {"origin", "ignore_result", "argsrepr"}
    assert {k: v for k, v in ours.headers.items() if k not in differs} == {
        k: v for k, v in theirs.headers.items() if k not in differs
    }
    assert len(ours.headers["kwargsrepr"]) < 2048  # cut as Celery cuts it (about 1024)
    assert ours.headers["idempotency_key"].startswith("clé-rapport.uber-")


def test_batches_sent_ahead_are_settled_in_order_each_with_its_own_confirms(
    broker: Broker,
) -> None:
    publisher = Publisher(broker_url=broker.url, timeout=5)
    batches = [requests(200, broker.queue) for _ in range(3)]
    try:
        with publisher.pipeline() as pipeline:
            for batch in batches:
                pipeline.send(batch)  # none waits for the previous batch's confirms
            assert pipeline.pending == 3
            settled = [pipeline.settle_oldest() for _ in batches]
            assert pipeline.pending == 0
    finally:
        publisher.close()
    for batch, (sent, result) in zip(batches, settled, strict=True):
        assert sent is batch
        assert result.error is None and result.confirmed == {r.id for r in batch}
    messages = drain_queue(broker.url, broker.queue)
    assert sorted(m.headers["id"] for m in messages) == sorted(
        r.id for batch in batches for r in batch
    )


def test_a_connection_lost_with_batches_in_flight_fails_them_and_reconnects(
    broker: Broker,
) -> None:
    publisher = Publisher(broker_url=broker.url, timeout=5)
    first, second, third = (requests(100, broker.queue) for _ in range(3))
    try:
        with publisher.pipeline() as pipeline:
            pipeline.send(first)
            # The socket dies with `first` unconfirmed (a broker restart, a cut network):
            # writing `second` fails.
            pipeline._lane.connection.connection.sock.shutdown(socket.SHUT_RDWR)
            pipeline.send(second)
            results = [pipeline.settle_oldest()[1] for _ in range(2)]
            pipeline.send(third)
            _sent, after = pipeline.settle_oldest()
    finally:
        publisher.close()
    # `first`: what the broker acked before the cut counts, the rest is a failure.
    assert results[0].confirmed <= {r.id for r in first}
    assert results[0].error is not None or results[0].confirmed == {r.id for r in first}
    assert results[1].error is not None and results[1].confirmed == frozenset()
    assert after.error is None and after.confirmed == {r.id for r in third}


def test_a_dead_broker_fails_every_batch_in_flight_within_its_timeout() -> None:
    publisher = Publisher(broker_url=closed_port_url(), timeout=1)
    started = time.monotonic()
    with publisher.pipeline() as pipeline:
        pipeline.send(requests(5))
        pipeline.send(requests(5))
        results = [pipeline.settle_oldest()[1] for _ in range(2)]
    publisher.close()
    assert time.monotonic() - started < 2.5
    assert all(r.confirmed == frozenset() and r.error for r in results)


def test_a_batch_answered_already_is_seen_without_waiting(broker: Broker) -> None:
    publisher = Publisher(broker_url=broker.url, timeout=5)
    batch = requests(50, broker.queue)
    try:
        with publisher.pipeline() as pipeline:
            pipeline.send(batch)
            deadline = time.monotonic() + 5
            while not pipeline.oldest_answered():  # never blocks: polled
                assert time.monotonic() < deadline
                time.sleep(0.01)
            started = time.monotonic()
            _sent, result = pipeline.settle_oldest()
            assert time.monotonic() - started < 0.05  # nothing left to wait for
    finally:
        publisher.close()
    assert result.error is None and result.confirmed == {r.id for r in batch}
