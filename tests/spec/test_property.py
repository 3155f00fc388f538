"""Properties: the loader never raises on any input, and agrees with PyYAML on data."""

from __future__ import annotations

from datetime import UTC, datetime

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.settings import Settings
from reconciler.spec.diagnostics import CODES
from reconciler.spec.loader import assemble_result, load_bytes
from reconciler.spec.yamlsafe import parse_yaml

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SETTINGS = Settings(
    max_nesting_depth=8, queues=("default",), task_allowlist=("reconciler.tasks.*",)
)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["no", "on", "1:30", "0755", "1.10", "2024-01-01", "*/5 * * * *", "~"]),
)
# Text YAML 1.1 claims as a timestamp or a number, valid or not (2024-02-30, 5,000 digits).
claimed = st.one_of(
    st.from_regex(r"\A[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([ T][0-9]{1,2}:[0-9]{2}:[0-9]{2})?\Z"),
    st.from_regex(r"\A[-+]?[0-9][0-9_]{0,6000}\Z"),
    st.from_regex(r"\A[0-9]{1,3}(:[0-5]?[0-9]){1,3}(\.[0-9]+)?\Z"),
)
keys = st.one_of(
    st.sampled_from(["name", "task", "schedule", "cron", "interval", "at", "queue", "kwargs"]),
    st.text(max_size=10),
)
yaml_data = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=25,
)
job_like = st.fixed_dictionaries(
    {"name": st.text(max_size=12), "task": st.text(max_size=20), "schedule": yaml_data},
    optional={"queue": scalars, "timezone": scalars, "kwargs": yaml_data, "paused": scalars},
)


def assert_clean_outcome(data: bytes) -> None:
    outcome = load_bytes("f.yaml", data, settings=SETTINGS, now=NOW)
    result = assemble_result([outcome], [])
    for diagnostic in result.diagnostics:
        assert diagnostic.code in CODES
        assert diagnostic.line >= 0 and diagnostic.column >= 0


@PROPERTY
@given(st.text(max_size=300))
def test_any_text_gives_jobs_or_diagnostics(text: str) -> None:
    assert_clean_outcome(text.encode("utf-8", errors="surrogatepass"))


@PROPERTY
@given(st.lists(claimed, min_size=1, max_size=5))
def test_text_yaml_claims_as_typed_gives_jobs_or_diagnostics(values: list[str]) -> None:
    lines = "".join(f"k{number}: {value}\n" for number, value in enumerate(values))
    assert_clean_outcome(("name: x\ntask: a.b\nschedule: {cron: '* * * * *'}\n" + lines).encode())


@PROPERTY
@given(st.binary(max_size=300))
def test_any_bytes_give_jobs_or_diagnostics(data: bytes) -> None:
    assert_clean_outcome(data)


@PROPERTY
@given(st.lists(st.one_of(job_like, yaml_data), min_size=1, max_size=3), st.booleans())
def test_any_yaml_shaped_data_gives_jobs_or_diagnostics(
    documents: list[object], flow: bool
) -> None:
    text = yaml.safe_dump_all(documents, default_flow_style=flow, allow_unicode=True)
    assert_clean_outcome(text.encode())


@PROPERTY
@given(yaml_data)
def test_data_matches_pyyaml(data: object) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    expected = yaml.load(text, Loader=yaml.CSafeLoader)
    parsed = parse_yaml(text.encode(), path="f", max_depth=64)
    codes = {d.code for d in parsed.diagnostics}
    if not codes:
        assert [d.data for d in parsed.documents] == [expected]
    else:
        # Only keys YAML 1.1 reads as non-text (true, 1, null) may differ from PyYAML.
        assert codes == {"YAML_COERCION"}
