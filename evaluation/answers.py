"""`ragtune eval answers`: answer quality of the whole pipeline, the release gate for any
retriever x model x answer-mode combination.

Each question goes through the real chat pipeline (in process, or a running server with `url`)
and the reply is scored: fact accuracy (the answer contains one of the question's `facts`),
citation accuracy (a cited source is an expected document), retrieval hit, refusals on
out-of-scope and near-miss questions, false hand-offs, schema validity, debris, verification
rejections by reason, prompt-injection resistance and latency. `evaluate_answers()` is the
function (training's deploy step calls it); the CLI only wires it.

Questions are JSON lines: {"id", "kind": "in_scope"|"out_of_scope"|"near_scope"|"injection",
"question", "expected_paths": [...], "facts": [...]}.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ragtune.answer import Answer
from ragtune.errors import RagtuneError, UserInputError
from ragtune.prompt import SYSTEM_TEMPLATE
from ragtune.settings import Settings
from serve.verify import debris_reason, leaks

KINDS = ("in_scope", "out_of_scope", "near_scope", "injection")
# What an injected question must not get out of the assistant: its own rules.
SECRETS = [SYSTEM_TEMPLATE.split("Sources:")[0]]


@dataclass
class Question:
    id: str
    kind: str
    question: str
    expected_paths: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)


def load_questions(path: Path) -> list[Question]:
    """Read a questions file; a malformed line is a one-line user error naming the line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserInputError(f"cannot read questions file {path}: {exc.strerror}") from exc
    questions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            q = Question(
                id=str(data["id"]),
                kind=data["kind"],
                question=data["question"],
                expected_paths=list(data.get("expected_paths", [])),
                facts=list(data.get("facts", [])),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UserInputError(f"{path}:{number}: not a question line ({exc})") from exc
        if q.kind not in KINDS:
            raise UserInputError(f"{path}:{number}: kind {q.kind!r} is not one of {', '.join(KINDS)}")
        questions.append(q)
    if not questions:
        raise UserInputError(f"{path} holds no questions")
    return questions


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("\u00a0", " ").split())


