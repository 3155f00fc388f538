"""A real Prometheus server for the observability tests: it scrapes the fleet (targets.py)
every second and evaluates the alert rules of docker/."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from observability import promql
from observability.targets import Fleet, free_port

SCRAPES = 3  # enough samples for rate() over $__rate_interval


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        data: dict = body["data"]
        return data

    def query(self, expr: str) -> list[dict]:
        found: list[dict] = self.api("query", query=expr)["result"]
        return found

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict]:
        data = self.api("query_range", query=expr, start=str(start), end=str(end), step=str(step))
        found: list[dict] = data["result"]
        return found

    def wait_for(self, expr: str, *, timeout: float, what: str) -> list[dict]:
        """Poll an instant query until it returns something."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.query(expr)
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"{what}: `{expr}` stayed empty for {timeout:.0f} s")


@contextmanager
def run_prometheus(binary: str, fleet: Fleet, folder: Path) -> Iterator[Prometheus]:
    """Prometheus scraping every running target of `fleet` each second, until exit."""
    shutil.copy(promql.ALERTS, folder / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {
                "job_name": running.target.job,
                "metrics_path": running.target.path,
                "static_configs": [{"targets": [running.address]}],
            }
            for running in fleet.running
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        _wait_for_scrapes(server, process, folder / "prometheus.log", targets=len(fleet.running))
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _wait_for_scrapes(
    server: Prometheus, process: subprocess.Popen[bytes], log: Path, *, targets: int
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            counts = server.query("count_over_time(up[1m])")
            up = server.query("up == 1")
        except OSError:
            time.sleep(0.2)
            continue
        if (
            len(up) == targets
            and len(counts) == targets
            and all(float(c["value"][1]) >= SCRAPES for c in counts)
        ):
            return
        time.sleep(0.3)
    raise AssertionError(f"targets not up and scraped {SCRAPES} times: {server.api('targets')}")
