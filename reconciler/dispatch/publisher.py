"""Publishing fires to RabbitMQ with publisher confirms, in batches, with a deadline.

Why not one `send_task` per fire with kombu's `confirm_publish`: that waits for each
confirm before the next message (~600 msg/s measured, FACTS). Here one channel is put in
confirm mode once, a whole batch is written, then the confirms (which RabbitMQ sends
cumulatively, `multiple=True`) are drained against ONE deadline. A message counts as
published only when the broker acked it: a nack, a return (no queue bound), a timeout or
a broken connection leave it unconfirmed, and the caller keeps its ledger row
'scheduled' for a retry. Re-publishing a message whose confirm was lost is safe: the
task id is the fire id and the worker deduplicates on it.

Celery's publish retry policy would block the caller for seconds while the broker is
down: every publish here passes `retry=False`, and the connection is opened with a
connect timeout. The message is built by the same two calls `send_task` makes
(create_task_message, send_task_message), so it is what the worker contract describes;
argsrepr/kwargsrepr (shown by monitoring tools) are redacted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from kombu import Connection, Producer

from reconciler.dispatch.request import FireRequest, send_task_arguments
from reconciler.redact import redact

log = logging.getLogger(__name__)


def make_publisher_app(
    broker_url: str, *, timeout: float, transport_options: Mapping[str, Any] | None = None
) -> Celery:
    """A producer-only Celery app: JSON, confirms, bounded connects, no publish retries.

    The worker builds its own app; this one only serialises and sends messages.
    """
    app = Celery("reconciler-publisher", broker=broker_url, set_as_current=False)
    app.conf.update(
        broker_transport_options={"confirm_publish": True, **(transport_options or {})},
        broker_connection_timeout=timeout,
        broker_connection_retry=False,
        broker_connection_retry_on_startup=False,
        task_publish_retry=False,
        task_serializer="json",
        accept_content=["json"],
        task_create_missing_queues=True,
    )
    return app


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Which fire ids the broker confirmed; `error` says why the others were not."""

    confirmed: frozenset[str]
    error: str | None = None


class _ConfirmTracker:
    """Delivery tags of one channel in confirm mode, and what the broker said of each."""

    def __init__(self) -> None:
        self.next_tag = 1
        self.pending: dict[int, str] = {}
        self.acked: set[str] = set()
        self.refused: set[str] = set()

    def sent(self, fire_id: str) -> None:
        self.pending[self.next_tag] = fire_id
        self.next_tag += 1

    def on_ack(self, delivery_tag: int, multiple: bool) -> None:
        for tag in self._settled(delivery_tag, multiple):
            self.acked.add(self.pending.pop(tag))

    def on_nack(self, delivery_tag: int, multiple: bool) -> None:
        for tag in self._settled(delivery_tag, multiple):
            self.refused.add(self.pending.pop(tag))

    def on_return(self, _exc: object, _exchange: str, _key: str, message: Any) -> None:
        # A mandatory message no queue took: RabbitMQ still acks it, so remember it.
        task_id = message.properties.get("correlation_id")
        if task_id:
            self.refused.add(str(task_id))

    def _settled(self, delivery_tag: int, multiple: bool) -> list[int]:
        if not multiple:
            return [delivery_tag] if delivery_tag in self.pending else []
        return [tag for tag in self.pending if tag <= delivery_tag]


