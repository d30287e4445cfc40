"""The chat API end to end: real retrieval over knowledge/, the real llama.cpp engine on the tiny
GGUF built by the suite, and the Ollama engine against a stand-in of Ollama's HTTP API."""

import json

import pytest

from ragtune.answer import Answer
from serve.chat import NO_EVIDENCE_ANSWER

from ..counting_engine import CountingEngine


def llama_engine(settings):
    from serve.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(settings, settings.llm.gguf_path)


def test_grounded_answer_from_the_real_llama_cpp_engine(serve_settings, make_client):
    client = make_client(serve_settings)
    response = client.post("/v1/chat", json={"message": "How long do I have to ask for a refund on an annual plan?"})
    assert response.status_code == 200, response.text
    body = response.json()
    Answer.model_validate({k: body[k] for k in ("answer", "citations", "confidence", "handoff")})
    assert body["mode"] == "generated"
    assert body["model"] == "tiny-llama"
    used = set(body["context"]["used"])
    assert used and {c["id"] for c in body["citations"]} <= used
    assert "policies/refund-policy.pdf" in {s["path"] for s in body["sources"]}
    assert {s["id"] for s in body["sources"]} == used
    assert body["index_version"] == client.get("/readyz").json()["index_version"]
    assert body["timings_ms"]["generate_ms"] > 0


def test_no_evidence_means_a_handoff_without_asking_the_model(serve_settings, make_client):
    engine = CountingEngine(llama_engine(serve_settings))
    client = make_client(serve_settings, engine=engine)
    body = client.post("/v1/chat", json={"message": "What is the boiling point of tungsten on Jupiter?"}).json()
    assert body["mode"] == "no_evidence"
    assert body["handoff"] is True and body["confidence"] == "low"
    assert body["answer"] == NO_EVIDENCE_ANSWER and body["citations"] == []
    assert engine.calls == 0


def test_context_is_packed_into_the_window_and_omissions_reported(serve_settings, make_client):
    small = serve_settings.model_copy(update={"llm": serve_settings.llm.model_copy(update={"n_ctx": 1100, "max_tokens": 300})})
    client = make_client(small)
    body = client.post("/v1/chat", json={"message": "What happens to my files when I cancel or my payment fails?"}).json()
    assert "context" in body, body
    context = body["context"]
    assert context["omitted"], "a 1100-token window cannot hold every relevant chunk"
    assert context["prompt_tokens"] + 300 <= 1100
    assert not set(context["omitted"]) & set(context["used"])


def test_question_too_long_for_the_window_is_a_413(serve_settings, make_client):
    small = serve_settings.model_copy(update={"llm": serve_settings.llm.model_copy(update={"n_ctx": 600, "max_tokens": 300})})
    client = make_client(small)
    question = "refund annual plan cancel " * 140
    response = client.post("/v1/chat", json={"message": question})
    assert response.status_code == 413
    assert "llm.n_ctx" in response.json()["detail"]


def test_follow_up_is_rewritten_and_history_kept(serve_settings, make_client):
    client = make_client(serve_settings)
    first = client.post("/v1/chat", json={"message": "How long is version history kept on the Pro plan?"}).json()
    follow = client.post("/v1/chat", json={"message": "And on Business?", "session_id": first["session_id"]}).json()
    assert follow["session_id"] == first["session_id"]
    assert follow["query"].startswith("How long is version history kept") and follow["query"].endswith("And on Business?")
    assert follow["mode"] == "generated"
    paths = {s["path"] for s in follow["sources"]}
    assert paths & {"policies/data-retention.docx", "products/plans-comparison.html"}


