"""The closed vocabularies: the words are stored in the database, sent in JSON and
exported as metric labels, so they must never change by accident, and each must fit the
column that stores it (no CHECK constraint holds them)."""

from __future__ import annotations

import json
from enum import StrEnum

import orjson
import pytest
import sqlalchemy as sa
import yaml

from reconciler import metrics
from reconciler.core import vocabulary as v
from reconciler.core.moments import jsonable
from reconciler.store import tables

# The words as they were written before the enums existed (the database holds them).
STORED = {
    v.Action: "add update pause resume rename remove repair",
    v.JobStatus: "active paused completed",
    v.RunStatus: "scheduled published started succeeded failed retried skipped missed expired",
    v.Trigger: "watch resync startup cli",
    v.ReconcileOutcome: "applied no_changes planned refused stale invalid error",
    v.Role: "leader standby stopped",
    v.Drift: "missing_scheduler_row scheduler_paused scheduler_active "
    "unexpected_scheduler_row foreign_scheduler_row",
    v.MissReason: "misfire coalesced catch_up_limit overlap expired",
    v.FireOutcome: "published duplicate skipped_overlap missed unpublished expired fenced",
    v.TaskOutcome: "succeeded failed retried duplicate",
    v.PassResult: "succeeded failed refused",
    v.ErrorKind: "transient refused bug",
}


@pytest.mark.parametrize("vocabulary", list(STORED), ids=lambda e: e.__name__)
def test_the_words_are_the_stored_ones(vocabulary: type[StrEnum]) -> None:
    assert [member.value for member in vocabulary] == STORED[vocabulary].split()


def test_the_lost_reason_is_the_one_the_ledger_holds() -> None:
    # Written by the leader's reaper and compared by the worker's claim.
    assert v.RunReason.LOST == "lost: its worker stopped renewing the claim's lease"


@pytest.mark.parametrize(
    ("column", "vocabulary"),
    [
        (tables.scheduled_jobs.c.status, v.JobStatus),
        (tables.job_runs.c.status, v.RunStatus),
        (tables.reconcile_runs.c.trigger, v.Trigger),
        (tables.reconcile_runs.c.outcome, v.ReconcileOutcome),
        (tables.job_events.c.action, v.Action),
        (tables.job_events.c.status, v.JobStatus),
        (tables.reconciler_instances.c.role, v.Role),
    ],
    ids=lambda item: getattr(item, "name", None) or getattr(item, "__name__", ""),
)
def test_every_word_fits_its_column(column: sa.Column[str], vocabulary: type[StrEnum]) -> None:
    assert isinstance(column.type, sa.String)
    assert column.type.length is not None
    assert max(len(member) for member in vocabulary) <= column.type.length


def test_every_action_has_a_symbol_and_a_count_column() -> None:
    assert {action.symbol for action in v.Action} == {"+", "~", "-", "!"}
    assert set(v.COUNT_COLUMNS) == set(v.Action)
    assert set(v.COUNT_COLUMNS.values()) <= set(tables.reconcile_runs.c.keys())


def test_every_outcome_of_a_pass_is_counted_by_the_metric() -> None:
    assert {outcome.result for outcome in v.ReconcileOutcome} == set(v.PassResult)
    assert v.ReconcileOutcome.STALE.result is v.PassResult.FAILED


def test_a_member_is_written_as_its_word() -> None:
    member = v.RunStatus.SUCCEEDED
    assert f"{member}" == str(member) == "succeeded"
    assert json.dumps({"s": member}) == '{"s": "succeeded"}'
    assert orjson.dumps({"s": member}) == b'{"s":"succeeded"}'
    assert yaml.safe_dump(jsonable({member: member})) == "succeeded: succeeded\n"


def test_metrics_export_the_vocabularies() -> None:
    assert tuple(v.Action) == metrics.CHANGE_ACTIONS
    assert tuple(v.JobStatus) == metrics.JOB_STATUSES
    assert tuple(v.MissReason) == metrics.MISS_REASONS


def test_the_api_documents_the_same_words() -> None:
    # The response models spell two vocabularies as Literals, so that the OpenAPI
    # document keeps its inline enums (an enum type would add schema components).
    from typing import get_args

    from reconciler.api.models import Leader, Slot

    assert get_args(Leader.model_fields["state"].annotation) == tuple(v.LeaderState)
    assert get_args(Slot.model_fields["fate"].annotation) == tuple(v.Fate)