class Publisher:
    """Publishes batches of fires on one connection. Not thread-safe: one owner thread.

    `publish` never takes longer than about `timeout` seconds, whatever the broker does
    (connect, write and confirm all share one deadline), and never raises for a broker
    problem: it reports it in the result and reconnects on the next call.
    """

    def __init__(
        self,
        *,
        broker_url: str,
        timeout: float,
        transport_options: Mapping[str, Any] | None = None,
        app: Celery | None = None,
    ) -> None:
        self._broker_url = broker_url
        self._timeout = timeout
        self._transport_options = dict(transport_options or {})
        self._app = app or make_publisher_app(
            broker_url, timeout=timeout, transport_options=transport_options
        )
        # False on transports without confirms (filesystem://: the write is the confirm).
        self._confirms = True
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._tracker = _ConfirmTracker()
        self._declared: set[str] = set()
        self._lock = threading.Lock()

    def publish(self, requests: Sequence[FireRequest]) -> PublishResult:
        """Publish `requests` in order; return the ids the broker confirmed."""
        if not requests:
            return PublishResult(frozenset())
        with self._lock:
            deadline = time.monotonic() + self._timeout
            try:
                return self._publish(requests, deadline)
            except Exception as error:  # noqa: BLE001 - any failure: rows stay scheduled, reconnect
                log.warning("publish of %d fires failed: %r", len(requests), error)
                confirmed = frozenset(self._tracker.acked - self._tracker.refused)
                self._discard_connection()
                return PublishResult(confirmed, error=repr(error))

    def close(self) -> None:
        with self._lock:
            self._discard_connection()

    def _publish(self, requests: Sequence[FireRequest], deadline: float) -> PublishResult:
        producer = self._ensure_producer()
        tracker = self._tracker
        tracker.acked.clear()
        tracker.refused.clear()
        for request in requests:
            remaining = _remaining(deadline)
            self._send(producer, request, timeout=remaining)
            tracker.sent(request.id)
            if not self._confirms:
                tracker.on_ack(tracker.next_tag - 1, False)
        self._await_confirms(deadline)
        confirmed = frozenset(tracker.acked - tracker.refused)
        missing = len(requests) - len(confirmed)
        return PublishResult(
            confirmed, error=f"{missing} refused by the broker" if missing else None
        )

    def _send(self, producer: Producer, request: FireRequest, *, timeout: float) -> None:
        """What `send_task(**send_task_arguments(request), producer=...)` does, minus the
        parts a producer-only app never needs (router, parent task, result object): half
        the CPU per message. A test checks the message equals send_task's."""
        call = send_task_arguments(request)
        amqp = self._app.amqp
        message = amqp.create_task_message(
            call["task_id"],
            call["name"],
            call["args"],
            call["kwargs"],
            expires=call["expires"],
            time_limit=call["time_limit"],
            soft_time_limit=call["soft_time_limit"],
            root_id=call["task_id"],
            ignore_result=None,
            reply_to=self._app.thread_oid,
            argsrepr=repr(redact(call["args"])),
            kwargsrepr=repr(redact(call["kwargs"])),
        )
        options: dict[str, Any] = {}
        if call["expires"] is not None:
            # send_task turns `expires` into the message TTL the same way.
            ttl = (call["expires"] - datetime.now(UTC)).total_seconds()
            options["expiration"] = max(ttl, 0)
        self._declare_queue(producer, call["queue"])
        amqp.send_task_message(
            producer,
            call["name"],
            message,
            queue=call["queue"],
            declare=[],
            headers=call["headers"],
            retry=False,
            mandatory=self._confirms,
            timeout=timeout,
            **options,
        )

    def _declare_queue(self, producer: Producer, name: str) -> None:
        # Declared once per connection here: kombu's per-message maybe_declare copies the
        # Queue entity every time (a sixth of the publish CPU). Declaring makes sure a
        # message is never routed to a queue that does not exist (and silently dropped).
        if name not in self._declared:
            self._app.amqp.queues[name].bind(producer.channel).declare()
            self._declared.add(name)

    def _await_confirms(self, deadline: float) -> None:
        assert self._connection is not None
        while self._tracker.pending:
            self._connection.drain_events(timeout=_remaining(deadline))

    def _ensure_producer(self) -> Producer:
        if self._producer is not None:
            return self._producer
        connection = Connection(
            self._broker_url,
            connect_timeout=self._timeout,
            heartbeat=0,
            transport_options={
                "read_timeout": self._timeout,
                "write_timeout": self._timeout,
                **self._transport_options,
            },
        )
        try:
            # kombu's connect() sleeps 2 s before its one retry: try twice, no sleep.
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, interval_max=0
            )
            channel = connection.channel()
            tracker = _ConfirmTracker()
            self._confirms = hasattr(channel, "confirm_select")
            if self._confirms:
                # Confirm mode on the channel, not kombu's per-message wait: module doc.
                channel.confirm_select()
                channel.events["basic_ack"].add(tracker.on_ack)
                channel.events["basic_nack"].add(tracker.on_nack)
                channel.events["basic_return"].add(tracker.on_return)
        except Exception:
            connection.release()
            raise
        self._connection, self._tracker = connection, tracker
        self._producer = Producer(channel, auto_declare=False)
        return self._producer

    def _discard_connection(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        self._tracker = _ConfirmTracker()
        self._declared = set()
        if connection is not None:
            try:
                connection.release()
            except Exception as error:  # noqa: BLE001 - a dead connection may fail to close
                log.debug("closing a broken broker connection: %r", error)


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("publish deadline passed before the broker confirmed")
    return remaining
