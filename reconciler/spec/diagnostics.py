"""Diagnostics: what is wrong, where, under which stable code.

A diagnostic never carries the offending source text: a job file may hold a secret,
and CI logs are widely readable. Positions are 1-based, like every editor's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from reconciler.printable import printable
from reconciler.redact import mask_text

# Every code a diagnostic may carry, with what it means. The README lists the same table;
# a test keeps them in step.
CODES: dict[str, str] = {
    "FILE_UNREADABLE": "the file could not be read",
    "FILE_TOO_LARGE": "the file is larger than RECONCILER_MAX_FILE_BYTES",
    "NOT_UTF8": "the file is not UTF-8 text",
    "BINARY_FILE": "the file holds NUL or other control bytes",
    "SYMLINK_REFUSED": "a symlink or a path leading outside the jobs folder",
    "EMPTY_FILE": "the file holds no job (an empty file is an error, not zero jobs)",
    "NESTING_TOO_DEEP": "nesting deeper than RECONCILER_MAX_NESTING_DEPTH",
    "YAML_SYNTAX": "the text is not valid YAML",
    "YAML_TAG": "YAML tags (!!python/..., !custom) are not allowed",
    "YAML_ALIAS": "YAML anchors and aliases (&a / *a) are not allowed",
    "DUPLICATE_KEY": "the same key twice in one mapping",
    "NOT_A_MAPPING": "a job document must be a mapping",
    "YAML_COERCION": (
        "an unquoted value YAML 1.1 and YAML 1.2 read differently (yes, no, on, 1:30, "
        "0755, 1_000), or, in args/kwargs, a date or `1.10`"
    ),
    "UNKNOWN_FIELD": "a key the job format does not know (typo?)",
    "UNKNOWN_ARGUMENT": "a kwarg the task has no parameter for (typo?)",
    "MISSING_ARGUMENT": "a required argument of the task is missing",
    "INVALID_ARGUMENT": "an argument of the wrong type, too many args, or one the task refuses",
    "TASK_MODULE_ERROR": "a module of RECONCILER_TASK_MODULES cannot be imported",
    "FORBIDDEN_OPTION": "a Celery publish option (link, chain, ...) jobs may not set",
    "MISSING_FIELD": "a required key is missing",
    "INVALID_TYPE": "a value of the wrong type",
    "INVALID_VALUE": "a value out of range or of the wrong form",
    "INVALID_NAME": "the job name is not a stable identifier",
    "CRON_SYNTAX": "the cron expression is invalid",
    "CRON_NEVER_FIRES": "the schedule has no future fire time",
    "UNKNOWN_TIMEZONE": "the time zone is not in the IANA database",
    "HOST_TIMEZONE": "the time zone name depends on the host (localtime, posixrules, ...)",
    "UNKNOWN_QUEUE": "the queue is not one of the configured queues",
    "TASK_NOT_ALLOWED": "the task is not on the allowlist (celery.* never is)",
    "DUPLICATE_JOB": "two documents declare the same job name",
    "START_AFTER_END": "start is not before end",
    "AT_IN_PAST": "warning only: a one-off `at` in the past (the job is completed, never fires)",
}


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One problem in one file. `line`/`column` are 1-based; 0 means "the whole file"."""

    path: str
    line: int
    column: int
    code: str
    message: str

    def __post_init__(self) -> None:
        # A message quotes the value it refuses (`unknown queue '...'`), and a secret
        # pasted into the wrong field is still a secret: masked once, here, it is masked
        # wherever the diagnostic goes (validate, the plan, the quarantine table, status,
        # the API, logs).
        object.__setattr__(self, "message", mask_text(self.message))

    def render(self) -> str:
        """`path:line:col: CODE message`, the path and the message as `printable` shows
        them (a path may hold any byte but `/` and NUL, a message quotes the file)."""
        where = f"{printable(self.path)}:{self.line}:{self.column}"
        return f"{where}: {self.code} {printable(self.message)}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def render_text(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(d.render() for d in sorted(diagnostics))


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.as_dict() for d in sorted(diagnostics)], indent=2)
