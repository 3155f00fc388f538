"""Start-up checks of the services a long-running process needs (the broker, Redis), and
the one retry loop every start-up step shares.

A process that starts against a broker or Redis that does not answer must say so in one
line naming the setting, and exit 1; otherwise the daemon starts "fine" and fails each
fire, and Celery's worker retries its broker forever in its log. Compose starts every
service at once, so with RECONCILER_STARTUP_TIMEOUT set the same checks are retried with
backoff (1 s doubling to 15 s) for that long, exactly like the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from reconciler.errors import ConfigError, TransientError, operational_message
from reconciler.redact import mask_text

log = logging.getLogger("reconciler.startup")
# Each attempt's own limit: a silent (filtered) address must not hang the start.
CONNECT_TIMEOUT = 3.0
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def retry_at_start(step: Callable[[], None], *, timeout: float) -> None:
    """Run `step`, retried with backoff while it fails because a service cannot be
    reached (TransientError, or a library error `operational_message` knows), for at
    most `timeout` seconds. Other errors, and the last failure, are raised."""
    deadline = time.monotonic() + timeout
    delay = 1.0
    while True:
        try:
            step()
            return
        except Exception as error:
            message = str(error) if isinstance(error, TransientError) else None
            message = message or operational_message(error)
            if message is None or time.monotonic() + delay > deadline:
                raise
            log.warning("%s; retrying in %.0f s (RECONCILER_STARTUP_TIMEOUT)", message, delay)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def check_broker(url: str, *, setting: str = "RECONCILER_BROKER_URL") -> None:
    """A full broker connection (AMQP handshake and login) with kombu, one attempt.
    The serverless `filesystem://` transport has nothing to reach."""
    if url.startswith("filesystem://"):
        return
    from kombu import Connection
    from kombu.exceptions import OperationalError

    try:
        connection = Connection(url, connect_timeout=CONNECT_TIMEOUT)
    except (KeyError, ValueError) as error:
        raise ConfigError(f"invalid broker URL ({setting}): {_reason(error)}") from None
    try:
        connection.ensure_connection(
            max_retries=1,
            interval_start=0,
            interval_step=0,
            interval_max=0,
            timeout=CONNECT_TIMEOUT,
        )
    except (KeyError, ValueError) as error:
        raise ConfigError(f"invalid broker URL ({setting}): {_reason(error)}") from None
    except (OperationalError, OSError) as error:
        # kombu wraps every connection error (refused, login, timeout) in OperationalError.
        raise TransientError(f"cannot reach the broker ({setting}): {_reason(error)}") from None
    finally:
        connection.release()


def check_redis(url: str, *, setting: str = "RECONCILER_REDIS_URL") -> None:
    """PING on a fresh connection, one attempt."""
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_timeout=CONNECT_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
        )
    except ValueError as error:
        raise ConfigError(f"invalid Redis URL ({setting}): {_reason(error)}") from None
    try:
        client.ping()
    except ValueError as error:
        raise ConfigError(f"invalid Redis URL ({setting}): {_reason(error)}") from None
    except redis.RedisError as error:
        raise TransientError(f"cannot reach Redis ({setting}): {_reason(error)}") from None
    finally:
        client.close()


def _reason(error: BaseException) -> str:
    # KeyError's str() is its repr ('No such transport: x' in quotes): take the argument.
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = text.strip().splitlines()
    return mask_text(lines[0] if lines else type(error).__name__)