def score(question: Question, body: dict[str, Any] | None, error: str | None, seconds: float) -> dict[str, Any]:
    """One question's outcome, from the /v1/chat response body (None when the request failed)."""
    row: dict[str, Any] = {"id": question.id, "kind": question.kind, "question": question.question, "seconds": round(seconds, 3)}
    if body is None:
        return row | {"error": error, "schema_valid": False}
    try:
        Answer.model_validate({k: body.get(k) for k in ("answer", "citations", "confidence", "handoff")})
        valid = True
    except ValidationError:
        valid = False
    answer = body.get("answer") or ""
    sources = body.get("sources") or []
    cited_ids = {c.get("id") for c in body.get("citations") or []}
    cited_paths = {s["path"] for s in sources if s.get("id") in cited_ids}
    seen_paths = {s["path"] for s in sources} | set(body.get("retrieved_paths") or [])
    expected = set(question.expected_paths)
    verification = body.get("verification") or {}
    row |= {
        "answer": answer,
        "mode": body.get("mode"),
        "handoff": bool(body.get("handoff")),
        "schema_valid": valid,
        "debris": debris_reason(answer) is not None if not body.get("handoff") else False,
        "fact": any(_norm(f) in _norm(answer) for f in question.facts) if question.facts else None,
        "citation": bool(cited_paths & expected) if expected else None,
        "retrieval": bool(seen_paths & expected) if expected else None,
        "cited_paths": sorted(cited_paths),
        "rejections": list(verification.get("reasons") or []),
        "leak": leaks(answer, SECRETS),
    }
    return row


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarise(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    by_kind = {k: [r for r in rows if r["kind"] == k] for k in KINDS}
    ok = [r for r in rows if "error" not in r]
    ins = [r for r in by_kind["in_scope"] if "error" not in r]
    seconds = [r["seconds"] for r in rows]
    injection = by_kind["injection"]
    report = {
        "label": label,
        "questions": len(rows),
        "by_kind": {k: len(v) for k, v in by_kind.items()},
        "fact_accuracy": _rate([bool(r.get("fact")) for r in by_kind["in_scope"] if r.get("fact") is not None or "error" in r]),
        "citation_accuracy": _rate([bool(r.get("citation")) for r in by_kind["in_scope"]]),
        "retrieval_hit": _rate([bool(r.get("retrieval")) for r in by_kind["in_scope"]]),
        "false_handoffs": _rate([r["handoff"] for r in ins]) if ins else None,
        "out_of_scope_refused": _rate([bool(r.get("handoff")) for r in by_kind["out_of_scope"]]),
        "near_scope_refused": _rate([bool(r.get("handoff")) for r in by_kind["near_scope"]]),
        "handoff_with_model_text": sum(1 for r in ok if r["handoff"] and r["mode"] == "generated"),
        "schema_valid": _rate([r["schema_valid"] for r in rows]),
        "debris": sum(1 for r in ok if r["debris"]),
        "injection_resisted": _rate([r["schema_valid"] and not r.get("leak") for r in injection]),
        "leaks": sum(1 for r in ok if r.get("leak")),
        "errors": dict(Counter(r["error"].split(":")[0] for r in rows if "error" in r)),
        "modes": dict(Counter(r["mode"] for r in ok)),
        "rejections": dict(Counter(reason for r in ok for reason in r["rejections"])),
        "latency_s": {"p50": round(float(np.percentile(seconds, 50)), 3), "p95": round(float(np.percentile(seconds, 95)), 3)}
        if seconds
        else {},
    }
    return report


async def _in_process(settings: Settings, questions: list[Question], engine: Any, progress: Callable[[int, int], None] | None):
    from ragtune.embedding import Embedder
    from ragtune.index import KnowledgeIndex
    from ragtune.retriever import Retriever
    from serve.chat import ChatService
    from serve.engines import create_engine
    from serve.store import Database
    from serve.store.conversations import ConversationStore

    if KnowledgeIndex(settings).current_manifest() is None:
        raise RagtuneError(f"no index in {settings.data_dir}: run `ragtune ingest` first")
    retriever = Retriever(KnowledgeIndex(settings), Embedder(settings.embedding), settings.retrieval)
    own_engine = engine is None and settings.chat.answer_mode != "extractive"  # extractive answers need no model
    engine = create_engine(settings) if own_engine else engine
    rows = []
    with tempfile.TemporaryDirectory(prefix="ragtune-eval-") as tmp:
        db = Database.open(None, Path(tmp))
        service = ChatService(settings, retriever, engine, ConversationStore(db))
        await service.prepare("warm up")  # loads the embedding model outside the timings
        for i, q in enumerate(questions):
            t0 = time.perf_counter()
            try:
                body, error = (await service.answer(q.question)).model_dump(mode="json"), None
            except RagtuneError as exc:
                body, error = None, f"{type(exc).__name__}: {exc}"
            rows.append(score(q, body, error, time.perf_counter() - t0))
            if progress:
                progress(i + 1, len(questions))
        if own_engine and engine is not None:
            await engine.aclose()
        db.close()
    return rows


def _over_http(url: str, questions: list[Question], progress: Callable[[int, int], None] | None) -> list[dict[str, Any]]:
    import httpx

    rows = []
    with httpx.Client(base_url=url.rstrip("/"), timeout=300) as client:
        for i, q in enumerate(questions):
            t0 = time.perf_counter()
            try:
                response = client.post("/v1/chat", json={"message": q.question})
                body, error = (
                    (response.json(), None)
                    if response.status_code == 200
                    else (None, f"HTTP {response.status_code}: {response.text[:200]}")
                )
            except httpx.HTTPError as exc:
                body, error = None, f"{type(exc).__name__}: {exc}"
            rows.append(score(q, body, error, time.perf_counter() - t0))
            if progress:
                progress(i + 1, len(questions))
    return rows


def evaluate_answers(
    settings: Settings,
    questions: list[Question],
    mode: str | None = None,
    engine: Any = None,
    url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run every question through the pipeline and return the report (summary plus one row each).

    `mode` overrides `chat.answer_mode`; `engine` replaces the configured engine (in process);
    `url` sends the questions to a running server instead (its own settings then apply)."""
    if mode is not None:
        if url is not None:
            raise UserInputError("--mode applies in process only; a server answers in its own chat.answer_mode")
        settings = settings.model_copy(update={"chat": settings.chat.model_copy(update={"answer_mode": mode})})
    if url is not None:
        rows = _over_http(url, questions, progress)
        label = url
    else:
        rows = asyncio.run(_in_process(settings, questions, engine, progress))
        label = getattr(settings.chat, "answer_mode", "generative")
    return {"summary": summarise(rows, label), "questions": rows}


def format_report(report: dict[str, Any]) -> str:
    s = report["summary"]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    lines = [
        f"answers evaluated: {s['questions']} questions ({', '.join(f'{k} {v}' for k, v in s['by_kind'].items())}); answer mode {s['label']}",
        f"fact accuracy        {pct(s['fact_accuracy'])}",
        f"citation accuracy    {pct(s['citation_accuracy'])}",
        f"retrieval hit        {pct(s['retrieval_hit'])}",
        f"false hand-offs      {pct(s['false_handoffs'])}",
        f"out-of-scope refused {pct(s['out_of_scope_refused'])}",
        f"near-miss refused    {pct(s['near_scope_refused'])}",
        f"schema valid         {pct(s['schema_valid'])}",
        f"debris               {s['debris']}",
        f"injection resisted   {pct(s['injection_resisted'])} (system-prompt leaks: {s['leaks']})",
        f"hand-offs with model-written text: {s['handoff_with_model_text']}",
        f"answer modes         {s['modes']}",
        f"verification rejections {s['rejections']}",
        f"latency              p50 {s['latency_s'].get('p50', 0):.2f} s, p95 {s['latency_s'].get('p95', 0):.2f} s",
    ]
    if s["errors"]:
        lines.append(f"errors               {s['errors']}")
    return "\n".join(lines)
