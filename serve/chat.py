"""The chat service: retrieval, evidence check, context packing, generation, validation, citations.

Routers stay thin; everything an answer is made of happens here:
1. the question (a follow-up rewritten to stand alone) is retrieved against the current index;
2. with no chunk above `retrieval.min_relevance`, the answer is a hand-off and the model is not
   asked (it would answer from its own knowledge);
3. the relevant chunks are packed into the token budget left by the rest of the prompt, the
   answer and `llm.n_ctx`; what does not fit is reported, never silently cut by the model server;
4. the engine generates under the answer schema; the reply is validated, retried once with the
   error, and otherwise becomes an `InvalidModelOutput` error;
5. citations outside the chunks given to the model are dropped; a citation of a given chunk that
   does not support the answer is moved to the one that does (serve/citations.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ragtune.answer import MAX_QUOTE_CHARS, Answer, Citation, parse_answer
from ragtune.documents import Hit
from ragtune.errors import InvalidModelOutput, PayloadTooLarge, UserInputError
from ragtune.prompt import ContextChunk, Turn, build_messages, standalone_query
from ragtune.retriever import RetrievalResult, Retriever
from ragtune.settings import Settings
from serve.citations import check_citations
from serve.conversations import ConversationStore, check_session_id, new_session_id
from serve.engines import Engine
from serve.schemas import ChatResponse, ContextReport, Source

NO_EVIDENCE_ANSWER = (
    "I'm sorry, I couldn't find anything about that in our help articles, so I'd rather not guess. "
    "I'm handing you over to a colleague from our support team who can help."
)
RETRIEVAL_ONLY_ANSWER = "Our assistant is not available right now. These passages from our help articles may answer your question; a colleague from our support team will follow up."
REPAIR_HINT = "Your previous reply was rejected: {error}. Reply again with only the JSON object described in the instructions."
SAFETY_MARGIN_TOKENS = 16
READY_CHECK_SECONDS = 5.0


@dataclass
class Prepared:
    """Everything decided before the model is called."""

    session_id: str
    question: str
    query: str
    history: list[Turn]
    retrieval: RetrievalResult
    evidence: list[Hit]
    used: list[Hit] = field(default_factory=list)
    omitted: list[Hit] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: int | None = None
    budget: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    persist: bool = True
    use_model: bool = False


class ChatService:
    def __init__(self, settings: Settings, retriever: Retriever, engine: Engine | None, store: ConversationStore):
        self.settings = settings
        self.retriever = retriever
        self.engine = engine
        self.store = store
        self._ready: tuple[float, bool] = (0.0, False)

    async def engine_ready(self) -> bool:
        """Whether the engine can answer now (checked at most every few seconds).

        A model that cannot be had makes answers retrieval-only (flagged as such); one that fails
        during a request is a 503 for that request.
        """
        if self.engine is None:
            return False
        checked_at, ready = self._ready
        if time.monotonic() - checked_at > READY_CHECK_SECONDS:
            ready = await self.engine.ready()
            self._ready = (time.monotonic(), ready)
        return ready

    # ---- preparation ---------------------------------------------------------------------
    async def prepare(
        self,
        message: str,
        session_id: str | None = None,
        filters: dict[str, Any] | None = None,
        history: list[Turn] | None = None,
    ) -> Prepared:
        chat = self.settings.chat
        question = message.strip()
        if not question:
            raise UserInputError("message is empty: send the customer's question")
        if len(question) > chat.max_message_chars:
            raise PayloadTooLarge(f"message has {len(question)} characters; the limit is {chat.max_message_chars} (chat.max_message_chars)")
        persist = history is None
        if session_id is not None:
            check_session_id(session_id)
        session_id = session_id or new_session_id()
        if history is None:
            history = await asyncio.to_thread(self.store.history, session_id, chat.history_turns)
        else:
            history = history[-2 * chat.history_turns:] if chat.history_turns else []
        query = standalone_query(question, history) if chat.rewrite_followups else question

        t0 = time.perf_counter()
        retrieval = await asyncio.to_thread(self.retriever.search, query, None, None, filters)
        timings = {"retrieval_ms": _ms(t0)}
        evidence = retrieval.relevant(self.settings.retrieval.min_relevance)
        prepared = Prepared(session_id, question, query, history, retrieval, evidence, timings=timings, persist=persist)
        prepared.use_model = bool(evidence) and await self.engine_ready()
        if prepared.use_model:
            t0 = time.perf_counter()
            self._pack(prepared)
            timings["prompt_ms"] = _ms(t0)
        return prepared

    def _pack(self, p: Prepared) -> None:
        """Fit history and the best chunks into n_ctx - max_tokens; report what was left out."""
        assert self.engine is not None
        llm, chat = self.settings.llm, self.settings.chat
        # Room is kept for the repair message of a retry, so the retry fits the window too.
        repair = self.engine.count_tokens([{"role": "user", "content": REPAIR_HINT.format(error="x" * 160)}])
        available = llm.n_ctx - llm.max_tokens - SAFETY_MARGIN_TOKENS - repair
        history = list(p.history)
        base = build_messages(p.question, [], history, chat.company_name)
        while history and self.engine.count_tokens(base) > available // 2:
            history = history[2:]  # the oldest turns go first
            base = build_messages(p.question, [], history, chat.company_name)
        base_tokens = self.engine.count_tokens(base)
        if base_tokens >= available:
            raise PayloadTooLarge(
                f"the question alone takes {base_tokens} tokens of the {llm.n_ctx}-token context; shorten it or raise llm.n_ctx"
            )
        budget = available - base_tokens
        if chat.context_tokens is not None:
            budget = min(budget, chat.context_tokens)
        used: list[Hit] = []
        for hit in p.evidence:
            candidate = used + [hit]
            cost = self.engine.count_tokens(build_messages(p.question, _context(candidate), history, chat.company_name)) - base_tokens
            if cost <= budget:
                used = candidate
            else:
                p.omitted.append(hit)
        if not used:
            raise PayloadTooLarge(
                f"no retrieved passage fits the {budget}-token context budget; raise llm.n_ctx or lower chunking.chunk_size"
            )
        p.history, p.used, p.budget = history, used, budget
        p.messages = build_messages(p.question, _context(used), history, chat.company_name)
        p.prompt_tokens = self.engine.count_tokens(p.messages)

    # ---- answers -------------------------------------------------------------------------
    async def answer(self, message: str, session_id: str | None = None, filters: dict | None = None,
                     history: list[Turn] | None = None) -> ChatResponse:
        started = time.perf_counter()
        p = await self.prepare(message, session_id, filters, history)
        if not p.use_model:
            return await self.answer_prepared_without_model(p, started)
        t0 = time.perf_counter()
        answer = await self._generate_valid(p)
        p.timings["generate_ms"] = _ms(t0)
        return await self._finish(p, answer, "generated", started)

    async def _generate_valid(self, p: Prepared, first_reply: str | None = None) -> Answer:
        assert self.engine is not None
        allowed = [h.id for h in p.used]
        messages = p.messages
        error: InvalidModelOutput | None = None
        for attempt in range(2):
            if attempt == 0 and first_reply is not None:
                raw = first_reply
            else:
                # The retry runs under the engine's tightest constraint (for llama.cpp a grammar
                # whose longest output fits into max_tokens), with the error explained.
                raw = (await self.engine.generate(messages, allowed, self.settings.llm.max_tokens, tight=attempt > 0)).text
            try:
                return parse_answer(raw)
            except InvalidModelOutput as exc:
                error = exc
                # The rejected reply itself is not sent back: it could be long enough to overflow
                # the window; the error says what was wrong with it.
                messages = p.messages + [{"role": "user", "content": REPAIR_HINT.format(error=str(exc)[:160])}]
        raise InvalidModelOutput(f"{error}; the reply was rejected twice, so no answer is given")

    async def _finish(self, p: Prepared, answer: Answer, mode: str, started: float) -> ChatResponse:
        given = {h.id: h for h in (p.used if mode == "generated" else p.evidence or p.retrieval.hits)}
        support = None
        if mode == "generated" and self.settings.chat.verify_citations:
            t0 = time.perf_counter()
            support = await asyncio.to_thread(self.retriever.support, answer.answer, list(given))
            p.timings["citations_ms"] = _ms(t0)
        check = check_citations(answer.citations, given, answer.answer, support,
                                self.settings.chat.citation_margin, cite_if_none=not answer.handoff)
        kept = check.kept
        cited = {c.id for c in kept}
        shown = p.used if mode == "generated" else [given[c.id] for c in kept]
        sources = [_source(h, h.id in cited) for h in shown]
        if p.persist:
            await asyncio.to_thread(self.store.append, p.session_id, p.question, answer.answer)
        p.timings["total_ms"] = _ms(started)
        return ChatResponse(
            answer=answer.answer,
            citations=kept,
            confidence=answer.confidence,
            handoff=answer.handoff,
            session_id=p.session_id,
            mode=mode,
            sources=sources,
            index_version=p.retrieval.version,
            model=self.engine.name if self.engine is not None and mode == "generated" else None,
            query=p.query,
            context=ContextReport(
                used=[h.id for h in p.used], omitted=[h.id for h in p.omitted], prompt_tokens=p.prompt_tokens,
                budget_tokens=p.budget, dropped_citations=check.dropped, corrected_citations=check.moved,
            ),
            timings_ms=p.timings | {f"retrieval_{k}": v for k, v in p.retrieval.timings_ms.items()},
        )

    async def stream(self, message: str, session_id: str | None = None, filters: dict | None = None,
                     history: list[Turn] | None = None) -> AsyncIterator[tuple[str, Any]]:
        """("delta", text) events while the answer is generated, then ("answer", ChatResponse)."""
        started = time.perf_counter()
        p = await self.prepare(message, session_id, filters, history)
        if not p.use_model:
            response = await self.answer_prepared_without_model(p, started)
            yield "delta", response.answer
            yield "answer", response
            return
        extractor = AnswerTextExtractor()
        raw: list[str] = []
        t0 = time.perf_counter()
        first = True
        async for piece in self.engine.stream(p.messages, [h.id for h in p.used], self.settings.llm.max_tokens):
            if first:
                p.timings["first_token_ms"] = _ms(started)
                first = False
            raw.append(piece)
            text = extractor.feed(piece)
            if text:
                yield "delta", text
        answer = await self._generate_valid(p, first_reply="".join(raw))
        p.timings["generate_ms"] = _ms(t0)
        yield "answer", await self._finish(p, answer, "generated", started)

    async def answer_prepared_without_model(self, p: Prepared, started: float) -> ChatResponse:
        if not p.evidence and self.settings.chat.refuse_without_evidence:
            return await self._finish(p, _no_evidence(), "no_evidence", started)
        return await self._finish(p, _retrieval_only(p.evidence or p.retrieval.hits), "retrieval_only", started)


class AnswerTextExtractor:
    """Pulls the decoded text of the "answer" field out of a JSON object as it streams in."""

    def __init__(self) -> None:
        self.buffer = ""
        self.start: int | None = None
        self.emitted = 0
        self.closed = False

    def feed(self, piece: str) -> str:
        self.buffer += piece
        if self.closed:
            return ""
        if self.start is None:
            key = self.buffer.find('"answer"')
            if key == -1:
                return ""
            quote = self.buffer.find('"', self.buffer.find(":", key + 8) + 1) if ":" in self.buffer[key + 8:] else -1
            if quote == -1:
                return ""
            self.start = quote + 1
        body, end = self.buffer[self.start:], None
        i = 0
        while i < len(body):
            if body[i] == "\\":
                i += 2
                continue
            if body[i] == '"':
                end = i
                break
            i += 1
        safe = body[:end] if end is not None else body[: _safe_cut(body)]
        try:
            decoded = json.loads(f'"{safe}"')
        except json.JSONDecodeError:
            return ""
        self.closed = end is not None
        new, self.emitted = decoded[self.emitted:], len(decoded)
        return new


def _safe_cut(body: str) -> int:
    """Length of the prefix that does not end inside an escape sequence."""
    cut = len(body)
    backslash = body.rfind("\\", max(0, cut - 6))
    if backslash != -1:
        escape = body[backslash:]
        complete = len(escape) >= 2 and (escape[1] != "u" or len(escape) >= 6)
        if not complete:
            cut = backslash
    return cut


def _context(hits: list[Hit]) -> list[ContextChunk]:
    return [ContextChunk(h.id, h.chunk.title, h.chunk.section, h.chunk.text) for h in hits]


def _source(hit: Hit, cited: bool) -> Source:
    c = hit.chunk
    return Source(id=c.id, title=c.title, path=c.doc_id, url=c.url, section=c.section, score=round(hit.relevance, 4), cited=cited)


def _no_evidence() -> Answer:
    return Answer(answer=NO_EVIDENCE_ANSWER, citations=[], confidence="low", handoff=True)


def _retrieval_only(hits: list[Hit]) -> Answer:
    best = hits[:3]
    passages = "\n\n".join(f"{h.chunk.title}: {h.chunk.text.strip()}" for h in best)
    text = f"{RETRIEVAL_ONLY_ANSWER}\n\n{passages}" if best else NO_EVIDENCE_ANSWER
    return Answer(
        answer=text[:2000],
        citations=[Citation(id=h.id, quote=_quote(h.chunk.text)) for h in best],
        confidence="low",
        handoff=True,
    )


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_QUOTE_CHARS else flat[: MAX_QUOTE_CHARS - 3].rsplit(" ", 1)[0] + "..."


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
