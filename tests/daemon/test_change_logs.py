"""The daemon's log names each change (README: `~ nightly-report: schedule.cron "0 2 * * *"
-> "0 3 * * *"`), whatever the job is called: a name with a word that makes a KEY look
secret (`token-refresh`, `session-cleanup`) is a name, and masking secrets by value in
log lines must not take `token-refresh: added` for a `token: ...` pair."""

from __future__ import annotations

import pytest

from .helpers import job_yaml, wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_change_lines_of_jobs_with_secret_looking_names_stay_readable(make_cluster) -> None:
    cluster = make_cluster(resync_interval="600")
    for name in ("token-refresh", "session-cleanup"):
        (cluster.jobs_dir / f"{name}.yaml").write_text(job_yaml(name, cron="0 0 1 1 *"))
    daemon = cluster.start("daemon-a")
    wait_until(lambda: "+ session-cleanup" in daemon.output(), timeout=40, what="the adds")
    (cluster.jobs_dir / "token-refresh.yaml").write_text(
        job_yaml("token-refresh", cron="0 0 2 1 *")
    )
    wait_until(lambda: "~ token-refresh" in daemon.output(), timeout=20, what="the update")
    cluster.stop_all()
    logged = daemon.output()
    assert "+ token-refresh: added from token-refresh.yaml job=token-refresh" in logged
    assert "+ session-cleanup: added from session-cleanup.yaml job=session-cleanup" in logged
    assert '~ token-refresh: schedule.cron "0 0 1 1 *" -> "0 0 2 1 *"' in logged, logged
