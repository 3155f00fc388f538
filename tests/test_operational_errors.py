"""Operational failures are one line naming the setting to check, exit 1, never "a bug":
an unreachable database (at once, or after RECONCILER_STARTUP_TIMEOUT of retries), a
taken metrics or API port, a bad database URL. And each kind of process has its own
default metrics port, bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.commands.run import metrics_address
from reconciler.settings import DAEMON_METRICS_PORT, WORKER_METRICS_PORT, Settings

RECONCILE = str(Path(sys.executable).parent / "reconcile")
pytestmark = pytest.mark.slow  # starts several `reconcile` processes


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update(
        RECONCILER_JOBS_DIR=str(jobs),
        RECONCILER_DATABASE_URL=f"sqlite:///{tmp_path / 'state.db'}",
        RECONCILER_BROKER_URL="filesystem://",
        RECONCILER_REDIS_URL="",
    )
    return {**env, **extra}


def _reconcile(argv: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    result = subprocess.run(
        [RECONCILE, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode, result.stderr


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once closed


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize(
    "command", [["status"], ["get", "jobs"], ["apply"], ["db", "upgrade"], ["run"]]
)
def test_an_unreachable_database_is_one_line_naming_the_setting(
    tmp_path: Path, closed_port: int, command: list[str]
) -> None:
    url = f"postgresql://app:Sup3rSecret@127.0.0.1:{closed_port}/x"
    code, err = _reconcile(command, _env(tmp_path, RECONCILER_DATABASE_URL=url))
    assert code == 1
    assert err == (
        "error: cannot reach the database (RECONCILER_DATABASE_URL): connection failed: "
        f'connection to server at "127.0.0.1", port {closed_port} failed: Connection refused\n'
    )


def test_the_daemon_retries_the_database_for_the_startup_timeout(
    tmp_path: Path, closed_port: int
) -> None:
    url = f"postgresql://app@127.0.0.1:{closed_port}/x"
    env = _env(tmp_path, RECONCILER_DATABASE_URL=url, RECONCILER_STARTUP_TIMEOUT="8")
    env["RECONCILER_LOG_LEVEL"] = "INFO"
    started = time.monotonic()
    code, err = _reconcile(["run", "--metrics-port", "0"], env)
    took = time.monotonic() - started
    assert code == 1 and took >= 3, (took, err)
    assert err.count("retrying in") >= 2  # 1 s, then 2 s: backoff
    assert (
        err.endswith(f"port {closed_port} failed: Connection refused\n")
        and "error: cannot reach the database (RECONCILER_DATABASE_URL)" in err
    )


@pytest.mark.parametrize("command", ["run", "worker"])
def test_a_taken_metrics_port_is_one_line(tmp_path: Path, taken_port: int, command: str) -> None:
    code, err = _reconcile([command, "--metrics-port", str(taken_port)], _env(tmp_path))
    assert code == 1
    assert err == (
        f"error: cannot serve metrics on 127.0.0.1:{taken_port}: Address already in use "
        "(set another port with --metrics-port or RECONCILER_METRICS_PORT, 0 turns metrics "
        "off; the address: --metrics-host or RECONCILER_METRICS_HOST)\n"
    )


def test_a_taken_api_port_is_one_line(tmp_path: Path, taken_port: int) -> None:
    code, err = _reconcile(["api", "--port", str(taken_port)], _env(tmp_path))
    assert code == 1
    assert err == (
        f"error: cannot serve the API on 127.0.0.1:{taken_port}: Address already in use "
        "(set another port with --port or RECONCILER_API_PORT, the address with --host or "
        "RECONCILER_API_HOST)\n"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://app:pw@db/x", "unsupported database 'mysql': use postgresql:// or sqlite:///"),
        ("not a url", "invalid database URL: Could not parse SQLAlchemy URL from given URL string"),
    ],
)
def test_a_bad_database_url_is_one_line(tmp_path: Path, url: str, message: str) -> None:
    code, err = _reconcile(["status"], _env(tmp_path, RECONCILER_DATABASE_URL=url))
    assert (code, err) == (1, f"error: {message}\n")


def test_each_process_kind_has_its_own_default_metrics_port_on_loopback() -> None:
    flags = argparse.Namespace(metrics_port=None, metrics_host=None)
    settings = Settings(metrics_port=None)
    daemon = metrics_address(flags, settings, default_port=DAEMON_METRICS_PORT)
    worker = metrics_address(flags, settings, default_port=WORKER_METRICS_PORT)
    assert daemon == ("127.0.0.1", 9101) and worker == ("127.0.0.1", 9102)
    explicit = argparse.Namespace(metrics_port=9300, metrics_host="0.0.0.0")
    assert metrics_address(explicit, settings, default_port=9101) == ("0.0.0.0", 9300)
    configured = Settings(metrics_port=9400, metrics_host="10.0.0.1")
    assert metrics_address(flags, configured, default_port=9101) == ("10.0.0.1", 9400)
