"""The committed JSON Schema checked against the loader with a validator we did not
write (the `jsonschema` package, for the schema's declared draft, with the format checker
for any format it uses), as an editor running yaml-language-server would use it.

Documents are generated as JSON data (what a YAML 1.2 reader such as the editor's makes
of the file) and written as YAML text for the loader: JSON is YAML, so every string is
quoted; the times of `at`, `start` and `end` are also written plain, as the README shows
them (the loader reads those as YAML 1.1 timestamps, the editor as text).

Two directions:
- whatever the loader accepts, the schema accepts (an editor must show no false error);
- whatever is structurally wrong (unknown key, wrong type, missing field, two schedule
  kinds, a number out of the model's range, a name against the name rule, an enum value
  out of range), the loader refuses and the schema refuses too, except for the
  semantic-only kinds listed in `SEMANTIC_ONLY`, each with the reason the schema cannot
  say it.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from reconciler.settings import DEFAULT_QUEUES, Settings
from reconciler.spec.loader import load_bytes
from reconciler.spec.model import FORBIDDEN_OPTIONS, NAME_PATTERN, JobSpec
from reconciler.spec.schema import job_schema

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# A task no module declares: the loader checks routing but not its arguments (those are
# the worker's), so that any JSON args/kwargs are the job format's business alone.
SETTINGS = Settings(
    queues=DEFAULT_QUEUES,
    task_allowlist=("acme.*",),
    max_file_bytes=1_048_576,
    max_nesting_depth=32,
)
ORACLE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIMES = ("at", "start", "end")

Doc = dict[str, Any]


def schema_validator() -> Draft202012Validator:
    schema = job_schema()
    cls = validator_for(schema)
    assert cls is Draft202012Validator, schema["$schema"]
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


VALIDATOR = schema_validator()


def schema_errors(doc: Doc) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)
    ]


def as_yaml(doc: Doc, *, plain_times: bool) -> str:
    """The document as YAML text: JSON, with the times unquoted when `plain_times`."""
    text = json.dumps(doc, ensure_ascii=False)
    if plain_times:
        # Only the values of the time keys: `"at": "..."` anywhere in args/kwargs stays.
        for key in TIMES:
            value = _time_of(doc, key)
            if isinstance(value, str) and _PLAIN_TIME.fullmatch(value):
                text = text.replace(f'"{key}": {json.dumps(value)}', f'"{key}": {value}', 1)
    return text + "\n"


def _time_of(doc: Doc, key: str) -> object:
    if key == "at":
        schedule = doc.get("schedule")
        return schedule.get("at") if isinstance(schedule, dict) else None
    return doc.get(key)


# A time that is safe to write as a plain flow scalar (no `,`, `{`, `}`, `#`, `: `).
_PLAIN_TIME = re.compile(r"[0-9][0-9 T:tZz.+-]*[0-9Zz]")


def loader_accepts(doc: Doc, *, plain_times: bool) -> tuple[bool, list[str]]:
    data = as_yaml(doc, plain_times=plain_times).encode()
    outcome = load_bytes("job.yaml", data, settings=SETTINGS, now=NOW)
    return bool(outcome.jobs), [f"{d.code} {d.message}" for d in outcome.diagnostics]


# --- valid documents, from the README's field table ------------------------------------

names = st.from_regex(NAME_PATTERN.replace("$", r"\Z"), fullmatch=True)
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
tasks = st.lists(identifiers, min_size=1, max_size=3).map(lambda parts: ".".join(["acme", *parts]))

_MINUTES = ["*", "*/5", "0", "0-30/10", "5,35", "59"]
_HOURS = ["*", "6", "1-5", "*/2", "0,12"]
_DAYS = ["*", "1", "15", "1-7", "L"]
_MONTHS = ["*", "1-6", "12", "*/3", "jan"]
_WEEKDAYS = ["*", "1-5", "mon-fri", "0", "sun"]
_SECONDS = ["*", "*/30", "0", "15,45"]
five_field = st.tuples(*(st.sampled_from(f) for f in (_MINUTES, _HOURS, _DAYS, _MONTHS, _WEEKDAYS)))
cron_strings = st.one_of(
    five_field.map(" ".join),
    st.tuples(st.sampled_from(_SECONDS), five_field).map(lambda t: " ".join((t[0], *t[1]))),
)
# The seed's field map (APScheduler's names): text, or a number for a single value.
cron_maps = st.fixed_dictionaries(
    {},
    optional={
        "second": st.one_of(st.sampled_from(_SECONDS), st.integers(0, 59)),
        "minute": st.one_of(st.sampled_from(_MINUTES), st.integers(0, 59)),
        "hour": st.one_of(st.sampled_from(_HOURS), st.integers(0, 23)),
        "day": st.one_of(st.sampled_from(["*", "1", "1-15"]), st.integers(1, 28)),
        "month": st.one_of(st.sampled_from(["*", "1-6"]), st.integers(1, 12)),
        "day_of_week": st.sampled_from(["*", "mon-fri", "0-4", "sun"]),
        "week": st.one_of(st.sampled_from(["*", "1-52"]), st.integers(1, 52)),
        "year": st.one_of(st.sampled_from(["*", "2027-2099"]), st.integers(2027, 2099)),
    },
).filter(bool)  # a map needs a field (CRON_SYNTAX)
UNITS = ("weeks", "days", "hours", "minutes", "seconds")
intervals = st.dictionaries(
    st.sampled_from(UNITS), st.integers(0, 10_000), min_size=1, max_size=5
).filter(lambda interval: any(interval.values()))


def _time_text(moment: datetime, separator: str, seconds: bool, fraction: str, offset: str) -> str:
    clock = moment.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{moment:%Y-%m-%d}{separator}{clock}{fraction if seconds else ''}{offset}"


# Every spelling of a time the loader documents or takes: RFC 3339 and its naive form,
# a space or `t`, minutes only, fractions, offsets with and without the colon, dates.
def times(low: int, high: int) -> st.SearchStrategy[str | int]:
    moments = st.datetimes(datetime(low, 1, 1), datetime(high, 12, 31))
    full = st.builds(
        _time_text,
        moments,
        st.sampled_from(["T", "t", " "]),
        st.booleans(),
        st.sampled_from(["", ".5", ".123456"]),
        st.sampled_from(["", "Z", "z", "+01:00", "-05:30", "+0100", "+00:00"]),
    )
    unix = st.integers(_unix(low), _unix(high))  # the loader reads a number as Unix time
    return st.one_of(full, moments.map(lambda m: f"{m:%Y-%m-%d}"), unix)


def _unix(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp())


schedules = st.one_of(
    st.builds(lambda cron: {"cron": cron}, st.one_of(cron_strings, cron_maps)),
    st.builds(lambda interval: {"interval": interval}, intervals),
    st.builds(lambda at: {"at": at}, times(2027, 2099)),
)
# Text a YAML file may hold as it is: no control characters (BINARY_FILE), no
# surrogates or non-characters, no line separators (YAML folds them).
texts = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Cn", "Zl", "Zp"]), max_size=12
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    # No exponent: YAML 1.1 reads `1e+20` as text, YAML 1.2 as a number (YAML_COERCION).
    st.floats(-1e15, 1e15).filter(lambda number: "e" not in repr(number)),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=10,
)
seconds = st.integers(0, 31_536_000)
idempotency_keys = st.lists(
    st.sampled_from(["{job}", "{scheduled_time}", "{date}", "-", "daily", "x"]),
    min_size=1,
    max_size=4,
).map("".join)
optional_fields: dict[str, st.SearchStrategy[Any]] = {
    "previous_names": st.lists(names, max_size=3, unique=True),
    "args": st.lists(json_values, max_size=4),
    "kwargs": st.dictionaries(texts, json_values, max_size=4),
    "queue": st.sampled_from(DEFAULT_QUEUES),
    "timezone": st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
    "paused": st.booleans(),
    "misfire_grace_seconds": seconds,
    "coalesce": st.booleans(),
    "max_concurrent_runs": st.integers(1, 1000),
    "jitter_seconds": seconds,
    "start": st.one_of(st.none(), times(2000, 2025)),
    "end": st.one_of(st.none(), times(2101, 2200)),
    "retries": st.integers(0, 100),
    "retry_delay_seconds": seconds,
    "time_limit_seconds": st.one_of(st.none(), st.integers(1, 86_400)),
    "expires_seconds": st.one_of(st.none(), st.integers(1, 31_536_000)),
    "idempotency_key": st.one_of(st.none(), idempotency_keys),
    "description": st.one_of(st.none(), texts),
    "owner": st.one_of(st.none(), texts),
    "labels": st.dictionaries(texts, texts, max_size=3),
}
dst_policies = st.fixed_dictionaries(
    {},
    optional={
        "gap": st.sampled_from(["shift", "next", "skip", None]),
        "repeat": st.sampled_from(["first", "last", "both", None]),
    },
)


@st.composite
def valid_docs(draw: st.DrawFn) -> Doc:
    doc: Doc = {"name": draw(names), "task": draw(tasks), "schedule": draw(schedules)}
    doc |= draw(st.fixed_dictionaries({}, optional=optional_fields))
    if "cron" in doc["schedule"] and draw(st.booleans()):
        doc["dst"] = draw(st.one_of(st.none(), dst_policies))
    return doc


def test_every_format_of_the_schema_is_checked() -> None:
    # jsonschema skips a format it has no checker for (date-time needs rfc3339-validator):
    # an editor checks them, so the oracle must too.
    used = set(re.findall(r'"format": "([^"]+)"', json.dumps(job_schema())))
    assert VALIDATOR.format_checker is not None
    assert used <= set(VALIDATOR.format_checker.checkers)


def test_every_field_is_generated() -> None:
    assert set(optional_fields) | {"name", "task", "schedule", "dst"} == set(JobSpec.model_fields)


# --- structurally wrong documents: a valid one, broken in one known way -----------------

# The JSON types each field takes, as the model says (None: JSON null).
FIELD_TYPES: dict[str, set[str]] = {
    "name": {"string"},
    "previous_names": {"array"},
    "task": {"string"},
    "schedule": {"object"},
    "args": {"array"},
    "kwargs": {"object"},
    "queue": {"string"},
    "timezone": {"string"},
    "dst": {"object", "null"},
    "paused": {"boolean"},
    "misfire_grace_seconds": {"integer"},
    "coalesce": {"boolean"},
    "max_concurrent_runs": {"integer"},
    "jitter_seconds": {"integer"},
    # A number is a Unix time to the loader (pydantic's lax datetime), see the schema.
    "start": {"string", "null", "integer", "number"},
    "end": {"string", "null", "integer", "number"},
    "retries": {"integer"},
    "retry_delay_seconds": {"integer"},
    "time_limit_seconds": {"integer", "null"},
    "expires_seconds": {"integer", "null"},
    "idempotency_key": {"string", "null"},
    "description": {"string", "null"},
    "owner": {"string", "null"},
    "labels": {"object"},
}
SAMPLES: dict[str, object] = {
    "string": "text",
    "integer": 7,
    "number": 2.5,
    "boolean": True,
    "null": None,
    "array": ["a"],
    "object": {"a": "b"},
}
# Numbers out of the model's range, per field.
OUT_OF_RANGE: dict[str, list[int]] = {
    "misfire_grace_seconds": [-1, 31_536_001],
    "jitter_seconds": [-1, 31_536_001],
    "retry_delay_seconds": [-1, 31_536_001],
    "max_concurrent_runs": [0, -3, 1001],
    "retries": [-1, 101],
    "time_limit_seconds": [0, -1, 86_401],
    "expires_seconds": [0, -1, 31_536_001],
}
# Not "a\n": the oracle's `pattern` is Python's re.search, whose `$` also matches before
# a final newline; ECMA-262's (an editor's) does not, nor does the loader's.
BAD_NAMES = ["", "Invoice", "-lead", "trail-", "trail.", "has space", "a/b", "é", "x" * 129, "a_"]
BAD_TASKS = ["", "nodot", "1abc.x", "a..b", "a.b.", ".a.b", "a.b-c", "a b.c"]


@st.composite
def broken_docs(draw: st.DrawFn) -> tuple[str, Doc]:
    """(kind of breakage, document)."""
    doc = draw(valid_docs())
    kind = draw(st.sampled_from(sorted(BREAKERS)))
    BREAKERS[kind](draw, doc)
    return kind, doc


def _unknown_key(draw: st.DrawFn, mapping: dict[str, Any], known: set[str]) -> None:
    key = draw(st.text(string.ascii_letters + "_-", min_size=1, max_size=10))
    if key in known:
        key = key + "_typo"
    mapping[key] = draw(json_scalars)


def _wrong_type(draw: st.DrawFn, doc: Doc) -> None:
    field = draw(st.sampled_from(sorted(FIELD_TYPES)))
    wrong = sorted(set(SAMPLES) - FIELD_TYPES[field])
    doc[field] = SAMPLES[draw(st.sampled_from(wrong))]


_CRON_MAP_KEYS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")


def _nested_unknown(draw: st.DrawFn, doc: Doc) -> None:
    schedule = doc["schedule"]
    places: list[tuple[dict[str, Any], set[str]]] = [(schedule, {"cron", "interval", "at"})]
    if isinstance(schedule.get("cron"), dict):
        places.append((schedule["cron"], set(_CRON_MAP_KEYS)))
    if isinstance(schedule.get("interval"), dict):
        places.append((schedule["interval"], set(UNITS)))
    if isinstance(doc.get("dst"), dict):
        places.append((doc["dst"], {"gap", "repeat"}))
    mapping, known = draw(st.sampled_from(places))
    _unknown_key(draw, mapping, known)


def _two_kinds(draw: st.DrawFn, doc: Doc) -> None:
    doc["schedule"] = {"cron": "* * * * *", "interval": {"minutes": 5}, "at": "2030-01-01"}
    for key in draw(st.lists(st.sampled_from(["cron", "interval", "at"]), max_size=1)):
        del doc["schedule"][key]


def _wrong_nested_type(draw: st.DrawFn, doc: Doc) -> None:
    where = draw(st.sampled_from(["cron", "interval", "at", "unit", "map", "dst", "item"]))
    value = draw(st.sampled_from([True, None, ["x"], {"a": 1}, 2.5]))
    if where == "unit":
        doc["schedule"] = {"interval": {draw(st.sampled_from(UNITS)): value}}
    elif where == "map":
        doc["schedule"] = {"cron": {draw(st.sampled_from(_CRON_MAP_KEYS)): value or False}}
    elif where == "dst":
        doc["schedule"] = {"cron": "0 6 * * *"}
        doc["dst"] = {draw(st.sampled_from(["gap", "repeat"])): value or 3}
    elif where == "item":
        doc["previous_names"] = [value]
    elif where == "at":
        doc["schedule"] = {"at": value if value is not None else True}
    else:
        doc["schedule"] = {where: value if value is not None else 3}


BREAKERS: dict[str, Callable[[st.DrawFn, Doc], None]] = {
    "unknown field": lambda draw, doc: _unknown_key(draw, doc, set(JobSpec.model_fields)),
    "forbidden option": lambda draw, doc: doc.update(
        {draw(st.sampled_from(sorted(FORBIDDEN_OPTIONS))): "x"}
    ),
    "unknown nested field": _nested_unknown,
    "wrong type": _wrong_type,
    "wrong nested type": _wrong_nested_type,
    "missing field": lambda draw, doc: doc.pop(draw(st.sampled_from(["name", "task", "schedule"]))),
    "schedule kinds": _two_kinds,
    "out of range": lambda draw, doc: doc.update(
        {
            (field := draw(st.sampled_from(sorted(OUT_OF_RANGE)))): draw(
                st.sampled_from(OUT_OF_RANGE[field])
            )
        }
    ),
    "negative interval": lambda draw, doc: doc.update(
        {"schedule": {"interval": {draw(st.sampled_from(UNITS)): -1}}}
    ),
    "empty interval": lambda draw, doc: doc.update(
        {
            "schedule": {
                "interval": draw(st.sampled_from([{}, {"minutes": 0}, {"days": 0, "seconds": 0}]))
            }
        }
    ),
    "bad name": lambda draw, doc: doc.update({"name": draw(st.sampled_from(BAD_NAMES))}),
    "bad previous name": lambda draw, doc: doc.update(
        {"previous_names": [draw(st.sampled_from(BAD_NAMES))]}
    ),
    "bad task": lambda draw, doc: doc.update({"task": draw(st.sampled_from(BAD_TASKS))}),
    "label not text": lambda draw, doc: doc.update(
        {"labels": {"team": draw(st.sampled_from([1, True, None, ["a"], {"a": "b"}, 2.5]))}}
    ),
    "dst out of enum": lambda draw, doc: doc.update(
        {
            "schedule": {"cron": "0 6 * * *"},
            "dst": {
                draw(st.sampled_from(["gap", "repeat"])): draw(
                    st.sampled_from(["", "Shift", "first", "never", "both "])
                )
            },
        }
    ),
    "bad time": lambda draw, doc: doc.update(
        {
            draw(st.sampled_from(["start", "end"])): draw(
                st.sampled_from(["tomorrow", "2030/12/31", "31.12.2030", "2030-12-31T", "noon"])
            )
        }
    ),
    "unknown placeholder": lambda draw, doc: doc.update(
        {"idempotency_key": draw(st.sampled_from(["{jobs}", "{job}-{ date}", "{}", "{{job}}"]))}
    ),
    # Semantic-only breakages follow (see SEMANTIC_ONLY).
    "cron syntax": lambda draw, doc: doc.update(
        {"schedule": {"cron": draw(st.sampled_from(["* * *", "61 * * * *", "", "@daily x"]))}}
    ),
    "cron map value": lambda draw, doc: doc.update(
        {"schedule": {"cron": {"hour": draw(st.sampled_from([24, -1, "25", "x"]))}}}
    ),
    "cron never fires": lambda draw, doc: doc.update({"schedule": {"cron": "0 0 31 2 *"}}),
    "unknown zone": lambda draw, doc: doc.update(
        {"timezone": draw(st.sampled_from(["Mars/Olympus", "localtime", "", "utc+1"]))}
    ),
    "unknown queue": lambda draw, doc: doc.update({"queue": "urgent"}),
    "task not allowed": lambda draw, doc: doc.update(
        {"task": draw(st.sampled_from(["celery.backend_cleanup", "other.task"]))}
    ),
    "start after end": lambda draw, doc: doc.update(
        {"start": "2031-01-01T00:00:00", "end": "2030-01-01T00:00:00"}
    ),
    "dst without cron": lambda draw, doc: doc.update(
        {"schedule": {"interval": {"minutes": 5}}, "dst": {"gap": "skip"}}
    ),
    "integral float": lambda draw, doc: doc.update(
        {draw(st.sampled_from(sorted(OUT_OF_RANGE))): 5.0}
    ),
    "time out of range": lambda draw, doc: doc.update(
        {"start": draw(st.sampled_from(["2030-13-01", "2030-02-30T00:00:00", "2030-01-01T25:00"]))}
    ),
}

# What only the loader can tell, and why the schema cannot.
SEMANTIC_ONLY: dict[str, str] = {
    "cron syntax": "a cron expression's grammar (fields, ranges, names, L/W/#) is cron.py's",
    "cron map value": "a map field's text is a cron field: the same grammar as the string",
    "cron never fires": "whether a cron matches a date is a calendar search (31 February)",
    "unknown zone": "the IANA database (and the host-dependent names) varies with tzdata",
    "unknown queue": "the queues are configuration (RECONCILER_QUEUES), not the format",
    "task not allowed": "the allowlist is configuration (RECONCILER_TASK_ALLOWLIST)",
    "start after end": "comparing two times, each read in the job's zone",
    "integral float": "JSON Schema's integer includes 5.0; YAML 1.2 reads `5.0` as a float",
    "time out of range": "a calendar check (months, days of the month, hours)",
}


def test_semantic_only_kinds_are_breakers() -> None:
    assert set(SEMANTIC_ONLY) <= set(BREAKERS)


@ORACLE
@given(valid_docs(), st.booleans())
def test_the_schema_accepts_what_the_loader_accepts(doc: Doc, plain_times: bool) -> None:
    accepted, diagnostics = loader_accepts(doc, plain_times=plain_times)
    # The generator's own check: these are valid jobs, but for a field map that names
    # no date (week 5 of a year with day 31 in February...), which only a search finds.
    assert accepted or all(d.startswith("CRON_NEVER_FIRES") for d in diagnostics), diagnostics
    assert schema_errors(doc) == []


@ORACLE
@given(broken_docs(), st.booleans())
def test_the_schema_refuses_what_is_structurally_wrong(
    broken: tuple[str, Doc], plain_times: bool
) -> None:
    kind, doc = broken
    accepted, diagnostics = loader_accepts(doc, plain_times=plain_times)
    errors = schema_errors(doc)
    if accepted:
        assert errors == [], f"{kind}: the loader accepts it, the schema does not"
        return
    if kind in SEMANTIC_ONLY:
        return
    assert errors, f"{kind}: the loader refuses it ({diagnostics}), the schema accepts it"


class _Yaml12Times(yaml.SafeLoader):
    """PyYAML without its timestamp resolver: times stay text, as YAML 1.2 has them."""


_Yaml12Times.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@pytest.mark.parametrize(
    "text",
    [
        # The README's examples, as written there (the task is one on SETTINGS' allowlist).
        "name: invoice-sweep\ntask: acme.write_report\nschedule:\n  cron: '0 6 * * 1-5'\n",
        "name: x\ntask: acme.t\nschedule:\n  cron: '*/30 * * * * *'\n",
        "name: x\ntask: acme.t\nschedule:\n  cron: {second: '*/30'}\n",
        "name: x\ntask: acme.t\nschedule:\n  interval: {minutes: 5}\n",
        "name: x\ntask: acme.t\nschedule:\n  at: 2030-12-31T23:00:00\n",
        "name: x\ntask: acme.t\nschedule: {interval: {minutes: 5}}\nstart: 2027-01-01\n",
    ],
)
def test_readme_examples_pass_both(text: str) -> None:
    outcome = load_bytes("job.yaml", text.encode(), settings=SETTINGS, now=NOW)
    assert outcome.jobs, outcome.diagnostics
    assert schema_errors(yaml.load(text, Loader=_Yaml12Times)) == []


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "jobs.d").glob("**/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_shipped_jobs_pass_the_schema(path: Path) -> None:
    documents = yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Yaml12Times)
    for document in filter(None, documents):
        assert schema_errors(document) == []
