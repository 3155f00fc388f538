"""The idempotency guard: at most one execution of a fire, even when its message is
delivered twice (a duplicate publish, a redelivery after a crash).

Redis key `{prefix}idem:{key}`, value JSON:
- `{"status": "in_progress", "task_id", "worker", "pid"}` while an execution holds it.
  Its TTL is a short LEASE (settings.idempotency_lease_seconds), renewed by a heartbeat
  thread of the executing process. If that process dies, nobody renews it: the key
  vanishes within one lease.
- `{"status": "completed", "task_id", "worker"}` after success, TTL idempotency_ttl_seconds
  (written a moment after the task returned, by the LedgerWriter's thread; the lease is
  renewed until then).
- no key: never ran, ran and failed (the key is released so a retry can run), or forgotten.

Claim decision for a delivery that finds the key held (`RedisGuard.claim`):
- completed -> DUPLICATE.
- in progress, first delivery -> DUPLICATE: another execution of the fire is running
  (a duplicate publish); if that execution crashes, ITS message is redelivered.
- in progress, REDELIVERED message -> the holder may be the crashed first attempt. Wait
  (polling) up to one lease for the key to vanish, then claim it; if the key becomes
  completed, or is still renewed after the wait (the holder is alive), -> DUPLICATE.
  A pool process lost inside a live worker does not even cost the wait: the worker's main
  process releases its key at once (`reconciler.worker.request`).

Why a lease rather than checking the holder's hostname + pid: a pid can be checked only
on its own machine (and pids are reused), while workers run on several machines; a lease
works everywhere, at the cost of a wait of at most one lease when a whole worker died.
Inside a live worker the main process knows the lost pool process and frees its key at
once: the pid check where it is reliable, the lease everywhere else.
Limit: a holder that is alive but lost its broker connection (its message requeued) keeps
its claim; the redelivery is skipped as a duplicate, and the holder's own outcome stands.

Every write is a compare-and-set on the exact value we wrote (Lua), so a slow execution
whose lease was taken over can never release or complete someone else's claim.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

log = logging.getLogger(__name__)

# KEYS[1] key; ARGV[1] our value; ARGV[2] new value; ARGV[3] ttl seconds.
# A key that expired meanwhile is still marked completed: the run did succeed.
_COMPLETE = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""
# KEYS[1] key; ARGV[1] our value.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] key; ARGV[1] our value; ARGV[2] lease milliseconds.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""


class Verdict(enum.Enum):
    CLAIMED = "claimed"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of `claim`. `holder` is the value found when DUPLICATE (parsed JSON)."""

    verdict: Verdict
    holder: dict[str, Any]

    @property
    def claimed(self) -> bool:
        return self.verdict is Verdict.CLAIMED


class RedisGuard:
    """Claims, completes and releases idempotency keys. Thread-safe; one per process.

    `sleep` and `clock` are test seams (a fake clock for the lease wait)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        lease_seconds: int,
        completed_ttl_seconds: int,
        poll_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self.lease_seconds = lease_seconds
        self._completed_ttl = completed_ttl_seconds
        self._poll = poll_seconds
        self._sleep = sleep
        self._clock = clock
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    def redis_key(self, key: str) -> str:
        return f"{self._prefix}idem:{key}"

    def claim(self, key: str, value: str, *, redelivered: bool) -> Claim:
        """Take the key for one execution (SET NX EX lease), or say why not.

        Blocks up to one lease only for a redelivered message that finds the key in
        progress (see the module docstring). Raises redis.RedisError."""
        name = self.redis_key(key)
        deadline = self._clock() + self.lease_seconds + 1
        while True:
            if self._client.set(name, value, nx=True, ex=self.lease_seconds):
                return Claim(Verdict.CLAIMED, {})
            raw = self._client.get(name)
            if raw is None:
                continue  # expired or released between SET and GET: try again
            holder = _parse(raw)
            gone_for_good = holder.get("status") == "completed" or not redelivered
            # A holder still renewing its lease after a whole lease is alive: then this
            # redelivery is the duplicate.
            if gone_for_good or self._clock() >= deadline:
                return Claim(Verdict.DUPLICATE, holder)
            self._sleep(self._poll)

    def mark_completed(self, key: str, value: str, completed: str) -> bool:
        """Record success (kept idempotency_ttl_seconds). False if another execution holds
        the key now (our lease was lost): the caller logs it, the run still succeeded."""
        return bool(
            self._complete(keys=[self.redis_key(key)], args=[value, completed, self._completed_ttl])
        )

    def mark_many_completed(self, items: list[tuple[str, str, str]]) -> list[bool]:
        """`mark_completed` for many (key, our value, completed value), one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for key, value, completed in items:
            self._complete(
                keys=[self.redis_key(key)],
                args=[value, completed, self._completed_ttl],
                client=pipe,
            )
        return [bool(result) for result in pipe.execute()]

    def release(self, key: str, value: str) -> bool:
        """Delete the key if we still hold it, so that a retry or a redelivery may run."""
        return bool(self._release(keys=[self.redis_key(key)], args=[value]))

    def renew(self, held: dict[str, str]) -> None:
        """Extend the lease of every key we hold (key -> our value), in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        lease_ms = self.lease_seconds * 1000
        for key, value in held.items():
            self._renew(keys=[self.redis_key(key)], args=[value, lease_ms], client=pipe)
        pipe.execute()

    def lookup(self, key: str) -> dict[str, Any] | None:
        raw = self._client.get(self.redis_key(key))
        return None if raw is None else _parse(raw)


class Heartbeat:
    """A daemon thread renewing the leases this process holds (Redis keys, ledger
    claims), every `interval` seconds, through `renew(held)` (key -> our value).

    One thread per process and kind (not per task): holding a lease costs a dict entry,
    not a thread. Started on first use, so that it is created in the pool process after
    the fork. A failing renewal is logged at most once a minute."""

    def __init__(
        self,
        renew: Callable[[dict[str, str]], None],
        *,
        interval: float,
        name: str = "idempotency-heartbeat",
        errors: tuple[type[Exception], ...] = (redis.RedisError,),
    ) -> None:
        self._renew = renew
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._interval = max(interval, 0.2)
        self._name = name
        self._errors = errors
        self._last_warning = 0.0

    def hold(self, key: str, value: str) -> None:
        with self._lock:
            self._held[key] = value
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def drop(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def drop_many(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._held.pop(key, None)

    def stop(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._wake.wait(self._interval):
            with self._lock:
                held = dict(self._held)
            if not held:
                continue
            try:
                self._renew(held)
            except self._errors as error:
                # The lease may lapse; a redelivery could then take the fire over. Keep
                # trying: the service being back within the lease loses nothing.
                if time.monotonic() - self._last_warning >= 60:
                    self._last_warning = time.monotonic()
                    log.warning("%s: renewing %d leases failed: %s", self._name, len(held), error)


def _parse(raw: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"status": "unknown"}
    return value if isinstance(value, dict) else {"status": "unknown"}
