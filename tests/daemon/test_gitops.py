"""The daemon in a GitOps setup (issue 12, items 4 and 5), as real `reconcile run`
processes on PostgreSQL: manual sync never writes the inventory while fires go on;
`git:HEAD` applies commits, never uncommitted edits, and a branch switch of 1,000
files in one pass; a `git mv` and a `previous_names` rename keep a job's history, next
fire and ledger with no slot fired twice or lost."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from .helpers import REPO_ROOT, as_utc, job_yaml, wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def metrics_text(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def cli_apply(cluster) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "apply"],
        env=cluster.env("cli"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def inventory(cluster) -> dict[str, tuple]:
    try:
        rows = cluster.rows(
            "SELECT name, spec_hash, source_file, generation, updated_at, created_at "
            "FROM scheduled_jobs"
        )
    except sa.exc.ProgrammingError:  # not migrated yet
        return {}
    return {row.name: tuple(row)[1:] for row in rows}


def runs_after(cluster, run_id: int) -> list:
    return cluster.rows(
        "SELECT id, outcome, revision, revision_dirty, added, updated, removed "
        "FROM reconcile_runs WHERE id > :i ORDER BY id",
        i=run_id,
    )


def last_run_id(cluster) -> int:
    return int(cluster.scalar("SELECT coalesce(max(id), 0) FROM reconcile_runs"))


def test_manual_sync_never_writes_the_inventory_while_fires_continue(make_cluster) -> None:
    cluster = make_cluster(sync="manual")
    (cluster.jobs_dir / "tick.yaml").write_text(job_yaml("tick"))
    done = cli_apply(cluster)
    assert done.returncode == 0, done.stderr
    port = free_port()
    cluster.start("daemon-a", metrics_port=str(port))
    wait_until(lambda: cluster.count_runs() >= 2, timeout=60, what="fires")
    before = inventory(cluster)
    seen = last_run_id(cluster)

    (cluster.jobs_dir / "new.yaml").write_text(job_yaml("new"))
    (cluster.jobs_dir / "tick.yaml").write_text(job_yaml("tick", description='"edited"'))

    def pending() -> list:
        return [
            run
            for run in runs_after(cluster, seen)
            if run.outcome == "planned" and (run.added, run.updated) == (1, 1)
        ]

    wait_until(pending, timeout=30, what="the pending changes reported")
    wait_until(
        lambda: 'reconciler_pending_changes{action="add"} 1.0' in metrics_text(port),
        timeout=20,
        what="the pending changes exported",
    )
    assert 'reconciler_pending_changes{action="update"} 1.0' in metrics_text(port)
    fires = cluster.count_runs()
    wait_until(lambda: cluster.count_runs() >= fires + 3, timeout=30, what="more fires")
    assert inventory(cluster) == before  # not one inventory write
    assert not cluster.ledger("new")
    assert {run.outcome for run in runs_after(cluster, seen)} <= {"planned", "no_changes"}

    done = cli_apply(cluster)  # the only writer
    assert done.returncode == 0 and "1 add, 1 update" in done.stdout, done.stdout
    wait_until(lambda: cluster.ledger("new"), timeout=20, what="the applied job firing")


def test_a_manual_daemon_never_logs_its_pending_changes_as_applied(make_cluster) -> None:
    """README: a `manual` daemon "never writes a job"; its log said "applied 1 add" and
    "+ new: added from new.yaml" on every pass while the job stayed pending."""
    cluster = make_cluster(sync="manual")
    (cluster.jobs_dir / "tick.yaml").write_text(job_yaml("tick"))
    assert cli_apply(cluster).returncode == 0
    daemon = cluster.start("daemon-a")
    wait_until(lambda: cluster.leader() is not None, timeout=60, what="a leader")
    seen = last_run_id(cluster)
    (cluster.jobs_dir / "new.yaml").write_text(job_yaml("new"))
    wait_until(
        lambda: any(
            run.outcome == "planned" and run.added == 1 for run in runs_after(cluster, seen)
        ),
        timeout=30,
        what="the pending add recorded",
    )
    wait_until(lambda: "1 add" in daemon.output(), timeout=10, what="the pending add logged")
    daemon.stop()
    logged = daemon.output()
    assert "not applied (RECONCILER_SYNC=manual): 1 add pending" in logged, logged
    assert " applied 1 add" not in logged and "added from" not in logged, logged
    assert "new" not in inventory(cluster)


def test_git_head_applies_commits_only_and_records_them(make_cluster) -> None:
    cluster = make_cluster(source="git:HEAD")
    root = cluster.root
    git(root, "init", "-q")
    (cluster.jobs_dir / "a.yaml").write_text(job_yaml("a", cron="0 0 1 1 *"))
    git(root, "add", "jobs.d")
    git(root, "commit", "-qm", "a")
    first = git(root, "rev-parse", "HEAD")
    cluster.start("daemon-a")
    wait_until(lambda: "a" in inventory(cluster), timeout=60, what="the startup pass")
    assert cluster.scalar("SELECT revision FROM scheduled_jobs WHERE name = 'a'") == first

    seen = last_run_id(cluster)
    (cluster.jobs_dir / "b.yaml").write_text(job_yaml("b", cron="0 0 1 1 *"))  # not committed
    (cluster.jobs_dir / "a.yaml").write_text(job_yaml("a", cron="0 0 2 1 *"))
    # A watch pass (file events) and a resync (every 5 s) both come and go.
    wait_until(lambda: len(runs_after(cluster, seen)) >= 2, timeout=30, what="two passes")
    wait_until(lambda: any(r.revision == first for r in runs_after(cluster, seen)), timeout=10)
    assert set(inventory(cluster)) == {"a"}
    assert cluster.scalar("SELECT spec->'schedule'->>'cron' FROM scheduled_jobs") == "0 0 1 1 *"
    assert all(r.outcome == "no_changes" for r in runs_after(cluster, seen))
    assert all((r.revision, r.revision_dirty) == (first, False) for r in runs_after(cluster, seen))

    git(root, "add", "jobs.d")
    git(root, "commit", "-qm", "b")
    second = git(root, "rev-parse", "HEAD")
    wait_until(lambda: "b" in inventory(cluster), timeout=20, what="the commit applied")
    applied = [r for r in runs_after(cluster, seen) if r.outcome == "applied"]
    assert [(r.revision, r.revision_dirty, r.added, r.updated) for r in applied] == [
        (second, False, 1, 1)
    ]
    revisions = cluster.rows("SELECT name, revision FROM scheduled_jobs ORDER BY name")
    assert [tuple(row) for row in revisions] == [("a", second), ("b", second)]


def test_a_branch_switch_of_1000_files_applies_once(make_cluster) -> None:
    cluster = make_cluster(source="git:HEAD")
    root = cluster.root
    git(root, "init", "-q", "-b", "main")
    for number in range(1000):
        path = cluster.jobs_dir / f"team-{number % 10}" / f"job-{number:04d}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(job_yaml(f"job-{number:04d}", cron="0 0 1 1 *"))
    git(root, "add", "jobs.d")
    git(root, "commit", "-qm", "main")
    git(root, "checkout", "-q", "-b", "other")
    for path in cluster.jobs_dir.rglob("*.yaml"):
        path.write_text(path.read_text().replace("0 0 1 1 *", "0 0 2 1 *"))
    git(root, "commit", "-qam", "other")
    other = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "main")

    cluster.start("daemon-a")
    wait_until(lambda: len(inventory(cluster)) == 1000, timeout=120, what="1,000 jobs")
    seen = last_run_id(cluster)
    git(root, "checkout", "-q", "other")  # 1,000 files rewritten in the working tree

    def switched() -> bool:
        query = "SELECT count(*) FROM scheduled_jobs WHERE spec->'schedule'->>'cron' = '0 0 2 1 *'"
        return cluster.scalar(query) == 1000

    wait_until(switched, timeout=120, what="the switch applied")
    wait_until(lambda: len(runs_after(cluster, seen)) >= 2, timeout=30, what="a pass after")
    applied = [r for r in runs_after(cluster, seen) if r.outcome == "applied"]
    assert [(r.revision, r.updated, r.added, r.removed) for r in applied] == [(other, 1000, 0, 0)]


def test_git_mv_and_previous_names_keep_history_and_every_slot(make_cluster) -> None:
    cluster = make_cluster()
    root = cluster.root
    git(root, "init", "-q")
    (cluster.jobs_dir / "ops").mkdir()
    (cluster.jobs_dir / "ops" / "tick.yaml").write_text(job_yaml("tick"))
    git(root, "add", "jobs.d")
    git(root, "commit", "-qm", "tick")
    cluster.start("daemon-a")
    wait_until(lambda: cluster.count_runs() >= 3, timeout=60, what="fires")
    created = inventory(cluster)["tick"][4]

    (cluster.jobs_dir / "moved").mkdir()
    git(root, "mv", "jobs.d/ops/tick.yaml", "jobs.d/moved/tick.yaml")
    wait_until(
        lambda: inventory(cluster)["tick"][1] == "moved/tick.yaml", timeout=20, what="the move"
    )
    wait_until(lambda: len(cluster.ledger("tick")) >= 6, timeout=20, what="fires after the move")
    before_rename = {row.id for row in cluster.ledger("tick")}

    (cluster.jobs_dir / "moved" / "tick.yaml").write_text(job_yaml("tock", previous_names="[tick]"))
    wait_until(lambda: set(inventory(cluster)) == {"tock"}, timeout=20, what="the rename")
    count = len(cluster.ledger("tock"))
    wait_until(lambda: len(cluster.ledger("tock")) >= count + 3, timeout=20, what="fires after")
    cluster.stop_all()

    rows = cluster.ledger("t")  # tick and tock
    assert {row.job_name for row in rows} == {"tock"}  # the history moved with the name
    assert before_rename <= {row.id for row in rows}  # same run ids (Celery task ids)
    slots = sorted(as_utc(row.scheduled_time) for row in rows)
    assert len(slots) == len(set(slots)), "a slot fired twice"
    gaps = [b for a, b in itertools.pairwise(slots) if b - a != timedelta(seconds=1)]
    assert not gaps, f"slots lost before {gaps}"
    assert inventory(cluster)["tock"][4] == created  # the same inventory row
    runs = cluster.rows("SELECT updated, renamed FROM reconcile_runs WHERE outcome = 'applied'")
    assert sum(run.updated for run in runs) == 1  # the move
    assert sum(run.renamed for run in runs) == 1  # then the rename
