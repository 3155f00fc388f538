"""reconciler.lean_settings reads what the settings model reads, or declines: on random
environments, whenever the lean reading gives values, load_settings gives the same ones
(and does not refuse the environment)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import lean_settings as lean
from reconciler import settings as real
from reconciler.settings import Settings, load_settings
from reconciler.spec.context import context_digest
from reconciler.spec.records import validation_context

NAMES = [
    "RECONCILER_" + name
    for name in (
        "STATE_DIR",
        "DATABASE_URL",
        "JOBS_DIR",
        "QUEUES",
        "TASK_ALLOWLIST",
        "TASK_MODULES",
        "SQL_STATEMENT_ALLOWLIST",
        "REPORT_DIR",
        "MAX_FILE_BYTES",
        "MAX_NESTING_DEPTH",
        "API_PORT",
        "MAX_DELETE_FRACTION",
        "RESYNC_INTERVAL",
        "SYNC",
        "SOURCE",
        "LOG_FORMAT",
        "FAST_PLAN",
        "API_PUBLIC_DOCS",
        "METRICS_PORT",
        "IDEMPOTENCY_LEASE_SECONDS",
        "BROKER_URL",
        "SOMETHING_ELSE",
    )
] + ["reconciler_queues", "Reconciler_Jobs_Dir", "OTHER"]
VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "4",
            "32",
            "1024",
            "1023",
            "2048",
            "0010",
            " 5",
            "65535",
            "65536",
            "0.5",
            "1.0",
            "1.5",
            "-1",
            "1e3",
            "true",
            "false",
            "yes",
            "No",
            "OFF",
            "auto",
            "manual",
            "worktree",
            "git:HEAD",
            "text",
            "json",
            "a,b",
            " a , b ,",
            '["a", "b"]',
            "[1]",
            "[",
            "default",
            "jobs",
            "/tmp/x",
            "reports",
            "postgresql://u@h/d",
            "sqlite:///x.db",
            "reconciler.tasks.example_task,reconciler.tasks.noop",
        ]
    ),
    # No NUL and no lone surrogate other than surrogateescape's (U+DC80..U+DCFF): an
    # environment variable cannot hold them (os.environ refuses to encode them, so the
    # model's side of the comparison could never be built for such a value).
    st.text(
        st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
        | st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
        max_size=8,
    ),
)


def _real(
    environ: dict[str, str], jobs_dir: str | None, database_url: str | None
) -> Settings | None:
    import os

    saved = dict(os.environ)
    os.environ.clear()
    try:
        # Outside the `except ValueError` below: an environment os.environ cannot hold
        # (UnicodeEncodeError is a ValueError) must fail the test, not read as refused.
        os.environ.update(environ)
    except BaseException:
        os.environ.update(saved)
        raise
    try:
        return load_settings(jobs_dir=jobs_dir, database_url=database_url)
    except ValueError:
        return None
    finally:
        os.environ.clear()
        os.environ.update(saved)


@settings(max_examples=400, deadline=None)
@given(
    environ=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=6),
    jobs_dir=st.sampled_from([None, "flag-jobs", ""]),
    database_url=st.sampled_from([None, "postgresql://flag@h/d", ""]),
)
def test_the_lean_reading_is_the_settings_models(
    environ: dict[str, str], jobs_dir: str | None, database_url: str | None
) -> None:
    got = lean.lean_settings(environ, jobs_dir=jobs_dir, database_url=database_url)
    if got is None:
        return
    want = _real(environ, jobs_dir, database_url)
    assert want is not None, "the lean reading vouched for an environment the model refuses"
    assert want.source == "worktree" and want.task_modules == ()
    assert got.jobs_dir == want.jobs_dir
    assert got.database_url == want.database_url
    assert got.max_file_bytes == want.max_file_bytes
    assert got.max_nesting_depth == want.max_nesting_depth
    assert got.queues == want.queues
    assert got.task_allowlist == want.task_allowlist
    assert got.sql_statement_allowlist == want.sql_statement_allowlist
    assert got.report_dir == want.report_dir
    assert got.fast_plan == want.fast_plan
    context = context_digest(got, task_catalog=[])
    assert context == validation_context(want)


def test_it_vouches_for_the_usual_environment() -> None:
    environ = {"RECONCILER_DATABASE_URL": "postgresql://u@h/d", "RECONCILER_JOBS_DIR": "jobs"}
    got = lean.lean_settings(environ)
    assert got is not None and got.jobs_dir == Path("jobs")


def test_every_setting_is_known_and_the_defaults_are_the_models() -> None:
    assert {name.upper() for name in Settings.model_fields} == set(lean._ACCEPTS)
    assert lean.DEFAULT_QUEUES == real.DEFAULT_QUEUES
    assert lean.DEFAULT_TASK_ALLOWLIST == real.DEFAULT_TASK_ALLOWLIST
    assert lean.DEFAULT_SQL_STATEMENTS == real.DEFAULT_SQL_STATEMENTS
    assert lean.REPORTS_FOLDER == real.REPORTS_FOLDER
    defaults = Settings.model_fields
    assert defaults["max_file_bytes"].default == 1_048_576
    assert defaults["max_nesting_depth"].default == 32
    assert defaults["jobs_dir"].default == Path("jobs.d")
