"""What keys a cached pipeline eval: figures from another pipeline must not be reused as the gate's."""

from __future__ import annotations

import json
from types import SimpleNamespace

from evaluation.model_quality import pipeline_fingerprint
from ragtune.grounding.model import BUNDLED


def _retriever(version: str):
    return SimpleNamespace(index=SimpleNamespace(current_version=lambda: version))


def test_the_same_pipeline_gives_the_same_fingerprint(settings):
    questions = [{"question": "how long is the trial?", "kind": "in_scope"}]
    assert pipeline_fingerprint(settings, questions, _retriever("v1")) == pipeline_fingerprint(
        settings, [dict(q) for q in questions], _retriever("v1")
    )


def test_questions_index_settings_and_grounding_model_each_change_it(settings, tmp_path):
    questions = [{"question": "how long is the trial?", "kind": "in_scope"}]
    first = pipeline_fingerprint(settings, questions, _retriever("v1"))
    # Other wording of a question, a re-ingested index, another answer mode, another grounding model.
    assert (
        pipeline_fingerprint(settings, [{"question": "how long is the free trial?", "kind": "in_scope"}], _retriever("v1"))
        != first
    )
    assert pipeline_fingerprint(settings, questions, _retriever("v2")) != first
    other_mode = settings.model_copy(update={"chat": settings.chat.model_copy(update={"answer_mode": "extractive"})})
    assert pipeline_fingerprint(other_mode, questions, _retriever("v1")) != first
    grounding = tmp_path / "grounding.json"
    model = json.loads(BUNDLED.read_text())
    model["retrained"] = True
    grounding.write_text(json.dumps(model))
    retrained = settings.model_copy(update={"chat": settings.chat.model_copy(update={"grounding_model": str(grounding)})})
    assert pipeline_fingerprint(retrained, questions, _retriever("v1")) != first
