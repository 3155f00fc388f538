"""Publishing fires to RabbitMQ with publisher confirms, in batches, with a deadline.

Why not one `send_task` per fire with kombu's `confirm_publish`: that waits for each
confirm before the next message, a round trip per fire. Here one channel is put in
confirm mode once, a whole batch is written, then the confirms (which RabbitMQ sends
cumulatively, `multiple=True`) are drained against ONE deadline. A message counts as
published only when the broker acked it: a nack, a return (no queue bound), a timeout or
a broken connection leave it unconfirmed, and the caller keeps its ledger row
'scheduled' for a retry. Re-publishing a message whose confirm was lost is safe: the
task id is the fire id and the worker deduplicates on it.

Celery's publish retry policy would block the caller for seconds while the broker is
down: every publish here passes `retry=False`, and the connection is opened with a
connect timeout. The message is built by the call `send_task` makes
(create_task_message), so it is what the worker contract describes (a test compares
the two); argsrepr/kwargsrepr (shown by monitoring tools) are redacted.
"""

from __future__ import annotations

import json
import logging
import queue
import select
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from kombu import Connection
from kombu.serialization import dumps

from reconciler.dispatch.frames import PublishEncoder
from reconciler.dispatch.request import FireRequest, send_task_arguments
from reconciler.redact import redact

log = logging.getLogger(__name__)

PERSISTENT = 2  # AMQP delivery mode: Celery's default (task_default_delivery_mode)
FLUSH_EVERY = 64  # messages per socket write (see _coalesced_writes)
WriteFrames = Callable[[bytes], None]


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
    """Delivery tags of one channel in confirm mode, and what the broker said of each.

    Tags settle in order of sending for a batch's purposes: a batch is settled once no
    tag up to its last one is pending. `acked`/`refused` hold the ids of batches not yet
    taken by `take` (a pipeline has several batches unconfirmed at once)."""

    def __init__(self) -> None:
        self.next_tag = 1
        self.pending: dict[int, str] = {}
        self.acked: set[str] = set()
        self.refused: set[str] = set()

    def sent(self, fire_id: str) -> None:
        self.pending[self.next_tag] = fire_id
        self.next_tag += 1

    def settled_up_to(self, tag: int) -> bool:
        """Whether the broker answered for every tag up to `tag` (pending is in tag order)."""
        first = next(iter(self.pending), None)
        return first is None or first > tag

    def take(self, ids: Sequence[str]) -> frozenset[str]:
        """The confirmed ones of `ids` (acked, not refused); forget all of `ids`."""
        confirmed = frozenset(i for i in ids if i in self.acked and i not in self.refused)
        self.acked.difference_update(ids)
        self.refused.difference_update(ids)
        return confirmed

    def on_ack(self, delivery_tag: int, multiple: bool) -> None:
        for tag in self._settled(delivery_tag, multiple):
            self.acked.add(self.pending.pop(tag))

    def on_nack(self, delivery_tag: int, multiple: bool) -> None:
        for tag in self._settled(delivery_tag, multiple):
            self.refused.add(self.pending.pop(tag))

    def on_return(self, _exc: object, _exchange: str, _key: str, message: Any) -> None:
        # A mandatory message no queue took: RabbitMQ still acks it (after the return),
        # so remember it.
        task_id = message.properties.get("correlation_id")
        if task_id:
            self.refused.add(str(task_id))

    def _settled(self, delivery_tag: int, multiple: bool) -> list[int]:
        if not multiple:
            return [delivery_tag] if delivery_tag in self.pending else []
        # Tags were added in increasing order (and dicts keep it): stop at the first later one.
        settled = []
        for tag in self.pending:
            if tag > delivery_tag:
                break
            settled.append(tag)
        return settled


