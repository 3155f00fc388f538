"""The committed JSON Schema is generated from the models, and kept fresh."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.spec.model import JobSpec
from reconciler.spec.schema import SCHEMA_FILE, job_schema, render_schema

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_is_not_stale() -> None:
    committed = (ROOT / SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == render_schema(), "run: reconcile schema --output schemas/job.v1.json"


def test_schema_is_deterministic_and_self_describing() -> None:
    assert render_schema() == render_schema()
    schema = json.loads(render_schema())
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["$id"].endswith("job.v1.json")
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(JobSpec.model_fields)
    assert set(schema["required"]) == {"name", "task", "schedule"}


def test_schema_keys_are_sorted() -> None:
    text = render_schema()
    assert text == json.dumps(job_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
