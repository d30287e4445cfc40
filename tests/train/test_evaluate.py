"""`train eval`: scoring rules, and a real run of both modes on the tiny model."""

import json

import pytest

from cli.main import main
from train.evaluate import format_table, quality_score, score_pipeline, score_raw

pytestmark = pytest.mark.slow  # evaluates models with llama.cpp


CHUNKS = [
    {"id": "S1", "title": "Refunds", "section": "", "text": "Refunds take 5 to 10 business days."},
    {"id": "S2", "title": "Trial", "section": "", "text": "The trial lasts 14 days."},
]


def _record(oracle="S1", target="Refunds take 5 to 10 business days."):
    reply = {"role": "assistant", "content": json.dumps({"answer": target, "sources": [oracle]})}
    return {
        "messages": [reply],
        "meta": {"kind": "grounded", "oracle": oracle, "question": "How long do refunds take?", "chunks": CHUNKS},
    }


def _out(answer):
    return {"text": answer if isinstance(answer, str) else json.dumps(answer), "completion_tokens": 10, "seconds": 0.5}


def test_raw_scores_count_format_verification_and_sources():
    records = [_record(), _record(), _record(), _record("S2", "The trial lasts 14 days.")]
    outputs = [
        _out({"answer": "Refunds take 5 to 10 business days.", "sources": ["S1"]}),  # valid, verified, right source
        _out({"answer": "Refunds take 30 business days.", "sources": ["S2"]}),  # valid; a number not in the evidence
        _out({"answer": "Yes.", "citations": [], "confidence": "high", "handoff": False}),  # the old contract: invalid
        _out("Sure! The Family plan costs 5 EUR."),  # not JSON at all
    ]
    figures = score_raw(records, outputs, embed=None, company="Northwind Cloud")
    assert figures["schema_validity"] == 0.5 and figures["verified_share"] == 0.25 and figures["citation_accuracy"] == 0.25
    assert figures["tokens_per_s"] == 20.0


def test_pipeline_scores_facts_citations_and_refusals():
    questions = [
        {"kind": "in_scope", "fact": "30 days", "doc": "policies/refund-policy.pdf"},
        {"kind": "in_scope", "fact": "99 EUR", "doc": "products/pricing.html"},
        {"kind": "near_miss"},
        {"kind": "out_of_scope"},
    ]
    responses = [
        {
            "answer": "Within 30  Days of purchase.",
            "handoff": False,
            "mode": "generated",
            "total_ms": 10,
            "sources": [{"path": "policies/refund-policy.pdf", "cited": True}],
        },
        {
            "answer": "It costs 9.99 EUR.",
            "handoff": False,
            "mode": "generated",
            "total_ms": 30,
            "sources": [{"path": "products/pricing.html", "cited": False}],
        },
        {"answer": "The Family plan is 5 EUR.", "handoff": False, "mode": "generated", "total_ms": 20, "sources": []},
        {"answer": "Sorry.", "handoff": True, "mode": "no_evidence", "total_ms": 5, "sources": []},
    ]
    figures = score_pipeline(questions, responses)
    assert figures["fact_accuracy"] == 0.5 and figures["citation_accuracy"] == 0.5
    assert figures["refusal_accuracy"] == 0.5 and figures["false_refusal_rate"] == 0.0 and figures["latency_p50_ms"] == 20
    assert quality_score(figures) == round((0.5 + 0.5 + 0.5 + 1.0) / 4, 4)
    assert figures["phrased_share"] == 1.0 and figures["phrased_fact_accuracy"] == 0.5  # both answerable ones were generated


def test_cached_pipeline_results_are_kept_apart_by_answer_mode_model_and_pipeline(tmp_path):
    from train.evaluate import Candidate, evaluate

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    adapter = tmp_path / "a" / "adapter.gguf"
    adapter.parent.mkdir()
    adapter.write_bytes(b"GGUF lora")
    calls = []
    questions = [{"kind": "out_of_scope", "question": "?"}]

    def pipeline(model, qs):
        calls.append(model)
        return [{"answer": "Sorry.", "handoff": True, "mode": "handoff", "total_ms": 1, "sources": []}]

    base = Candidate(gguf)

    def run(model=base, **keys) -> dict:
        return evaluate({"m": model}, [], questions, tmp_path / "eval", None, pipeline, None, modes=("pipeline",), **keys)

    for variant in ("answer_mode=auto", "answer_mode=auto", "answer_mode=generative"):
        run(pipeline_variant=variant)
    assert len(calls) == 2  # the repeat came from the cache; the other mode was computed
    # The base with an adapter over it is another model: its own result, not the base's cached one.
    report = run(Candidate(gguf, adapter))
    assert calls[-1] == Candidate(gguf, adapter) and len(calls) == 3 and report["models"] == {"m": "m+a"}
    # The same model and questions, but the answering code or index changed in between (another
    # fingerprint): measured again, never the older pipeline's figures.
    for fingerprint in ("aaa111", "aaa111", "bbb222"):
        run(fingerprint=fingerprint)
    assert len(calls) == 5


def test_train_eval_runs_both_modes_on_real_models(exported, knowledge_index, tmp_path, capsys, monkeypatch):
    import shutil

    config, paths = exported
    settings, _ = knowledge_index
    data = tmp_path / "data"
    shutil.copytree(settings.data_dir, data)
    monkeypatch.setenv("RAGTUNE_LLM__MAX_TOKENS", "96")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps(
            {
                "question": "Can I get a refund on my annual plan?",
                "kind": "in_scope",
                "doc": "policies/refund-policy.pdf",
                "fact": "30 days",
            }
        )
        + "\n"
    )
    run = config.run_dir
    assert main(["train", "eval", str(run), "--limit", "2", "--questions", str(questions), "--base-gguf", paths["gguf"]]) == 0
    report = json.loads((run / "eval" / "report.json").read_text())
    # --limit 2 of the eval split's records (the tiny dataset's split may hold fewer)
    wanted = min(2, len((config.data.output / "eval.jsonl").read_text().splitlines()))
    assert wanted >= 1
    for label in ("base", "tuned"):
        raw, pipe = report["results"][label]["raw"], report["results"][label]["pipeline"]
        assert raw["n"] == wanted and 0 <= raw["schema_validity"] <= 1 and raw["tokens_per_s"] > 0
        assert pipe["n"] == 1 and pipe["schema_validity"] in (0.0, 1.0)
    assert "| schema validity |" in (run / "eval" / "report.md").read_text()
    assert (run / "loss.png").is_file()
    assert "schema validity" in capsys.readouterr().out
    assert format_table(report).count("\n") >= 4
