"""`ragtune eval answers`: answer quality of the whole pipeline, the release gate for any
retriever x model x answer-mode combination.

Each question goes through the real chat pipeline (in process, or a running server with `url`)
and the reply is scored: facts (every fact group of the question in the answer), citations (a
cited source is an expected document; for two-document questions one of each group), retrieval
hit, the hand-off decision (refusals of out-of-scope and near-miss questions, hand-offs for other
companies' products, requests for a person, angry customers and account actions, with the
self-service steps still given; false hand-offs; precision and recall), direct yes/no answers,
German and French questions (answered, or handed off in that language), schema validity, debris,
verification rejections, prompt-injection resistance, the judged-form checks of evaluation/form.py
(fact in the first sentence, fragments, off-topic and repeated sentences, filler preamble) and
latency. Conversations are sent turn by turn in one session, each turn seeing the history, as the
widget does; a follow-up marked `no_repeat` must not repeat the previous answer.
`evaluate_answers()` is the function (training's deploy step calls it); the CLI only wires it.
The file format is described in evaluation/answer_sets.py.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evaluation.answer_report import format_report, summarise
from evaluation.answer_sets import KINDS, AnswerSet, Conversation, Question, load_questions, load_set
from evaluation.form import detect_language, echoes, has_contact, judge, negates, repeats_previous
from ragtune.answer import Answer
from ragtune.errors import RagtuneError, UserInputError
from ragtune.grounding.verify import debris_reason, leaks
from ragtune.prompt import SYSTEM_TEMPLATE
from ragtune.settings import Settings

# Callers import the schema and the report from here too.
__all__ = [
    "KINDS",
    "AnswerSet",
    "Conversation",
    "Question",
    "evaluate_answers",
    "format_report",
    "load_questions",
    "load_set",
    "score",
    "summarise",
]
# What an injected question must not get out of the assistant: its own rules.
SECRETS = [SYSTEM_TEMPLATE.split("Sources:")[0]]
# Sends one message (with the session id of the conversation so far, None for a new one) and
# returns the response body, or None and the error.
Send = Callable[[str, str | None], Awaitable[tuple[dict[str, Any] | None, str | None]]]


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("\u00a0", " ").split())


def _contains(text: str, alternatives: list[str]) -> bool:
    return any(_norm(a) in text for a in alternatives)


def _verdict(q: Question, row: dict[str, Any]) -> bool:
    """Whether the reply is what the question expects (the per-category score)."""
    if "error" in row:
        return False
    handoff, fact = row["handoff"], row["fact"]
    if q.kind == "injection":
        return bool(row["schema_valid"] and not row["leak"])
    if q.kind == "in_scope":
        return (
            not handoff
            and fact is not False
            and row["yes_no_ok"] is not False
            and not row["avoid_hits"]
            and not row["repeats_previous"]
        )
    if q.kind == "language":
        return bool(row["language_ok"]) if handoff else fact is True
    return handoff and fact is not False and row["language_ok"] is not False  # out_of_scope, near_scope, handoff


def score(
    question: Question,
    body: dict[str, Any] | None,
    error: str | None,
    seconds: float,
    previous: str | None = None,
) -> dict[str, Any]:
    """One question's outcome, from the /v1/chat response body (None when the request failed).

    `previous` is the answer to the turn before (conversations), for the `no_repeat` check."""
    q = question
    row: dict[str, Any] = {
        "id": q.id,
        "kind": q.kind,
        "category": q.category,
        "question": q.question,
        "seconds": round(seconds, 3),
        "expected_handoff": q.expects_handoff,
        "handoff_reason": q.handoff_reason,
        "yes_no": q.yes_no,
    }
    if body is None:
        return row | {"error": error, "schema_valid": False, "right": False}
    try:
        Answer.model_validate({k: body.get(k) for k in ("answer", "citations", "confidence", "handoff")})
        valid = True
    except ValidationError:
        valid = False
    answer = body.get("answer") or ""
    handoff = bool(body.get("handoff"))
    text = _norm(answer)
    sources = body.get("sources") or []
    cited_ids = {c.get("id") for c in body.get("citations") or []}
    cited_paths = {s["path"] for s in sources if s.get("id") in cited_ids}
    seen_paths = {s["path"] for s in sources} | set(body.get("retrieved_paths") or [])
    expected = set(q.expected_paths) | {p for group in q.paths_all for p in group}
    groups = q.fact_groups
    quotes = [(c.get("quote") or "", str(c.get("id"))) for c in body.get("citations") or []]
    form = judge(q.question, answer, quotes) if answer and not handoff else None
    first = form["sentences"][0] if form and form["sentences"] else ""
    verification = body.get("verification") or {}
    row |= {
        "answer": answer,
        "mode": body.get("mode"),
        "handoff": handoff,
        "schema_valid": valid,
        "debris": debris_reason(answer) is not None if not handoff else False,
        "fact": all(_contains(text, g) for g in groups) if groups else None,
        "fact_first": any(_contains(_norm(first), g) for g in groups) if groups and form is not None else None,
        "citation": (
            (not q.expected_paths or bool(cited_paths & set(q.expected_paths))) and all(cited_paths & set(g) for g in q.paths_all)
            if expected
            else None
        ),
        "retrieval": bool(seen_paths & expected) if expected else None,
        "cited_paths": sorted(cited_paths),
        "rejections": list(verification.get("reasons") or []),
        "leak": leaks(answer, SECRETS),
        "yes_no_ok": (False if handoff else negates(first) == (q.yes_no == "no")) if q.yes_no else None,
        "language_detected": detect_language(answer),
        "language_ok": detect_language(answer) == q.language if q.language and handoff else None,
        "avoid_hits": [a for a in q.avoid if _norm(a) in text],
        "repeats_previous": bool(q.no_repeat and previous and repeats_previous(answer, previous)),
        "echoes": echoes(q.question, answer) if handoff else [],
        "contact": has_contact(answer) if handoff else None,
        "form": form,
    }
    row["right"] = _verdict(q, row)
    return row


async def _run(
    send: Send,
    answer_set: AnswerSet,
    progress: Callable[[int, int], None] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    total = len(answer_set.questions) + sum(len(c.turns) for c in answer_set.conversations)
    done = 0

    async def ask(
        q: Question, session: str | None, previous: str | None, conversation: bool = False
    ) -> tuple[dict[str, Any], str | None]:
        nonlocal done
        t0 = time.perf_counter()
        body, error = await send(q.question, session)
        row = score(q, body, error, time.perf_counter() - t0, previous)
        if conversation:
            row |= {"session_id": (body or {}).get("session_id"), "session_turn": (body or {}).get("turn")}
        done += 1
        if progress:
            progress(done, total)
        return row, (body or {}).get("session_id") or session

    rows = [(await ask(q, None, None))[0] for q in answer_set.questions]
    conversations = []
    for conv in answer_set.conversations:
        session: str | None = None
        previous: str | None = None
        turns = []
        for q in conv.turns:
            row, session = await ask(q, session, previous, conversation=True)
            previous = row.get("answer")
            turns.append(row)
        conversations.append({"id": conv.id, "category": conv.category, "turns": turns})
    return rows, conversations


async def _in_process(settings: Settings, answer_set: AnswerSet, engine: Any, progress: Callable[[int, int], None] | None):
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
    with tempfile.TemporaryDirectory(prefix="ragtune-eval-") as tmp:
        db = Database.open(None, Path(tmp))
        # The real session store: a conversation's turns see its history as they would in the API.
        service = ChatService(settings, retriever, engine, ConversationStore(db))
        await service.prepare("warm up")  # loads the embedding model outside the timings

        async def send(message: str, session: str | None) -> tuple[dict[str, Any] | None, str | None]:
            try:
                return (await service.answer(message, session_id=session)).model_dump(mode="json"), None
            except RagtuneError as exc:
                return None, f"{type(exc).__name__}: {exc}"

        try:
            return await _run(send, answer_set, progress)
        finally:
            if own_engine and engine is not None:
                await engine.aclose()
            db.close()


async def _over_http(url: str, answer_set: AnswerSet, progress: Callable[[int, int], None] | None):
    import httpx

    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=300) as client:

        async def send(message: str, session: str | None) -> tuple[dict[str, Any] | None, str | None]:
            payload: dict[str, Any] = {"message": message} | ({"session_id": session} if session else {})
            try:
                response = await client.post("/v1/chat", json=payload)
            except httpx.HTTPError as exc:
                return None, f"{type(exc).__name__}: {exc}"
            if response.status_code != 200:
                return None, f"HTTP {response.status_code}: {response.text[:200]}"
            return response.json(), None

        return await _run(send, answer_set, progress)


def evaluate_answers(
    settings: Settings,
    questions: list[Question] | AnswerSet,
    mode: str | None = None,
    engine: Any = None,
    url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run every question and conversation through the pipeline and return the report (summary,
    one row per question, one entry per conversation with a row per turn).

    `questions` is a list of single questions or a whole AnswerSet (conversations included);
    `mode` overrides `chat.answer_mode`; `engine` replaces the configured engine (in process);
    `url` sends the questions to a running server instead (its own settings then apply)."""
    answer_set = questions if isinstance(questions, AnswerSet) else AnswerSet(list(questions), [])
    if mode is not None:
        if url is not None:
            raise UserInputError("--mode applies in process only; a server answers in its own chat.answer_mode")
        settings = settings.model_copy(update={"chat": settings.chat.model_copy(update={"answer_mode": mode})})
    if url is not None:
        rows, conversations = asyncio.run(_over_http(url, answer_set, progress))
        label = url
    else:
        rows, conversations = asyncio.run(_in_process(settings, answer_set, engine, progress))
        label = getattr(settings.chat, "answer_mode", "generative")
    return {"summary": summarise(rows, label, conversations), "questions": rows, "conversations": conversations}
