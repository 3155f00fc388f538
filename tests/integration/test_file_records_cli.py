"""File records seen from outside: `reconcile apply` then `reconcile plan`, console script
in a subprocess, after a change that is not in any job file's bytes. The one-shot plan
must be the plan of a full parse (the same plan with the job_files rows deleted)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.engine.reconcile import ReconcileCaches, reconcile_once
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from reconciler.store.migrate import upgrade_database

RECONCILE = str(Path(sys.executable).with_name("reconcile"))


def reconcile(
    root: Path, *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    environment.update(
        RECONCILER_DATABASE_URL=f"sqlite:///{root / 'state.db'}",
        RECONCILER_JOBS_DIR=str(root / "jobs"),
        RECONCILER_STATE_DIR=str(root / "state"),
    )
    environment.update(env)
    return subprocess.run(
        [RECONCILE, *args],
        env=environment,
        cwd=cwd or root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def full_parse_plan(
    root: Path, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`reconcile plan` with no file records: every file parsed."""
    engine = sa.create_engine(f"sqlite:///{root / 'state.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM job_files"))
    engine.dispose()
    return reconcile(root, "plan", cwd=cwd, **env)


def task_env(root: Path, modules: str, allowed: str) -> dict[str, str]:
    """Settings of a run whose task modules live in <root>/lib."""
    return {
        "RECONCILER_TASK_MODULES": modules,
        "RECONCILER_TASK_ALLOWLIST": allowed,
        "PYTHONPATH": str(root / "lib"),
    }


