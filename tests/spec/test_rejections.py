"""Every rejection the format promises, with its code AND its line and column."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.spec.diagnostics import CODES
from reconciler.spec.loader import FileOutcome

from .conftest import JOB

Problems = Callable[[str | bytes], list[tuple[int, int, str]]]

CASES = [
    # id, text, expected (line, column, code) list
    ("tag-python", JOB + "args: [!!python/object/apply:os.system ['id']]\n", [(4, 8, "YAML_TAG")]),
    ("tag-local", JOB + "kwargs: !vault {a: b}\n", [(4, 9, "YAML_TAG")]),
    ("anchor-alias", JOB + "args: [&x 1, *x]\n", [(4, 8, "YAML_ALIAS"), (4, 14, "YAML_ALIAS")]),
    ("duplicate-key", JOB + "task: celery.backend_cleanup\n", [(4, 1, "DUPLICATE_KEY")]),
    ("duplicate-nested", JOB + "labels:\n  a: x\n  a: y\n", [(6, 3, "DUPLICATE_KEY")]),
    ("key-coerced", JOB + "labels: {on: x}\n", [(4, 10, "YAML_COERCION")]),
    ("collection-key", JOB + "labels: {[a]: x}\n", [(4, 10, "INVALID_TYPE")]),
    ("not-a-mapping", "- a\n- b\n", [(1, 1, "NOT_A_MAPPING")]),
    ("scalar-doc", JOB + "---\njust text\n", [(5, 1, "NOT_A_MAPPING")]),
    ("coerce-no", JOB + "queue: no\n", [(4, 8, "YAML_COERCION")]),
    ("coerce-on", JOB + "description: on\n", [(4, 14, "YAML_COERCION")]),
    ("coerce-yes-label", JOB + "labels:\n  critical: yes\n", [(5, 13, "YAML_COERCION")]),
    ("coerce-off", JOB + "owner: off\n", [(4, 8, "YAML_COERCION")]),
    ("coerce-sexagesimal", JOB + "description: 1:30\n", [(4, 14, "YAML_COERCION")]),
    ("coerce-octal", JOB + "owner: 0755\n", [(4, 8, "YAML_COERCION")]),
    ("coerce-float", JOB + "description: 1.10\n", [(4, 14, "YAML_COERCION")]),
    ("coerce-date", JOB + "owner: 2024-01-01\n", [(4, 8, "YAML_COERCION")]),
    ("invalid-timestamp", JOB + "owner: 2024-02-30\n", [(4, 8, "YAML_COERCION")]),
    ("huge-integer", JOB + "owner: " + "9" * 5000 + "\n", [(4, 8, "YAML_COERCION")]),
    ("coerce-name", JOB.replace("name: job-a", "name: 0755"), [(1, 7, "YAML_COERCION")]),
    (
        "coerce-cron-map",
        JOB.replace("{cron: '*/5 * * * *'}", "{cron: {minute: 1:30}}"),
        [(3, 18, "CRON_SYNTAX"), (3, 27, "YAML_COERCION")],
    ),
    ("unknown-field", JOB + "nmae: x\n", [(4, 1, "UNKNOWN_FIELD")]),
    (
        "unknown-nested",
        JOB.replace("{cron: '*/5 * * * *'}", "{interval: {minuts: 5}}"),
        [(3, 23, "UNKNOWN_FIELD")],
    ),
    ("missing-task", "name: a\nschedule: {interval: {minutes: 5}}\n", [(1, 1, "MISSING_FIELD")]),
    ("missing-indented", "---\n  name: a\n  task: reconciler.tasks.x\n", [(2, 3, "MISSING_FIELD")]),
    ("wrong-type", JOB + "retries: three\n", [(4, 10, "INVALID_TYPE")]),
    ("wrong-type-quoted", JOB + "paused: 'true'\n", [(4, 9, "INVALID_TYPE")]),
    ("empty-value", JOB + "queue:\n", [(4, 7, "INVALID_TYPE")]),
    ("out-of-range", JOB + "retries: 1000\n", [(4, 10, "INVALID_VALUE")]),
    ("not-a-number", JOB + "kwargs: {ratio: .nan}\n", [(4, 9, "INVALID_VALUE")]),
    ("infinite", JOB + "args: [1, [-.inf]]\n", [(4, 7, "INVALID_VALUE")]),
    (
        "zero-interval",
        JOB.replace("{cron: '*/5 * * * *'}", "\n  interval: {minutes: 0}"),
        [(4, 13, "INVALID_VALUE")],
    ),
    (
        "two-schedules",
        JOB.replace("{cron:", "{interval: {minutes: 1}, cron:"),
        [(3, 11, "INVALID_VALUE")],
    ),
    ("bad-name", JOB.replace("name: job-a", "name: Job A"), [(1, 7, "INVALID_NAME")]),
    (
        "bad-task-name",
        JOB.replace("reconciler.tasks.example_task", "not-a-task"),
        [(2, 7, "INVALID_VALUE")],
    ),
    ("cron-syntax", JOB.replace("*/5 * * * *", "61 * * * *"), [(3, 18, "CRON_SYNTAX")]),
    ("cron-fields", JOB.replace("*/5 * * * *", "* * *"), [(3, 18, "CRON_SYNTAX")]),
    ("cron-weekday-l-alone", JOB.replace("*/5 * * * *", "0 0 * * L"), [(3, 18, "CRON_SYNTAX")]),
    ("cron-weekday-nth-6", JOB.replace("*/5 * * * *", "0 9 * * FRI#6"), [(3, 18, "CRON_SYNTAX")]),
    (
        "timezone-localtime",
        JOB + "timezone: localtime\n",
        [(4, 11, "HOST_TIMEZONE")],
    ),
    ("cron-never", JOB.replace("*/5 * * * *", "0 0 31 2 *"), [(3, 18, "CRON_NEVER_FIRES")]),
    ("timezone", JOB + "timezone: Mars/Olympus\n", [(4, 11, "UNKNOWN_TIMEZONE")]),
    ("queue", JOB + "queue: urgent\n", [(4, 8, "UNKNOWN_QUEUE")]),
    (
        "task-allowlist",
        JOB.replace("reconciler.tasks.example_task", "os.system"),
        [(2, 7, "TASK_NOT_ALLOWED")],
    ),
    (
        "task-celery",
        JOB.replace("reconciler.tasks.example_task", "celery.chord_unlock"),
        [(2, 7, "TASK_NOT_ALLOWED")],
    ),
    ("forbidden-option", JOB + "link: other.task\n", [(4, 1, "FORBIDDEN_OPTION")]),
    ("unknown-argument", JOB + "kwargs: {datta: 1}\n", [(4, 17, "UNKNOWN_ARGUMENT")]),
    (
        "missing-argument",
        JOB.replace("example_task", "http_probe"),
        [(2, 7, "MISSING_ARGUMENT")],
    ),
    (
        "invalid-argument",
        JOB.replace("example_task", "http_probe") + "kwargs: {url: 5}\n",
        [(4, 15, "INVALID_ARGUMENT")],
    ),
    ("start-after-end", JOB + "start: 2030-01-02\nend: 2030-01-01\n", [(4, 1, "START_AFTER_END")]),
    ("syntax", JOB + "kwargs: {a: [}\n", [(4, 14, "YAML_SYNTAX")]),
    ("syntax-unquoted-cron", JOB.replace("'*/5 * * * *'", "*/5 * * * *"), [(3, 19, "YAML_SYNTAX")]),
    ("nesting", JOB + "args: " + "[" * 40 + "]" * 40 + "\n", [(4, 38, "NESTING_TOO_DEEP")]),
    ("binary", JOB.encode() + b"owner: a\x00b\n", [(4, 9, "BINARY_FILE")]),
    ("control-char", JOB + "owner: a\u0085\u0090\n", [(4, 10, "BINARY_FILE")]),
    ("not-utf8", JOB.encode() + "owner: é\n".encode("latin-1"), [(4, 8, "NOT_UTF8")]),
    ("empty", "", [(0, 0, "EMPTY_FILE")]),
    ("comments-only", "# a comment\n---\n# another\n", [(0, 0, "EMPTY_FILE")]),
    ("duplicate-in-file", JOB + "---\n" + JOB, [(1, 1, "DUPLICATE_JOB"), (5, 1, "DUPLICATE_JOB")]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rejection_has_code_and_position(
    text: str | bytes,
    expected: list[tuple[int, int, str]],
    load_text: Callable[[str | bytes], FileOutcome],
) -> None:
    from reconciler.spec.loader import assemble_result

    outcome = load_text(text)
    # Duplicate names are a cross-file check: assemble, as load_jobs does.
    result = assemble_result([outcome], [])
    found = [(d.line, d.column, d.code) for d in result.diagnostics]
    assert found == expected, [d.render() for d in result.diagnostics]
    assert result.jobs == ()
    assert all(d.code in CODES for d in result.diagnostics)


def test_coercion_message_says_what_and_how(
    problems: Problems, load_text: Callable[[str | bytes], FileOutcome]
) -> None:
    messages = {
        "queue: no": "read as boolean false; write 'no' in quotes",
        "owner: on": "read as boolean true; write 'on' in quotes",
        "owner: 1:30": "read as number 90; write '1:30' in quotes",
        "owner: 0755": "read as number 493; write '0755' in quotes",
        "owner: 1.10": "read as number 1.1; write '1.10' in quotes",
    }
    for line, expected in messages.items():
        (diagnostic,) = load_text(JOB + line + "\n").diagnostics
        assert diagnostic.code == "YAML_COERCION"
        assert expected in diagnostic.message


def test_quoted_values_are_never_coerced(problems: Problems) -> None:
    text = JOB + "queue: 'default'\nowner: 'no'\ndescription: \"1:30\"\nlabels: {'on': '0755'}\n"
    assert problems(text) == []


def test_unknown_field_suggests_the_closest_key(
    load_text: Callable[[str | bytes], FileOutcome],
) -> None:
    (diagnostic,) = load_text(JOB + "timezon: UTC\n").diagnostics
    assert diagnostic.message == "unknown field 'timezon'; did you mean 'timezone'?"


def test_syntax_error_never_echoes_the_source_line(
    load_text: Callable[[str | bytes], FileOutcome],
) -> None:
    secret = "s3cr3t-value"
    (diagnostic,) = load_text(f"name: x\nkwargs: {{password: {secret}: [}}\n").diagnostics
    assert diagnostic.code == "YAML_SYNTAX"
    assert secret not in diagnostic.message and "password" not in diagnostic.message


def test_all_errors_of_a_file_are_reported_at_once(problems: Problems) -> None:
    text = (
        "name: job-a\ntask: celery.backend_cleanup\nschedule: {cron: '0 0 31 2 *'}\n"
        "queue: nope\ntimezone: Nowhere/City\n---\nname: job-b\ntask: a.b\nschedule: {}\nlink: x\n"
    )
    codes = {code for _, _, code in problems(text)}
    assert codes == {
        "TASK_NOT_ALLOWED",
        "UNKNOWN_QUEUE",
        "UNKNOWN_TIMEZONE",
        "INVALID_VALUE",
        "FORBIDDEN_OPTION",
    }


def test_every_code_is_exercised_somewhere() -> None:
    exercised = {code for case in CASES for *_, code in case[2]}
    # Covered by tests that need files or settings: see test_loader.py; AT_IN_PAST is a
    # warning, not a rejection: see test_past_one_off.py.
    elsewhere = {"FILE_UNREADABLE", "FILE_TOO_LARGE", "SYMLINK_REFUSED", "AT_IN_PAST"}
    elsewhere.add("TASK_MODULE_ERROR")  # needs RECONCILER_TASK_MODULES: test_task_params.py
    assert set(CODES) - exercised - elsewhere == set()


def test_schedule_messages_name_the_problem(
    load_text: Callable[[str | bytes], FileOutcome],
) -> None:
    typo = load_text(JOB.replace("{cron:", "{crn:")).diagnostics
    assert [d.message for d in typo] == [
        "schedule: needs exactly one of cron, interval, at (found 'crn'; did you mean 'cron'?)"
    ]
    both = load_text(JOB.replace("{cron:", "{interval: {minutes: 1}, cron:")).diagnostics
    assert [d.message for d in both] == [
        "schedule: interval and cron together; a schedule has exactly one kind"
    ]


def test_null_is_a_type_error_not_a_coercion(
    load_text: Callable[[str | bytes], FileOutcome],
) -> None:
    (diagnostic,) = load_text(JOB + "timezone: ~\n").diagnostics
    assert (diagnostic.code, diagnostic.message) == (
        "INVALID_TYPE",
        "timezone: expected text, found null",
    )


def test_invalid_timestamp_is_explained_not_raised(
    load_text: Callable[[str | bytes], FileOutcome],
) -> None:
    (diagnostic,) = load_text(JOB + "owner: 2024-02-30\n").diagnostics
    assert diagnostic.message.startswith("read as a timestamp, but not a valid one")
