"""The daemon's passes leave their caches frozen, out of the collector's reach (a full
collection over them held the GIL for seconds and cost the leader its lease)."""

from __future__ import annotations

import gc

from reconciler.engine.daemon import survivors_frozen


def test_what_survives_a_pass_is_frozen_and_collection_resumes() -> None:
    gc.unfreeze()
    try:
        with survivors_frozen():
            assert not gc.isenabled()  # no collection while the pass builds its caches
            survivors = [[n] for n in range(1000)]  # lists: tracked by the collector
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(survivors)
        # Out of every generation the collector scans.
        assert not any(found is survivors[0] for found in gc.get_objects())
    finally:
        gc.unfreeze()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with survivors_frozen():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
