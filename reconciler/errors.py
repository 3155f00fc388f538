"""The whole exception hierarchy, in one place.

    ReconcilerError                 base of everything this package raises on purpose
    ├── SpecError                   PERMANENT: the input is wrong; report it and carry on
    │                               with the other files (carries one or more Diagnostics)
    ├── RefusedError                a safety guard said no (mass delete, empty desired set);
    │                               exit code 3, nothing was changed
    ├── StalePlanError              `apply --plan-hash` found the state moved since the preview
    ├── ConfigError                 a setting is invalid (bad URL, unknown queue list ...)
    └── TransientError              TEMPORARY: a service did not answer; retry with backoff
        └── NotLeaderError          this process lost (or never had) leadership: stop writing

A service that cannot be reached, or a port that is taken, is not a bug either:
`operational_message` turns such exceptions of the libraries (SQLAlchemy and the
database drivers, kombu / amqp, redis, OSError EADDRINUSE) into one line that names the
setting to check; the CLI prints it and exits 1. Anything else that escapes is a bug,
and the CLI reports it as one (exit 1).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.spec.diagnostics import Diagnostic


class ReconcilerError(Exception):
    """Base class of every error this package raises on purpose."""


class SpecError(ReconcilerError):
    """The job files are wrong. Permanent: retrying will not help, editing the file will."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        first = self.diagnostics[0].render() if self.diagnostics else "invalid job spec"
        more = f" (and {len(self.diagnostics) - 1} more)" if len(self.diagnostics) > 1 else ""
        super().__init__(first + more)


class RefusedError(ReconcilerError):
    """A safety guard refused the change. Nothing was written."""


class StalePlanError(ReconcilerError):
    """The plan hash given to `apply` no longer matches: the state moved since the preview."""


class ConfigError(ReconcilerError):
    """A configuration value is invalid."""


class TransientError(ReconcilerError):
    """A dependency (database, broker, Redis) failed in a way that a retry may fix."""


class NotLeaderError(TransientError):
    """This process is not (or is no longer) the leader and must not write or fire."""


# Which setting to check, by the module the exception comes from.
_SERVICES = (
    (("sqlalchemy.", "psycopg", "asyncpg", "sqlite3"), "the database", "RECONCILER_DATABASE_URL"),
    (("kombu.", "amqp."), "the broker", "RECONCILER_BROKER_URL"),
    (("redis.",), "Redis", "RECONCILER_REDIS_URL / RECONCILER_RESULT_BACKEND"),
)
_UNREACHABLE = ("OperationalError", "InterfaceError", "ConnectionError", "ConnectionRefused")


def operational_message(error: BaseException) -> str | None:
    """One line naming the setting behind `error` if it is a service that cannot be
    reached or an address in use, else None (a bug). Secrets are masked."""
    from reconciler.redact import mask_text

    module = type(error).__module__ + "."
    name = type(error).__name__
    for prefixes, what, setting in _SERVICES:
        if module.startswith(prefixes) and any(word in name for word in _UNREACHABLE):
            detail = str(getattr(error, "orig", None) or error).strip().splitlines()
            reason = mask_text(detail[0] if detail else name)
            return f"cannot reach {what} ({setting}): {reason}"
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return f"address already in use: {error.strerror}"
    return None
