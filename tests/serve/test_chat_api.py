"""The chat API end to end: real retrieval over knowledge/, the real llama.cpp engine on the tiny
GGUF built by the suite, and the Ollama engine against a stand-in of Ollama's HTTP API."""

import json

import pytest

from ragtune.answer import Answer
from ragtune.grounding.messages import message
from serve.engines.counting import CountingEngine


def llama_engine(settings):
    from serve.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(settings, settings.llm.gguf_path)


@pytest.mark.slow
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
    # Sources are the relevant chunks whose sentences were scored; the evidence comes from them.
    assert used <= {s["id"] for s in body["sources"]} and used == {e["id"] for e in body["context"]["evidence"]}
    assert body["index_version"] == client.get("/readyz").json()["index_version"]
    assert body["timings_ms"]["generate_ms"] > 0


def test_no_evidence_means_a_handoff_without_asking_the_model(serve_settings, make_client):
    engine = CountingEngine(llama_engine(serve_settings))
    client = make_client(serve_settings, engine=engine)
    body = client.post("/v1/chat", json={"message": "What is the boiling point of tungsten on Jupiter?"}).json()
    assert body["mode"] == "no_evidence"
    assert body["handoff"] is True and body["confidence"] == "low"
    assert body["answer"] == message("no_answer", "en", serve_settings.chat.support_contact) and body["citations"] == []
    assert serve_settings.chat.support_contact in body["answer"]
    assert body["context"]["handoff_reason"] == "no_evidence"
    assert engine.calls == 0


@pytest.mark.slow
def test_evidence_is_packed_into_the_budget_and_omissions_reported(serve_settings, make_client):
    chat = serve_settings.chat.model_copy(update={"context_tokens": 64, "evidence_sentences": 3, "answer_max_tokens": 160})
    small = serve_settings.model_copy(update={"llm": serve_settings.llm.model_copy(update={"n_ctx": 1100}), "chat": chat})
    client = make_client(small)
    # Two units answer it (the Trash's 30 days, then a long one on what follows): 64 tokens hold the first.
    body = client.post("/v1/chat", json={"message": "how long do you keep deleted files"}).json()
    assert "context" in body, body
    context = body["context"]
    assert context["omitted"], "64 tokens cannot hold both evidence sentences"
    assert 1 <= len(context["evidence"]) < 3
    assert context["prompt_tokens"] + small.chat.answer_max_tokens <= 1100


@pytest.mark.slow
def test_question_too_long_for_the_window_is_a_413(serve_settings, make_client):
    small = serve_settings.model_copy(update={"llm": serve_settings.llm.model_copy(update={"n_ctx": 600, "max_tokens": 300})})
    client = make_client(small)
    question = "How long do I have to ask for a refund on an annual plan? " * 40
    response = client.post("/v1/chat", json={"message": question})
    assert response.status_code == 413
    assert "llm.n_ctx" in response.json()["detail"]


@pytest.mark.slow
def test_follow_up_is_rewritten_and_history_kept(serve_settings, make_client):
    client = make_client(serve_settings)
    first = client.post("/v1/chat", json={"message": "How long is version history kept on the Pro plan?"}).json()
    follow = client.post("/v1/chat", json={"message": "And on Business?", "session_id": first["session_id"]}).json()
    assert follow["session_id"] == first["session_id"]
    # A bare follow-up naming another plan is the previous question about that plan.
    assert follow["query"] == "How long is version history kept on the business plan?"
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


@pytest.mark.slow
def test_streaming_sends_deltas_then_the_validated_answer(serve_settings, make_client):
    parsed = _stream_events(make_client(serve_settings), "How do I reset my password?")
    kinds = [k for k, _ in parsed]
    assert kinds[-1] == "answer" and kinds.count("answer") == 1
    assert "delta" in kinds and all(k == "delta" for k in kinds[:-1])
    final = parsed[-1][1]
    Answer.model_validate({k: final[k] for k in ("answer", "citations", "confidence", "handoff")})
    assert final["timings_ms"]["first_token_ms"] > 0


