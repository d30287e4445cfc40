"""`ragtune eval answers` on a small committed question set, through the real pipeline."""

import json
from pathlib import Path

import pytest

from cli.main import main
from evaluation.answers import evaluate_answers, format_report, load_questions, load_set
from ragtune.errors import UserInputError

pytestmark = pytest.mark.slow  # answers question sets through the whole pipeline

SMALL = Path(__file__).parent / "data" / "answers_small.jsonl"
CONVERSATIONS = Path(__file__).parent / "data" / "conversations_small.jsonl"


def test_extractive_answers_are_scored_on_every_measure(knowledge_index):
    settings, _ = knowledge_index
    report = evaluate_answers(settings, load_questions(SMALL), mode="extractive")
    s = report["summary"]
    assert s["questions"] == 5 and s["by_kind"] == {"in_scope": 2, "out_of_scope": 1, "near_scope": 1, "injection": 1}
    assert s["fact_accuracy"] == 1.0 and s["citation_accuracy"] == 1.0 and s["retrieval_hit"] == 1.0
    assert s["false_handoffs"] == 0.0 and s["out_of_scope_refused"] == 1.0 and s["near_scope_refused"] == 1.0
    assert s["schema_valid"] == 1.0 and s["debris"] == 0 and s["injection_resisted"] == 1.0 and s["leaks"] == 0
    assert s["modes"]["extractive"] == 2 and s["latency_s"]["p50"] > 0
    near = next(r for r in report["questions"] if r["kind"] == "near_scope")
    assert near["handoff"] is True and near["mode"] in {"handoff", "no_evidence"}


def test_auto_mode_with_a_model_that_writes_noise_keeps_the_contract(serve_settings):
    """The tiny random model's replies are noise: verification rejects them, counts the reasons,
    and the customer gets the extractive answer, so the facts are still right."""
    from serve.engines.llamacpp import LlamaCppEngine

    settings = serve_settings.model_copy(
        update={
            "chat": serve_settings.chat.model_copy(
                update={"answer_mode": "auto", "answer_max_tokens": 160, "min_model_pass_rate": 0.0}
            )
        }
    )
    questions = [q for q in load_questions(SMALL) if q.kind == "in_scope"]
    report = evaluate_answers(settings, questions, engine=LlamaCppEngine(settings, settings.llm.gguf_path))
    s = report["summary"]
    assert s["schema_valid"] == 1.0 and s["debris"] == 0
    assert s["modes"] == {"extractive": 2} and s["fact_accuracy"] == 1.0
    assert sum(s["rejections"].values()) >= 2


