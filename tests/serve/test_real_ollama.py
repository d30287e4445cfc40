"""Against a real Ollama server, when one answers on OLLAMA_HOST (skipped otherwise)."""

import os

import httpx
import pytest

HOST = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434")
MODEL = os.environ.get("RAGTUNE_TEST_OLLAMA_MODEL", "ragtune")


def _ollama_models() -> list[str] | None:
    try:
        return [m["name"] for m in httpx.get(f"{HOST}/api/tags", timeout=1).json()["models"]]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


pytestmark = [
    pytest.mark.ollama,
    pytest.mark.skipif(_ollama_models() is None, reason=f"no Ollama server answers on {HOST}"),
]


def test_real_ollama_answers_in_the_contract(knowledge_index, make_client):
    if not any(name.split(":")[0] == MODEL for name in _ollama_models() or []):
        pytest.fail(
            f"Ollama on {HOST} has no model {MODEL!r}: `ollama create {MODEL} -f Modelfile` or set RAGTUNE_TEST_OLLAMA_MODEL"
        )
    settings, _ = knowledge_index
    settings = settings.model_copy(
        update={
            "llm": settings.llm.model_copy(update={"engine": "ollama"}),
            "ollama": settings.ollama.model_copy(update={"host": HOST, "model": MODEL}),
        }
    )
    client = make_client(settings)
    body = client.post("/v1/chat", json={"message": "How long do I have to ask for a refund on an annual plan?"}).json()
    assert body["mode"] == "generated"
    assert {c["id"] for c in body["citations"]} <= set(body["context"]["used"])