class _Lane:
    """One connection and its channel in confirm mode, used by one publish at a time."""

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self.channel: Any = None
        self.tracker = _ConfirmTracker()
        self.declared: set[str] = set()
        self.encoder = PublishEncoder()
        # False on transports without confirms (filesystem://: the write is the confirm).
        self.confirms = True

    def discard(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        self.tracker = _ConfirmTracker()
        self.declared = set()
        if connection is not None:
            try:
                connection.release()
            except Exception as error:  # noqa: BLE001 - a dead connection may fail to close
                log.debug("closing a broken broker connection: %r", error)


def _json_body(body: Any) -> tuple[str, str, str]:
    """`kombu.serialization.dumps(body, serializer="json")`, in half the time for a body
    of JSON values (a fire's args and kwargs come from the spec, which holds nothing
    else): the C encoder with the defaults kombu's JSONEncoder keeps, whose `default`
    hook only ever runs for other types, so the text is the same. Anything else goes
    through kombu."""
    try:
        return "application/json", "utf-8", json.dumps(body)
    except TypeError:  # a value that is not JSON: kombu's encoder knows more types
        content_type, encoding, data = dumps(body, serializer="json")
        return content_type, encoding, data


class Publisher:
    """Publishes batches of fires on a pool of `connections` broker connections.

    Each `publish` call takes a free connection (waiting for one if all are busy), so
    up to `connections` threads publish at once: while one waits for its batch's
    confirms (RabbitMQ confirms persistent messages once written to disk), another
    writes the next batch. A single connection (the default) serialises the calls.

    `publish` never takes longer than about `timeout` seconds once it has a connection,
    whatever the broker does (connect, write and confirm all share one deadline), and
    never raises for a broker problem: it reports it in the result and reconnects on
    the next call.
    """

    def __init__(
        self,
        *,
        broker_url: str,
        timeout: float,
        transport_options: Mapping[str, Any] | None = None,
        app: Celery | None = None,
        connections: int = 1,
    ) -> None:
        if connections < 1:
            raise ValueError("a publisher needs at least one connection")
        self._broker_url = broker_url
        self._timeout = timeout
        self._transport_options = dict(transport_options or {})
        self._app = app or make_publisher_app(
            broker_url, timeout=timeout, transport_options=transport_options
        )
        self.connections = connections
        # Read once: per message they cost a lock each (kombu's cached_property takes
        # one on every read) and a hostname lookup (the `origin` header's default,
        # anon_nodename(): this process's host and pid, fixed for its life).
        amqp = self._amqp = self._app.amqp
        self._repr_sizes = (amqp.argsrepr_maxsize, amqp.kwargsrepr_maxsize)
        self._origin = anon_nodename()
        # Connected on first use. LIFO: a lone caller keeps reusing one warm connection.
        self._lanes: queue.LifoQueue[_Lane] = queue.LifoQueue()
        for _ in range(connections):
            self._lanes.put(_Lane())

    def publish(self, requests: Sequence[FireRequest]) -> PublishResult:
        """Publish `requests` in order; return the ids the broker confirmed."""
        if not requests:
            return PublishResult(frozenset())
        with self.pipeline() as pipeline:
            pipeline.send(requests)
            _sent, result = pipeline.settle_oldest()
            return result

    @contextmanager
    def pipeline(self) -> Iterator[Pipeline]:
        """A connection of the pool, held for a series of publishes that overlap: see
        `Pipeline`. Waits for a free connection."""
        lane = self._lanes.get()
        try:
            yield Pipeline(self, lane)
        finally:
            self._lanes.put(lane)

    def close(self) -> None:
        """Close every connection (waiting for publishes in progress to end)."""
        lanes = [self._lanes.get() for _ in range(self.connections)]
        for lane in lanes:
            lane.discard()
            self._lanes.put(lane)

    def _write_batch(self, lane: _Lane, requests: Sequence[FireRequest], deadline: float) -> int:
        """Write `requests` on the lane's channel; return the last delivery tag."""
        channel = self._ensure_channel(lane)
        tracker = lane.tracker
        # Declares wait for the broker's answer: all of them before writes are coalesced.
        for queue_name in dict.fromkeys(r.payload["queue"] for r in requests):
            self._declare_queue(lane, queue_name)
        with _coalesced_writes(lane.connection) as (write, flush):
            for count, request in enumerate(requests, 1):
                _remaining(deadline)  # raises once the deadline has passed
                self._send(lane, channel, request, write)
                tracker.sent(request.id)
                if not lane.confirms:
                    tracker.on_ack(tracker.next_tag - 1, False)
                if count % FLUSH_EVERY == 0:
                    flush()
        return tracker.next_tag - 1

    def _send(
        self, lane: _Lane, channel: Any, request: FireRequest, write: WriteFrames | None
    ) -> None:
        """Publish the message `send_task(**send_task_arguments(request))` would publish.

        Built by the same call (create_task_message), published on the channel directly:
        Celery's send_task_message and kombu's Producer add routing, signals, retries
        and per-message declares this path has no use for, and cost two thirds of the
        CPU per message. A test compares the result with send_task's, field by field.
        On py-amqp connections the frames are encoded here (frames.PublishEncoder, the
        same bytes as py-amqp's) and written to the coalesced buffer (`write`).
        """
        call = send_task_arguments(request)
        args_size, kwargs_size = self._repr_sizes
        headers, properties, body, _event = self._amqp.create_task_message(
            call["task_id"],
            call["name"],
            call["args"],
            call["kwargs"],
            expires=call["expires"],
            time_limit=call["time_limit"],
            soft_time_limit=call["soft_time_limit"],
            root_id=call["task_id"],
            shadow=call["shadow"],
            ignore_result=None,
            reply_to=self._app.thread_oid,
            argsrepr=self._shown(call["args"], args_size),
            kwargsrepr=self._shown(call["kwargs"], kwargs_size),
            origin=self._origin,
        )
        headers.update(call["headers"])
        properties = {**properties, "delivery_mode": PERSISTENT}
        if call["expires"] is not None:
            # The message TTL send_task derives from `expires` (kombu: milliseconds).
            ttl = max((call["expires"] - datetime.now(UTC)).total_seconds(), 0)
            properties["expiration"] = str(int(ttl * 1000))
        content_type, encoding, data = _json_body(body)
        if write is None:
            message = channel.prepare_message(data, 0, content_type, encoding, headers, properties)
            channel.basic_publish(
                message,
                exchange="",
                routing_key=call["queue"],
                mandatory=lane.confirms,
                # No per-message socket timeout (two syscalls each): the connection's
                # write_timeout bounds every write, the batch deadline bounds the loop.
            )
            return
        # What kombu's prepare_message hands py-amqp (priority 0 included).
        message_properties = {
            "priority": 0,
            "content_type": content_type,
            "content_encoding": encoding,
            "application_headers": headers,
            **properties,
        }
        write(
            lane.encoder.frames(
                channel=channel.channel_id,
                frame_max=channel.connection.frame_max,
                routing_key=call["queue"],
                properties=message_properties,
                body=data.encode(encoding) if isinstance(data, str) else data,
                mandatory=lane.confirms,
            )
        )

    def _shown(self, value: object, limit: int) -> str:
        """The argsrepr/kwargsrepr header: redacted, and cut to Celery's size as
        send_task cuts it. Uncut, a header holding a large argument outgrows the
        frame_max the broker allows a whole header frame (it closes the connection:
        such a fire could never be published)."""
        text = repr(redact(value))
        if len(text) <= limit:
            return text
        return saferepr(redact(value), limit, maxlevels=self._app.conf.task_repr_maxlevels)

    def _declare_queue(self, lane: _Lane, name: str) -> None:
        # Once per connection: a message must never go to a queue that does not exist
        # (RabbitMQ drops it, and still confirms it). Declared as the worker declares it.
        if name not in lane.declared:
            self._app.amqp.queues[name].bind(lane.channel).declare()
            lane.declared.add(name)

    def _ensure_channel(self, lane: _Lane) -> Any:
        if lane.channel is not None:
            return lane.channel
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
            # One attempt (kombu's connect() retries once after sleeping 2 s): the
            # caller retries later, and a publish costs at most about one timeout.
            connection.ensure_connection(max_retries=0)
            channel = connection.channel()
            tracker = _ConfirmTracker()
            confirms = hasattr(channel, "confirm_select")
            if confirms:
                # Confirm mode on the channel, not kombu's per-message wait: module doc.
                channel.confirm_select()
                channel.events["basic_ack"].add(tracker.on_ack)
                channel.events["basic_nack"].add(tracker.on_nack)
                channel.events["basic_return"].add(tracker.on_return)
        except Exception:
            connection.release()
            raise
        lane.connection, lane.tracker, lane.channel = connection, tracker, channel
        lane.confirms = confirms
        return channel


@dataclass(slots=True)
class _Batch:
    """One batch written on a pipeline and not settled yet."""

    requests: Sequence[FireRequest]
    last_tag: int  # 0: nothing written (the write failed before any message)
    deadline: float
    error: str | None = None  # set when the connection failed before it settled
    acked: frozenset[str] = frozenset()  # then: what the broker had confirmed of it


class Pipeline:
    """Publishing ahead of confirms on one connection (from `Publisher.pipeline()`).

    `send` writes a batch and returns without waiting for the broker; `settle_oldest`
    waits (with that batch's own deadline: its `timeout` runs from its send) until the
    broker answered for every message of the OLDEST batch sent, and returns it with the
    ids the broker confirmed. So batch N+1 is on the wire while batch N's confirms are
    awaited, instead of the broker idling between a batch's last confirm and the next
    batch. What counts as confirmed is unchanged: an ack that is neither a nack nor a
    return, before the batch's deadline; a broken connection, a failed write or a
    deadline fails every batch not settled yet (their acked messages still count) and
    the connection is reopened on the next `send`. Never raises for a broker problem.
    One thread uses a pipeline.
    """

    def __init__(self, publisher: Publisher, lane: _Lane) -> None:
        self._publisher = publisher
        self._lane = lane
        self._batches: deque[_Batch] = deque()

    @property
    def pending(self) -> int:
        """Batches sent and not settled yet."""
        return len(self._batches)

    def send(self, requests: Sequence[FireRequest]) -> None:
        """Write `requests` (in order) without waiting for their confirms."""
        batch = _Batch(requests, 0, time.monotonic() + self._publisher._timeout)
        self._batches.append(batch)
        try:
            batch.last_tag = self._publisher._write_batch(self._lane, requests, batch.deadline)
        except Exception as error:  # noqa: BLE001 - any failure: rows stay scheduled, reconnect
            self._break(error)

    def oldest_answered(self) -> bool:
        """Whether the broker already answered for the whole oldest batch, reading the
        answers that have arrived without waiting for more (so that a caller marks a
        confirmed batch before writing the next one)."""
        batch = self._batches[0]
        lane = self._lane
        if batch.error is not None or lane.tracker.settled_up_to(batch.last_tag):
            return True
        transport = getattr(getattr(lane.connection, "connection", None), "transport", None)
        sock = getattr(transport, "sock", None)
        if sock is None:
            return False
        try:
            while select.select([sock], [], [], 0)[0]:
                assert lane.connection is not None
                # Readable: a frame is there (a partial one raises socket.timeout, and
                # py-amqp keeps what it read for the next call).
                lane.connection.drain_events(timeout=0.01)
                if lane.tracker.settled_up_to(batch.last_tag):
                    return True
        except TimeoutError:
            return False
        except Exception as error:  # noqa: BLE001 - any failure: rows stay scheduled, reconnect
            self._break(error)
            return True
        return False

    def settle_oldest(self) -> tuple[Sequence[FireRequest], PublishResult]:
        """Wait for the broker's answer on the oldest batch sent; return it and its result."""
        batch = self._batches[0]
        lane = self._lane
        if batch.error is None:
            try:
                while not lane.tracker.settled_up_to(batch.last_tag):
                    assert lane.connection is not None
                    lane.connection.drain_events(timeout=_remaining(batch.deadline))
            except Exception as error:  # noqa: BLE001 - any failure: rows stay scheduled, reconnect
                self._break(error)
        self._batches.popleft()
        if batch.error is not None:
            return batch.requests, PublishResult(batch.acked, error=batch.error)
        confirmed = lane.tracker.take([r.id for r in batch.requests])
        missing = len(batch.requests) - len(confirmed)
        refused = f"{missing} refused by the broker" if missing else None
        return batch.requests, PublishResult(confirmed, error=refused)

    def _break(self, error: Exception) -> None:
        """The connection failed: every batch not settled is settled with what was acked."""
        unsettled = [batch for batch in self._batches if batch.error is None]
        log.warning(
            "publish of %d fires failed: %r", sum(len(b.requests) for b in unsettled), error
        )
        for batch in unsettled:
            # What the broker acked before the failure stays confirmed.
            batch.acked = self._lane.tracker.take([r.id for r in batch.requests])
            batch.error = repr(error)
        self._lane.discard()  # the next send reconnects, with a fresh tracker


@contextmanager
def _coalesced_writes(
    connection: Connection | None,
) -> Iterator[tuple[WriteFrames | None, Callable[[], None]]]:
    """Collect the socket writes of many messages and send them with few syscalls.

    py-amqp sends every message with its own `sendall`, most of the publishing time on a
    busy 2-core machine (bench/RESULTS.md "What made the dispatcher fast"). Inside this
    block its transport's write appends to a buffer instead (a COPY: py-amqp hands out a
    view of one frame buffer it reuses), and `flush()` sends the buffer. Yields `(write,
    flush)`: `write` appends encoded frames to the same buffer. Nothing here may wait
    for a broker reply while unflushed (hence: queues are declared before). Transports
    without py-amqp's `_write` (filesystem://, ...) are left alone: `write` is None.
    """
    transport = getattr(getattr(connection, "connection", None), "transport", None)
    send = getattr(transport, "_write", None)
    if send is None:
        yield None, lambda: None
        return
    pending = bytearray()

    def flush() -> None:
        if pending:
            data = bytes(pending)
            pending.clear()
            send(data)

    assert transport is not None  # `send` is its method
    transport._write = pending.extend
    try:
        yield pending.extend, flush
    finally:
        transport._write = send
    flush()


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("publish deadline passed before the broker confirmed")
    return remaining
