"""What the daemon logs of the quarantine between two passes (engine.daemon)."""

from __future__ import annotations

from reconciler.engine.daemon import quarantine_news
from reconciler.spec.diagnostics import Diagnostic


def found(path: str, code: str = "UNKNOWN_FIELD") -> tuple[Diagnostic, ...]:
    return (Diagnostic(path, 3, 1, code, "a key the job format does not know"),)


def test_entered_left_and_changed_files_are_news_and_unchanged_ones_are_not() -> None:
    before = {"a.yaml": found("a.yaml"), "b.yaml": found("b.yaml"), "c.yaml": found("c.yaml")}
    after = {
        "a.yaml": found("a.yaml"),  # still broken the same way: not news
        "c.yaml": found("c.yaml", "CRON_SYNTAX"),  # another mistake: news
        "d.yaml": found("d.yaml"),  # new
    }
    assert quarantine_news(before, after) == (["c.yaml", "d.yaml"], ["b.yaml"])
    assert quarantine_news(after, after) == ([], [])
    assert quarantine_news({}, {}) == ([], [])
