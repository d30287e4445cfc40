"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis).

Every operation the schema lists gets generated requests, valid and invalid: no 5xx, no unhandled
exception, and every response conforms to the schema (status codes, content types, bodies). The
app runs for real, composed as `ragtune serve` composes it (the admin API's ingester included), over
a small knowledge folder and index of its own, since the admin routes write to them; answers are
extractive (no model) so many cases fit in a short run; the model paths have their own tests.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.slow,  # fuzzes every route from the OpenAPI schema
]


@pytest.fixture(scope="module")
def api_schema(embedder, tmp_path_factory):
    from fastapi.testclient import TestClient

    from ragtune.settings import load_settings
    from tests.serve.admin_kb import admin_environ, build_app, write_kb

    root = tmp_path_factory.mktemp("fuzz")
    app_settings = load_settings(environ=admin_environ(root / "data", write_kb(root / "kb")))
    app = build_app(app_settings, embedder)
    with TestClient(app):  # runs the lifespan: the services the routes use exist while the cases run
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


# Rules a JSON schema cannot state, so a schema-valid request may rightly get a 4xx: an OpenAI-style
# conversation must end with the user's question; an uploaded file's name, type and content are
# checked (415, 422) beyond what the schema says of a binary part. Every other check still runs there.
EXCLUDED = {
    "POST /v1/chat/completions": [positive_data_acceptance],
    "POST /v1/admin/documents": [positive_data_acceptance],
    "PUT /v1/admin/documents/{doc_id}": [positive_data_acceptance],
}


def fuzz(operation) -> None:
    excluded = EXCLUDED.get(operation.label, [])

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def check(case):
        case.call_and_validate(excluded_checks=excluded)

    check()


def test_api_conforms_to_its_schema(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 5  # the schema lists the API; an empty one would pass vacuously
    failures: list[str] = []
    for operation in operations:
        try:
            fuzz(operation)
        except Exception as exc:  # collect every operation's first failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
