"""Pure pieces of the API: cursors, ETags, scrubbing, schedule summaries, drift."""

from __future__ import annotations

import pytest

from reconciler.api.cursor import decode_cursor, encode_cursor
from reconciler.api.problems import ApiProblem
from reconciler.api.queries.jobs import drift_of
from reconciler.api.responses import etag_of, matches_if_none_match
from reconciler.api.scrub import redact_deep, redact_spec, scrub_text
from reconciler.api.shape import schedule_summary


def test_cursor_round_trip_and_rejections() -> None:
    cursor = encode_cursor("jobs:name", "naïve/ü")
    assert cursor.isascii() and "=" not in cursor
    assert decode_cursor(cursor, "jobs:name", 1) == ["naïve/ü"]
    for bad, kind in [
        (cursor, "jobs:-name"),
        ("!!!", "jobs:name"),
        (encode_cursor("jobs:name", "a", "b"), "jobs:name"),
        (encode_cursor("jobs:name", "a\x00"), "jobs:name"),
        ("A" * 2000, "jobs:name"),
        ("e30", "jobs:name"),  # {}
    ]:
        with pytest.raises(ApiProblem) as caught:
            decode_cursor(bad, kind, 1)
        assert caught.value.status == 400


def test_etag_matching() -> None:
    tag = etag_of(b"body")
    assert tag == etag_of(b"body") != etag_of(b"body2")
    assert matches_if_none_match(tag, tag)
    assert matches_if_none_match(f'"a", W/{tag}', tag)
    assert matches_if_none_match("*", tag)
    assert not matches_if_none_match('"a"', tag)
    assert not matches_if_none_match(None, tag)


def test_scrub_text() -> None:
    assert scrub_text("password=hunter2 user=bob") == "password=*** user=bob"
    assert scrub_text('{"apiKey": "k", "n": 1}') == '{"apiKey": "***", "n": 1}'
    assert scrub_text("token: 'abc' and secret=\"x y\"") == "token: '***' and secret=\"***\""
    assert scrub_text("postgresql://u:pw@host/db") == "postgresql://u:***@host/db"
    assert scrub_text("nothing secret here: 42") == "nothing secret here: 42"
    assert scrub_text(None) is None


def test_redaction_of_specs_and_results() -> None:
    spec = {"kwargs": {"db_password": "x", "a": 1}, "idempotency_key": "{job}", "args": []}
    assert redact_spec(spec) == {
        "kwargs": {"db_password": "***", "a": 1},
        "idempotency_key": "{job}",
        "args": [],
    }
    assert redact_deep({"out": ["token=abc", {"session": 1}]}) == {
        "out": ["token=***", {"session": "***"}]
    }


def test_schedule_summaries() -> None:
    assert schedule_summary({"cron": "0 * * * *"}, "Europe/Berlin") == {
        "kind": "cron",
        "value": "0 * * * *",
        "timezone": "Europe/Berlin",
    }
    assert schedule_summary({"cron": {"minute": "5", "hour": 3}}, None)["value"] == (
        "hour=3 minute=5"
    )
    interval = {"weeks": 1, "days": 0, "hours": 2, "minutes": 0, "seconds": 5}
    assert schedule_summary({"interval": interval}, "UTC")["value"] == "1w2h5s"
    assert schedule_summary({"at": "2030-01-01T00:00:00"}, "UTC")["kind"] == "date"
    assert schedule_summary({"weird": 1}, "UTC") is None
    assert schedule_summary(None, "UTC") is None


@pytest.mark.parametrize(
    ("status", "scheduled", "next_run", "code"),
    [
        ("active", True, 1.0, None),
        ("active", False, None, "missing_scheduler_row"),
        ("active", True, None, "scheduler_paused"),
        ("paused", True, None, None),
        ("paused", True, 1.0, "scheduler_active"),
        ("paused", False, None, "missing_scheduler_row"),
        ("completed", False, None, None),
        ("completed", True, 1.0, "unexpected_scheduler_row"),
    ],
)
def test_drift(status: str, scheduled: bool, next_run: float | None, code: str | None) -> None:
    drift = drift_of(status, scheduled=scheduled, next_run_time=next_run)
    assert (drift or {}).get("code") == code
