"""A daemon's listing of the jobs folder, patched by the paths file events name
(spec.files.FileListing), must be exactly a full listing (find_job_files) whenever no
event was missed; with events dropped at random, the listing a full call makes (the
resync's) is exact again. And the real watcher's events are enough to keep it exact."""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest

from reconciler.engine.watch import JobsWatcher, names_listable
from reconciler.spec import files as files_module
from reconciler.spec.files import FileListing, find_job_files


class Folder:
    """Random changes to a jobs folder, each returning the paths an event would name."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root, self.rng = root, rng
        self.tick = 0

    def folders(self) -> list[Path]:
        found = [self.root]
        for path in sorted(self.root.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                found.append(path)
        return found

    def files(self) -> list[Path]:
        return [p for p in sorted(self.root.rglob("*")) if p.is_file() or p.is_symlink()]

    def change(self) -> set[str]:
        rng, self.tick = self.rng, self.tick + 1
        roll = rng.random()
        folder = rng.choice(self.folders())
        files = self.files()
        if roll < 0.35 or not files:  # write a file (new or not), job suffix or not
            name = rng.choice(["a", "b", "c", ".hidden", "notes"]) + rng.choice(
                [".yaml", ".yml", ".txt"]
            )
            path = folder / name
            path.write_text(f"tick {self.tick} " * rng.randint(1, 3))
            return {str(path)}
        if roll < 0.5:  # touched: a new mtime, the same content
            path = rng.choice(files)
            if path.is_symlink():
                return set()
            stamp = 1_700_000_000 + self.tick
            os.utime(path, (stamp, stamp))
            return {str(path)}
        if roll < 0.6:  # removed
            path = rng.choice(files)
            path.unlink()
            return {str(path)}
        if roll < 0.7:  # renamed (perhaps into another folder)
            path = rng.choice(files)
            target = rng.choice(self.folders()) / f"moved-{self.tick}.yaml"
            path.rename(target)
            return {str(path), str(target)}
        if roll < 0.8:  # a folder made, with files
            made = folder / rng.choice(["sub", "deep", ".git", f"f{self.tick}"])
            if made.exists() or made.is_symlink():
                return set()
            made.mkdir()
            (made / "x.yaml").write_text("x")
            return {str(made), str(made / "x.yaml")}
        if roll < 0.87:  # a folder removed
            removable = [f for f in self.folders() if f != self.root]
            if not removable:
                return set()
            gone = rng.choice(removable)
            paths = {str(p) for p in gone.rglob("*")} | {str(gone)}
            shutil.rmtree(gone)
            return paths
        links = [p for p in self.root.rglob("linkdir") if p.is_symlink() and p.resolve().is_dir()]
        if links and roll < 0.93:  # a file written through a symlinked folder: an event
            link = rng.choice(links)  # may name it by either path; it is listed once
            name = f"through-{self.tick}.yaml"
            (link / name).write_text("x")
            return {str(link.resolve() / name), str(link / name)}
        link = folder / rng.choice(["link.yaml", "linkdir"])  # symlinks: refused
        if link.is_symlink():
            link.unlink()
        elif not link.exists():
            link.symlink_to(self.root if link.name == "linkdir" else link.parent / "a.yaml")
        else:
            return set()
        return {str(link)}


def test_a_listing_patched_by_the_changed_paths_is_a_full_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    walks: list[Path] = []
    real_walk = files_module._walk

    def counted_walk(jobs_dir: Path, prefix: str) -> object:
        walks.append(jobs_dir)
        return real_walk(jobs_dir, prefix)

    monkeypatch.setattr(files_module, "_walk", counted_walk)
    rng = random.Random(5)
    root = (tmp_path / "jobs.d").resolve()
    root.mkdir()
    (root / "sub").mkdir()
    folder = Folder(root, rng)
    listing = FileListing(root)
    assert listing.files() == find_job_files(root)
    stale = False  # an event was dropped since the last full listing
    checked = 0
    for step in range(400):
        changed: set[str] = set()
        for _ in range(rng.randint(1, 3)):
            paths = folder.change()
            if rng.random() < 0.05:
                stale = True  # this change's events were missed
                continue
            changed |= paths
        if rng.random() < 0.1:  # the resync: everything listed
            assert listing.files(None) == find_job_files(root), step
            stale = False
            continue
        walked = len(walks)
        patched = listing.files(changed)
        listed_again = len(walks) > walked
        if not stale:
            assert patched == find_job_files(root), step
            checked += not listed_again
    assert checked > 60


def test_a_listing_follows_the_real_watchers_events(tmp_path: Path) -> None:
    """What watchfiles reports (JobsWatcher.take_changes) is enough: after each burst of
    changes and its events, the patched listing is the full one."""
    rng = random.Random(9)
    root = (tmp_path / "jobs.d").resolve()
    root.mkdir()
    folder = Folder(root, rng)
    woken = threading.Event()
    watcher = JobsWatcher(root, on_change=woken.set).start()
    try:
        listing = FileListing(root)
        time.sleep(0.5)  # the watch established
        assert watcher.take_changes() is None  # unknown before the first take: in full
        listing.files(None)
        for step in range(25):
            for _ in range(rng.randint(1, 3)):
                folder.change()
            time.sleep(0.4)  # the events delivered (debounce 50 ms)
            changed = watcher.take_changes()
            assert changed is not None
            assert listing.files(changed) == find_job_files(root), step
    finally:
        watcher.stop()


def test_the_watcher_ignores_what_is_never_listed(tmp_path: Path) -> None:
    """An editor's swap file, a `.git` folder taking a fetch, a sibling folder named like
    the jobs folder: no wake-up, and no event that would hold a settling pass back. A
    job file written after them wakes it, and names only itself."""
    root = (tmp_path / "jobs.d").resolve()
    root.mkdir()
    (root / "team").mkdir()
    sibling = tmp_path / "jobs.d.old"
    sibling.mkdir()
    woken = threading.Event()
    watcher = JobsWatcher(root, on_change=woken.set).start()
    try:
        time.sleep(0.5)  # the watch established
        watcher.take_changes()
        (root / ".git" / "objects").mkdir(parents=True)
        (root / ".git" / "objects" / "pack").write_bytes(b"x" * 1000)
        (root / "team" / ".a.yaml.swp").write_text("swap")
        (root / ".hidden").mkdir()
        (root / ".hidden" / "b.yaml").write_text("name: b")
        (sibling / "c.yaml").write_text("name: c")
        assert not woken.wait(1.0)
        assert watcher.last_event == 0.0
        assert watcher.take_changes() == set()
        (root / "team" / "a.yaml").write_text("name: a")
        assert woken.wait(5.0)
        time.sleep(0.2)  # the rest of the batch
        assert watcher.take_changes() == {str(root / "team" / "a.yaml")}
    finally:
        watcher.stop()


@pytest.mark.parametrize(
    ("path", "listable"),
    [
        ("/srv/jobs.d", True),  # the folder itself: replaced, removed, made again
        ("/srv/jobs.d/a.yaml", True),
        ("/srv/jobs.d/team/a.yaml", True),
        ("/srv/jobs.d/team", True),  # a folder renamed or removed: no per-file events
        ("/srv/jobs.d/notes.txt", True),  # listed or not, spec.files decides
        ("/srv/jobs.d/.git/index", False),
        ("/srv/jobs.d/team/.a.yaml.swp", False),
        ("/srv/jobs.d/.hidden/a.yaml", False),
        ("/srv/jobs.d.old/a.yaml", False),
        ("/srv/jobs.dx", False),
        ("/srv/other/a.yaml", False),
        ("/srv/.jobs.d/a.yaml", False),
    ],
)
def test_names_listable(path: str, listable: bool) -> None:
    assert names_listable(path, "/srv/jobs.d") is listable
