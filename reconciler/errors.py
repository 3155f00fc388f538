"""The whole exception hierarchy, in one place: every exception this package raises on
purpose, and the module that defines it (classes live beside the code that raises them;
tests/test_errors.py keeps this drawing complete).

    ReconcilerError                     base of everything this package raises on purpose
    ├── PermanentError                  PERMANENT: retrying cannot help; the input or the
    │   │                               setup must change
    │   ├── SpecError                   a job spec is wrong: the loader reports it as a
    │   │   │                           Diagnostic (file:line:col) and carries on with the
    │   │   │                           other files (quarantine); it never stops a pass
    │   │   └── CronSyntaxError         spec/cron.py: not a cron schedule (also ValueError,
    │   │                               so pydantic reports it as a validation error)
    │   ├── RefusedError                a safety guard said no (mass delete, empty desired
    │   │                               set); exit code 3, nothing was changed
    │   ├── StalePlanError              `apply --plan-hash` found the state moved since the
    │   │                               preview
    │   ├── ConfigError                 a setting is invalid (bad URL, unknown queue list ...)
    │   │   └── CatalogError            spec/catalog.py: a module of RECONCILER_TASK_MODULES
    │   │                               cannot be imported
    │   ├── PermanentTaskError          a task cannot succeed with this input (also exported by
    │   │   │                           reconciler.worker and reconciler.worker.base);
    │   │   │                           the run fails at once, whatever the retry policy
    │   │   └── Refused                 spec/confine.py: an argument outside what the task
    │   │                               may do (a statement, a path); also ValueError
    │   └── ApiProblem                  api/problems.py: the API answers the request with a
    │                                   problem document and its status (400, 401, 404, or
    │                                   503 while Redis does not answer: the client retries)
    └── TransientError                  TEMPORARY: a service did not answer; retry with backoff
        ├── NotLeaderError              this process lost (or never had) leadership: stop
        │   │                           writing, stop firing
        │   └── LeadershipLost          engine/leader.py: a confirmation found a newer epoch
        │                               or a replaced lock file
        ├── Unsettled                   engine/reconcile.py: the jobs folder changed again
        │                               while a watch pass planned; nothing was written
        │                               or recorded, the daemon runs the pass again once
        │                               the folder is quiet (not a failure)
        ├── ChildFailed                 spec/parallel.py: a forked child streaming its work
        │                               (a cold apply's new scheduler rows) failed or died
        │                               before its end; the parent does that work itself
        ├── ProbeFailed                 tasks/probe.py: the endpoint answered another status,
        │                               or not at all; retried per the job's policy
        └── LibpqUnavailable            store/libpq.py: the no-op plan check cannot read the
                                        database over libpq (no library, no connection, an
                                        unexpected answer); it declines, the full path runs

A service that cannot be reached, or a port that is taken, is not a bug either:
`operational_message` turns such exceptions of the libraries (SQLAlchemy and the
database drivers, kombu / amqp, redis, OSError EADDRINUSE) into one line that names the
setting to check; the CLI prints it and exits 1. Anything else that escapes is a bug,
and the CLI reports it as one (exit 1).
"""

from __future__ import annotations

import errno


class ReconcilerError(Exception):
    """Base class of every error this package raises on purpose."""


class PermanentError(ReconcilerError):
    """Retrying cannot help: the input or the setup must change first."""


class TransientError(ReconcilerError):
    """A dependency (database, broker, Redis) failed in a way that a retry may fix."""


class SpecError(PermanentError):
    """A job spec is wrong. Editing the file will help, retrying will not."""


class RefusedError(PermanentError):
    """A safety guard refused the change. Nothing was written."""


class StalePlanError(PermanentError):
    """The plan hash given to `apply` no longer matches: the state moved since the preview."""


class ConfigError(PermanentError):
    """A configuration value is invalid."""


class PermanentTaskError(PermanentError):
    """The task cannot succeed with this input (a bad statement, a refused path).
    Fails at once, whatever the retry policy. Tasks import it from reconciler.worker."""


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