def plans_after(
    root: Path, path: Path, old: str, new: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """`reconcile apply`, then `old` replaced by `new` in `path`, then (the one-shot
    plan, a full parse's plan)."""
    assert reconcile(root, "apply", **env).returncode == 0
    edit(path, old, new)
    return reconcile(root, "plan", **env), full_parse_plan(root, **env)


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` by `new` in `path` as an editor's later save would. Python trusts a
    module's cached bytecode while the source's size and whole-second mtime match it: an
    edit of the same size in the second of the last import would be read from the stale
    .pyc (CI caught "mm" -> "cm" that way), so the mtime moves on as a later save's would."""
    path.write_text(path.read_text().replace(old, new))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def write_job(root: Path, task: str, kwargs: str) -> None:
    (root / "jobs").mkdir()
    (root / "jobs" / "job.yaml").write_text(
        f'name: job\ntask: {task}\nschedule: {{cron: "*/5 * * * *"}}\nkwargs: {kwargs}\n'
    )


def assert_same_refusal(
    one_shot: subprocess.CompletedProcess[str], full: subprocess.CompletedProcess[str], code: str
) -> None:
    assert full.returncode == 1 and code in full.stdout
    assert_same(one_shot, full)


def assert_same(one_shot: subprocess.CompletedProcess[str], full: subprocess.CompletedProcess[str]):
    assert (one_shot.returncode, one_shot.stdout) == (full.returncode, full.stdout), one_shot.stderr


def test_a_task_re_exported_from_a_submodule_is_checked_against_its_edited_source(
    tmp_path: Path,
) -> None:
    package = tmp_path / "lib" / "mytasks"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from mytasks.impl import resize\n")
    impl = package / "impl.py"
    impl.write_text(
        "from celery import Celery\n"
        "app = Celery('mytasks')\n\n"
        "@app.task(name='mytasks.resize')\n"
        "def resize(width: int) -> None: ...\n"
    )
    write_job(tmp_path, "mytasks.resize", "{width: 3}")
    env = task_env(tmp_path, "mytasks", "mytasks.*")
    one_shot, full = plans_after(tmp_path, impl, "width: int", "height: int", **env)
    assert_same_refusal(one_shot, full, "MISSING_ARGUMENT")


def test_a_relative_report_folder_is_judged_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "jobs" / "report.yaml").write_text(
        "name: report\ntask: reconciler.tasks.write_report\n"
        'schedule: {cron: "*/5 * * * *"}\n'
        f"kwargs: {{path: {tmp_path / 'reports' / 'x.json'}}}\n"
    )
    env = {"RECONCILER_REPORT_DIR": "reports", "RECONCILER_TASK_ALLOWLIST": "reconciler.tasks.*"}
    assert reconcile(tmp_path, "apply", **env).returncode == 0

    elsewhere = tmp_path / "elsewhere"
    one_shot = reconcile(tmp_path, "plan", cwd=elsewhere, **env)
    full = full_parse_plan(tmp_path, cwd=elsewhere, **env)
    assert full.returncode == 1 and "outside the report folder" in full.stdout
    assert_same(one_shot, full)


def test_a_float_postgresql_stores_as_an_integer_is_fired_as_the_file_wrote_it(
    tmp_path: Path, pg_url: str
) -> None:
    """JSONB keeps 1e16 as the number 10000000000000000: the inventory's essence is not
    the file's. A job rebuilt from it (a repaired scheduler row) must still carry the
    float the file declares, as a full parse gives it."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "big.yaml").write_text(
        "name: big\ntask: reconciler.tasks.example_task\n"
        'schedule: {cron: "*/5 * * * *"}\nkwargs: {data: {big: 1.0e+16, zero: -0.0}}\n'
    )
    env = {"RECONCILER_DATABASE_URL": pg_url, "RECONCILER_TASK_ALLOWLIST": "reconciler.tasks.*"}
    assert reconcile(tmp_path, "apply", **env).returncode == 0
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM apscheduler_jobs"))
        repaired = reconcile(tmp_path, "apply", **env)
        assert repaired.returncode == 0, repaired.stderr
        with engine.connect() as connection:
            state = connection.execute(sa.text("SELECT job_state FROM apscheduler_jobs")).scalar()
    finally:
        engine.dispose()
    data = pickle.loads(state)["kwargs"]["payload"]["kwargs"]["data"]
    assert repr(data) == repr({"big": 1e16, "zero": -0.0})


VALIDATING = """
import json, sys
from datetime import UTC, datetime
from pathlib import Path
from reconciler.settings import Settings
from reconciler.spec.loader import load_jobs
load_jobs(Path(sys.argv[1]), settings=Settings(task_allowlist=("reconciler.tasks.*",)),
          now=datetime.now(UTC))
print(json.dumps([m.__file__ for n, m in list(sys.modules.items())
                  if n.startswith("reconciler") and getattr(m, "__file__", None)]))
"""


def test_the_context_digests_all_the_code_validation_runs(tmp_path: Path) -> None:
    """A reconciler upgrade that changes any module a validation runs (the DST rules a
    cron with a `start` is searched with, the zone checks) must not leave records of
    the old code standing: every such module is in the code digest."""
    from reconciler.spec.records import code_files

    (tmp_path / "jobs.yaml").write_text(
        "name: a\ntask: reconciler.tasks.write_report\ntimezone: Europe/Berlin\n"
        'schedule: {cron: "30 2 * * *"}\nstart: 2027-03-28T00:00:00\nkwargs: {path: x.json}\n'
        "---\nname: b\ntask: reconciler.tasks.sql_maintenance\n"
        'schedule: {cron: {year: "2030", month: "1"}}\nkwargs: {statement: VACUUM}\n'
        "---\nname: c\ntask: reconciler.tasks.example_task\nschedule: {interval: {minutes: 5}}\n"
        "---\nname: d\ntask: reconciler.tasks.example_task\nschedule: {at: 2030-01-01T00:00:00}\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", VALIDATING, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = {Path(path).resolve() for path in json.loads(ran.stdout)}
    assert imported - set(code_files()) == set()


def test_records_a_long_running_process_writes_name_the_task_code_it_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon imports the task modules once: after their source is edited, its passes
    still judge by the code it imported. The records those passes write must say so,
    or a CI plan with the new source takes their outcome for its own."""
    package = f"hinted_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "lib" / package
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(f"from {package}.tasks import resize\n")
    shapes = folder / "shapes.py"
    shapes.write_text(
        "from typing_extensions import TypedDict\n\nclass Size(TypedDict):\n    width: int\n"
    )
    (folder / "tasks.py").write_text(
        f"from celery import Celery\nfrom {package}.shapes import Size\n"
        f"app = Celery('{package}')\n\n"
        f"@app.task(name='{package}.resize')\ndef resize(size: Size) -> None: ...\n"
    )
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "resize.yaml").write_text(
        f"name: resize\ntask: {package}.resize\n"
        'schedule: {cron: "*/5 * * * *"}\nkwargs: {size: {width: 3}}\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade_database(url)
    settings = Settings(
        database_url=url,
        jobs_dir=tmp_path / "jobs",
        state_dir=tmp_path / "state",  # as `reconcile` below: the same report folder
        task_modules=(package,),
        task_allowlist=(f"{package}.*",),
    )
    engine = create_sync_engine(url)
    caches = ReconcileCaches()
    try:
        reconcile_once(engine, settings, trigger="watch", caches=caches)
        edit(shapes, "width", "height")
        reconcile_once(engine, settings, trigger="watch", caches=caches)  # old code still
    finally:
        engine.dispose()
        for name in [name for name in sys.modules if name.startswith(package)]:
            monkeypatch.delitem(sys.modules, name)

    env = task_env(tmp_path, package, f"{package}.*")
    one_shot = reconcile(tmp_path, "plan", **env)
    full = full_parse_plan(tmp_path, **env)
    assert full.returncode == 1 and "INVALID_ARGUMENT" in full.stdout
    assert_same(one_shot, full)


def test_a_class_a_hints_class_names_is_part_of_the_context(tmp_path: Path) -> None:
    """Size (the task's hint) has a field of type Unit, defined in another module: an
    edit of that module changes what the checks accept."""
    folder = tmp_path / "lib" / "nested"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    units = folder / "units.py"
    units.write_text(
        "from typing_extensions import TypedDict\n\nclass Unit(TypedDict):\n    mm: int\n"
    )
    (folder / "shapes.py").write_text(
        "from typing_extensions import TypedDict\nfrom nested.units import Unit\n\n"
        "class Size(TypedDict):\n    width: Unit\n"
    )
    (folder / "tasks.py").write_text(
        "from celery import Celery\nfrom nested.shapes import Size\napp = Celery('nested')\n\n"
        "@app.task(name='nested.resize')\ndef resize(size: Size) -> None: ...\n"
    )
    write_job(tmp_path, "nested.resize", "{size: {width: {mm: 3}}}")
    env = task_env(tmp_path, "nested.tasks", "nested.*")
    one_shot, full = plans_after(tmp_path, units, "mm", "cm", **env)
    assert_same_refusal(one_shot, full, "INVALID_ARGUMENT")
