"""A worker whose ledger claim freezes inside its transaction, for test_frozen_claim.py.

Usage: python -m tests.worker.frozen_claimer DATABASE_URL RUN_ID

The worker's own Ledger, on the engine a worker makes (runtime.ledger_engine), claims
RUN_ID. Its UPDATE done, before the COMMIT, the process prints `FROZEN` and stops itself
(SIGSTOP). Continued, it finishes the claim as the code does and prints `CLAIM <start>`.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from reconciler.store import ledger as runs
from reconciler.worker.claims import Ledger
from reconciler.worker.runtime import ledger_engine


def main() -> None:
    url, run_id = sys.argv[1:3]
    real = runs.claim_fresh

    def frozen(connection: Any, *args: Any, **options: Any) -> bool:
        claimed = real(connection, *args, **options)
        print("FROZEN", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
        return claimed

    runs.claim_fresh = frozen
    ledger = Ledger(ledger_engine(url))
    claim = ledger.claim(run_id, attempt="frozen-1", worker="frozen", retries=0, lease_seconds=60)
    print("CLAIM", claim.outcome.value, flush=True)


if __name__ == "__main__":
    main()
