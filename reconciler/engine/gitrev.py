"""The git revision of the jobs folder, when it is a git checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when used: the no-op check of `reconcile plan` reads
    from reconciler.core.state import Revision  # the revision without the core


def read_revision(jobs_dir: Path) -> Revision:
    """HEAD of the checkout holding `jobs_dir`, and whether files under it have local
    changes. Not a checkout (or no git installed): Revision(None)."""
    from reconciler.core.state import Revision

    commit, dirty = head_and_dirty(jobs_dir)
    return Revision(commit=commit, dirty=dirty)


def head_and_dirty(jobs_dir: Path) -> tuple[str | None, bool]:
    """`read_revision`'s commit and dirty flag, as plain values."""
    folder = jobs_dir if jobs_dir.is_dir() else jobs_dir.parent
    head = _git(folder, "rev-parse", "--verify", "-q", "HEAD")
    if head is None:
        return None, False
    status = _git(folder, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    return head, bool(status)


def _git(folder: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
