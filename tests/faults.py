"""Private service instances for fault-injection tests: PostgreSQL, Redis, RabbitMQ.

The shared services on the default ports are never stopped, frozen or flushed by a
test (other tests use them at the same time). A test that needs a fault starts its OWN
instance here, on free ports, with its files in a temporary folder, and injects the
fault into that instance only:

    with PrivatePostgres() as pg:        # initdb + pg_ctl start, trust auth
        url = pg.create_database("x")    # postgresql://postgres@127.0.0.1:<port>/x
        pg.restart(mode="fast"); pg.stop(); pg.start()
    with PrivateRedis() as r:            # redis-server --port <free>, no persistence
        r.client().flushall(); r.kill(); r.start()
    with PrivateRabbit() as mq:          # its own RABBITMQ_NODENAME, ports, mnesia, logs
        mq.url("/")                      # amqp://guest:guest@127.0.0.1:<port>/
        mq.ctl("stop_app"); mq.ctl("start_app"); mq.kill()

Every process is started here and ended here BY ITS PID (or by its own control tool on
its own data folder / node name); `close()` (the context manager's exit) always runs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Self

import redis

from tests.polling import wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class _Service:
    """A temporary folder (world-traversable: PostgreSQL runs as its own user) and a
    close() that always runs."""

    def __init__(self, kind: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"fault-{kind}-"))
        self.root.chmod(0o755)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PrivatePostgres(_Service):
    """A throw-away PostgreSQL cluster (initdb) on a free port, trust auth, fsync off."""

    def __init__(self) -> None:
        super().__init__("pg")
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version)
        if not versions:
            raise RuntimeError("no /usr/lib/postgresql/*/bin")
        self.bin = Path(versions[-1])
        self.port = free_port()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        # initdb refuses to run as root: run the server as the `postgres` user then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres")
        self._initialized = False

    def _run(self, *command: str, timeout: float = 120) -> None:
        subprocess.run(
            [*self._as, *command], check=True, capture_output=True, timeout=timeout, cwd=self.root
        )

    def start(self) -> None:
        if not self._initialized:
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth=trust", "-N", "-E", "UTF8",
            )  # fmt: skip
            self._initialized = True
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
            "-w", "-t", "120", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        import sqlalchemy as sa

        name = name or f"f_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(
            self.url().replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
        )
        try:
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def close(self) -> None:
        if self._initialized and self.running():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")
        super().close()


class PrivateRedis(_Service):
    """`redis-server` on a free port, no persistence, in its own process group."""

    def __init__(self) -> None:
        super().__init__("redis")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.root / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.root),
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_until(self._pong, timeout=30, what="private redis")

    def _pong(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=2)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def kill(self) -> None:
        """SIGKILL (a crash: no save, no goodbye)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def close(self) -> None:
        self.kill()
        super().close()


class PrivateRabbit(_Service):
    """A RabbitMQ node of its own: RABBITMQ_NODENAME, node and distribution ports,
    mnesia and log folders, no plugins (the management plugin would want a fixed port),
    its own Erlang cookie (HOME). Boot takes 5-20 s on a loaded machine."""

    def __init__(self) -> None:
        super().__init__("rabbit")
        self.node = f"rt{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        (self.root / "plugins").write_text("[].\n")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "HOME": str(self.root),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "plugins"),
            "RABBITMQ_PID_FILE": str(self.root / "pid"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "none"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "none-advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "none-env.conf"),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        # `await_startup` fails at once (exit 69) until the node has registered itself
        # with epmd: retry it while the node boots.
        deadline = time.monotonic() + 180
        while True:
            try:
                self.ctl("await_startup", "--timeout", "60", timeout=90)
                return
            except subprocess.CalledProcessError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"RabbitMQ node {self.node} did not start:\n"
                        + (self.root / "server.log").read_text(errors="replace")[-3000:]
                    ) from None
                time.sleep(1)

    def ctl(self, *args: str, timeout: float = 120) -> None:
        """rabbitmqctl against THIS node only (-n), with its cookie."""
        subprocess.run(
            ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-q", "-n", self.node, *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def up(self) -> bool:
        return _port_open(self.port)

    def url(self, vhost: str = "/") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{'' if vhost == '/' else vhost}"

    def kill(self) -> None:
        """kill -9 of the whole node (its process group: the Erlang VM and helpers)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def close(self) -> None:
        # kill -9, not `rabbitmqctl shutdown`: the node is thrown away with its folder, and
        # the graceful stop (an Erlang VM for rabbitmqctl, then the node's own stop) cost
        # 3-8 s of every test's teardown.
        self.kill()
        super().close()


def _version(path: str) -> tuple[int, ...]:
    number = Path(path).parent.name
    return tuple(int(part) for part in number.split(".") if part.isdigit())
