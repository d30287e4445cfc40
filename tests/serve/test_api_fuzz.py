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

from tests.serve.admin_kb import ADMIN_HEADERS

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.slow,  # fuzzes every route from the OpenAPI schema
]


@pytest.fixture(scope="module")
def fuzz_client(embedder, tmp_path_factory):
    from ragtune.settings import load_settings
    from tests.serve.admin_kb import admin_environ, admin_test_client, build_app, write_kb

    root = tmp_path_factory.mktemp("fuzz")
    app_settings = load_settings(environ=admin_environ(root / "data", write_kb(root / "kb")))
    app = build_app(app_settings, embedder)
    with admin_test_client(app) as client:  # runs the lifespan: the services the routes use exist while the cases run
        yield client


@pytest.fixture(scope="module")
def api_schema(fuzz_client):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_client.app)


# Rules a JSON schema cannot state, so a schema-valid request may rightly get a 4xx: an OpenAI-style
# conversation must end with the user's question; an uploaded file's name, type and content are
# checked (415, 422) beyond what the schema says of a binary part. Every other check still runs there.
EXCLUDED = {
    "POST /v1/chat/completions": [positive_data_acceptance],
    "POST /v1/admin/documents": [positive_data_acceptance],
    "PUT /v1/admin/documents/{doc_id}": [positive_data_acceptance],
}


# Operations taking integers get many more cases: 25 did not reach the huge offset that once got
# past the schema to the store (a 500); the extra cases cost a few seconds (read-only routes).
EXAMPLES, INTEGER_EXAMPLES = 25, 300


def takes_integers(operation) -> bool:
    return any(p.definition.get("schema", {}).get("type") == "integer" for p in operation.query)


def fuzz(operation) -> None:
    excluded = EXCLUDED.get(operation.label, [])
    examples = INTEGER_EXAMPLES if takes_integers(operation) else EXAMPLES

    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def check(case):
        case.call_and_validate(headers=ADMIN_HEADERS, excluded_checks=excluded)

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


# An integer past SQLite's 64-bit range reached the store and was a 500 (found by fuzzing).
HUGE = "1654184921258780114240405504"


def test_integers_past_the_stores_range_are_422_not_500(fuzz_client):
    listed = fuzz_client.get(f"/v1/admin/conversations?offset={HUGE}&limit=115&rating=down")
    assert listed.status_code == 422, listed.text
    assert fuzz_client.get(f"/v1/admin/conversations?limit={HUGE}").status_code == 422
    assert fuzz_client.get(f"/v1/admin/jobs?limit={HUGE}").status_code == 422
    rating = fuzz_client.post("/v1/feedback", json={"session_id": "s1", "turn": int(HUGE), "rating": "up"})
    assert rating.status_code == 422, rating.text
    completion = {"messages": [{"role": "user", "content": "refund?"}], "max_tokens": int(HUGE)}
    assert fuzz_client.post("/v1/chat/completions", json=completion).status_code == 422
    # Every integer parameter the schema lists has a maximum, so the fuzzer's out-of-range cases are 422s too.
    schema = fuzz_client.get("/openapi.json").json()
    unbounded = [
        f"{method.upper()} {path} {p['name']}"
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        for p in op.get("parameters", [])
        if p.get("schema", {}).get("type") == "integer" and "maximum" not in p["schema"]
    ]
    assert not unbounded, unbounded
