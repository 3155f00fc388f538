"""Secrets found by their VALUE (whatever the key is called) never leave the process:
canaries planted in a job's kwargs, in request URLs and in an error are looked for in
the plan (text, JSON, Markdown), the API, its logs and /metrics, and in CLI errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reconciler.redact import MaskingFilter, mask_text
from tests.e2e.processes import free_port
from tests.polling import wait_until

RECONCILE = str(Path(sys.executable).parent / "reconcile")
pytestmark = pytest.mark.slow  # starts several `reconcile` processes
PASSWORD = "CanaryPw7731"
DSN_PASSWORD = "CanaryDsn5520"
BEARER = "CanaryBearer9182xyz"
GITHUB = "ghp_" + "Canary" * 6  # 36 characters after the prefix
# A JWT whose base64url parts hold neither `_` nor `-` ({"Canary":"Jwt"}).
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJDYW5hcnkiOiJKd3QifQ.Q2FuYXJ5Snd0U2lnbmF0dXJl"
CANARIES = (PASSWORD, DSN_PASSWORD, BEARER, GITHUB, JWT)
JOB = f"""\
name: canary-job
task: reconciler.tasks.example_task
schedule: {{cron: '*/5 * * * *'}}
kwargs:
  data:
    url: https://deploy:{PASSWORD}@git.example.com/repo.git
    conn: host=db user=app password={DSN_PASSWORD}
    header: Bearer {BEARER}
    shouted: BEARER {BEARER}
    jwt_seen: {JWT}
    clone: https://{GITHUB}@github.com/org/repo
    plain: postgresql://reporting@db/analytics
