"""The JSON Schema of job format v1, generated from the pydantic models.

Committed as `schemas/job.v1.json` so editors can validate job files
(`# yaml-language-server: $schema=../schemas/job.v1.json`); a test fails when the
committed copy differs from `render_schema()`.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.spec.model import SCHEMA_VERSION, JobSpec

SCHEMA_ID = f"https://jobs-reconciler.dev/schemas/job.v{SCHEMA_VERSION}.json"
SCHEMA_FILE = f"schemas/job.v{SCHEMA_VERSION}.json"


def job_schema() -> dict[str, Any]:
    """The schema as data: pydantic's, with $schema, $id, title and description."""
    schema = JobSpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = f"jobs-reconciler job (format v{SCHEMA_VERSION})"
    schema["description"] = (
        "One scheduled job per YAML document in jobs.d/**/*.yaml. Unknown keys are errors."
    )
    return schema


def render_schema() -> str:
    """The schema as deterministic text: sorted keys, two-space indent, final newline."""
    return json.dumps(job_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
