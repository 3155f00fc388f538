"""`reconciler.tasks.write_report`: a small JSON or CSV report, written atomically, only
inside RECONCILER_REPORT_DIR (see `confine`)."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import shared_task

from reconciler.spec import confine
from reconciler.worker.base import BaseTask, PermanentTaskError
from reconciler.worker.runtime import settings_of

MAX_ROWS = 100_000


@shared_task(base=BaseTask, bind=True, name="reconciler.tasks.write_report")
def write_report(
    self: BaseTask,
    path: str,
    rows: list[dict[str, Any]] | None = None,
    fields: list[str] | None = None,
    append: bool = False,
) -> dict[str, Any]:
    """Write `rows` (a list of flat objects) to `path` inside the report folder
    (RECONCILER_REPORT_DIR; a relative path is taken from there): `.json` gives
    {"generated_at", "fire", "rows": [...]}, `.csv` a header line then one line per row
    (columns `fields`, default the keys of the first row). With `append`, the rows are
    added to the existing report's. Readers never see a half-written file: the report is
    written beside the target and renamed over it. Returns {"path", "rows"}.

    Raises PermanentTaskError for another suffix, `..` in the path, a path outside the
    report folder, or rows that are not a list of objects."""
    try:
        target = confine.checked_report_path(path, settings_of(self.app).report_dir)
    except confine.Refused as refused:
        raise PermanentTaskError(str(refused)) from None
    new_rows = _checked_rows(rows)
    old_rows = _read_rows(target) if append and target.exists() else []
    all_rows = [*old_rows, *new_rows]
    if target.suffix == ".json":
        text = _json_report(all_rows, fire=self.request.id)
    else:
        text = _csv_report(all_rows, fields)
    _replace_atomically(target, text)
    return {"path": str(target), "rows": len(all_rows)}


def _checked_rows(rows: Any) -> list[dict[str, Any]]:
    rows = [] if rows is None else rows
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise PermanentTaskError("rows must be a list of objects")
    if len(rows) > MAX_ROWS:
        raise PermanentTaskError(f"at most {MAX_ROWS} rows")
    return rows


def _read_rows(target: Path) -> list[dict[str, Any]]:
    text = target.read_text(encoding="utf-8")
    if target.suffix == ".json":
        return list(json.loads(text).get("rows", []))
    return list(csv.DictReader(io.StringIO(text)))


def _json_report(rows: list[dict[str, Any]], *, fire: str | None) -> str:
    report = {"generated_at": datetime.now(UTC).isoformat(), "fire": fire, "rows": rows}
    return json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n"


def _csv_report(rows: list[dict[str, Any]], fields: list[str] | None) -> str:
    columns = list(fields or (rows[0].keys() if rows else []))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _replace_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
