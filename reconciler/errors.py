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

Anything else that escapes is a bug, and the CLI reports it as one (exit 1).
"""

from __future__ import annotations

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
