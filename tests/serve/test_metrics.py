"""`GET /metrics`: Prometheus counters and histograms that move with real requests, one registry per app."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serve.metrics import Metrics

REFUND = "How long do I have to ask for a refund on an annual plan?"


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _reply(ids, answer="Annual plans are not refunded after 30 days; the plan stays active until the end of the paid year."):
    return json.dumps({"answer": answer, "sources": list(ids)})


@pytest.mark.slow
def test_a_real_chat_moves_the_counters_and_histograms(serve_settings, make_client):
    client = make_client(serve_settings)
    before = scrape(client)
    assert value(before, "ragtune_http_requests_total", method="POST", route="/v1/chat", status="200") == 0
    assert value(before, "ragtune_answers_total", mode="generated") == 0

    body = client.post("/v1/chat", json={"message": REFUND}).json()
    assert body["mode"] == "generated", body
    after = scrape(client)
    assert value(after, "ragtune_http_requests_total", method="POST", route="/v1/chat", status="200") == 1
    assert value(after, "ragtune_http_requests_total", method="GET", route="/metrics", status="200") == 1  # the first scrape
    assert value(after, "ragtune_http_request_duration_seconds_count", method="POST", route="/v1/chat") == 1
    # The request's latency covers the whole answer the service timed.
    assert value(after, "ragtune_http_request_duration_seconds_sum", method="POST", route="/v1/chat") >= (
        body["timings_ms"]["total_ms"] / 1000
    )
    assert value(after, "ragtune_retrieval_seconds_count") == 1
    assert value(after, "ragtune_retrieval_seconds_sum") > 0
    retries = value(after, "ragtune_generation_retries_total")
    assert value(after, "ragtune_generation_seconds_count") == 1 + retries
    assert value(after, "ragtune_generation_seconds_sum") > 0
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert value(after, "ragtune_prompt_tokens_total") == usage["prompt_tokens"]
    assert value(after, "ragtune_completion_tokens_total") == usage["completion_tokens"]
    assert value(after, "ragtune_answers_total", mode="generated") == 1
    assert value(after, "ragtune_answers_total", mode="extractive") == 0
    assert value(after, "ragtune_index_info", version=body["index_version"]) == 1
    assert value(after, "ragtune_model_info", engine="llamacpp", model="tiny-llama") == 1


@pytest.mark.slow
def test_a_streamed_answer_counts_its_generated_tokens(serve_settings, make_client):
    client = make_client(serve_settings)
    with client.stream("POST", "/v1/chat", json={"message": "How do I reset my password?", "stream": True}) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    final = json.loads(events[-1][len("data: ") :])
    assert final["mode"] == "generated"
    assert final["usage"]["completion_tokens"] > 0
    samples = scrape(client)
    assert value(samples, "ragtune_completion_tokens_total") == final["usage"]["completion_tokens"]
    assert value(samples, "ragtune_prompt_tokens_total") == final["usage"]["prompt_tokens"]
    assert value(samples, "ragtune_http_request_duration_seconds_count", method="POST", route="/v1/chat") == 1


def test_handoffs_are_counted_by_reason_and_cost_no_tokens(serve_settings, make_client):
    client = make_client(serve_settings, engine=None)
    no_evidence = client.post("/v1/chat", json={"message": "What is the boiling point of tungsten on Jupiter?"}).json()
    near_miss = client.post("/v1/chat", json={"message": "How much is the Family plan?"}).json()
    answered = client.post("/v1/chat", json={"message": "What are the API rate limits?"}).json()
    assert (no_evidence["mode"], near_miss["mode"], answered["mode"]) == ("no_evidence", "handoff", "extractive")
    samples = scrape(client)
    assert value(samples, "ragtune_answers_total", mode="no_evidence") == 1
    assert value(samples, "ragtune_answers_total", mode="handoff") == 1
    assert value(samples, "ragtune_answers_total", mode="extractive") == 1
    assert value(samples, "ragtune_handoffs_total", reason="no_evidence") == 1
    assert value(samples, "ragtune_handoffs_total", reason=near_miss["context"]["handoff_reason"]) == 1
    assert value(samples, "ragtune_generation_seconds_count") == 0
    assert value(samples, "ragtune_completion_tokens_total") == 0
    assert value(samples, "ragtune_model_info", engine="none", model="none") == 1
    assert value(samples, "ragtune_retrieval_seconds_count") == 3


def test_invalid_replies_retries_and_citation_corrections_are_counted(ollama_settings, ollama_stand_in, make_client):
    generative = ollama_settings.model_copy(
        update={"chat": ollama_settings.chat.model_copy(update={"answer_mode": "generative"})}
    )
    # The first reply breaks the JSON contract; the retry cites a source that does not exist.
    ollama_stand_in.replies = ["this is not JSON", _reply(["S9"])]
    client = make_client(generative)
    body = client.post("/v1/chat", json={"message": REFUND}).json()
    assert body["mode"] == "generated" and body["context"]["dropped_citations"] == ["S9"], body
    # Both generations are in the usage: the stand-in reports 100 prompt and 20 generated tokens each.
    assert body["usage"] == {"prompt_tokens": 200, "completion_tokens": 40, "total_tokens": 240, "cached_prompt_tokens": 0}
    samples = scrape(client)
    assert value(samples, "ragtune_invalid_replies_total") == 1
    assert value(samples, "ragtune_generation_retries_total") == 1
    assert value(samples, "ragtune_generation_seconds_count") == 2
    assert value(samples, "ragtune_citation_corrections_total", kind="dropped") == 1
    assert value(samples, "ragtune_citation_corrections_total", kind="filled") == 1  # no valid id left: all evidence cited
    assert value(samples, "ragtune_prompt_tokens_total") == 200
    assert value(samples, "ragtune_model_info", engine="ollama", model="ragtune") == 1


def test_verification_rejections_are_counted_by_reason(ollama_settings, ollama_stand_in, make_client):
    client = make_client(ollama_settings)  # auto mode: a rejected reply gives way to the extractive answer
    ollama_stand_in.replies = [_reply(["S1"], answer="You can cancel within 90 days for a full refund.")]
    body = client.post("/v1/chat", json={"message": REFUND}).json()
    assert body["mode"] == "extractive" and "number" in body["verification"]["reasons"]
    ollama_stand_in.replies = ["not JSON either"]
    body = client.post("/v1/chat", json={"message": REFUND}).json()
    assert body["verification"]["reasons"] == ["invalid"]
    samples = scrape(client)
    assert value(samples, "ragtune_verification_rejections_total", reason="number") == 1
    assert value(samples, "ragtune_invalid_replies_total") == 1
    assert value(samples, "ragtune_generation_retries_total") == 0  # auto mode does not retry
    assert value(samples, "ragtune_answers_total", mode="extractive") == 2


def test_routes_are_labelled_by_template_and_unknown_paths_share_one_label(serve_settings, make_client):
    client = make_client(serve_settings, engine=None)
    assert client.get("/no/such/path").status_code == 404
    assert client.get("/another/missing").status_code == 404
    assert client.post("/v1/chat", json={}).status_code == 422
    samples = scrape(client)
    assert value(samples, "ragtune_http_requests_total", method="GET", route="unmatched", status="404") == 2
    assert value(samples, "ragtune_http_requests_total", method="POST", route="/v1/chat", status="422") == 1
    assert not any("/no/such/path" in str(labels) for _, labels in samples)


def test_two_apps_do_not_share_a_registry(serve_settings, make_client):
    first = make_client(serve_settings, engine=None)
    second = make_client(serve_settings, engine=None)
    assert first.app.state.metrics.registry is not second.app.state.metrics.registry
    for _ in range(3):
        assert first.get("/healthz").status_code == 200
    assert value(scrape(first), "ragtune_http_requests_total", method="GET", route="/healthz", status="200") == 3
    assert value(scrape(second), "ragtune_http_requests_total", method="GET", route="/healthz", status="200") == 0
    Metrics(), Metrics()  # a process-global registry would refuse the second set of names


def test_ingest_jobs_are_counted_by_outcome(serve_settings, make_client):
    client = make_client(serve_settings, engine=None)
    metrics = client.app.state.metrics
    metrics.ingest_job_finished("succeeded", seconds=12.5)
    metrics.ingest_job_finished("failed")
    metrics.ingest_job_finished("succeeded", seconds=3.0)
    samples = scrape(client)
    assert value(samples, "ragtune_ingest_jobs_total", outcome="succeeded") == 2
    assert value(samples, "ragtune_ingest_jobs_total", outcome="failed") == 1
    assert value(samples, "ragtune_ingest_job_duration_seconds_count") == 2
    assert value(samples, "ragtune_ingest_job_duration_seconds_sum") == 15.5


def test_no_created_series_and_head_answers(serve_settings, make_client):
    """Each counter and histogram once, without a `_created` timestamp series beside it (they
    doubled the page, issue 19), and HEAD /metrics answers like GET, without a body."""
    client = make_client(serve_settings, engine=None)
    assert client.get("/healthz").status_code == 200
    text = client.get("/metrics").text
    created = [line for line in text.splitlines() if "_created" in line]
    assert created == [], created[:3]
    assert 'ragtune_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'ragtune_answers_total{mode="generated"} 0.0' in text
    head = client.head("/metrics")
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/plain") and head.content == b""
