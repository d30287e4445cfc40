"""Answer quality of one model GGUF through the real chat pipeline: the adapter training uses.

`train eval` and the `train deploy` gate need answers from the serving pipeline (retrieval,
evidence gate, grammar, verification) for a given model file, but `train/` may not import
`serve/`. This module composes them from the evaluation layer, above both: the gate uses the
answer-quality evaluation (`evaluation.answers.evaluate_answers`, `ragtune eval answers`), its
summary mapped onto training's figure names; `train eval`'s table runs the questions through
`serve.chat.ChatService` here and `train.evaluate.score_pipeline` scores them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from ragtune.errors import RagtuneError
from ragtune.settings import Settings


def _engine(settings: Settings, gguf: Path, adapter: Path | None = None) -> tuple[Settings, Any]:
    from serve.engines import create_engine

    # Exactly this model: the GGUF, with the given adapter or none (never the shipped default).
    update = {"engine": "llamacpp", "gguf_path": gguf, "name": None, "adapter": str(adapter) if adapter else "none"}
    llm = settings.llm.model_copy(update=update)
    # The model under evaluation is asked on every answer: its measured pass rate is what later
    # decides whether auto mode asks it at all (chat.min_model_pass_rate).
    chat = settings.chat.model_copy(update={"min_model_pass_rate": 0.0})
    model_settings = settings.model_copy(update={"llm": llm, "chat": chat})
    return model_settings, create_engine(model_settings)


ANSWERING_CODE = ("ragtune", "serve", "evaluation", "train/evaluate.py")


def pipeline_fingerprint(settings: Settings, questions: list[dict], retriever: Any = None) -> str:
    """A short digest of everything besides the model that decides a pipeline eval's figures: the
    questions, the serving settings, the index version, the grounding model and the answering and
    scoring code. `train eval` caches figures under it, so figures from an older pipeline (or
    another index, other questions) are never reused as the gate's."""
    from ragtune.grounding.model import BUNDLED
    from ragtune.index import KnowledgeIndex

    digest = hashlib.sha256()
    digest.update(json.dumps(questions, sort_keys=True, default=str).encode())
    for part in (settings.chat, settings.retrieval, settings.embedding):
        digest.update(part.model_dump_json().encode())
    version = (retriever.index if retriever is not None else KnowledgeIndex(settings)).current_version()
    digest.update(str(version).encode())
    grounding = Path(settings.chat.grounding_model) if settings.chat.grounding_model else BUNDLED
    digest.update(grounding.read_bytes() if grounding.is_file() else str(grounding).encode())
    root = Path(__file__).resolve().parents[1]
    for name in ANSWERING_CODE:
        target = root / name
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def pipeline_responses(
    settings: Settings, gguf: Path, questions: list[dict], retriever: Any = None, adapter: Path | None = None
) -> list[dict]:
    """One response dict per question ({answer, handoff, mode, sources, total_ms} or {error});
    with `adapter`, the GGUF LoRA applied over `gguf` (served with the prompt its card names)."""
    from ragtune.embedding import Embedder
    from ragtune.index import KnowledgeIndex
    from ragtune.retriever import Retriever
    from serve.chat import ChatService
    from serve.store import Database
    from serve.store.conversations import ConversationStore

    model_settings, engine = _engine(settings, gguf, adapter)
    retriever = retriever or Retriever(KnowledgeIndex(settings), Embedder(settings.embedding), settings.retrieval)

    async def run_all() -> list[dict]:
        with tempfile.TemporaryDirectory() as tmp:
            store = ConversationStore(Database.open(f"sqlite:///{Path(tmp) / 'eval.sqlite3'}", Path(tmp)))
            service = ChatService(model_settings, retriever, engine, store)
            out = []
            try:
                for q in questions:
                    try:
                        response = await service.answer(q["question"], history=[])
                        data = response.model_dump()
                        out.append(
                            {
                                "answer": data["answer"],
                                "handoff": data["handoff"],
                                "mode": data["mode"],
                                "model": data.get("model"),
                                "total_ms": data["timings_ms"].get("total_ms"),
                                "verification": data.get("verification"),
                                "sources": [{"path": s["path"], "cited": s["cited"]} for s in data["sources"]],
                            }
                        )
                    except RagtuneError as exc:
                        out.append({"error": f"{type(exc).__name__}: {exc}"})
            finally:
                if engine is not None:
                    await engine.aclose()
                store.db.close()
            return out

    return asyncio.run(run_all())


def _grounded_answers_eval() -> tuple[Any, Any] | None:
    try:
        from evaluation.answers import Question, evaluate_answers
    except ImportError:
        return None
    return Question, evaluate_answers


OWN_EVALUATOR = "evaluation.model_quality (own pipeline run)"
SHARED_EVALUATOR = "evaluation.answers.evaluate_answers"


def evaluator_name() -> str:
    """Which evaluator answer_quality() uses here; cached figures are only compared within one."""
    return SHARED_EVALUATOR if _grounded_answers_eval() is not None else OWN_EVALUATOR


def answer_quality(settings: Settings, gguf: Path, questions: list[dict], retriever: Any = None) -> dict:
    """Figures (fact/citation/refusal accuracy, false refusals, schema validity) for one GGUF."""
    from train.evaluate import quality_score, score_pipeline

    shared = _grounded_answers_eval()
    if shared is not None:
        Question, evaluate_answers = shared
        kinds = {"in_scope": "in_scope", "near_miss": "near_scope", "out_of_scope": "out_of_scope"}
        converted = [
            Question(
                id=str(i),
                kind=kinds[q["kind"]],
                question=q["question"],
                expected_paths=[q["doc"]] if q.get("doc") else [],
                facts=[q["fact"]] if q.get("fact") else [],
            )
            for i, q in enumerate(questions)
        ]
        model_settings, engine = _engine(settings, gguf)
        s = evaluate_answers(model_settings, converted, engine=engine)["summary"]
        refused = [v for v in (s.get("out_of_scope_refused"), s.get("near_scope_refused")) if v is not None]
        figures = {
            "n": s.get("questions"),
            "fact_accuracy": s.get("fact_accuracy"),
            "citation_accuracy": s.get("citation_accuracy"),
            "refusal_accuracy": sum(refused) / len(refused) if refused else None,
            "false_refusal_rate": s.get("false_handoffs"),
            "schema_validity": s.get("schema_valid"),
            "evaluator": SHARED_EVALUATOR,
        }
    else:
        figures = score_pipeline(questions, pipeline_responses(settings, gguf, questions, retriever))
        figures["evaluator"] = OWN_EVALUATOR
    figures["quality_score"] = quality_score(figures)
    return figures
