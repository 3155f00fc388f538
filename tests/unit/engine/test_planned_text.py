"""`reconcile apply` renders the plan's text while the pass writes it (reconcile_once's
`planned`, called at engine.apply's `meanwhile`, while a forked child makes the new
scheduler rows): what it prints must be the text of the very plan applied, and a pass
that applies nothing renders only when asked."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from reconciler.commands.apply import _PlanText
from reconciler.core.plan import Plan
from reconciler.core.render import render_text
from reconciler.core.vocabulary import Trigger
from reconciler.engine.reconcile import reconcile_once
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from reconciler.store.migrate import upgrade_database

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def write_jobs(root: Path, count: int) -> None:
    for number in range(count):
        (root / f"f{number}.yaml").write_text(
            f"name: job-{number}\ntask: reconciler.tasks.example_task\n"
            f"schedule: {{cron: '{number} 3 * * *'}}\n"
        )


def apply_once(root: Path, url: str, text: _PlanText) -> tuple[Plan, list[tuple[Plan, int]]]:
    """One applying pass; the plans `planned` was called with, and how many inventory
    rows the transaction held then (the plan is being written when it is called)."""
    engine = create_sync_engine(url)
    calls: list[tuple[Plan, int]] = []

    def planned(plan: Plan) -> None:
        text.start(plan)
        with engine.connect() as other:  # outside the pass: nothing committed yet
            committed = other.execute(sa.text("SELECT count(*) FROM scheduled_jobs")).scalar()
        calls.append((plan, int(committed or 0)))

    try:
        settings = Settings(database_url=url, jobs_dir=root)
        result = reconcile_once(
            engine, settings, trigger=Trigger.CLI, clock=lambda: NOW, planned=planned
        )
    finally:
        engine.dispose()
    return result.plan, calls


def folder(tmp_path: Path, jobs: int) -> str:
    """A migrated SQLite database and `jobs` job files under tmp_path/jobs; its URL."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade_database(url)
    (tmp_path / "jobs").mkdir()
    write_jobs(tmp_path / "jobs", jobs)
    return url


def test_the_text_printed_is_the_text_of_the_plan_applied(tmp_path: Path) -> None:
    url = folder(tmp_path, 3)
    text = _PlanText(colour=False, wanted=True)
    plan, calls = apply_once(tmp_path / "jobs", url, text)
    assert [(called is plan, committed) for called, committed in calls] == [(True, 0)]
    assert text.of(plan) == render_text(plan, colour=False)
    assert plan.summary["add"] == 3
    other = Plan(
        changes=(), quarantined={}, foreign=(), revision=plan.revision, managed_jobs=3,
        desired_jobs=3,
    )  # fmt: skip
    assert text.of(other) == render_text(other, colour=False)  # another plan: rendered anew
    again, calls = apply_once(tmp_path / "jobs", url, _PlanText(colour=False, wanted=True))
    assert not again.has_changes and calls == []  # nothing applied: never called


def test_a_quiet_apply_renders_nothing(tmp_path: Path) -> None:
    url = folder(tmp_path, 2)
    text = _Counted(colour=False, wanted=False)
    _, calls = apply_once(tmp_path / "jobs", url, text)
    assert len(calls) == 1 and text.rendered == 0


class _Counted(_PlanText):
    rendered = 0

    def _render(self, plan: Plan) -> str:
        self.rendered += 1
        return super()._render(plan)


def test_a_value_left_to_the_exit_outlives_its_holders() -> None:
    """commands._common.leave_to_exit: nothing frees the value one object at a time but
    a collection (which a one-shot command's frozen heap never runs)."""
    import gc
    import weakref

    from reconciler.commands._common import leave_to_exit

    class Big:
        pass

    value = Big()
    alive = weakref.ref(value)
    leave_to_exit(value)
    del value
    assert alive() is not None
    gc.collect()
    assert alive() is None  # not frozen here: collected as any other cycle