def test_without_a_model_answers_are_extractive(serve_settings, make_client):
    client = make_client(serve_settings, engine=None)
    ready = client.get("/readyz").json()
    assert ready["mode"] == "extractive" and ready["status"] == "ready"
    body = client.post("/v1/chat", json={"message": "What are the API rate limits?"}).json()
    assert body["mode"] == "extractive" and body["handoff"] is False and body["model"] is None
    assert "600 requests per minute" in body["answer"]
    cited = [s for s in body["sources"] if s["cited"]]
    assert cited and {c["id"] for c in body["citations"]} == {s["id"] for s in cited}
    assert cited[0]["path"] == "products/api.md"


@pytest.mark.parametrize(
    ("payload", "status", "phrase"),
    [
        ({"message": ""}, 422, "message"),
        ({"message": "   "}, 400, "empty"),
        ({"message": "x" * 5000}, 413, "limit is 4000"),
        ({"message": "refund", "filters": {"colour": "red"}}, 400, "unknown filter"),
        ({"message": "refund", "session_id": "bad id!"}, 422, "session_id"),
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


def _reply(ids, answer="Annual plans are not refunded after 30 days; the plan stays active until the end of the paid year."):
    return json.dumps({"answer": answer, "sources": list(ids)})


def test_ollama_request_carries_num_ctx_schema_and_keep_alive(ollama_settings, ollama_stand_in, make_client):
    ollama_stand_in.replies = [_reply([])]
    client = make_client(ollama_settings)
    body = client.post("/v1/chat", json={"message": "How long do I have to ask for a refund on an annual plan?"}).json()
    assert body["mode"] == "generated" and body["model"] == "ragtune"
    sent = ollama_stand_in.requests_for_chat()[0]
    assert sent["options"]["num_ctx"] == 4096
    assert sent["options"]["repeat_penalty"] == ollama_settings.llm.repeat_penalty
    assert sent["keep_alive"] == "10m"
    # The model sees the evidence sentences as S1, S2, ...; the schema allows exactly those ids.
    enum = sent["format"]["properties"]["sources"]["items"]["enum"]
    assert enum == [f"S{i}" for i in range(1, len(body["context"]["evidence"]) + 1)]
    # The model's job is the text and the ids: citations, confidence and hand-off are the server's.
    assert set(sent["format"]["properties"]) == {"answer", "sources"}
    assert set(body) >= {"citations", "confidence", "handoff"} and body["citations"]
    system = sent["messages"][0]["content"]
    assert sent["messages"][0]["role"] == "system" and "[id: S1]" in system
    assert body["context"]["evidence"][0]["sentence"] in system and body["context"]["evidence"][0]["id"] not in system


def test_a_model_built_from_the_repository_modelfile_gets_the_short_prompt_it_was_tuned_on(
    ollama_settings, ollama_stand_in, make_client
):
    from pathlib import Path

    from ragtune.prompt import system_prompt

    assert system_prompt([], "X", "short").split("\n")[0] != system_prompt([], "X", "full").split("\n")[0]
    modelfile = (Path(__file__).resolve().parents[2] / "Modelfile").read_text()
    company = ollama_settings.chat.company_name
    asked = "How long do I have to ask for a refund on an annual plan?"
    for shown, style in ((modelfile, "short"), (None, "full"), (modelfile.replace("Answer from", "Reply from"), "full")):
        ollama_stand_in.modelfile, ollama_stand_in.requests = shown, []
        ollama_stand_in.replies = [_reply(["S1"])]
        client = make_client(ollama_settings)
        body = client.post("/v1/chat", json={"message": asked}).json()
        assert body["mode"] == "generated"
        sent = ollama_stand_in.requests_for_chat()[0]["messages"]
        # The opening the adapter was trained on (short), or the full rules for any other model.
        assert sent[0]["content"].split("\n")[0] == system_prompt([], company, style).split("\n")[0]


def test_short_ids_map_back_and_quotes_are_the_evidence(ollama_settings, ollama_stand_in, make_client):
    question = "How long do I have to ask for a refund on an annual plan?"
    ollama_stand_in.replies = [_reply(["S1", "S9"])]
    client = make_client(ollama_settings)
    body = client.post("/v1/chat", json={"message": question}).json()
    assert body["mode"] == "generated", body
    best = body["context"]["evidence"][0]
    assert [c["id"] for c in body["citations"]] == [best["id"]]
    assert body["citations"][0]["quote"].startswith(best["sentence"])  # verbatim, not the model's "within 30 days"
    assert body["context"]["dropped_citations"] == ["S9"]
    assert [s["path"] for s in body["sources"] if s["cited"]] == ["policies/refund-policy.pdf"]


@pytest.mark.slow
def test_a_reply_that_contradicts_the_evidence_falls_back_to_the_extractive_answer(ollama_settings, ollama_stand_in, make_client):
    client = make_client(ollama_settings)
    refund, vault = "How long do I have to ask for a refund on an annual plan?", "I forgot my Vault passphrase, can you reset it?"
    bad_replies = [
        (refund, "number", "You can cancel within 90 days for a full refund.", "30 days"),
        (vault, "negation", "Yes, we can reset your Vault passphrase for you.", "We cannot reset it."),
        (refund, "debris", '"]["', "30 days"),
        (refund, "name", "Switch to the Family plan for a full refund within 30 days.", "30 days"),
    ]
    for question, reason, text, fact in bad_replies:
        ollama_stand_in.replies = [_reply(["S1"], answer=text)]
        body = client.post("/v1/chat", json={"message": question}).json()
        assert body["mode"] == "extractive" and body["handoff"] is False, body
        assert reason in body["verification"]["reasons"] and body["verification"]["fallback"] is True
        assert fact in body["answer"] and text not in body["answer"]
        sentences = [e["sentence"] for e in body["context"]["evidence"]]
        assert body["citations"] and all(_made_of(c["quote"], sentences) for c in body["citations"])
    # In generative mode the model's answer stands, and the rejection is still reported.
    generative = ollama_settings.model_copy(
        update={"chat": ollama_settings.chat.model_copy(update={"answer_mode": "generative"})}
    )
    body = make_client(generative).post("/v1/chat", json={"message": refund}).json()
    assert body["mode"] == "generated" and body["verification"]["passed"] is False and "name" in body["verification"]["reasons"]
    assert "Family plan" in body["answer"]


def test_questions_the_documents_do_not_answer_hand_off_without_asking_the_model(ollama_settings, ollama_stand_in, make_client):
    ollama_stand_in.replies = [_reply(["S1"], answer="The Family plan costs 4.99 EUR.")]
    client = make_client(ollama_settings)
    for question in [
        "How much is the Family plan?",
        "how do i reset my gmail password",
        "What is the boiling point of tungsten?",
    ]:
        body = client.post("/v1/chat", json={"message": question}).json()
        assert body["handoff"] is True and body["mode"] in {"handoff", "no_evidence"}, (question, body)
        assert body["context"]["handoff_reason"] in {"low_evidence", "no_evidence", "other_company"} and body["citations"] == []
        # The customer's words are never quoted back as something "not found".
        assert not any(word in body["answer"].lower() for word in ("family", "gmail", "tungsten")), body["answer"]
    assert ollama_stand_in.requests_for_chat() == []
    # The same kind of question about a plan that exists is answered.
    body = client.post("/v1/chat", json={"message": "How much is the Pro plan per month?"}).json()
    assert body["handoff"] is False and "9.99" in " ".join(e["sentence"] for e in body["context"]["evidence"])


def test_extractive_mode_never_calls_the_model(ollama_settings, ollama_stand_in, make_client):
    extractive = ollama_settings.model_copy(
        update={"chat": ollama_settings.chat.model_copy(update={"answer_mode": "extractive"})}
    )
    body = make_client(extractive).post("/v1/chat", json={"message": "I forgot my vault passphrase, can you reset it?"}).json()
    assert body["mode"] == "extractive" and body["answer_mode"] == "extractive" and body["model"] is None
    assert "We cannot reset it." in body["answer"] and not body["answer"].startswith("Here is what our help articles say")
    assert body["verification"]["checked"] is False and ollama_stand_in.requests_for_chat() == []


def test_invalid_reply_is_retried_once_then_a_clear_502(ollama_settings, ollama_stand_in, make_client):
    ollama_stand_in.replies = ['{"answer": "half', _reply([])]
    generative = ollama_settings.model_copy(
        update={"chat": ollama_settings.chat.model_copy(update={"answer_mode": "generative"})}
    )
    client = make_client(generative)
    ok = client.post("/v1/chat", json={"message": "How do I reset my password?"})
    assert ok.status_code == 200 and len(ollama_stand_in.requests_for_chat()) == 2
    assert "rejected" in ollama_stand_in.requests_for_chat()[1]["messages"][-1]["content"]

    ollama_stand_in.requests.clear()
    ollama_stand_in.replies = ["Sure! The answer is yes."]
    bad = client.post("/v1/chat", json={"message": "How do I reset my password?"})
    assert bad.status_code == 502
    assert "rejected twice" in bad.json()["detail"]
    # In auto mode the customer gets the extractive answer at once (no second generation), and the
    # reason is counted.
    ollama_stand_in.requests.clear()
    body = make_client(ollama_settings).post("/v1/chat", json={"message": "How do I reset my password?"}).json()
    assert body["mode"] == "extractive" and body["verification"]["reasons"] == ["invalid"]
    assert len(ollama_stand_in.requests_for_chat()) == 1


def test_model_server_down_mid_flight_gives_503(ollama_settings, ollama_stand_in, make_client):
    """In generative mode, which promises a phrased answer (auto mode answers extractively instead:
    tests/serve/test_faults.py)."""
    ollama_stand_in.replies = [_reply([])]
    generative = ollama_settings.chat.model_copy(update={"answer_mode": "generative"})
    client = make_client(ollama_settings.model_copy(update={"chat": generative}))
    assert client.get("/readyz").json()["mode"] == "generated"
    ollama_stand_in.fail_chat = True
    response = client.post("/v1/chat", json={"message": "How do I reset my password?"})
    assert response.status_code == 503
    assert "failed during the request: llama runner process has terminated" in response.json()["detail"]


def test_no_model_server_means_extractive_answers(ollama_settings, make_client):
    down = ollama_settings.model_copy(
        update={"ollama": ollama_settings.ollama.model_copy(update={"host": "http://127.0.0.1:9", "timeout_s": 2})}
    )
    client = make_client(down)
    ready = client.get("/readyz").json()
    assert ready["mode"] == "extractive" and "is not answering" in ready["detail"]
    body = client.post("/v1/chat", json={"message": "How do I reset my password?"}).json()
    assert body["mode"] == "extractive" and body["handoff"] is False and body["citations"]


def test_unknown_ollama_model_is_reported_by_readyz(ollama_settings, make_client):
    other = ollama_settings.model_copy(update={"ollama": ollama_settings.ollama.model_copy(update={"model": "missing"})})
    client = make_client(other)
    ready = client.get("/readyz").json()
    assert ready["mode"] == "extractive" and ready["model"] == "missing"
    assert "has no model 'missing': run `ollama create missing -f Modelfile`" in ready["detail"]


def test_ollama_streaming_sends_the_answer_text_as_it_arrives(ollama_settings, ollama_stand_in, make_client):
    answer = 'Open the sign-in page, choose "Forgot password" and follow the link we email you.'
    ollama_stand_in.replies = [_reply([], answer=answer)]
    generative = ollama_settings.model_copy(
        update={"chat": ollama_settings.chat.model_copy(update={"answer_mode": "generative"})}
    )
    parsed = _stream_events(make_client(generative), "How do I reset my password?")
    deltas = [data["text"] for kind, data in parsed if kind == "delta"]
    assert len(deltas) > 3, "the stand-in sends 7 characters a line: the text must arrive in pieces"
    assert "".join(deltas) == answer
    assert [kind for kind, _ in parsed][-1] == "answer" and parsed[-1][1]["answer"] == answer
    sent = ollama_stand_in.requests_for_chat()
    assert len(sent) == 1 and sent[0]["stream"] is True and sent[0]["options"]["num_ctx"] == 4096


def test_auto_mode_streams_only_verified_text(ollama_settings, ollama_stand_in, make_client):
    rejected = "Yes, we can reset your Vault passphrase for you."
    ollama_stand_in.replies = [_reply(["S1"], answer=rejected)]
    parsed = _stream_events(make_client(ollama_settings), "I forgot my Vault passphrase, can you reset it?")
    deltas = [data["text"] for kind, data in parsed if kind == "delta"]
    final = parsed[-1][1]
    assert final["mode"] == "extractive" and final["verification"]["fallback"] is True
    assert deltas == [final["answer"]] and rejected not in "".join(deltas)
    assert final["timings_ms"]["first_token_ms"] > 0


def _made_of(quote: str, sentences: list[str]) -> bool:
    """Whether a citation's quote is evidence sentences only (verbatim, in any order)."""
    rest = quote
    for sentence in sorted(sentences, key=len, reverse=True):
        rest = rest.replace(sentence, " ")
    return bool(quote.strip()) and not rest.strip()


@pytest.mark.slow  # three apps, two of them loading the model in a child process
def test_auto_mode_asks_the_model_only_when_its_measured_pass_rate_is_high_enough(serve_settings, make_client, tmp_path):
    """The fast default: without a measured verified-pass rate (the bundled base model) auto mode
    answers extractively at once; a deployed version whose gated eval measured a rate at or above
    chat.min_model_pass_rate, with the answers it phrased right at least chat.min_model_fact_accuracy
    of the time, is asked (and verified)."""
    from ragtune.registry import ModelRegistry
    from serve.model_switch import SwitchingEngine

    question = {"message": "How long do I have to ask for a refund on an annual plan?"}
    auto = serve_settings.model_copy(update={"chat": serve_settings.chat.model_copy(update={"answer_mode": "auto"})})
    unmeasured = CountingEngine(llama_engine(auto))
    body = make_client(auto, engine=unmeasured).post("/v1/chat", json=question).json()
    assert body["mode"] == "extractive" and unmeasured.calls == 0 and "30 days" in body["answer"]

    data = tmp_path / "models-home"
    registry = ModelRegistry(data)
    evaluation = {"pipeline": {"phrased_share": 0.8, "phrased_fact_accuracy": 0.95}}
    version = registry.register(serve_settings.llm.gguf_path, "tiny", evaluation=evaluation)
    registry.deploy(version.version)
    measured = auto.model_copy(update={"data_dir": data})
    switching = SwitchingEngine(measured)
    assert switching.pass_rate() == 0.8 and switching.phrased_accuracy() == 0.95
    client = make_client(measured, engine=switching)
    body = client.post("/v1/chat", json=question).json()
    assert body["verification"]["checked"] is True  # the model was asked (its noise then verified)
    assert client.get("/readyz").json()["mode"] == "generated"
    strict = measured.model_copy(update={"chat": measured.chat.model_copy(update={"min_model_pass_rate": 0.9})})
    client = make_client(strict, engine=SwitchingEngine(strict))
    body = client.post("/v1/chat", json=question).json()
    assert body["verification"]["checked"] is False and body["mode"] == "extractive"
    ready = client.get("/readyz").json()
    assert ready["mode"] == "extractive" and "below chat.min_model_pass_rate 0.9" in ready["detail"]
    # Phrasing enough is not enough: the answers it phrased must have been right often enough.
    picky = measured.model_copy(update={"chat": measured.chat.model_copy(update={"min_model_fact_accuracy": 0.97})})
    client = make_client(picky, engine=SwitchingEngine(picky))
    body = client.post("/v1/chat", json=question).json()
    assert body["verification"]["checked"] is False and body["mode"] == "extractive"
    assert "below chat.min_model_fact_accuracy 0.97" in client.get("/readyz").json()["detail"]


def test_a_reply_about_another_sentence_than_the_lead_falls_back(ollama_settings, ollama_stand_in, make_client):
    # The evidence also says how refunds are paid out; the answer to "how long" leads with the 30 days.
    client = make_client(ollama_settings)
    question = "How long do I have to ask for a refund on an annual plan?"
    ollama_stand_in.replies = [_reply(["S2"], answer="Refunds go back to the original payment method.")]
    body = client.post("/v1/chat", json={"message": question}).json()
    assert body["mode"] == "extractive" and "departs" in body["verification"]["reasons"], body
    assert "30 days" in body["answer"]


def test_a_phrased_lead_is_followed_by_what_it_left_out_of_the_composed_answer(ollama_settings, ollama_stand_in, make_client):
    question = "How long do I have to ask for a refund on an annual plan?"
    chat = ollama_settings.chat.model_copy(update={"answer_mode": "extractive"})
    extractive = (
        make_client(ollama_settings.model_copy(update={"chat": chat})).post("/v1/chat", json={"message": question}).json()
    )
    assert "not refunded" in extractive["answer"] and "full refund" in extractive["answer"], extractive["answer"]
    ollama_stand_in.replies = [_reply(["S1"])]  # restates the composed answer's lead only
    body = make_client(ollama_settings).post("/v1/chat", json={"message": question}).json()
    assert body["mode"] == "generated", body["verification"]
    assert body["answer"].startswith(json.loads(_reply([]))["answer"]) and "full refund" in body["answer"]
    assert [c["id"] for c in body["citations"]] == [c["id"] for c in extractive["citations"]]


def test_an_answer_that_leads_with_a_table_row_is_not_given_to_the_model(ollama_settings, ollama_stand_in, make_client):
    ollama_stand_in.replies = [_reply(["S1"], answer="Extra 1 TB storage is available on Business for 39 EUR per month.")]
    body = make_client(ollama_settings).post("/v1/chat", json={"message": "how much is the extra 1 TB storage add-on"}).json()
    assert body["mode"] == "extractive" and "4.99" in body["answer"] and "39" not in body["answer"], body["answer"]
    assert ollama_stand_in.requests_for_chat() == []  # not asked: the row is rendered as it is


def test_a_question_in_another_language_is_handed_off_in_it_with_the_reason_it_has(serve_settings, make_client):
    chat = serve_settings.chat.model_copy(update={"answer_mode": "extractive"})
    client = make_client(serve_settings.model_copy(update={"chat": chat}))
    for question, language in (("Ich habe mein Passwort vergessen", "de"), ("Est-ce que je peux payer avec PayPal ?", "fr")):
        body = client.post("/v1/chat", json={"message": question}).json()
        # Not "you'd like to talk to a person" nor "another company's product": the grounding models read English.
        assert body["handoff"] is True and body["context"]["handoff_reason"] == "language", body["context"]
        assert body["answer"] == message("language", language, serve_settings.chat.support_contact)


def test_a_yes_no_question_answered_no_by_the_sentence_after_the_lead_gets_a_direct_no(serve_settings, make_client):
    client = make_client(serve_settings, engine=None)
    body = client.post("/v1/chat", json={"message": "do you use your own backups to restore a single file for me?"}).json()
    assert body["handoff"] is False
    assert body["answer"].startswith("No, our own backups") and "not used to restore single files" in body["answer"]
    # Asked the same thing as an open question, no verdict is put in front.
    body = client.post("/v1/chat", json={"message": "what are your own backups for?"}).json()
    assert not body["answer"].startswith("No")


def test_an_account_action_hand_off_leads_its_self_service_part_with_a_step(serve_settings, make_client):
    client = make_client(serve_settings, engine=None)
    first = client.post("/v1/chat", json={"message": "what happens to my files if i cancel my subscription?"}).json()
    assert first["handoff"] is False
    body = client.post("/v1/chat", json={"message": "fine, cancel it for me now", "session_id": first["session_id"]}).json()
    assert body["handoff"] is True
    # What the customer can do comes first, not a fact about cancelling.
    _, _, steps = body["answer"].partition(":")
    assert steps.strip().startswith("The account owner cancels under Settings > Billing > Cancel subscription."), body["answer"]
