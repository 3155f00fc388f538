"""A leader in its own process, for the SIGKILL and SIGSTOP tests.

Usage: python leader_child.py DATABASE_URL INSTANCE_ID. Prints `LEADER <epoch>` once it
leads and `LOST` when it loses the leadership; then idles until killed.
"""

from __future__ import annotations

import sys
import time

from reconciler.engine.leader import leader_elector_for


def main() -> None:
    url, instance = sys.argv[1:3]
    elector = leader_elector_for(url, instance, on_lost=lambda _reason: print("LOST", flush=True))
    while not elector.try_acquire():
        time.sleep(0.1)
    print(f"LEADER {elector.epoch}", flush=True)
    while True:
        time.sleep(0.1)


if __name__ == "__main__":
    main()
