"""`reconcile api` as a real process: serves, then stops cleanly (exit 0) on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from api_seed import seed

from reconciler.store.migrate import upgrade_database

pytestmark = pytest.mark.e2e
RECONCILE = str(Path(sys.executable).parent / "reconcile")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            httpx.get(f"{base}/health/live", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("reconcile api did not start")


def _serve_until_sigterm(
    env: dict[str, str], ask: Callable[[str], None], *flags: str
) -> tuple[int, bytes, bytes]:
    """`reconcile api FLAGS` on a free port: once it answers, `ask(base_url)`, then
    SIGTERM; its exit code, stdout and stderr (killed if a check failed first)."""
    port = _free_port()
    process = subprocess.Popen(
        [RECONCILE, "api", *flags, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base, process)
        ask(base)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


def test_serves_and_stops_on_sigterm(sqlite_url: str) -> None:
    upgrade_database(sqlite_url)
    seed(sqlite_url)
    env = {**os.environ, "RECONCILER_DATABASE_URL": sqlite_url, "RECONCILER_API_TOKEN": "tok"}

    def ask(base: str) -> None:
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
        assert httpx.get(f"{base}/api/v1/jobs").status_code == 401
        jobs = httpx.get(f"{base}/api/v1/jobs", headers={"Authorization": "Bearer tok"})
        assert jobs.status_code == 200 and len(jobs.json()["items"]) == 5
        assert "server" not in jobs.headers  # no version banner

    code, _out, err = _serve_until_sigterm(env, ask, "--host", "127.0.0.1")
    assert code == 0, err.decode()
    assert b"Traceback" not in err
    assert b"tok" not in err.replace(b"Started", b"")  # the token is never logged


def test_taken_port_exits_1(sqlite_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [RECONCILE, "api", "--port", str(port)],
            env={**os.environ, "RECONCILER_DATABASE_URL": sqlite_url},
            capture_output=True,
            timeout=30,
        )
    assert result.returncode == 1


def test_every_log_line_has_the_configured_shape_and_masked_lines_are_kept(
    sqlite_url: str,
) -> None:
    """README: every log line carries an RFC 3339 UTC time and is a JSON line with
    RECONCILER_LOG_FORMAT=json, the API access log masked. uvicorn's own formatters wrote
    `INFO:     ...` lines, and a masked access line was lost in a "Logging error" dump."""
    upgrade_database(sqlite_url)
    env = {**os.environ, "RECONCILER_DATABASE_URL": sqlite_url, "RECONCILER_LOG_FORMAT": "json"}

    def ask(base: str) -> None:
        httpx.get(f"{base}/api/v1/jobs", params={"prefix": "https://bob:hunter2@example.com/"})

    code, out, err = _serve_until_sigterm(env, ask)
    assert code == 0, err.decode()
    lines = [line for line in (out + err).decode().splitlines() if line.strip()]
    assert lines and "Logging error" not in err.decode()
    documents = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(document["time"].endswith("Z") for document in documents)
    request = '"GET /api/v1/jobs?prefix=https://bob:***@example.com/ HTTP/1.1" 200'
    assert [d for d in documents if d["message"].endswith(request)], lines  # logged, masked
    assert b"hunter2" not in out + err


def test_an_unsupported_database_is_one_line() -> None:
    """README, operational errors: one line, exit 1, never a traceback."""
    result = subprocess.run(
        [RECONCILE, "api", "--port", str(_free_port())],
        env={**os.environ, "RECONCILER_DATABASE_URL": "mysql://app@db/jobs"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: unsupported database 'mysql': use postgresql:// or sqlite:///"
    ], result.stderr
