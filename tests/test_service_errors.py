"""The broker and Redis at start: unreachable, or a URL that cannot be used, is one line
naming the setting and exit 1 for `reconcile run` and `reconcile worker` (never "a bug",
never Celery's endless retry), and with RECONCILER_STARTUP_TIMEOUT they are retried with
backoff like the database. "Unreachable" is a loopback port nothing listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

RECONCILE = str(Path(sys.executable).parent / "reconcile")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update(
        RECONCILER_JOBS_DIR=str(jobs),
        RECONCILER_DATABASE_URL=f"sqlite:///{tmp_path / 'state.db'}",
        RECONCILER_STATE_DIR=str(tmp_path / "state"),
        RECONCILER_BROKER_URL="filesystem://",
        RECONCILER_REDIS_URL="",
        RECONCILER_RESULT_BACKEND="cache+memory://",
    )
    return {**env, **extra}


def _reconcile(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    # A timeout far above the expected seconds: a process that hangs (Celery's endless
    # broker retry) fails the test instead of passing it.
    result = subprocess.run(
        [RECONCILE, *argv, "--metrics-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode, result.stderr


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once closed


@pytest.mark.parametrize("command", ["run", "worker"])
def test_an_unreachable_broker_is_one_line_naming_the_setting(
    tmp_path: Path, closed_port: int, command: str
) -> None:
    url = f"amqp://guest:Sup3rSecret@127.0.0.1:{closed_port}//"
    code, err = _reconcile([command], _env(tmp_path, RECONCILER_BROKER_URL=url))
    assert (code, err) == (
        1,
        "error: cannot reach the broker (RECONCILER_BROKER_URL): [Errno 111] Connection refused\n",
    )


@pytest.mark.parametrize(
    ("setting", "name"),
    [("RECONCILER_REDIS_URL", "RECONCILER_REDIS_URL"), ("RECONCILER_RESULT_BACKEND", None)],
)
def test_an_unreachable_redis_stops_the_worker_with_one_line(
    tmp_path: Path, closed_port: int, setting: str, name: str | None
) -> None:
    url = f"redis://:Sup3rSecret@127.0.0.1:{closed_port}/0"
    code, err = _reconcile(["worker"], _env(tmp_path, **{setting: url}))
    assert (code, err) == (
        1,
        f"error: cannot reach Redis ({name or setting}): Error 111 connecting to "
        f"127.0.0.1:{closed_port}. Connection refused.\n",
    )


@pytest.mark.parametrize(
    ("command", "setting", "url", "message"),
    [
        (
            "run",
            "RECONCILER_BROKER_URL",
            "bogus://x",
            "invalid broker URL (RECONCILER_BROKER_URL): No such transport: bogus",
        ),
        (
            "worker",
            "RECONCILER_BROKER_URL",
            "amqp://h:99999//",
            "invalid broker URL (RECONCILER_BROKER_URL): Port out of range 0-65535",
        ),
        (
            "worker",
            "RECONCILER_REDIS_URL",
            "bogus://x",
            "invalid Redis URL "
            "(RECONCILER_REDIS_URL): Redis URL must specify one of the following schemes "
            "(redis://, rediss://, unix://)",
        ),
        (
            "worker",
            "RECONCILER_REDIS_URL",
            "redis://h:99999/0",
            "invalid Redis URL (RECONCILER_REDIS_URL): Port out of range 0-65535",
        ),
    ],
)
def test_a_bad_broker_or_redis_url_is_one_line(
    tmp_path: Path, command: str, setting: str, url: str, message: str
) -> None:
    code, err = _reconcile([command], _env(tmp_path, **{setting: url}))
    assert (code, err) == (1, f"error: {message}\n")


@pytest.mark.parametrize(
    ("command", "setting", "scheme"),
    [("run", "RECONCILER_BROKER_URL", "amqp"), ("worker", "RECONCILER_REDIS_URL", "redis")],
)
def test_the_start_retries_the_broker_and_redis_for_the_startup_timeout(
    tmp_path: Path, closed_port: int, command: str, setting: str, scheme: str
) -> None:
    env = _env(
        tmp_path,
        **{setting: f"{scheme}://127.0.0.1:{closed_port}/0"},
        RECONCILER_STARTUP_TIMEOUT="4",
        RECONCILER_LOG_LEVEL="INFO",
    )
    started = time.monotonic()
    code, err = _reconcile([command], env)
    took = time.monotonic() - started
    assert code == 1 and took >= 3, (took, err)
    assert err.count(f"({setting}): ") == 3, err  # 1 s, then 2 s of backoff, then the end
    assert "retrying in 1 s" in err and "retrying in 2 s" in err
    assert err.splitlines()[-1].startswith("error: cannot reach ")
    assert "internal error" not in err
