"""GET /v1/admin/models and POST /v1/admin/models/{name}/deploy over the real model registry, with
a server whose engine follows it (the tiny real GGUF under llama.cpp): a deploy through the API
changes the model that writes the next answer, without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.registry import ModelRegistry
from tests.serve.admin_kb import admin_test_client, build_app

pytestmark = pytest.mark.slow  # deploys models through the quality gate

QUESTION = "Within how many days can an annual plan be refunded?"


def _gate(score: float, key: str = "heldout-20") -> dict:
    """Figures as `ragtune train eval` stores them with a version (the deploy gate reads them)."""
    return {"gate": {"quality_score": score, "questions_key": key, "evaluator": "ragtune"}}


def test_models_list_gate_and_deploy_switch_the_answering_model(admin_settings, embedder, tiny_gguf):
    registry = ModelRegistry(Path(admin_settings.data_dir))
    for score in (0.6, 0.5, 0.7):
        registry.register(tiny_gguf, "tiny", f"hash-{score}", {}, _gate(score))
    registry.register(tiny_gguf, "tiny", "hash-none", {}, {})  # never evaluated
    registry.deploy("ragtune-v1")
    settings = admin_settings.model_copy(
        update={
            "llm": admin_settings.llm.model_copy(update={"engine": "auto", "max_tokens": 256}),
            # generative: the tiny model's replies are noise that auto mode would replace by the
            # extractive answer (which names no model); here what matters is which model answered.
            "chat": admin_settings.chat.model_copy(update={"answer_mode": "generative", "answer_max_tokens": 256}),
        }
    )
    with admin_test_client(build_app(settings, embedder)) as client:  # the app builds the registry-following engine

        def answering_model() -> str:
            response = client.post("/v1/chat", json={"message": QUESTION})
            assert response.status_code == 200, response.text
            return response.json()["model"]

        listing = client.get("/v1/admin/models").json()
        assert listing["current"] == "ragtune-v1" and listing["follows_registry"] and listing["serving"] == "ragtune-v1"
        assert [(v["version"], v["quality_score"], v["current"]) for v in listing["versions"]][-1] == ("ragtune-v1", 0.6, True)
        assert all(v["available"] for v in listing["versions"])
        assert answering_model() == "ragtune-v1"

        worse = client.post("/v1/admin/models/ragtune-v2/deploy")
        assert worse.status_code == 409 and "0.5 against 0.6" in worse.json()["detail"]
        unknown = client.post("/v1/admin/models/ragtune-v9/deploy")
        assert unknown.status_code == 404 and "ragtune-v1" in unknown.json()["detail"]
        unevaluated = client.post("/v1/admin/models/ragtune-v4/deploy")
        assert unevaluated.status_code == 409 and "force=true" in unevaluated.json()["detail"]
        assert registry.current().version == "ragtune-v1"  # none of them moved the pointer

        better = client.post("/v1/admin/models/ragtune-v3/deploy")
        assert better.status_code == 200, better.text
        assert better.json() == {
            "deployed": "ragtune-v3",
            "previous": "ragtune-v1",
            "forced": False,
            "detail": "the chat API answers with ragtune-v3 from its next answer (no restart)",
        }
        assert answering_model() == "ragtune-v3"

        forced = client.post("/v1/admin/models/ragtune-v2/deploy", json={"force": True})
        assert forced.status_code == 200 and forced.json()["forced"]
        assert answering_model() == "ragtune-v2"
        listing = client.get("/v1/admin/models").json()
        assert listing["current"] == "ragtune-v2" and listing["history"] == ["ragtune-v1", "ragtune-v3"]


def test_a_server_that_does_not_follow_the_registry_says_so(admin_settings, embedder, tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")  # the registry only copies it; this server never loads a model (engine none)
    registry = ModelRegistry(Path(admin_settings.data_dir))
    registry.register(gguf, "tiny", "hash-a", {}, {})
    with admin_test_client(build_app(admin_settings, embedder)) as client:
        listing = client.get("/v1/admin/models").json()
        assert listing["follows_registry"] is False and listing["serving"] is None and listing["current"] is None
        response = client.post("/v1/admin/models/ragtune-v1/deploy", json={"force": True})
        assert response.status_code == 200 and "does not follow the registry" in response.json()["detail"]
        assert registry.current().version == "ragtune-v1"
