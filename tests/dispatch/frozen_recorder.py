"""A leader whose fire recorder freezes inside its ledger transaction, for
test_frozen_record.py.

Usage: python -m tests.dispatch.frozen_recorder DATABASE_URL BROKER_URL QUEUE LEADER_FILE SLOT

A real Dispatcher (its pipeline threads, a publisher on the broker) whose fence says it
leads while LEADER_FILE exists fires one slot (job `sweep`, SLOT in ISO 8601). Its first
`record_batch` (the real one) inserts the row, prints `FROZEN <backend pid>` and stops
the whole process (SIGSTOP) before the transaction commits. Continued, the pipeline goes
on as the code does (the commit, retries, publishing), and once nothing is in flight the
process prints `CALLS <json>`: per record_batch call, whether it was late and the ids it
found to publish, handed over and duplicate; then it exits 0. Logs go to stderr.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconciler.dispatch import batch
from reconciler.dispatch.dispatcher import Dispatcher
from reconciler.dispatch.publisher import Publisher
from reconciler.store.db import create_sync_engine
from tests.dispatch.helpers import make_payload, make_spec


class FileFence:
    """Leads while its file exists: the test takes the lead away while this process is
    frozen, as the next leader's takeover does."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def is_leader(self) -> bool:
        return self.path.exists()


def freeze_in_first_batch(calls: list[dict[str, Any]]) -> None:
    """Wrap record_batch: the first call freezes this process after its insert."""
    real = batch.record_batch

    def recorded(connection: sa.Connection, requests: Any, **options: Any) -> Any:
        outcome = real(connection, requests, **options)
        calls.append(
            {
                "late": options["late"],
                **{
                    kind: [r.id for r in getattr(outcome, kind)]
                    for kind in ("to_publish", "handed_over", "duplicates")
                },
            }
        )
        if len(calls) == 1:
            backend = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            print(f"FROZEN {backend}", flush=True)
            # To this thread: sent to the process, the stop was taken by another thread
            # while this one went on to COMMIT. The transaction stays open, uncommitted.
            signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
        return outcome

    batch.record_batch = recorded


def main() -> None:
    url, broker_url, queue, leader_file, slot = sys.argv[1:6]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    calls: list[dict[str, Any]] = []
    freeze_in_first_batch(calls)
    engine = create_sync_engine(url)
    dispatcher = Dispatcher(
        engine=engine,
        publisher=Publisher(broker_url=broker_url, timeout=2),
        fence=FileFence(Path(leader_file)),
    )
    dispatcher.start()
    payload = make_payload(make_spec("sweep", queue=queue))
    dispatcher.fire(job="sweep", payload=payload, scheduled_time=datetime.fromisoformat(slot))
    settled = dispatcher.wait_settled(timeout=60)
    print(f"CALLS {json.dumps(calls)}", flush=True)
    dispatcher.stop()
    engine.dispose()
    sys.exit(0 if settled else 1)


if __name__ == "__main__":
    main()
