"""A leader in its own process, for the SIGKILL and SIGSTOP tests.

Usage: python leader_child.py DATABASE_URL INSTANCE_ID. Prints `LEADER <epoch>` when it
leads and `LOST` when it loses the leadership, and goes on competing like a daemon
(`LEADER` again if it wins) until it is superseded (`SUPERSEDED`) or killed.
"""

from __future__ import annotations

import sys
import time

from reconciler.engine.leader import leader_elector_for


def main() -> None:
    url, instance = sys.argv[1:3]
    elector = leader_elector_for(url, instance, on_lost=lambda _reason: print("LOST", flush=True))
    leading = False
    while not elector.superseded:
        if not leading and elector.try_acquire():
            print(f"LEADER {elector.epoch}", flush=True)
        leading = elector.is_leader()
        time.sleep(0.1)
    print("SUPERSEDED", flush=True)
    while True:
        time.sleep(0.1)


if __name__ == "__main__":
    main()
