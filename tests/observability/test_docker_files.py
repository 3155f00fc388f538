"""docker/: compose.yaml, the Dockerfile and prometheus.yml agree with the code.

No Docker engine runs here: what can be checked without one is checked against the
code itself (the CLI's parser, the settings, the console scripts, promtool).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from reconciler.cli import COMMANDS, build_parser
from reconciler.engine.daemon import Daemon
from reconciler.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
PROMETHEUS_CONFIG = DOCKER / "prometheus" / "prometheus.yml"
IMAGE = "jobs-reconciler:latest"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def _ours() -> dict[str, dict]:
    """The services that run our image."""
    return {name: service for name, service in SERVICES.items() if service.get("image") == IMAGE}


def _interpolate(value: str) -> str:
    # Compose's ${NAME:-default}: the default (what runs when nothing is set).
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = (DOCKER / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


# --- compose.yaml ------------------------------------------------------------------------
def test_compose_has_every_process_of_the_design() -> None:
    commands = {name: service.get("command") for name, service in _ours().items()}
    assert {"postgres", "rabbitmq", "redis", "prometheus", "grafana"} <= set(SERVICES)
    assert commands["migrate"] == ["db", "upgrade"]
    assert sorted(name for name, command in commands.items() if command == ["run"]) == [
        "reconciler-a",
        "reconciler-b",
    ]
    assert any(command and command[0] == "worker" for command in commands.values())
    assert commands["api"][:3] == ["api", "--host", "0.0.0.0"]
    assert (
        "rabbitmq:" in SERVICES["rabbitmq"]["image"]
        and "management" in SERVICES["rabbitmq"]["image"]
    )


@pytest.mark.parametrize("name", sorted(_ours()))
def test_each_command_is_a_real_subcommand(name: str) -> None:
    service = _ours()[name]
    command = [str(part) for part in service["command"]]
    entrypoint = service.get("entrypoint")
    if entrypoint in (["celery"], "celery"):
        assert command[:3] == ["-A", "reconciler.worker", "worker"], command
        return
    assert entrypoint is None, "our image's entry point is `reconcile`"
    assert command[0] in COMMANDS
    try:
        build_parser().parse_args(command)
    except SystemExit as error:  # argparse's way of refusing a command line
        pytest.fail(f"`reconcile {' '.join(command)}` does not parse (exit {error.code})")


def test_a_wrong_command_would_be_noticed() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["api", "--hots", "0.0.0.0"])


def test_every_reconciler_variable_is_a_setting_with_a_valid_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fields = {"RECONCILER_" + name.upper() for name in Settings.model_fields}
    for name, service in _ours().items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: environment as a mapping"
        ours = {key: _interpolate(str(value)) for key, value in environment.items()}
        assert set(ours) <= fields, f"{name}: not settings: {set(ours) - fields}"
        assert all(key.startswith("RECONCILER_") for key in ours), name
        for key in fields:
            monkeypatch.delenv(key, raising=False)
        for key, value in ours.items():
            monkeypatch.setenv(key, value)
        Settings()  # raises when a value is not valid


def test_services_wait_for_what_they_need() -> None:
    for name, service in SERVICES.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on with conditions"
        for other, rule in depends_on.items():
            assert other in SERVICES, f"{name} depends on unknown {other}"
            assert rule["condition"] in CONDITIONS, name
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[other], f"{name} waits for {other}'s health"
            if rule["condition"] == "service_completed_successfully":
                assert SERVICES[other].get("restart") == "no", f"{other} is one-shot"
    for name in ("reconciler-a", "reconciler-b", "worker", "api"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_volumes_exist() -> None:
    declared = set(COMPOSE.get("volumes", {}))
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
    for name in ("reconciler-a", "reconciler-b"):
        # The whole checkout, read-only: jobs.d and its git history (the revision).
        assert "..:/src:ro" in SERVICES[name]["volumes"]
        assert SERVICES[name]["environment"]["RECONCILER_JOBS_DIR"] == "/src/jobs.d"


def test_the_image_is_built_from_this_dockerfile() -> None:
    for name, service in _ours().items():
        build = service["build"]
        assert (
            DOCKER / build["context"] / build["dockerfile"]
        ).resolve() == DOCKER / "Dockerfile", name


# --- prometheus.yml ------------------------------------------------------------------------
def test_prometheus_config_passes_promtool(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_process_on_its_port() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    metrics_port = {
        name: int(_interpolate(str(service["environment"]["RECONCILER_METRICS_PORT"])))
        for name, service in _ours().items()
    }
    daemons = jobs["reconciler-daemon"]["static_configs"][0]["targets"]
    assert sorted(daemons) == [
        f"{name}:{metrics_port[name]}" for name in ("reconciler-a", "reconciler-b")
    ]
    (workers,) = jobs["reconciler-worker"]["dns_sd_configs"]
    assert workers["names"] == ["worker"] and workers["port"] == metrics_port["worker"]
    api_command = SERVICES["api"]["command"]
    api_port = api_command[api_command.index("--port") + 1]
    assert jobs["reconciler-api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    assert jobs["reconciler-api"].get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == ["alerts.yml"]
    mounted = SERVICES["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounted
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounted


# --- Dockerfile ------------------------------------------------------------------------
def test_dockerfile_runs_as_a_user_and_enters_through_reconcile() -> None:
    instructions = _dockerfile()
    bases = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert bases and set(bases) == {"python:3.11-slim"}
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    (entrypoint,) = [json.loads(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["reconcile"] and "reconcile" in scripts
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    # The image installs the built wheel (migrations inside it), never links a source
    # folder into site-packages.
    assert "pip wheel" in runs and "pip install --no-deps /wheels/*.whl" in runs
    assert "pip install --no-deps --require-hashes -r requirements.lock" in runs
    assert "ln -s" not in runs and "site-packages" not in runs and "purelib" not in runs
    for keyword, rest in instructions:
        if keyword == "ENV" and "RECONCILER_" in rest:
            for name in re.findall(r"(RECONCILER_[A-Z_]+)=", rest):
                assert name.removeprefix("RECONCILER_").lower() in Settings.model_fields


def _copies_from_context() -> list[str]:
    """The arguments of every COPY that reads the build context (not another stage)."""
    return [
        rest
        for keyword, rest in _dockerfile()
        if keyword == "COPY" and not rest.startswith("--from=")
    ]


def test_dockerfile_copies_what_exists() -> None:
    copied = set()
    for rest in _copies_from_context():
        if rest:
            *sources, _ = rest.split()
            for source in sources:
                if "*" not in source:
                    assert (ROOT / source).exists(), f"COPY {source}: missing in the repository"
                    copied.add(source)
    assert {"pyproject.toml", "requirements.lock", "reconciler", "jobs.d", "schemas"} <= copied
    assert "migrations" not in copied  # they live inside the package now


@pytest.mark.slow
def test_the_copied_files_build_the_package(tmp_path: Path) -> None:
    # `pip install .` in the image sees only what the Dockerfile copies: build a wheel
    # from exactly that and check it carries the package and the `reconcile` script.
    context = tmp_path / "context"
    context.mkdir()
    for rest in _copies_from_context():
        if rest:
            *sources, _ = rest.split()
            for pattern in sources:
                for source in ROOT.glob(pattern):
                    if source.is_dir():
                        shutil.copytree(
                            source,
                            context / source.name,
                            ignore=shutil.ignore_patterns("__pycache__"),
                        )
                    else:
                        shutil.copy(source, context / source.name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=context,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "reconciler/metrics.py" in names and "reconciler/observability.py" in names
        assert "reconciler/migrations/env.py" in names
        assert "reconciler/migrations/script.py.mako" in names
        assert any(name.startswith("reconciler/migrations/versions/0001") for name in names)
        (entry_points,) = [name for name in names if name.endswith("entry_points.txt")]
        assert "reconcile = reconciler.cli:main" in archive.read(entry_points).decode()


def test_the_lock_file_pins_every_dependency_within_its_range() -> None:
    # The image installs requirements.lock with --no-deps: a dependency added to
    # pyproject.toml but not locked would be missing from the image.
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = dict(
        (canonicalize_name(name), version)
        for name, version in re.findall(
            r"^([A-Za-z0-9_.\-]+)==([^ \\;]+)", (ROOT / "requirements.lock").read_text(), re.M
        )
    )
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in dependencies:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: regenerate it (see its header)"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {line}"
    assert "--hash=sha256:" in (ROOT / "requirements.lock").read_text()


# --- issue 13: a compose that works on a laptop ------------------------------------------
def test_host_ports_are_on_loopback_and_movable() -> None:
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            match = re.fullmatch(r"127\.0\.0\.1:\$\{[A-Z_]+_PORT:-\d+\}:\d+", str(mapping))
            assert match, f"{name}: {mapping} (loopback, a ${{..._PORT:-default}} host port)"


def test_daemons_report_loop_liveness_and_leadership() -> None:
    from reconciler.healthcheck import check

    for name in ("reconciler-a", "reconciler-b"):
        assert SERVICES[name]["healthcheck"]["test"] == [
            "CMD", "python", "-m", "reconciler.healthcheck"
        ]  # fmt: skip
    leader = "reconciler_leader 1.0\nreconciler_daemon_loop_timestamp_seconds 1000.0\n"
    assert check(leader, now=1010.0, max_age=60) == (True, "leader, loop turned 10.0 s ago")
    stuck = check(leader, now=1100.0, max_age=60)
    assert stuck == (False, "leader, loop stuck: last turn 100 s ago (limit 60 s)")
    assert check("reconciler_leader 0.0\n", now=5000.0, max_age=60) == (True, "standby")
    # A leader whose APScheduler thread died (it gives the lead up and exits by itself).
    dead = check(leader + "reconciler_scheduler_running 0.0\n", now=1010.0, max_age=60)
    assert dead == (
        False,
        "leader, scheduler not running (its thread died or its write-back failed)",
    )
    # A new term's startup pass: no scheduler, no loop turn yet (a process's first term:
    # none ever), for as long as its own limit allows, not the loop's.
    starting = (
        "reconciler_leader 1.0\nreconciler_scheduler_running 0.0\n"
        "reconciler_daemon_loop_timestamp_seconds 0.0\n"
        "reconciler_startup_pass_started_timestamp_seconds 1000.0\n"
    )
    assert check(starting, now=1090.0, max_age=60, startup_max_age=300) == (
        True, "leader, startup pass for 90.0 s"
    )  # fmt: skip
    assert check(starting, now=1400.0, max_age=60, startup_max_age=300) == (
        False, "leader, startup pass stuck: running for 400 s (limit 300 s)"
    )  # fmt: skip


def test_the_healthcheck_reads_a_real_daemon_registry() -> None:
    from prometheus_client import REGISTRY, generate_latest

    from reconciler import metrics
    from reconciler.healthcheck import check

    metrics.LEADER.set(1)
    metrics.DAEMON_LOOP.set(1234.5)
    metrics.SCHEDULER_RUNNING.set(1)
    try:
        text = generate_latest(REGISTRY).decode()
        assert check(text, now=1240.0, max_age=60) == (True, "leader, loop turned 5.5 s ago")
        metrics.SCHEDULER_RUNNING.set(0)
        text = generate_latest(REGISTRY).decode()
        assert not check(text, now=1240.0, max_age=60)[0]
    finally:
        metrics.LEADER.set(0)


def test_a_leader_is_healthy_through_its_startup_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real Daemon._lead: during the startup pass (the scheduler not started yet)
    and as its loop begins, the healthcheck reading the real registry says healthy. It
    said "scheduler not running" (or "loop stuck") for the whole pass: a liveness probe
    could kill a leader mid-pass at every term."""
    from prometheus_client import REGISTRY, generate_latest

    from reconciler import metrics
    from reconciler.engine import daemon as daemon_module
    from reconciler.healthcheck import check

    def health() -> tuple[bool, str]:
        return check(generate_latest(REGISTRY).decode(), now=time.time(), max_age=60)

    seen: list[tuple[bool, str]] = []
    settings = Settings(jobs_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/unused.db")
    elector: Any = SimpleNamespace(
        is_leader=lambda: True, release=lambda: None, instance_id="test", epoch=1
    )
    daemon = Daemon(settings=settings, engine=None, elector=elector, make_service=lambda: None)  # type: ignore[arg-type]
    daemon._pass = lambda *args: seen.append(health()) or True  # type: ignore[method-assign]
    daemon._loop = lambda *args: seen.append(health())  # type: ignore[method-assign]

    def start_firing(**kwargs: object) -> Any:
        metrics.SCHEDULER_RUNNING.set(1)
        return SimpleNamespace(stop=lambda: metrics.SCHEDULER_RUNNING.set(0))

    monkeypatch.setattr(daemon_module, "start_firing", start_firing)
    metrics.LEADER.set(1)  # as the elector does when it takes the lock
    metrics.DAEMON_LOOP.set(0)  # a process's first term
    try:
        daemon._lead(threading.Event(), SimpleNamespace(own_writes=None))  # type: ignore[arg-type]
    finally:
        metrics.LEADER.set(0)
    assert [healthy for healthy, _ in seen] == [True, True], seen
    assert seen[0][1].startswith("leader, startup pass for ")
    assert seen[1][1].startswith("leader, loop turned ")
    assert metrics.STARTUP_PASS._value.get() == 0


def test_alerts_reach_an_alertmanager_webhook() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (target,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in SERVICES and f"{port}:{port}" in " ".join(SERVICES[host]["ports"]) + (
        f" {port}:{port}"
    )
    manager = yaml.safe_load((DOCKER / "alertmanager" / "alertmanager.yml").read_text())
    receiver = {r["name"]: r for r in manager["receivers"]}[manager["route"]["receiver"]]
    (webhook,) = receiver["webhook_configs"]
    sink_host = webhook["url"].split("/")[2].split(":")[0]
    assert sink_host in SERVICES
    mounted = " ".join(SERVICES["alertmanager"]["volumes"])
    assert "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml" in mounted


def test_alertmanager_config_passes_amtool() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed")
    result = subprocess.run(
        [amtool, "check-config", str(DOCKER / "alertmanager" / "alertmanager.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_probe_targets_the_api_container() -> None:
    environment = SERVICES["worker"]["environment"]
    assert environment["RECONCILER_PROBE_BASE_URL"] == "http://api:8000"
    probe = yaml.safe_load((ROOT / "jobs.d" / "ops" / "health.yaml").read_text())
    assert probe["kwargs"]["url"].startswith("/")  # on the base URL, not 127.0.0.1


def test_worker_events_are_on_and_show_the_job() -> None:
    from reconciler.worker.app import celery_config

    assert celery_config(Settings())["worker_send_task_events"] is True


def test_the_image_has_git_for_the_revision() -> None:
    runs = " ".join(rest for keyword, rest in _dockerfile() if keyword == "RUN")
    assert "apt-get install -y --no-install-recommends git" in runs
    assert "safe.directory" in runs
