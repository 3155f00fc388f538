"""The confirm bookkeeping of a channel with several batches unconfirmed (no services)."""

from __future__ import annotations

from types import SimpleNamespace

from reconciler.dispatch.publisher import _ConfirmTracker


def sent(tracker: _ConfirmTracker, ids: list[str]) -> int:
    for fire_id in ids:
        tracker.sent(fire_id)
    return tracker.next_tag - 1


def test_a_batch_settles_only_once_every_tag_up_to_its_last_is_answered() -> None:
    tracker = _ConfirmTracker()
    first = sent(tracker, ["a", "b", "c"])
    second = sent(tracker, ["d", "e"])
    tracker.on_ack(2, multiple=True)
    assert not tracker.settled_up_to(first)
    tracker.on_nack(3, multiple=False)
    assert tracker.settled_up_to(first) and not tracker.settled_up_to(second)
    assert tracker.take(["a", "b", "c"]) == {"a", "b"}  # c was nacked
    tracker.on_ack(5, multiple=True)
    assert tracker.settled_up_to(second)
    assert tracker.take(["d", "e"]) == {"d", "e"}
    assert not tracker.acked and not tracker.refused


def test_a_returned_message_is_not_confirmed_by_its_ack() -> None:
    """RabbitMQ sends basic.return before the basic.ack of a mandatory message no queue
    took: the ack must not count for it, nor touch the other batch."""
    tracker = _ConfirmTracker()
    sent(tracker, ["a", "b"])
    sent(tracker, ["c"])
    tracker.on_return(None, "", "q", SimpleNamespace(properties={"correlation_id": "b"}))
    tracker.on_ack(3, multiple=True)
    assert tracker.take(["a", "b"]) == {"a"}
    assert tracker.take(["c"]) == {"c"}


def test_an_unanswered_tag_in_the_middle_keeps_later_batches_unsettled() -> None:
    tracker = _ConfirmTracker()
    first = sent(tracker, ["a"])
    second = sent(tracker, ["b"])
    tracker.on_ack(second, multiple=False)  # b answered, a not yet
    assert not tracker.settled_up_to(first) and not tracker.settled_up_to(second)
    tracker.on_ack(first, multiple=False)
    assert tracker.settled_up_to(second)
