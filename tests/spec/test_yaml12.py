"""YAML 1.2 core semantics in `args` and `kwargs`: a plain value that YAML 1.1 and YAML
1.2 read differently (or that loses its text) is refused with "quote it" at its line
and column; values both read alike pass unchanged. The oracle for YAML 1.1 is PyYAML's
own `safe_load`; for 1.2, the core schema's regular expressions, spelled out here."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reconciler.spec.loader import FileOutcome

HEAD = "name: j\ntask: reconciler.tasks.example_task\nschedule: {cron: '*/5 * * * *'}\n"


def _problems(outcome: FileOutcome) -> list[tuple[int, int, str, str]]:
    return [(d.line, d.column, d.code, d.message) for d in outcome.diagnostics]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("NO", "'NO' is a boolean in YAML 1.1 and text in YAML 1.2; quote it ('NO')"),
        ("no", "'no' is a boolean in YAML 1.1"),
        ("On", "'On' is a boolean in YAML 1.1"),
        ("oFF", "'oFF' is a boolean in YAML 1.1"),
        ("yes", "'yes' is a boolean in YAML 1.1"),
        ("y", "'y' is a boolean in YAML 1.1"),
        ("N", "'N' is a boolean in YAML 1.1"),
        ("1:30", "'1:30' is number 90 in YAML 1.1 and text in YAML 1.2; quote it ('1:30')"),
        ("190:20:30", "'190:20:30' is number 685230 in YAML 1.1 and text"),
        ("0755", "'0755' is number 493 in YAML 1.1 and number 755 in YAML 1.2; quote it"),
        ("08", "'08' is text in YAML 1.1 and number 8 in YAML 1.2"),
        ("1_000", "'1_000' is number 1000 in YAML 1.1 and text in YAML 1.2"),
        ("0b101", "'0b101' is number 5 in YAML 1.1 and text"),
        ("0o17", "'0o17' is text in YAML 1.1 and number 15 in YAML 1.2"),
        ("1e3", "'1e3' is text in YAML 1.1 and number 1000.0 in YAML 1.2"),
        ("2024-01-01", "'2024-01-01' is date 2024-01-01 in YAML 1.1 and text in YAML 1.2"),
        ("1.10", "'1.10' is the number 1.1 (the trailing zero is lost); quote it ('1.10')"),
        ("2.50", "'2.50' is the number 2.5 (the trailing zero is lost)"),
    ],
)
def test_yaml11_forms_in_kwargs_are_refused_at_their_position(
    load_text: Callable[[str], FileOutcome], written: str, message: str
) -> None:
    outcome = load_text(HEAD + f"kwargs:\n  value: {written}\n")
    ((line, column, code, text),) = _problems(outcome)
    assert (line, column, code) == (5, 10, "YAML_COERCION")
    assert text.startswith(f"kwargs.value: {message}")
    assert "quote it" in text
    assert outcome.jobs == ()


def test_in_args_and_nested_values_too(load_text: Callable[[str], FileOutcome]) -> None:
    outcome = load_text(HEAD + "args: [ok, on]\nkwargs:\n  deep: {list: [1, {x: Off}]}\n")
    assert [
        (line, column, message.split(":")[0]) for line, column, _, message in _problems(outcome)
    ] == [
        (4, 12, "args.1"),
        (6, 24, "kwargs.deep.list.1.x"),
    ]


@pytest.mark.parametrize(
    "written",
    [
        "true", "False", "null", "~", "12", "-3", "+4", "0", "0x1F", "1.5", "1.0", ".5", "-2.25",
        "text", "'NO'", '"0755"', "'1:30'", "'1.10'", "[1, 2]", "{a: b}", "''", "Yes please",
        "2024-01-01 is a date",
    ],
)  # fmt: skip
def test_values_both_versions_read_alike_pass_unchanged(
    load_text: Callable[[str], FileOutcome], written: str
) -> None:
    # A task without declared parameters: any kwarg name is fine.
    free = HEAD.replace("example_task", "free_form")
    outcome = load_text(free + f"kwargs:\n  value: {written}\n")
    assert outcome.diagnostics == ()
    (job,) = outcome.jobs
    assert job.spec.kwargs["value"] == yaml.safe_load(f"v: {written}")["v"]


def test_a_secret_looking_key_keeps_its_value_out_of_the_message(
    load_text: Callable[[str], FileOutcome],
) -> None:
    ((_, _, code, message),) = _problems(load_text(HEAD + "kwargs: {pin_password: 0123}\n"))
    assert code == "YAML_COERCION" and "0123" not in message and "***" in message


def test_typed_fields_keep_their_own_messages(load_text: Callable[[str], FileOutcome]) -> None:
    ((_, _, code, message),) = _problems(load_text(HEAD + "owner: no\n"))
    assert (code, message) == (
        "YAML_COERCION",
        "owner: read as boolean false; write 'no' in quotes if you mean the text",
    )


def test_validate_reports_them_through_the_console_script(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(HEAD + "kwargs:\n  country: NO\n  mode: 0755\n  at: 1:30\n")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "reconcile"), "validate", str(job)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[:3] == [
        f"{job}:5:12: YAML_COERCION kwargs.country: 'NO' is a boolean in YAML 1.1 and text in "
        "YAML 1.2; quote it ('NO') if you mean the text, or write true or false",
        f"{job}:6:9: YAML_COERCION kwargs.mode: '0755' is number 493 in YAML 1.1 and number "
        "755 in YAML 1.2; quote it ('0755') if you mean the text",
        f"{job}:7:7: YAML_COERCION kwargs.at: '1:30' is number 90 in YAML 1.1 and text in "
        "YAML 1.2; quote it ('1:30') if you mean the text",
    ]


# Outside args/kwargs: each of these was accepted silently before (the model got YAML
# 1.1's value), or refused only by a range check that never said "quote it".
_TYPED_FIELD_FORMS = [
    ("paused: yes", 9, "paused: 'yes' is a boolean in YAML 1.1 and text in YAML 1.2; "
     "quote it ('yes') if you mean the text, or write true or false"),
    ("paused: OFF", 9, "paused: 'OFF' is a boolean in YAML 1.1 and text in YAML 1.2; "
     "quote it ('OFF') if you mean the text, or write true or false"),
    ("coalesce: oN", 11, "coalesce: 'oN' is a boolean in YAML 1.1 and text in YAML 1.2; "
     "quote it ('oN') if you mean the text, or write true or false"),
    ("retries: 010", 10, "retries: '010' is number 8 in YAML 1.1 and number 10 in YAML 1.2; "
     "quote it ('010') if you mean the text"),
    ("retries: 0755", 10, "retries: '0755' is number 493 in YAML 1.1 and number 755 in "
     "YAML 1.2; quote it ('0755') if you mean the text"),
    ("retries: 1:30", 10, "retries: '1:30' is number 90 in YAML 1.1 and text in YAML 1.2; "
     "quote it ('1:30') if you mean the text"),
    ("max_concurrent_runs: 1_000", 22, "max_concurrent_runs: '1_000' is number 1000 in "
     "YAML 1.1 and text in YAML 1.2; quote it ('1_000') if you mean the text"),
    ("jitter_seconds: 0b11", 17, "jitter_seconds: '0b11' is number 3 in YAML 1.1 and text "
     "in YAML 1.2; quote it ('0b11') if you mean the text"),
    ("labels: {tier: Y}", 16, "labels.tier: 'Y' is a boolean in YAML 1.1 and text in "
     "YAML 1.2; quote it ('Y') if you mean the text, or write true or false"),
    ("owner: n", 8, "owner: 'n' is a boolean in YAML 1.1 and text in YAML 1.2; "
     "quote it ('n') if you mean the text, or write true or false"),
]  # fmt: skip


def test_yaml11_forms_in_typed_fields_are_refused_through_the_console_script(
    tmp_path: Path,
) -> None:
    """Build 4 "everywhere in job files": one file per form, one `reconcile validate`."""
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    for number, (line, _, _) in enumerate(_TYPED_FIELD_FORMS):
        (jobs / f"f{number:02d}.yaml").write_text(
            HEAD.replace("name: j", f"name: j{number}") + line + "\n"
        )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "reconcile"), "validate", "--jobs-dir", str(jobs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for number, (_, column, message) in enumerate(_TYPED_FIELD_FORMS):
        expected = f"{jobs}/f{number:02d}.yaml:4:{column}: YAML_COERCION {message}"
        assert expected in lines, (expected, lines)
        # "quote it" alone: what the model says of the YAML 1.1 reading ("expected an
        # integer, found boolean true" beside `retries: yes`) reads as a second mistake.
        of_file = [text for text in lines if text.startswith(f"{jobs}/f{number:02d}.yaml:")]
        assert of_file == [expected], of_file
    assert lines[-1].startswith(f"{len(_TYPED_FIELD_FORMS)} files, 0 jobs: invalid")


def test_typed_fields_written_the_yaml12_way_still_load(
    load_text: Callable[[str], FileOutcome],
) -> None:
    # Quoted forms, real booleans and numbers, and an unquoted timestamp (which `at`,
    # `start` and `end` take either way) are no YAML 1.1 / 1.2 disagreement.
    text = (
        HEAD
        + "paused: false\ncoalesce: true\nretries: 10\nmax_concurrent_runs: 1000\n"
        + "owner: 'no'\ndescription: \"0755\"\nlabels: {tier: 'Y', v: '1.10'}\n"
        + "start: 2030-01-01T00:00:00\nmisfire_grace_seconds: 0x10\n"
    )
    outcome = load_text(text)
    assert outcome.diagnostics == ()
    (job,) = outcome.jobs
    assert (job.spec.retries, job.spec.owner, job.spec.misfire_grace_seconds) == (10, "no", 16)