def test_the_cli_prints_the_report_and_refuses_a_bad_file(knowledge_index, tmp_path, capsys):
    settings, _ = knowledge_index
    assert main(["--data-dir", str(settings.data_dir), "eval", "answers", str(SMALL), "--mode", "extractive", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["fact_accuracy"] == 1.0 and len(report["questions"]) == 5
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "kind": "sometimes", "question": "q"}\n')
    with pytest.raises(UserInputError, match="kind 'sometimes'"):
        load_questions(bad)
    assert main(["eval", "answers", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


def test_a_running_server_is_evaluated_over_http(serve_settings, retriever, tmp_path):
    import socket
    import threading
    import time

    import uvicorn

    from serve.app import create_app

    settings = serve_settings.model_copy(
        update={
            "chat": serve_settings.chat.model_copy(update={"answer_mode": "extractive"}),
            "store": serve_settings.store.model_copy(update={"url": f"sqlite:///{tmp_path / 'c.sqlite3'}"}),
        }
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, retriever=retriever), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        report = evaluate_answers(settings, load_set([SMALL, CONVERSATIONS]), url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    s = report["summary"]
    assert s["label"] == f"http://127.0.0.1:{port}" and s["errors"] == {}
    assert s["fact_accuracy"] == 1.0 and s["near_scope_refused"] == 1.0 and s["schema_valid"] == 1.0
    # Over HTTP too, a conversation's turns go to one session, the server's store counting them.
    for conv in report["conversations"]:
        assert len({t["session_id"] for t in conv["turns"]}) == 1 and [t["session_turn"] for t in conv["turns"]] == [0, 1]
    with pytest.raises(UserInputError, match="in process only"):
        evaluate_answers(settings, load_questions(SMALL), mode="auto", url="http://127.0.0.1:9")


def _body(answer, handoff=False, cited=(), quotes=None, session="s1", turn=0):
    """A made-up /v1/chat response: `cited` are (chunk id, path) pairs, cited in that order."""
    return {
        "answer": answer,
        "citations": [{"id": cid, "quote": (quotes or {}).get(cid, "")} for cid, _ in cited],
        "confidence": "low" if handoff else "high",
        "handoff": handoff,
        "sources": [{"id": cid, "path": path} for cid, path in cited],
        "mode": "handoff" if handoff else "extractive",
        "session_id": session,
        "turn": turn,
    }


def test_an_in_scope_answer_is_right_only_with_every_fact_group_and_no_hand_off():
    from evaluation.answers import Question, score

    q = Question(
        "q1",
        "in_scope",
        "whats the max file size on free and how long do free links last",
        expected_paths=["faq/sync-faq.md", "faq/sharing-faq.md"],
        facts_all=[["5 GB"], ["7 days"]],
        paths_all=[["faq/sync-faq.md"], ["faq/sharing-faq.md"]],
        category="two_document",
    )
    both = [("a", "faq/sync-faq.md"), ("b", "faq/sharing-faq.md")]
    good = score(q, _body("Files can be up to 5 GB on the Free plan. Free links expire after 7 days.", cited=both), None, 0.1)
    assert good["right"] and good["fact"] and good["fact_first"] and good["citation"]
    assert good["form"]["fragments"] == [] and not good["form"]["filler"]
    one_doc = score(q, _body("Files can be up to 5 GB on the Free plan.", cited=both[:1]), None, 0.1)
    assert not one_doc["right"] and one_doc["fact"] is False and one_doc["citation"] is False
    handed_off = score(q, _body("I'm handing you over to a colleague.", handoff=True), None, 0.1)
    assert not handed_off["right"] and handed_off["form"] is None and handed_off["fact_first"] is None
    failed = score(q, None, "HTTP 500: boom", 0.1)
    assert failed["right"] is False and failed["error"] == "HTTP 500: boom"


def test_judged_form_of_an_answer_that_pastes_sentences():
    from evaluation.answers import Question, score

    q = Question("q2", "in_scope", "how much is pro per month", expected_paths=["products/pricing.html"], facts=["9.99"])
    pasted = (
        "Here is what our help articles say: Every new account starts with a 14-day free trial of the Pro plan. "
        "9.99 EUR per month, or 99 EUR per year when paid annually. Pro: 1 TB, 1 user. "
        "Every new account starts with a 14-day free trial of the Pro plan. Maintenance is scheduled on Sundays."
    )
    row = score(q, _body(pasted, cited=[("p", "products/pricing.html")]), None, 0.1)
    form = row["form"]
    assert row["fact"] is True and row["fact_first"] is False and row["right"] is True  # right facts, bad form
    assert form["filler"] and {f["reason"] for f in form["fragments"]} == {"leading_number", "table_row"}
    assert form["repeated"] == ["Every new account starts with a 14-day free trial of the Pro plan."]
    assert form["off_topic"] == ["Maintenance is scheduled on Sundays."]


def test_yes_no_questions_want_the_no_in_the_first_sentence():
    from evaluation.answers import Question, score

    q = Question("q3", "in_scope", "does the app work on android 10?", ["faq/mobile-app.md"], ["Android 11"], yes_no="no")
    src = [("m", "faq/mobile-app.md")]
    direct = score(q, _body("No. The app needs Android 11 or later.", cited=src), None, 0.1)
    indirect = score(q, _body("The app runs on iOS 16 or later and Android 11 or later.", cited=src), None, 0.1)
    assert direct["yes_no_ok"] and direct["right"] and direct["fact_first"]
    assert indirect["yes_no_ok"] is False and not indirect["right"] and indirect["fact"]


def test_hand_offs_for_actions_keep_the_self_service_steps_and_foreign_questions_their_language():
    from evaluation.answers import Question, score

    action = Question("a1", "handoff", "cancel my subscription now", ["policies/cancellation.md"], ["Cancel subscription"])
    action.handoff_reason = "action"
    steps = "I can't cancel it for you, but you can under Settings > Billing > Cancel subscription. Contact support@northwind.example."
    assert score(action, _body(steps, handoff=True), None, 0.1)["right"]
    bare = score(action, _body("I'm handing you over to a colleague.", handoff=True), None, 0.1)
    assert not bare["right"] and bare["contact"] is False
    assert not score(action, _body("You can cancel under Settings > Billing > Cancel subscription."), None, 0.1)["right"]

    german = Question("g1", "language", "Ich möchte mit einem Menschen sprechen", language="de", handoff_reason="person")
    in_german = "Das kann ich leider nicht beantworten. Ich gebe Sie an einen Kollegen aus unserem Support weiter."
    in_english = "I'm sorry, I couldn't find a clear answer. I'm handing you over to a colleague from our support team."
    assert score(german, _body(in_german, handoff=True), None, 0.1)["right"]
    assert not score(german, _body(in_english, handoff=True), None, 0.1)["right"]
    answerable = Question("g2", "language", "Kann ich mit PayPal bezahlen?", ["faq/billing-faq.md"], ["PayPal"], language="de")
    assert score(answerable, _body("We accept Visa, Mastercard and PayPal."), None, 0.1)["right"]

    near = Question("n1", "near_scope", "discount for educators?", handoff_reason="near_miss")
    echo = score(near, _body('I couldn\'t find anything about "educators" in our help articles.', handoff=True), None, 0.1)
    assert echo["right"] and echo["echoes"] == ["educators"]


def test_the_summary_counts_hand_off_precision_recall_categories_and_follow_ups():
    from evaluation.answers import Question, score, summarise

    inq = Question("i", "in_scope", "api rate limit?", ["products/api.md"], ["600 requests"])
    person = Question("p", "handoff", "can i talk to a human", handoff_reason="person")
    other = Question("o", "handoff", "reset my gmail password", handoff_reason="other_company")
    out = Question("x", "out_of_scope", "weather in berlin", handoff_reason="out_of_scope")
    api = [("k", "products/api.md")]
    rows = [
        score(inq, _body("The API allows 600 requests per minute per token.", cited=api), None, 0.1),
        score(inq, _body("I'm handing you over.", handoff=True), None, 0.3),  # a false hand-off
        score(person, _body("A colleague will take over: support@northwind.example.", handoff=True), None, 0.1),
        score(other, _body("Use Forgot password on the sign-in page."), None, 0.1),  # answered with ours: missed
        score(out, _body("I'm handing you over.", handoff=True), None, 0.1),
    ]
    follow = Question("t2", "in_scope", "i tried that, still stuck", ["troubleshooting/sync-not-working.md"], ["Export logs"])
    follow.no_repeat, follow.category = True, "still_stuck"
    first_answer = "Pause and resume sync from the icon menu. Restart the desktop app."
    start = Question("t1", "in_scope", "sync is stuck", [], ["Pause and resume"], category="first")
    turns = [
        score(start, _body(first_answer), None, 0.1),
        score(follow, _body(first_answer + " Send us the log file from Help > Export logs."), None, 0.1, previous=first_answer),
    ]
    s = summarise(rows, "extractive", [{"id": "c", "category": "still_stuck", "turns": turns}])
    h = s["handoff"]
    # 3 hand-offs given, 2 of them expected; 3 expected (person, other company, out of scope)
    assert h["precision"] == round(2 / 3, 4) and h["recall"] == round(2 / 3, 4)
    assert h["recall_by_reason"] == {"other_company": 0.0, "out_of_scope": 1.0, "person": 1.0}
    assert h["with_contact"] == round(1 / 3, 4) and s["false_handoffs"] == 0.5 and s["refusals"] == 1.0
    assert s["categories"]["handoff"]["right"] == 0.5 and s["categories"]["in_scope"]["right"] == 0.5
    c = s["conversations"]
    assert turns[1]["repeats_previous"] is True and turns[1]["right"] is False
    assert c["first_turns_right"] == 1.0 and c["follow_ups_right"] == 0.0 and c["conversations_right"] == 0.0
    assert c["repeats_previous"] == 1 and c["by_turn_category"]["still_stuck"] == {"n": 1, "right": 0.0}
    assert s["form"]["answers"] == 4 and s["latency_s"]["p50"] == 0.1
    text = format_report({"summary": s})
    assert "precision 67%, recall 67%" in text and "follow-ups right 0%" in text and "fact in first sentence" in text


def test_conversation_turns_share_a_session_and_see_the_previous_answer():
    """The runner's own logic, against a recording stand-in for the chat service."""
    import asyncio

    from evaluation.answers import _run

    calls = []

    async def send(message, session):
        calls.append((message, session))
        sid = session or f"s{len(calls)}"
        return _body(f"Answer to {message}. Pause and resume sync.", session=sid, turn=sum(1 for _, s in calls if s)), None

    answer_set = load_set(CONVERSATIONS)
    answer_set.conversations[0].turns[1].no_repeat = True
    rows, conversations = asyncio.run(_run(send, answer_set, None))
    assert rows == [] and [len(c["turns"]) for c in conversations] == [2, 2]
    assert [s for _, s in calls] == [None, "s1", None, "s3"]
    assert [t["session_id"] for t in conversations[0]["turns"]] == ["s1", "s1"]
    # Half of the follow-up's sentences were in the answer before it: the previous answer reached the check.
    assert conversations[0]["turns"][1]["repeats_previous"] is True
    assert conversations[1]["turns"][1]["repeats_previous"] is False  # not asked of that turn


def test_conversations_run_through_the_chat_service_with_its_session_store(knowledge_index):
    settings, _ = knowledge_index
    report = evaluate_answers(settings, load_set([SMALL, CONVERSATIONS]), mode="extractive")
    assert len(report["questions"]) == 5 and [c["id"] for c in report["conversations"]] == ["c-trash", "c-api"]
    for conv in report["conversations"]:
        sessions = {t["session_id"] for t in conv["turns"]}
        assert len(sessions) == 1 and None not in sessions
        assert [t["session_turn"] for t in conv["turns"]] == [0, 1]  # the store counted the earlier turn
    first_turns = [c["turns"][0] for c in report["conversations"]]
    assert all(t["fact"] and not t["handoff"] for t in first_turns)
    assert report["conversations"][1]["turns"][1]["handoff"] is True
    c = report["summary"]["conversations"]
    assert c["conversations"] == 2 and c["turns"] == 4 and c["first_turns_right"] == 1.0 and c["errors"] == 0
    assert report["conversations"][0]["turns"][0]["session_id"] != report["conversations"][1]["turns"][0]["session_id"]


def test_the_cli_reads_several_files_and_limits_both(knowledge_index, capsys):
    settings, _ = knowledge_index
    argv = ["--data-dir", str(settings.data_dir), "eval", "answers", str(SMALL), str(CONVERSATIONS), "--mode", "extractive"]
    assert main([*argv, "--limit", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["questions"]) == 1 and len(report["conversations"]) == 1
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "conversations        2 (4 turns)" in out and "judged form" in out
