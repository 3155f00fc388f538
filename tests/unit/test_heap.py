"""reconciler.heap: after `tune_heap` its settings are in force, read back from how
glibc then allocates (in a fresh interpreter: they are process-wide); where the C
library is not glibc it does nothing and says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from reconciler.cli import BULK_COMMANDS, ONE_SHOT_COMMANDS

# Prints what tune_heap returned and, if it was done, whether glibc then puts a large
# block and a thread's block in the heap (its defaults: a mapping of their own, a thread
# arena) and keeps the heap's top once the large block is freed (its default: given
# back above 128 KiB).
PROBE = r"""
import ctypes, json, threading
from reconciler.heap import tune_heap

result = {"applied": tune_heap()}
if result["applied"]:
    libc = ctypes.CDLL(None)
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.malloc.restype = ctypes.c_void_p
    from_thread = []
    thread = threading.Thread(target=lambda: from_thread.append(libc.malloc(1000)))
    thread.start()
    thread.join()
    large = libc.malloc(8 << 20)
    def heaps():
        return [
            [int(part, 16) for part in line.split()[0].split("-")]
            for line in open("/proc/self/maps")
            if line.rstrip().endswith("[heap]")
        ]

    def in_heap(address):
        return any(low <= address < high for low, high in heaps())

    result["large_block_in_heap"] = in_heap(large)
    result["thread_block_in_heap"] = in_heap(from_thread[0])
    top = max(high for _, high in heaps())
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(large)
    result["heap_kept_after_free"] = max(high for _, high in heaps()) == top
print(json.dumps(result))
"""


def _probe() -> dict[str, bool]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, bool] = json.loads(done.stdout)
    return result


def _glibc() -> bool:
    try:
        return sys.platform == "linux" and os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError, AttributeError):
        return False


def test_settings_are_in_force_after_tune_heap() -> None:
    result = _probe()
    if not _glibc():
        assert result == {"applied": False}
        return
    assert result["applied"]
    assert result["large_block_in_heap"]  # M_MMAP_THRESHOLD raised
    assert result["thread_block_in_heap"]  # M_ARENA_MAX 1
    assert result["heap_kept_after_free"]  # M_TRIM_THRESHOLD raised


def test_only_one_shot_commands_tune_the_heap() -> None:
    # The daemon, the API and the worker live long and give memory back.
    assert BULK_COMMANDS <= ONE_SHOT_COMMANDS
    assert not BULK_COMMANDS & {"run", "api", "worker", "dev"}
