"""What the powerful built-in tasks may touch: pure checks, shared by the tasks (at run
time) and by `reconcile validate` (at validate time, when the value is in the job file).

Whoever can merge a job file can call an allowlisted task with any arguments, so a task
that writes files or runs SQL confines itself:

- `sql_maintenance` runs ONE statement, and only one that starts with the leading words
  of an entry of RECONCILER_SQL_STATEMENT_ALLOWLIST (default VACUUM / ANALYZE / REINDEX),
  compared word by word, case-insensitively, with comments ignored: `VACUUM ANALYZE
  job_runs` matches `VACUUM`; `DELETE FROM job_runs_old` does not match
  `DELETE FROM job_runs`.
- `write_report` writes only inside RECONCILER_REPORT_DIR: a relative path is taken
  from there; an absolute path must lie inside it; `..` and symbolic links that lead
  out are refused.

Each check raises `Refused` (a ValueError) with a message that says what to change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import PermanentTaskError

REPORT_SUFFIXES = (".json", ".csv")


class Refused(PermanentTaskError, ValueError):
    """The argument is outside what the task is allowed to do; retrying cannot help."""


def checked_statement(statement: str, allowlist: Sequence[str]) -> str:
    """`statement` without trailing semicolons, if it is ONE statement on the allowlist."""
    text = single_statement(statement)
    words = _words(code_only(text))
    for entry in allowlist:
        wanted = _words(entry)
        if wanted and words[: len(wanted)] == wanted:
            return text
    allowed = ", ".join(allowlist) or "(none)"
    raise Refused(
        f"statement not allowed: it must start with one of {allowed} "
        "(RECONCILER_SQL_STATEMENT_ALLOWLIST)"
    )


def _words(sql: str) -> list[str]:
    return re.findall(r"[^\s(),]+|[(),]", sql.upper())


def checked_report_path(path: str, report_dir: Path) -> Path:
    """The absolute target of `path` inside `report_dir` (symbolic links resolved)."""
    if not isinstance(path, str) or not path:
        raise Refused("a report path is a non-empty string")
    given = Path(path)
    if ".." in given.parts:
        raise Refused(f"'..' is not allowed in a report path: {path!r}")
    if given.suffix not in REPORT_SUFFIXES:
        raise Refused(f"a report is .json or .csv, not {path!r}")
    root = report_dir.resolve()
    target = (root / given).resolve()  # an absolute `given` replaces `root` here
    if not target.is_relative_to(root):
        raise Refused(
            f"report path {path!r} is outside the report folder {report_dir} "
            "(RECONCILER_REPORT_DIR); give a path relative to it"
        )
    return target


def report_path_written(path: str, report_dir: Path) -> None:
    """The checks of `checked_report_path` that need no file system (validate time):
    the suffix, `..`, and an absolute path outside `report_dir` as written."""
    given = Path(path)
    if ".." in given.parts:
        raise Refused(f"'..' is not allowed in a report path: {path!r}")
    if given.suffix not in REPORT_SUFFIXES:
        raise Refused(f"a report is .json or .csv, not {path!r}")
    if given.is_absolute() and not given.is_relative_to(report_dir.absolute()):
        raise Refused(
            f"report path {path!r} is outside the report folder {report_dir} "
            "(RECONCILER_REPORT_DIR); give a path relative to it"
        )


def single_statement(statement: str) -> str:
    """`statement` without its trailing semicolons. Raises Refused when it holds no
    statement or more than one. Quotes ('', "", PostgreSQL $tag$...$tag$) and comments
    (--, /* */) are skipped while looking for a separating semicolon."""
    if not isinstance(statement, str):
        raise Refused("the statement is text")
    code = code_only(statement)
    end = len(code.rstrip(" \t\r\n;"))
    if not code[:end].strip():
        raise Refused("empty SQL statement")
    if ";" in code[:end]:
        raise Refused("only one SQL statement is allowed")
    return statement[:end]


def code_only(sql: str) -> str:
    """`sql` with quoted literals and comments masked (same length, same positions)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        end = _skip_quoted(sql, i)
        if end > i:
            # A literal is code (never trimmed away); a comment is whitespace.
            filler = " " if sql[i] in "-/" else "x"
            out.append(filler * (end - i))
            i = end
        else:
            out.append(sql[i])
            i += 1
    return "".join(out)


def _skip_quoted(sql: str, i: int) -> int:
    """The index after the quote or comment starting at `i` (its end of input when
    unterminated), or `i` when none starts there."""
    if sql.startswith("--", i):
        newline = sql.find("\n", i)
        return len(sql) if newline < 0 else newline
    if sql.startswith("/*", i):
        close = sql.find("*/", i + 2)
        return len(sql) if close < 0 else close + 2
    char = sql[i]
    if char in ("'", '"'):
        j = i + 1
        while j < len(sql):
            if sql[j] == char:
                if sql.startswith(char * 2, j):  # '' inside a string is a quote
                    j += 2
                    continue
                return j + 1
            j += 1
        return len(sql)
    if char == "$":
        close = sql.find("$", i + 1)
        tag = sql[i : close + 1] if close > 0 else ""
        if tag and (tag == "$$" or tag[1:-1].replace("_", "a").isalnum()):
            end = sql.find(tag, close + 1)
            return len(sql) if end < 0 else end + len(tag)
    return i
