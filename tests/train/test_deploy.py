"""Registry, deploy gate, and the chat API following deploy / rollback without a restart."""

import json
import shutil
from pathlib import Path

import pytest

from cli.main import main
from cli.train import _questions_key
from evaluation.model_quality import evaluator_name
from ragtune.registry import ModelRegistry
from ragtune.settings import load_settings
from train.evaluate import file_key

pytestmark = pytest.mark.slow  # runs the deploy gate's chat pipeline

QUESTION = "Can I get a refund on my annual plan?"


@pytest.fixture
def data_dir(knowledge_index, tmp_path):
    """A private copy of the session's ingested data dir (RAGTUNE_DATA_DIR points here)."""
    settings, _ = knowledge_index
    target = tmp_path / "data"
    shutil.copytree(settings.data_dir, target)
    return target


def _register_two(data_dir: Path, gguf: str) -> ModelRegistry:
    registry = ModelRegistry(data_dir)
    registry.register(Path(gguf), "tiny", "hash-a", {"name": "a"})
    registry.register(Path(gguf), "tiny", "hash-b", {"name": "b"})
    return registry


def _one_question(tmp_path: Path) -> Path:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"question": QUESTION, "kind": "in_scope", "doc": "policies/refund-policy.pdf", "fact": "30 days"}) + "\n"
    )
    return questions


def _stored_gate(registry: ModelRegistry, key: str) -> None:
    """Gate figures as an earlier gate run stored them under `key`: v2 scores worse than v1."""
    registry.update_eval("ragtune-v1", {"gate": {"questions_key": key, "quality_score": 0.5, "evaluator": evaluator_name()}})
    registry.update_eval("ragtune-v2", {"gate": {"questions_key": key, "quality_score": 0.25, "evaluator": evaluator_name()}})


def test_deploy_switches_the_chat_api_and_rollback_restores_it(exported, knowledge_index, retriever, data_dir):
    from fastapi.testclient import TestClient

    from serve.app import create_app

    _, paths = exported
    registry = _register_two(data_dir, paths["gguf"])
    assert [v.version for v in registry.versions()] == ["ragtune-v1", "ragtune-v2"]
    assert registry.get("ragtune-v2").dataset_hash == "hash-b"
    registry.deploy("ragtune-v1")
    settings, _ = knowledge_index
    settings = settings.model_copy(
        update={
            "data_dir": data_dir,
            "llm": settings.llm.model_copy(update={"engine": "auto", "max_tokens": 1024}),
            # generative: the tiny test model's replies are noise that auto mode would rightly replace
            # by the extractive answer (which names no model); this test is about which model answers.
            "chat": settings.chat.model_copy(update={"answer_mode": "generative", "answer_max_tokens": 1024}),
        }
    )
    with TestClient(create_app(settings, retriever=retriever)) as client:

        def model() -> str:
            response = client.post("/v1/chat", json={"message": QUESTION})
            assert response.status_code == 200, response.text
            assert response.json()["mode"] == "generated"
            return response.json()["model"]

        assert model() == "ragtune-v1"
        registry.deploy("ragtune-v2")
        assert model() == "ragtune-v2"  # same process, no restart
        assert registry.rollback().version == "ragtune-v1"
        assert model() == "ragtune-v1"
    assert registry.pointer()["history"] == []


def test_deploy_gate_refuses_a_worse_version_unless_forced(exported, data_dir, tmp_path, capsys):
    _, paths = exported
    registry = _register_two(data_dir, paths["gguf"])
    registry.deploy("ragtune-v1")
    questions = _one_question(tmp_path)
    key = _questions_key(questions, load_settings())
    assert key.startswith(f"{file_key(questions)}-1-")
    # Figures as an earlier gate run stored them (the gate reuses them for the same questions file
    # and the same pipeline around the model).
    _stored_gate(registry, key)
    assert main(["train", "deploy", "ragtune-v2", "--questions", str(questions)]) == 2
    err = capsys.readouterr().err
    assert "ragtune-v2 scores 0.25 against 0.5 for ragtune-v1" in err and err.strip().count("\n") == 0
    assert registry.current().version == "ragtune-v1"
    assert main(["train", "deploy", "ragtune-v2", "--force"]) == 0
    assert registry.current().version == "ragtune-v2"
    assert main(["train", "deploy", "--rollback"]) == 0
    assert registry.current().version == "ragtune-v1"


def test_deploy_gate_does_not_reuse_figures_from_another_pipeline(exported, data_dir, tmp_path):
    _, paths = exported
    registry = _register_two(data_dir, paths["gguf"])
    registry.deploy("ragtune-v1")
    questions = _one_question(tmp_path)
    # Stored by a gate run before the answering code or the index changed: the same questions file,
    # another pipeline. Reused, they would refuse v2; measured again, both are the same model.
    stale = f"{file_key(questions)}-1-0123456789ab"
    _stored_gate(registry, stale)
    assert main(["train", "deploy", "ragtune-v2", "--questions", str(questions)]) == 0
    assert registry.current().version == "ragtune-v2"
    assert registry.get("ragtune-v2").eval["gate"]["questions_key"] == _questions_key(questions, load_settings())


def test_deploy_gate_runs_the_chat_pipeline(exported, data_dir, tmp_path, capsys, monkeypatch):
    _, paths = exported
    registry = _register_two(data_dir, paths["gguf"])
    registry.deploy("ragtune-v1")
    monkeypatch.setenv("RAGTUNE_LLM__MAX_TOKENS", "128")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"question": QUESTION, "kind": "in_scope", "doc": "policies/refund-policy.pdf", "fact": "30 days"})
        + "\n"
        + json.dumps({"question": "What is the capital of Australia?", "kind": "out_of_scope"})
        + "\n"
    )
    assert main(["train", "deploy", "ragtune-v2", "--questions", str(questions)]) == 0  # same weights: not worse
    out = capsys.readouterr().out
    assert "answer quality on 2 held-out questions" in out and "deployed ragtune-v2" in out
    gate = registry.get("ragtune-v2").eval["gate"]
    assert gate["n"] == 2 and gate["refusal_accuracy"] in (0.0, 1.0) and "quality_score" in gate
    assert registry.get("ragtune-v1").eval["gate"]["quality_score"] == gate["quality_score"]