def _stream_events(client, message: str) -> list[tuple[str, dict]]:
    """POST a streamed chat and return its server-sent events as (event, data) pairs."""
    with client.stream("POST", "/v1/chat", json={"message": message, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        blocks = [block for block in response.read().decode().split("\n\n") if block.strip()]
    return [(b.split("\n")[0].removeprefix("event: "), json.loads(b.split("\n")[1].removeprefix("data: "))) for b in blocks]


def test_streaming_sends_deltas_then_the_validated_answer(serve_settings, make_client):
    parsed = _stream_events(make_client(serve_settings), "How do I reset my password?")
    kinds = [k for k, _ in parsed]
    assert kinds[-1] == "answer" and kinds.count("answer") == 1
    assert "delta" in kinds and all(k == "delta" for k in kinds[:-1])
    final = parsed[-1][1]
    Answer.model_validate({k: final[k] for k in ("answer", "citations", "confidence", "handoff")})
    assert final["timings_ms"]["first_token_ms"] > 0


def test_retrieval_only_mode_without_a_model(serve_settings, make_client):
    client = make_client(serve_settings, engine=None)
    ready = client.get("/readyz").json()
    assert ready["mode"] == "retrieval_only" and ready["status"] == "ready"
    body = client.post("/v1/chat", json={"message": "What are the API rate limits?"}).json()
    assert body["mode"] == "retrieval_only" and body["handoff"] is True and body["model"] is None
    assert body["citations"] and body["citations"][0]["id"] == body["sources"][0]["id"]
    assert "600 requests per minute" in body["answer"]


@pytest.mark.parametrize(
    ("payload", "status", "phrase"),
    [
        ({"message": ""}, 422, "message"),
        ({"message": "   "}, 400, "empty"),
        ({"message": "x" * 5000}, 413, "limit is 4000"),
        ({"message": "refund", "filters": {"colour": "red"}}, 400, "unknown filter"),
        ({"message": "refund", "session_id": "bad id!"}, 400, "session_id"),
        ({"message": "refund", "surprise": 1}, 422, "surprise"),
        ({}, 422, "message"),
    ],
)
def test_invalid_requests_get_a_4xx_with_a_reason(serve_settings, make_client, payload, status, phrase):
    client = make_client(serve_settings, engine=None)
    response = client.post("/v1/chat", json=payload)
    assert response.status_code == status
    assert phrase in response.json()["detail"]


def test_health_and_openapi(serve_settings, make_client):
    client = make_client(serve_settings, engine=None)
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    assert {"/v1/chat", "/v1/chat/completions", "/v1/models", "/healthz", "/readyz"} <= set(spec["paths"])
    assert "ChatResponse" in spec["components"]["schemas"]


# ---- Ollama engine, against the stand-in --------------------------------------------------

def _reply(ids, answer="You can cancel within 30 days for a full refund."):
    return json.dumps({"answer": answer, "citations": [{"id": i, "quote": "within 30 days"} for i in ids], "confidence": "high", "handoff": False})


def test_ollama_request_carries_num_ctx_schema_and_keep_alive(ollama_settings, ollama_stand_in, make_client):
    ollama_stand_in.replies = [_reply([])]
    client = make_client(ollama_settings)
    body = client.post("/v1/chat", json={"message": "How long do I have to ask for a refund on an annual plan?"}).json()
    assert body["mode"] == "generated" and body["model"] == "ragtune"
    sent = ollama_stand_in.requests_for_chat()[0]
    assert sent["options"]["num_ctx"] == 4096
    assert sent["options"]["repeat_penalty"] == ollama_settings.llm.repeat_penalty
    assert sent["keep_alive"] == "10m"
    enum = sent["format"]["$defs"]["Citation"]["properties"]["id"]["enum"]
    assert set(enum) == set(body["context"]["used"])
    assert sent["messages"][0]["role"] == "system" and enum[0] in sent["messages"][0]["content"]


def test_citations_outside_the_retrieved_chunks_are_dropped(ollama_settings, ollama_stand_in, make_client, retriever):
    good = retriever.search("How long do I have to ask for a refund on an annual plan?").relevant(0.3)[0].id
    ollama_stand_in.replies = [_reply([good, "not-a-real-chunk"])]
    client = make_client(ollama_settings)
    body = client.post("/v1/chat", json={"message": "How long do I have to ask for a refund on an annual plan?"}).json()
    assert [c["id"] for c in body["citations"]] == [good]
    assert body["context"]["dropped_citations"] == ["not-a-real-chunk"]
    assert [s["id"] for s in body["sources"] if s["cited"]] == [good]


def test_a_citation_of_the_wrong_source_is_moved_to_the_one_that_says_it(ollama_settings, ollama_stand_in, make_client, retriever):
    question = "How long do I have to ask for a refund on an annual plan?"
    hits = retriever.search(question).relevant(0.3)
    right = next(h for h in hits if h.chunk.doc_id == "policies/refund-policy.pdf")
    wrong = next(h for h in reversed(hits) if h.chunk.doc_id != "policies/refund-policy.pdf")
    # The answer restates the refund policy, but the "model" cites another of its sources.
    ollama_stand_in.replies = [_reply([wrong.id], answer=right.chunk.text[:300])]
    client = make_client(ollama_settings)
    body = client.post("/v1/chat", json={"message": question}).json()
    assert [c["id"] for c in body["citations"]] == [right.id]
    assert body["context"]["corrected_citations"] == [{"from": wrong.id, "to": right.id}]
    assert " ".join(body["citations"][0]["quote"].split()) in " ".join(right.chunk.text.split())
    assert [s["path"] for s in body["sources"] if s["cited"]] == ["policies/refund-policy.pdf"]

    # With the check switched off, the model's citation stands as it gave it.
    off = ollama_settings.model_copy(update={"chat": ollama_settings.chat.model_copy(update={"verify_citations": False})})
    body = make_client(off).post("/v1/chat", json={"message": question}).json()
    assert [c["id"] for c in body["citations"]] == [wrong.id] and body["context"]["corrected_citations"] == []


def test_invalid_reply_is_retried_once_then_a_clear_502(ollama_settings, ollama_stand_in, make_client):
    ollama_stand_in.replies = ['{"answer": "half', _reply([])]
    client = make_client(ollama_settings)
    ok = client.post("/v1/chat", json={"message": "How do I reset my password?"})
    assert ok.status_code == 200 and len(ollama_stand_in.requests_for_chat()) == 2
    assert "rejected" in ollama_stand_in.requests_for_chat()[1]["messages"][-1]["content"]

    ollama_stand_in.requests.clear()
    ollama_stand_in.replies = ["Sure! The answer is yes."]
    bad = client.post("/v1/chat", json={"message": "How do I reset my password?"})
    assert bad.status_code == 502
    assert "rejected twice" in bad.json()["detail"]


def test_model_server_down_mid_flight_gives_503(ollama_settings, ollama_stand_in, make_client):
    ollama_stand_in.replies = [_reply([])]
    client = make_client(ollama_settings)
    assert client.get("/readyz").json()["mode"] == "generated"
    ollama_stand_in.fail_chat = True
    response = client.post("/v1/chat", json={"message": "How do I reset my password?"})
    assert response.status_code == 503
    assert "failed during the request: llama runner process has terminated" in response.json()["detail"]


def test_no_model_server_means_flagged_retrieval_only_answers(ollama_settings, make_client):
    down = ollama_settings.model_copy(update={"ollama": ollama_settings.ollama.model_copy(update={"host": "http://127.0.0.1:9", "timeout_s": 2})})
    client = make_client(down)
    ready = client.get("/readyz").json()
    assert ready["mode"] == "retrieval_only" and "is not answering" in ready["detail"]
    body = client.post("/v1/chat", json={"message": "How do I reset my password?"}).json()
    assert body["mode"] == "retrieval_only" and body["handoff"] is True and body["citations"]


def test_unknown_ollama_model_is_reported_by_readyz(ollama_settings, make_client):
    other = ollama_settings.model_copy(update={"ollama": ollama_settings.ollama.model_copy(update={"model": "missing"})})
    client = make_client(other)
    ready = client.get("/readyz").json()
    assert ready["mode"] == "retrieval_only" and ready["model"] == "missing"
    assert "has no model 'missing': run `ollama create missing -f Modelfile`" in ready["detail"]


def test_ollama_streaming_sends_the_answer_text_as_it_arrives(ollama_settings, ollama_stand_in, make_client):
    answer = "Open the sign-in page, choose \"Forgot password\" and follow the link we email you."
    ollama_stand_in.replies = [_reply([], answer=answer)]
    parsed = _stream_events(make_client(ollama_settings), "How do I reset my password?")
    deltas = [data["text"] for kind, data in parsed if kind == "delta"]
    assert len(deltas) > 3, "the stand-in sends 7 characters a line: the text must arrive in pieces"
    assert "".join(deltas) == answer
    assert [kind for kind, _ in parsed][-1] == "answer" and parsed[-1][1]["answer"] == answer
    sent = ollama_stand_in.requests_for_chat()
    assert len(sent) == 1 and sent[0]["stream"] is True and sent[0]["options"]["num_ctx"] == 4096
