"""plan -> review -> apply, as CI and people run it (issue 12, items 2, 3 and 6):
broken files turn CI red, approved plans apply exactly, mismatches say what differs,
a terminal asks first, and every apply pass is recorded, failures included."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import pytest

from .cli import RECONCILE, Workspace, database_image, job

pytestmark = [pytest.mark.services, pytest.mark.slow]

BROKEN = "name: broken\ntask: reconciler.tasks.noop\nschedule: {cron: 'not a cron'}\n"


def test_a_quarantined_file_fails_plan_and_apply_unless_allowed(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    ws.write("a.yaml", job("a"))
    assert ws.run("apply").returncode == 0
    ws.write("b.yaml", job("b"))
    ws.write("broken.yaml", BROKEN)

    plan = ws.run("plan")
    assert plan.returncode == 1
    assert "+ add     b" in plan.stdout  # the plan of the rest is shown
    assert "broken.yaml:3:" in plan.stdout and "CRON" in plan.stdout  # every diagnostic
    assert "invalid" in plan.stderr
    assert ws.run("plan", "--allow-invalid").returncode == 2

    before = database_image(ws.db_url)
    apply = ws.run("apply")
    assert apply.returncode == 1 and "nothing was applied" in apply.stderr
    assert [r.name for r in ws.rows("select name from scheduled_jobs order by name")] == ["a"]
    last = ws.rows("select outcome, errors from reconcile_runs order by id desc limit 1")[0]
    assert last.outcome == "invalid" and "broken.yaml" in json.dumps(last.errors)
    assert database_image(ws.db_url) != before  # only that reconcile_runs row

    assert ws.run("apply", "--allow-invalid").returncode == 0
    assert {r.name for r in ws.rows("select name from scheduled_jobs")} == {"a", "b"}
    # Nothing left to do but a file is still broken: never "matches the job files".
    for fmt in ("text", "markdown"):
        done = ws.run("plan", "--format", fmt)
        assert done.returncode == 1
        assert "No changes" in done.stdout and "QUARANTINED" in done.stdout
        assert "matches the job files" not in done.stdout
    assert ws.run("plan", "--allow-invalid").returncode == 0


def test_approved_hashes_apply_and_mismatches_say_what_differs(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    ws.write("a.yaml", job("a"))
    ws.write("b.yaml", job("b"))
    assert ws.run("apply").returncode == 0
    ws.write("a.yaml", job("a", cron="*/7 * * * *"))

    markdown = ws.run("plan", "--format", "markdown").stdout
    shown = markdown.split("Plan hash: `")[1].split("`")[0]
    as_json = json.loads(ws.run("plan", "--format", "json").stdout)["plan_hash"]
    as_text = ws.run("plan").stdout.split("Plan hash: ")[1].split()[0]
    assert len(shown) == 64 and shown == as_json == as_text

    wrong = ws.run("apply", "--plan-hash", "f" * 64)
    assert wrong.returncode == 1
    assert "a different plan" in wrong.stderr and "f" * 64 in wrong.stderr and shown in wrong.stderr

    # Someone else applies a change to `a` in between: the same change now starts from
    # another state.
    ws.write("a.yaml", job("a", cron="*/9 * * * *"))
    assert ws.run("apply").returncode == 0
    ws.write("a.yaml", job("a", cron="*/7 * * * *"))
    moved = ws.run("apply", "--plan-hash", shown)
    assert moved.returncode == 1
    assert "the state moved" in moved.stderr and "of a " in moved.stderr
    assert "a different plan" not in moved.stderr
    last = ws.rows("select outcome from reconcile_runs order by id desc limit 1")[0]
    assert last.outcome == "stale"  # refused passes are recorded too

    fresh = ws.run("plan", "--format", "markdown").stdout.split("Plan hash: `")[1].split("`")[0]
    done = ws.run("apply", "--plan-hash", fresh)
    assert done.returncode == 0, done.stderr
    assert ws.rows("select spec->'schedule'->>'cron' from scheduled_jobs where name='a'")[0][0] == (
        "*/7 * * * *"
    )


def test_a_saved_plan_applies_once_then_refuses(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    ws.write("a.yaml", job("a"))
    saved = ws.jobs_dir.parent / "plan.json"
    assert ws.run("plan", "--out", str(saved)).returncode == 2
    first = ws.run("apply", str(saved))
    assert first.returncode == 0 and "Applied: 1 add" in first.stdout
    again = ws.run("apply", str(saved))
    assert again.returncode == 1 and "the state moved" in again.stderr and "a" in again.stderr

    ws.write("b.yaml", job("b"))
    assert ws.run("plan", "--out", str(saved)).returncode == 2
    ws.write("c.yaml", job("c"))  # the files moved on after the review
    other = ws.run("apply", str(saved))
    assert other.returncode == 1
    assert "a different plan" in other.stderr and "new: c" in other.stderr
    assert {r.name for r in ws.rows("select name from scheduled_jobs")} == {"a"}


def _run_on_terminal(ws: Workspace, *args: str, answer: str) -> tuple[int, str]:
    """`reconcile` with a pty as its terminal; types `answer` at the prompt."""
    env = ws.env()
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [RECONCILE, *args], stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        if not answered and b"Enter a value:" in output:
            os.write(leader, answer.encode() + b"\n")
            answered = True
        if process.poll() is not None and not ready:
            break
    os.close(leader)
    return process.wait(30), output.decode(errors="replace")


def test_apply_asks_on_a_terminal_unless_auto_approved(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    ws.write("a.yaml", job("a"))
    code, text = _run_on_terminal(ws, "apply", answer="no")
    assert code == 1 and "+ add     a" in text and "Apply cancelled" in text
    assert ws.rows("select count(*) from pg_tables where tablename='scheduled_jobs'")[0][0] in (
        0,
        1,
    )
    assert (
        not ws.rows("select 1 from information_schema.tables where table_name='scheduled_jobs'")
        or ws.rows("select count(*) from scheduled_jobs")[0][0] == 0
    )
    code, text = _run_on_terminal(ws, "apply", answer="yes")
    assert code == 0 and "Applied: 1 add" in text, text
    ws.write("b.yaml", job("b"))
    code, text = _run_on_terminal(ws, "apply", "--auto-approve", answer="no")
    assert code == 0 and "Enter a value" not in text and "Applied: 1 add" in text
    ws.write("c.yaml", job("c"))
    piped = ws.run("apply")  # stdin is not a terminal: no question
    assert piped.returncode == 0 and "Enter a value" not in piped.stdout
    assert ws.rows("select count(*) from scheduled_jobs")[0][0] == 3


def test_no_color_turns_off_the_plan_colours_on_a_terminal(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: text output is "coloured only on a terminal (`NO_COLOR` turns it off)";
    `get jobs` honoured it, `plan` and `apply` (the plan shown before the question) not."""
    ws = sqlite_workspace
    ws.write("a.yaml", job("a"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, text = _run_on_terminal(ws, "plan", answer="")
    assert code == 2 and "\x1b[" in text, text  # a terminal: coloured
    monkeypatch.setenv("NO_COLOR", "1")
    code, text = _run_on_terminal(ws, "plan", answer="")
    assert code == 2 and "+ add     a" in text and "\x1b[" not in text, text
    code, text = _run_on_terminal(ws, "apply", answer="no")
    assert code == 1 and "+ add     a" in text and "\x1b[" not in text, text


def test_a_failing_apply_is_recorded(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    ws.write("a.yaml", job("a"))
    assert ws.run("apply").returncode == 0
    # A real database failure in the middle of the apply's transaction.
    engine = ws.engine()
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON apscheduler_jobs "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    engine.dispose()
    ws.write("b.yaml", job("b"))
    failed = ws.run("apply")
    assert failed.returncode == 1 and "disk on fire" in failed.stderr
    last = ws.rows("select trigger, outcome, errors from reconcile_runs order by id desc limit 1")[
        0
    ]
    assert (last.trigger, last.outcome) == ("cli", "error")
    assert "disk on fire" in json.dumps(last.errors)
    assert {r.name for r in ws.rows("select name from scheduled_jobs")} == {"a"}

    # In process: the same failure counts in the metrics (what a daemon exports).
    from prometheus_client import REGISTRY

    from reconciler.engine.reconcile import reconcile_once
    from reconciler.settings import Settings
    from reconciler.store.db import create_sync_engine

    def failed_runs() -> float:
        labels = {"trigger": "cli", "outcome": "failed"}
        return REGISTRY.get_sample_value("reconciler_reconcile_runs_total", labels) or 0.0

    before = failed_runs()
    engine = create_sync_engine(ws.db_url)
    settings = Settings(database_url=ws.db_url, jobs_dir=ws.jobs_dir)
    try:
        reconcile_once(engine, settings, trigger="cli")
    except Exception as error:
        assert "disk on fire" in str(error)
    else:
        raise AssertionError("the apply did not fail")
    finally:
        engine.dispose()
    assert failed_runs() == before + 1
    assert ws.rows("select count(*) from reconcile_runs where outcome = 'error'")[0][0] == 2