"""


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://app:s3cret@db/x", "postgresql://app:***@db/x"),
        ("https://user:token@host/", "https://user:***@host/"),
        ("postgresql://postgres@127.0.0.1/x", "postgresql://postgres@127.0.0.1/x"),
        ("host=db password=s3cret user=x", "host=db password=*** user=x"),
        ("Authorization was Bearer abc.def-123", "Authorization was Bearer ***"),
        (f"key {GITHUB} here", "key *** here"),
        ("aws AKIAABCDEFGHIJKLMNOP", "aws ***"),
        ("xoxb-1234567890-abcdefghij", "***"),
        (f"jwt {JWT} sent", "jwt *** sent"),
        ("HEADER WAS BEARER abcdef123456", "HEADER WAS BEARER ***"),
        ("was BEARER abc.def-123, TOKEN abcdef123456", "was BEARER ***, TOKEN ***"),
        ("http://127.0.0.1:8000/health/live", "http://127.0.0.1:8000/health/live"),
        ("*/5 * * * *", "*/5 * * * *"),
        # A secret pair inside a harmless pair's value (matches of one regex never
        # overlap: both were printed before).
        ("fire failed: token: s3cr3tvalue", "fire failed: token: ***"),
        ("note: password=s3cr3t user=x", "note: password=*** user=x"),
        ("a: b: c: api_key=k1 d=e", "a: b: c: api_key=*** d=e"),
        ("url: http://host:8080/x", "url: http://host:8080/x"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    ("job", "line", "shown"),
    [
        # A log record about `token-refresh` names it; the rest of its line is still masked.
        (
            "token-refresh",
            f"~ token-refresh: url https://u:{PASSWORD}@h/, token: x",
            "~ token-refresh: url https://u:***@h/, token: ***",
        ),
        # The name ends a longer key, or is a key itself anywhere but a change line's head.
        (
            "token",
            "~ token: cron changed; api_token: s3cr3tvalue123",
            "~ token: cron changed; api_token: ***",
        ),
        ("token", "access_token: s3cr3tvalue123", "access_token: ***"),
        ("token", "token: s3cr3tvalue123", "token: ***"),
        ("auth", "request failed basic_auth: s3cr3tvalue123", "request failed basic_auth: ***"),
        # `oauth` is no secret word (looks_secret): shown as without the job's name.
        ("auth", "request failed oauth: s3cr3tvalue123", "request failed oauth: s3cr3tvalue123"),
        # A change line's head is the job's name; a name that merely starts it is not.
        ("token", "+ token: added from token.yaml", "+ token: added from token.yaml"),
        ("token", "+ token-refresh: added from t.yaml", "+ token-refresh: *** from t.yaml"),
    ],
)
def test_a_job_name_is_a_name_only_at_a_change_lines_head(job: str, line: str, shown: str) -> None:
    """Before the colon of its change line, a job's name is no secret key. Elsewhere it
    may end a real key (`api_token: ...` of a job called `token`): the filter masks
    there as mask_text does (review finding 1)."""
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%s", (line,), None)
    record.job = job  # job_extra(name), as the daemon logs a change
    MaskingFilter().filter(record)
    assert record.getMessage() == shown
    if not line[1:].startswith(f" {job}:"):  # not a change line of the job
        assert shown == mask_text(line)


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "canary.yaml").write_text(JOB)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")},
        "RECONCILER_JOBS_DIR": str(jobs),
        "RECONCILER_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "RECONCILER_LOG_LEVEL": "INFO",
    }
    _reconcile(["db", "upgrade"], env)
    return tmp_path, env


def _reconcile(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECONCILE, *argv], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def _assert_clean(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{canary} leaked into {where}"


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_plan_masks_secrets_by_value(workspace: tuple[Path, dict[str, str]], fmt: str) -> None:
    _, env = workspace
    result = _reconcile(["plan", "--format", fmt], env)
    assert result.returncode == 2, result.stderr
    _assert_clean(result.stdout + result.stderr, f"plan --format {fmt}")
    assert "deploy:***@git.example.com" in result.stdout
    assert "postgresql://reporting@db/analytics" in result.stdout  # user names stay


@pytest.mark.services
def test_api_logs_and_metrics_mask_secrets_by_value(
    workspace: tuple[Path, dict[str, str]],
) -> None:
    tmp_path, env = workspace
    assert _reconcile(["apply"], env).returncode == 0
    port = free_port()
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        api = subprocess.Popen(
            [RECONCILE, "api", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/health/live"), timeout=60, what="the API")
        job = httpx.get(f"{base}/api/v1/jobs/canary-job", timeout=10)
        assert job.status_code == 200
        _assert_clean(job.text, "GET /api/v1/jobs/canary-job")
        assert "deploy:***@git.example.com" in job.text
        listing = httpx.get(f"{base}/api/v1/jobs", timeout=10)
        _assert_clean(listing.text, "GET /api/v1/jobs")
        # Secrets in request URLs: the access log and the metrics' labels.
        httpx.get(f"{base}/api/v1/jobs/{GITHUB.lower()}", timeout=10)
        httpx.get(f"{base}/api/v1/jobs", params={"prefix": f"x password={PASSWORD}"}, timeout=10)
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert "reconciler_api_requests_total" in metrics
        _assert_clean(metrics, "/metrics")
        assert GITHUB.lower() not in metrics
    finally:
        api.terminate()
        api.wait(30)
    logged = log_path.read_text()
    assert "GET /api/v1/jobs" in logged  # the access log is on: the lines were written
    _assert_clean(logged, "the API's log")
    assert GITHUB.lower() not in logged


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_cli_errors_mask_secrets_by_value(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")},
        "RECONCILER_JOBS_DIR": str(tmp_path),
        "RECONCILER_DATABASE_URL": f"mysql://app:{PASSWORD}@db/x",
    }
    result = _reconcile(["status"], env)
    assert result.returncode == 1
    _assert_clean(result.stdout + result.stderr, "a CLI error")


def test_diagnostics_mask_secrets_by_value(workspace: tuple[Path, dict[str, str]]) -> None:
    """A diagnostic quotes the value it refuses (`unknown queue '...'`): a secret pasted
    into the wrong field is masked in `validate`, the plan's quarantined files (every
    format) and `status`, as in every other output."""
    tmp_path, env = workspace
    (tmp_path / "jobs.d" / "misplaced.yaml").write_text(
        "name: misplaced\ntask: reconciler.tasks.example_task\n"
        "schedule: {interval: {hours: 1}}\n"
        f"queue: 'postgresql://app:{DSN_PASSWORD}@db/x'\ntimezone: {GITHUB}\n"
    )
    outputs = {"validate": _reconcile(["validate"], env)}
    for fmt in ("text", "json", "markdown"):
        outputs[fmt] = _reconcile(["plan", "--allow-invalid", "--format", fmt], env)
    assert _reconcile(["apply", "--allow-invalid"], env).returncode == 0
    outputs["status"] = _reconcile(["status", "-o", "json"], env)
    for where, result in outputs.items():
        assert "UNKNOWN_QUEUE" in result.stdout, (where, result.stdout, result.stderr)
        _assert_clean(result.stdout + result.stderr, where)
    assert "postgresql://app:***@db/x" in outputs["validate"].stdout
