"""`ragtune eval answers` on a small committed question set, through the real pipeline."""

import json
from pathlib import Path

import pytest

from cli.main import main
from evaluation.answers import evaluate_answers, load_questions
from ragtune.errors import UserInputError

pytestmark = pytest.mark.slow  # answers question sets through the whole pipeline

SMALL = Path(__file__).parent / "data" / "answers_small.jsonl"


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
        update={"chat": serve_settings.chat.model_copy(update={"answer_mode": "auto", "answer_max_tokens": 160})}
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
        report = evaluate_answers(settings, load_questions(SMALL), url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    s = report["summary"]
    assert s["label"] == f"http://127.0.0.1:{port}" and s["errors"] == {}
    assert s["fact_accuracy"] == 1.0 and s["near_scope_refused"] == 1.0 and s["schema_valid"] == 1.0
    with pytest.raises(UserInputError, match="in process only"):
        evaluate_answers(settings, load_questions(SMALL), mode="auto", url="http://127.0.0.1:9")
