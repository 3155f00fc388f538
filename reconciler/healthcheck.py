"""`python -m reconciler.healthcheck`: the daemon's container healthcheck.

Reads the daemon's own /metrics (127.0.0.1, RECONCILER_METRICS_PORT, default 9101) and
prints one line: `leader, loop turned 0.4 s ago`, `leader, startup pass for 12.0 s` or
`standby`. Exit 0 when healthy: a standby whose metrics answer (it waits for the leader
lock); a leader in its term's startup pass (its scheduler starts after it) for at most
RECONCILER_HEALTH_STARTUP_MAX_AGE seconds (default 300: the pass takes about a minute
at 100,000 jobs with cold caches); or a leader whose loop turned within
RECONCILER_HEALTH_MAX_AGE seconds (default 60) and whose APScheduler thread runs.
Exit 1 otherwise: the metrics do not answer, the startup pass or the leader's loop is
stuck (a hung leader keeps its lock), or its scheduler is not running (its thread died
or its write-back failed: the daemon gives the lead up and exits by itself).
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request

from reconciler.settings import DAEMON_METRICS_PORT

_FAMILIES = (
    "reconciler_leader",
    "reconciler_daemon_loop_timestamp_seconds",
    "reconciler_scheduler_running",
    "reconciler_startup_pass_started_timestamp_seconds",
)
_ONLY = "&".join(f"name[]={name}" for name in _FAMILIES)


def check(
    metrics_text: str, *, now: float, max_age: float, startup_max_age: float = 300.0
) -> tuple[bool, str]:
    """(healthy, the line to print) for the daemon's metrics text."""
    values = {}
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name in _FAMILIES:
            values[name] = float(value)
    if values.get("reconciler_leader", 0.0) < 1:
        return True, "standby"
    started = values.get("reconciler_startup_pass_started_timestamp_seconds", 0.0)
    if started > 0:  # no scheduler nor loop yet: the pass has a limit of its own
        running = now - started
        if running > startup_max_age:
            limit = f"limit {startup_max_age:.0f} s"
            return False, f"leader, startup pass stuck: running for {running:.0f} s ({limit})"
        return True, f"leader, startup pass for {running:.1f} s"
    turned = values.get("reconciler_daemon_loop_timestamp_seconds", 0.0)
    age = now - turned
    if turned <= 0 or age > max_age:
        return False, f"leader, loop stuck: last turn {age:.0f} s ago (limit {max_age:.0f} s)"
    if values.get("reconciler_scheduler_running", 1.0) < 1:  # absent: a daemon from before
        return False, "leader, scheduler not running (its thread died or its write-back failed)"
    return True, f"leader, loop turned {age:.1f} s ago"


def main() -> int:
    port = int(os.environ.get("RECONCILER_METRICS_PORT") or DAEMON_METRICS_PORT)
    max_age = float(os.environ.get("RECONCILER_HEALTH_MAX_AGE", "60"))
    startup_max_age = float(os.environ.get("RECONCILER_HEALTH_STARTUP_MAX_AGE", "300"))
    # Only the families it reads (prometheus_client's `name[]` filter): the whole
    # exposition is ~230 MB at 100,000 jobs.
    url = f"http://127.0.0.1:{port}/metrics?{_ONLY}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError as error:
        print(f"unhealthy: {url}: {error}")
        return 1
    healthy, line = check(text, now=time.time(), max_age=max_age, startup_max_age=startup_max_age)
    print(line if healthy else f"unhealthy: {line}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
