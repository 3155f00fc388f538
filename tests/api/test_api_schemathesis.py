"""Property-based run of the app's own OpenAPI (schemathesis 4): for generated valid AND
invalid requests to every operation, no server error and every response conforms to its
documented schema (status, media type and body).

The operations are driven from a plain test (hypothesis over `operation.as_strategy()`)
rather than `schemathesis.pytest.from_fixture`, whose 4.x release reads a pytest attribute
that pytest 9 removed (`Function._nodeid`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from api_seed import make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import response_schema_conformance

from reconciler.api import create_app

pytestmark = pytest.mark.services
EXAMPLES = 10
REDIS = "redis://127.0.0.1:6379/0"
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture
def api_schema(seeded_url: str, redis_prefix: str) -> Iterator[schemathesis.BaseSchema]:
    """The schema as the app serves it, bound to the app (requests go in-process). Every
    service is real and up: a 5xx here is a bug (503 counts as a server error)."""
    settings = make_settings(
        seeded_url,
        redis_url=REDIS,
        result_backend=REDIS,
        redis_prefix=redis_prefix,
        broker_url="amqp://guest:guest@127.0.0.1:5672//",
    )
    app = create_app(settings)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    shutdown_lifespans()  # close the app's pools before its database is dropped


def test_every_operation_conforms(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 12  # every route of the API is in its OpenAPI
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                # An operation without parameters has no invalid request to generate.
                if mode is GenerationMode.POSITIVE:
                    raise
