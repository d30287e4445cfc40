"""The chat service: retrieval, evidence selection, hand-off, answer modes, verification.

Routers stay thin; everything an answer is made of happens here, with the grounding package
(ragtune/grounding/) doing the deciding:
1. the question is retrieved against the current index; a follow-up also in context (the previous
   question in front, the previous answer's document), and one reading is kept (serve/readings.py);
2. the server selects the evidence: the units (sentences, list items, rows) of the relevant chunks
   that the learned selector scores best; they become the citations, verbatim by construction;
3. the evidence and the question decide the hand-off (ragtune/grounding/answerability.py): a
   calibrated answerability below its threshold, or a request for a person, an angry complaint or
   an account action gets a hand-off text in the customer's language, never model text;
4. the answer is made in `chat.answer_mode`: extractive (composed from the evidence, no model),
   generative (the model phrases it, under the answer grammar, sources shown as S1, S2, ...), or
   auto (the model phrases it only when the serving model version's measured pass rate reaches
   `chat.min_model_pass_rate`, verified against the evidence; extractive otherwise or when
   verification fails). The response says which mode answered.

Each step is reported to the optional `events` collaborator (serve/events.py), which metrics and
the request log implement; the response's `usage` counts the tokens the engine processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ragtune.answer import Answer, ModelReply, parse_reply
from ragtune.documents import Hit, matches
from ragtune.errors import InvalidModelOutput, ModelUnavailable, PayloadTooLarge, UserInputError
from ragtune.grounding.answerability import LOW_EVIDENCE, NO_EVIDENCE, Decision, decide
from ragtune.grounding.compose import compose
from ragtune.grounding.evidence import Evidence, EvidenceSelector, evidence_chunks, top_evidence
from ragtune.grounding.features import CorpusStats
from ragtune.grounding.followup import Said, answer_subject, in_context, no_progress, question_parts
from ragtune.grounding.messages import REASON_TEXT, detect_language, message
from ragtune.grounding.model import GroundingModel
from ragtune.grounding.spelling import Speller
from ragtune.grounding.verify import verify_answer
from ragtune.prompt import NumberedSources, PromptStyle, Turn, build_messages, number_sources, prompt_rules
from ragtune.retriever import RetrievalResult, Retriever
from ragtune.settings import Settings
from serve.answer_text import AnswerTextExtractor
from serve.citations import evidence_citations, model_cited
from serve.engines import Engine
from serve.engines.base import GenerationResult
from serve.events import ChatEvents, Events
from serve.guard import AnswerGuard
from serve.readings import Reading, answered_from, choose, subject_of
from serve.schemas import ChatResponse, ContextReport, EvidenceItem, Source, Usage, Verification
from serve.store.conversations import ConversationStore, check_session_id, new_session_id

log = logging.getLogger("ragtune.chat")
REPAIR_HINT = "Your previous reply was rejected: {error}. Reply again with only the JSON object described in the instructions."
INVALID = "invalid"  # verification reason: the reply broke the JSON contract twice
UNAVAILABLE = "unavailable"  # the model was busy (its queue full) or failed mid-answer; auto mode answered extractively
SAFETY_MARGIN_TOKENS = 16
READY_CHECK_SECONDS = 5.0
# The system prompt's rules: an answer repeating them verbatim leaks the prompt.
PROMPT_RULES = prompt_rules()
# Fewest tokens a per-request max_tokens is raised to: the answer JSON's keys alone need about this.
MIN_ANSWER_TOKENS = 16


@dataclass(frozen=True)
class AnswerOptions:
    """Per-request sampling (the OpenAI route's temperature and max_tokens); None keeps the settings'.

    The service clamps them: temperature to [0, 2], max_tokens to [MIN_ANSWER_TOKENS, llm.max_tokens]."""

    temperature: float | None = None
    max_tokens: int | None = None


@dataclass
class Prepared:
    """Everything decided before the model is called."""

    session_id: str
    question: str
    query: str
    history: list[Turn]
    retrieval: RetrievalResult
    relevant: list[Hit]
    evidence: list[Evidence] = field(default_factory=list)
    parts: int = 1  # questions asked in one message, each with its own evidence
    decision: Decision = field(default_factory=lambda: Decision(False))
    ranked: list[Evidence] = field(default_factory=list)
    said: Said = field(default_factory=lambda: Said([]))
    language: str = "en"
    sources: NumberedSources | None = None
    omitted: list[Evidence] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: int | None = None
    budget: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    persist: bool = True
    use_model: bool = False
    options: AnswerOptions = field(default_factory=AnswerOptions)
    usage: Usage = field(default_factory=Usage)
    turn: int = 0  # this answer's index in the session (the store's count when persisted)

    @property
    def outcome(self) -> str:
        if not self.relevant:
            return "no_evidence" if not self.decision.handoff or self.decision.reason == "no_evidence" else "handoff"
        if self.decision.handoff:
            return "no_evidence" if self.decision.reason == "no_evidence" else "handoff"
        return "answer"


class ChatService:
    def __init__(
        self,
        settings: Settings,
        retriever: Retriever,
        engine: Engine | None,
        store: ConversationStore,
        events: ChatEvents | None = None,
    ):
        self.settings = settings
        self.retriever = retriever
        self.engine = engine
        self.store = store
        self.events: ChatEvents = events or Events()
        path = settings.chat.grounding_model
        self.grounding = GroundingModel.load(Path(path) if path else None)
        self._stats: tuple[str, tuple[CorpusStats, Speller]] | None = None
        self.selector = EvidenceSelector(retriever.embedder, self.grounding, self.corpus_stats)
        self.guard = AnswerGuard(settings, retriever.embedder, self.events)  # serve/guard.py: planted text, contacts
        self._ready: tuple[float, bool] = (float("-inf"), False)  # the first call checks, however young the clock

    async def engine_ready(self) -> bool:
        """Whether the engine can answer now (checked at most every few seconds).

        A model that cannot be had makes answers extractive; one that fails during a request is a
        503 for that request.
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
        options: AnswerOptions | None = None,
    ) -> Prepared:
        chat = self.settings.chat
        question = message.strip()
        if not question:
            raise UserInputError("message is empty: send the customer's question")
        if len(question) > chat.max_message_chars:
            raise PayloadTooLarge(
                f"message has {len(question)} characters; the limit is {chat.max_message_chars} (chat.max_message_chars)"
            )
        persist = history is None
        # A client-held conversation (the OpenAI route) numbers its answers after the ones it sent.
        turn = 0 if history is None else sum(1 for t in history if t.role == "assistant")
        if session_id is not None:
            check_session_id(session_id)
        session_id = session_id or new_session_id()
        if history is None:
            history = await asyncio.to_thread(self.store.history, session_id, chat.history_turns)
        else:
            history = history[-2 * chat.history_turns :] if chat.history_turns else []
        previous = [t.content for t in history if t.role == "user"]
        # What was said is left out only when the customer says it did not help.
        said = Said([t.content for t in history if t.role == "assistant"] if no_progress(question) else [])
        language = detect_language(question)
        t0 = time.perf_counter()
        # (retrieval query, what units are scored against besides the question)
        readings: list[tuple[str, str, dict[str, Any] | None]] = [(question, question, filters)]
        answers = [t.content for t in history if t.role == "assistant"]
        same_doc: int | None = None  # the index of the reading kept to the previous answer's document
        if previous and chat.rewrite_followups:
            ctx_query = in_context(question, previous)
            readings.append((ctx_query, ctx_query, filters))
            if answers:
                subject = answer_subject(answers[-1])
                readings.append((in_context(question, [f"{previous[-1]} {subject}"]), ctx_query, filters))
                source = await asyncio.to_thread(answered_from, self.retriever, answers[-1], filters)
                if source is not None:
                    # The question with what the previous answer was about ("how do I claim it" after
                    # an answer about service credits): "Service credits how do I claim it".
                    about = in_context(question, [subject_of(source)])
                    readings.append((about, about, filters))
                    # The same, kept to the document that answer quoted: a follow-up usually goes on
                    # about it ("do we pay for them straight away" after how to invite members).
                    same_doc = len(readings)
                    readings.append((about, ctx_query, {**(filters or {}), "doc_id": source.doc_id}))
            if len(previous) > 1:
                # A subject two questions back ("does it read french?" after a question about the scanner).
                two_back = in_context(question, [f"{previous[-2]} {previous[-1]}"])
                readings.append((two_back, two_back, filters))
        # The readings are independent: read side by side (a follow-up's three or four readings
        # otherwise wait on each other's retrieval and scoring).
        candidates = list(await asyncio.gather(*(asyncio.to_thread(self._read, r, question, f, said, s) for r, s, f in readings)))
        same = candidates.pop(same_doc) if same_doc is not None else None
        chosen = choose(question, candidates, same, answers[-1:])
        timings = {"retrieval_ms": _ms(t0)}
        self.events.retrieved(timings["retrieval_ms"] / 1000)
        p = Prepared(
            session_id,
            question,
            chosen.query,
            history,
            chosen.retrieval,
            chosen.relevant,
            timings=timings,
            persist=persist,
            turn=turn,
        )
        p.options = options or AnswerOptions()
        p.ranked, p.decision, p.said, p.language = chosen.ranked, chosen.decision, said, language
        p.evidence = top_evidence(chosen.ranked, chat.evidence_sentences, self.grounding.support)
        parts = question_parts(question)
        if len(parts) == 2 and (not p.decision.handoff or p.decision.reason in (LOW_EVIDENCE, NO_EVIDENCE)):
            # Two questions in one: each part finds its own evidence (the second read after the
            # first, for its "it"), and the answer gives both when both are answered (also when the
            # question as a whole matched neither well enough).
            first = await asyncio.to_thread(self._read, parts[0], parts[0], filters, said)
            second = await asyncio.to_thread(self._read, in_context(parts[1], [parts[0]]), parts[1], filters, said)
            if not first.decision.handoff and not second.decision.handoff:
                per_part = max(1, chat.evidence_sentences - 1)
                combined = top_evidence(first.ranked, per_part, self.grounding.support)
                combined += [e for e in top_evidence(second.ranked, per_part, self.grounding.support) if e not in combined]
                p.evidence, p.parts = combined, 2
                p.relevant = list({h.id: h for h in first.relevant + second.relevant + p.relevant}.values())
                if p.decision.handoff:
                    p.decision = min(first.decision, second.decision, key=lambda d: d.answerable)
        if p.outcome == "answer" and await self.model_allowed():
            p.use_model = True
            t0 = time.perf_counter()
            self._pack(p)
            timings["prompt_ms"] = _ms(t0)
        return p

    def corpus_stats(self) -> CorpusStats:
        """Word statistics of the serving index version (computed once per version)."""
        return self._corpus()[0]

    def _corpus(self) -> tuple[CorpusStats, Speller]:
        snap = self.retriever.snapshot()
        cached = self._stats
        if cached is None or cached[0] != snap.version:
            texts = [f"{c.title} {c.section} {c.text}" for c in snap.chunks]
            cached = (snap.version, (CorpusStats.from_texts(texts), Speller.from_texts(texts)))
            self._stats = cached
        return cached[1]

    def _read(
        self, query: str, question: str, filters: dict[str, Any] | None, said: Said, scored_as: str | None = None
    ) -> Reading:
        """One reading of the question: retrieval for `query` (the question alone, or in context),
        its units scored against the question itself (in context, the earlier question would pull
        back the sentences already given) and against `scored_as` (default `query`; never the
        previous answer, which would bring its own sentences back), the decision on the reading."""
        chat = self.settings.chat
        speller = self._corpus()[1]
        query, asked = speller.correct(query), speller.correct(question)  # typos, against the index's own words
        scored_as = query if scored_as is None else speller.correct(scored_as)
        retrieval = self.retriever.search(query, None, None, filters)
        # With refuse_without_evidence off, weak chunks still go to evidence selection (and its hand-off check).
        floor = self.settings.retrieval.min_relevance if chat.refuse_without_evidence else 0.0
        relevant = retrieval.relevant(floor)[: chat.evidence_chunks]
        qvec = self.retriever.embedder.embed_query(asked)
        if chat.known_questions:
            chunks = self.retriever.snapshot().chunks
            chunks = [c for c in chunks if matches(c, filters)] if filters else chunks
            relevant = self.selector.with_known(qvec, relevant, chunks, floor)
        ranked = self.selector.score(asked, relevant, said, qvec) if relevant else []
        if relevant and scored_as != asked:
            # In context, whether the question is answered takes each unit's better score (a unit may
            # answer it only with the earlier question in front: "and on the free plan?"); which unit
            # answers takes their geometric mean, high only for a unit good on both ("and if I pay
            # monthly?" after a refund question: monthly refunds, not monthly billing nor annual refunds).
            other = {(e.chunk_id, e.position): e.score for e in self.selector.score(scored_as, relevant, said)}
            both = [(e, other.get((e.chunk_id, e.position), e.score)) for e in ranked]
            judged = sorted((replace(e, score=max(e.score, o)) for e, o in both), key=lambda e: e.score, reverse=True)
            ranked = sorted((replace(e, score=(e.score * o) ** 0.5) for e, o in both), key=lambda e: e.score, reverse=True)
        else:
            judged = ranked
        ranked = self.guard.evidence(ranked)  # no planted instructions, no foreign contacts (serve/guard.py)
        judged = self.guard.evidence(judged)
        # The known questions are compared with the reading the decision is on ("and on Business?"
        # alone is close to no known question; in context it is a version-history question).
        known_vec = qvec if scored_as == asked else self.retriever.embedder.embed_query(scored_as)
        # The intent is read from the customer's own words, not from the reading in context.
        intent_vec = qvec if asked == question else self.retriever.embedder.embed_query(question)
        decision = decide(
            self.grounding,
            scored_as,
            judged,
            self.corpus_stats(),
            intent_vec,
            question,
            self.selector.word_vectors,
            chat.company_name,
            self.selector.known_nearest(known_vec, judged[0].hit.chunk.doc_id if judged else ""),
        )
        if not relevant and decision.reason is None:
            decision.handoff, decision.reason = True, "no_evidence"
        return Reading(query, retrieval, relevant, ranked, decision)

    async def model_allowed(self) -> bool:
        """Whether this answer is phrased by the model: always in generative mode; in auto mode only
        when the serving model's measured verified-pass rate reaches chat.min_model_pass_rate and the
        answers it phrased were as often right as chat.min_model_fact_accuracy asks."""
        chat = self.settings.chat
        if chat.answer_mode == "extractive" or not await self.engine_ready():
            return False
        if chat.answer_mode == "generative":
            return True
        if chat.min_model_pass_rate <= 0:
            return True
        rate, accuracy = self.model_pass_rate(), self.model_phrased_accuracy()
        return (
            rate is not None
            and rate >= chat.min_model_pass_rate
            and (chat.min_model_fact_accuracy <= 0 or (accuracy is not None and accuracy >= chat.min_model_fact_accuracy))
        )

    def model_phrased_accuracy(self) -> float | None:
        """Fact accuracy of the answers the serving model phrased in its measured eval, if measured."""
        getter = getattr(self.engine, "phrased_accuracy", None)
        value = getter() if callable(getter) else None
        return float(value) if isinstance(value, (int, float)) else None

    def model_pass_rate(self) -> float | None:
        """The serving model version's verified-pass rate from its gated eval, if measured."""
        getter = getattr(self.engine, "pass_rate", None)
        value = getter() if callable(getter) else None
        return float(value) if isinstance(value, (int, float)) else None

    def _pack(self, p: Prepared) -> None:
        """Fit history and the evidence into n_ctx - answer tokens; report what was left out."""
        assert self.engine is not None
        llm, chat = self.settings.llm, self.settings.chat
        # Room is kept for the repair message of a retry, so the retry fits the window too.
        repair = self.engine.count_tokens([{"role": "user", "content": REPAIR_HINT.format(error="x" * 160)}])
        available = llm.n_ctx - self._max_tokens(p) - SAFETY_MARGIN_TOKENS - repair
        history = list(p.history)
        style = self.prompt_style()
        base = build_messages(p.question, [], history, chat.company_name, style)
        while history and self.engine.count_tokens(base) > available // 2:
            history = history[2:]  # the oldest turns go first
            base = build_messages(p.question, [], history, chat.company_name, style)
        base_tokens = self.engine.count_tokens(base)
        if base_tokens >= available:
            raise PayloadTooLarge(
                f"the question alone takes {base_tokens} tokens of the {llm.n_ctx}-token context; shorten it or raise llm.n_ctx"
            )
        budget = available - base_tokens
        if chat.context_tokens is not None:
            budget = min(budget, chat.context_tokens)
        used: list[Evidence] = []
        for item in p.evidence:
            candidate = used + [item]
            chunks = number_sources(evidence_chunks(candidate)).chunks
            messages = build_messages(p.question, chunks, history, chat.company_name, style)
            if self.engine.count_tokens(messages) - base_tokens <= budget:
                used = candidate
            else:
                p.omitted.append(item)
        if not used:
            raise PayloadTooLarge(f"no evidence sentence fits the {budget}-token context budget; raise llm.n_ctx")
        p.history, p.evidence, p.budget = history, used, budget
        p.sources = number_sources(evidence_chunks(used))
        p.messages = build_messages(p.question, p.sources.chunks, history, chat.company_name, style)
        p.prompt_tokens = self.engine.count_tokens(p.messages)

    def prompt_style(self) -> PromptStyle:
        """The prompt the serving model was tuned on (`short` for a tuned adapter), else the full one."""
        style = getattr(self.engine, "prompt_style", None)
        return "short" if style == "short" else "full"

    def _max_tokens(self, p: Prepared) -> int:
        requested = p.options.max_tokens
        if requested is not None:
            return max(MIN_ANSWER_TOKENS, min(requested, self.settings.llm.max_tokens))
        return min(self.settings.llm.max_tokens, self.settings.chat.answer_max_tokens)

    @staticmethod
    def _temperature(p: Prepared) -> float | None:
        t = p.options.temperature
        return None if t is None else min(max(t, 0.0), 2.0)

    def _counted(self, p: Prepared, result: GenerationResult, messages: list[dict[str, str]], seconds: float) -> None:
        """Add one generation to the answer's usage and report it."""
        assert self.engine is not None
        prompt = result.prompt_tokens if result.prompt_tokens is not None else self.engine.count_tokens(messages)
        completion = result.completion_tokens or 0
        p.usage.prompt_tokens += prompt
        p.usage.completion_tokens += completion
        p.usage.total_tokens = p.usage.prompt_tokens + p.usage.completion_tokens
        p.usage.cached_prompt_tokens += result.cached_tokens
        if "prompt_eval_ms" in result.timings_ms:  # the engine's own prompt decoding, summed over a retry
            p.timings["prompt_eval_ms"] = p.timings.get("prompt_eval_ms", 0.0) + result.timings_ms["prompt_eval_ms"]
        self.events.generated(seconds, prompt, completion)

    # ---- answers -------------------------------------------------------------------------
    async def answer(
        self,
        message: str,
        session_id: str | None = None,
        filters: dict | None = None,
        history: list[Turn] | None = None,
        options: AnswerOptions | None = None,
    ) -> ChatResponse:
        started = time.perf_counter()
        p = await self.prepare(message, session_id, filters, history, options)
        if not p.use_model:
            return await self.answer_prepared_without_model(p, started)
        return await self._answer_prepared(p, started)

    async def _generate_valid(self, p: Prepared, first_reply: str | None = None) -> ModelReply:
        assert self.engine is not None and p.sources is not None
        allowed = list(p.sources.ids)
        messages = p.messages
        error: InvalidModelOutput | None = None
        # In auto mode an invalid reply is not retried: the extractive answer is as good and costs
        # no second generation.
        attempts = 1 if self.settings.chat.answer_mode == "auto" else 2
        for attempt in range(attempts):
            if attempt == 0 and first_reply is not None:
                raw = first_reply
            else:
                # The retry runs under the engine's tightest constraint (for llama.cpp a grammar
                # whose longest output fits into max_tokens), with the error explained.
                t0 = time.perf_counter()
                result = await self.engine.generate(
                    messages, allowed, self._max_tokens(p), tight=attempt > 0, temperature=self._temperature(p)
                )
                self._counted(p, result, messages, time.perf_counter() - t0)
                raw = result.text
            try:
                return parse_reply(raw)
            except InvalidModelOutput as exc:
                error = exc
                self.events.invalid_reply(retried=attempt + 1 < attempts)
                # The rejected reply itself is not sent back: it could be long enough to overflow
                # the window; the error says what was wrong with it.
                messages = p.messages + [{"role": "user", "content": REPAIR_HINT.format(error=str(exc)[:160])}]
        times = "twice" if attempts == 2 else "once"
        raise InvalidModelOutput(f"{error}; the reply was rejected {times}, so no answer is given")

    async def _conclude(self, p: Prepared, reply: ModelReply | None, started: float) -> ChatResponse:
        """Verify a generated reply; in auto mode a rejected one gives way to the extractive answer."""
        reasons = [INVALID] if reply is None else self.verify(p, reply)
        if reply is not None and reasons:
            self.events.verification_rejected(reasons)
        check = Verification(checked=True, passed=not reasons, reasons=reasons, fallback=False)
        if reasons and self.settings.chat.answer_mode == "auto":
            check.fallback = True
            return await self._finish(p, self._extractive(p), "extractive", started, check)
        assert reply is not None and p.sources is not None
        cited, dropped = model_cited(reply.sources, p.sources, p.evidence)
        if dropped:
            self.events.citations_corrected("dropped", len(dropped))
        if len(dropped) == len(reply.sources):  # no id named a source: every evidence sentence is cited
            self.events.citations_corrected("filled", 1)
        answer = Answer(answer=reply.answer, citations=evidence_citations(cited), confidence=self._confidence(p), handoff=False)
        return await self._finish(p, answer, "generated", started, check, dropped)

    def verify(self, p: Prepared, reply: ModelReply) -> list[str]:
        reasons = verify_answer(
            reply.answer,
            p.question,
            [e.sentence for e in p.evidence],
            allowed_names=self.settings.chat.company_name.split(),
            secrets=PROMPT_RULES,
            headings=[f"{e.hit.chunk.title} {e.hit.chunk.section}" for e in p.evidence],
        )
        # Hand-off is not the model's call: the evidence decided that the question is answered; a
        # reply that says it cannot help is caught by the refusal rule.
        return reasons

    def _confidence(self, p: Prepared) -> str:
        return "high" if p.decision.answerable >= self.settings.chat.high_confidence else "medium"

    def _extractive(self, p: Prepared) -> Answer:
        text, used = compose(p.evidence, p.said, parts=p.parts)
        return Answer(answer=text, citations=evidence_citations(used), confidence=self._confidence(p), handoff=False)

    def _handoff(self, p: Prepared) -> Answer:
        """The hand-off text for the decision's reason, in the customer's language; an account action
        the documents explain also gets the self-service steps (and their citations)."""
        chat = self.settings.chat
        kind = REASON_TEXT.get(p.decision.reason or "", "no_answer")
        if p.decision.with_steps and p.evidence:
            steps, used = compose(p.evidence, p.said)
            text = message("action_steps", p.language, chat.support_contact, chat.messages, answer=steps)
            return Answer(answer=text[:2000], citations=evidence_citations(used), confidence="low", handoff=True)
        text = message(kind, p.language, chat.support_contact, chat.messages)
        return Answer(answer=text, citations=[], confidence="low", handoff=True)

    async def _finish(
        self,
        p: Prepared,
        answer: Answer,
        mode: str,
        started: float,
        verification: Verification | None = None,
        dropped: list[str] | None = None,
    ) -> ChatResponse:
        answer = self.guard.answer(answer)  # no contact the operator has not allowed, in any mode
        cited = {c.id for c in answer.citations}
        shown = p.relevant if p.outcome == "answer" or answer.citations else []
        sources = [_source(h, h.id in cited) for h in shown]
        if p.persist:
            p.turn = await asyncio.to_thread(self.store.append, p.session_id, p.question, answer.answer)
        p.timings["total_ms"] = _ms(started)
        response = ChatResponse(
            answer=answer.answer,
            citations=answer.citations,
            confidence=answer.confidence,
            handoff=answer.handoff,
            session_id=p.session_id,
            turn=p.turn,
            mode=mode,
            answer_mode=self.settings.chat.answer_mode,
            verification=verification or Verification(checked=False, passed=None, reasons=[], fallback=False),
            sources=sources,
            index_version=p.retrieval.version,
            model=self.engine.name if self.engine is not None and mode == "generated" else None,
            query=p.query,
            context=ContextReport(
                used=list(dict.fromkeys(e.chunk_id for e in p.evidence)) if p.outcome == "answer" else [],
                omitted=list(dict.fromkeys(e.chunk_id for e in p.omitted)),
                prompt_tokens=p.prompt_tokens,
                budget_tokens=p.budget,
                dropped_citations=dropped or [],
                evidence=[EvidenceItem(id=e.chunk_id, sentence=e.sentence, score=round(e.score, 4)) for e in p.evidence],
                handoff_reason=p.decision.reason if p.outcome == "handoff" else p.outcome if p.outcome == "no_evidence" else None,
                answerable=round(p.decision.answerable, 4),
                intent=p.decision.intent,
                language=p.language,
            ),
            timings_ms=p.timings | {f"retrieval_{k}": v for k, v in p.retrieval.timings_ms.items()},
            usage=p.usage,
        )
        self.events.answered(p.question, response)
        return response

    async def stream(
        self,
        message: str,
        session_id: str | None = None,
        filters: dict | None = None,
        history: list[Turn] | None = None,
        options: AnswerOptions | None = None,
    ) -> AsyncIterator[tuple[str, Any]]:
        """("delta", text) events, then ("answer", ChatResponse).

        In generative mode the model's text streams as it is written. In auto mode nothing
        unverified is shown: the reply is generated and verified first, then sent in one delta."""
        started = time.perf_counter()
        p = await self.prepare(message, session_id, filters, history, options)
        if not p.use_model or self.settings.chat.answer_mode == "auto":
            response = await (
                self.answer_prepared_without_model(p, started) if not p.use_model else self._answer_prepared(p, started)
            )
            response.timings_ms["first_token_ms"] = _ms(started)
            yield "delta", response.answer
            yield "answer", response
            return
        extractor = AnswerTextExtractor()
        contact_guard = self.guard.stream()  # what is sent while generating passes the same contact check
        raw: list[str] = []
        t0 = time.perf_counter()
        first = True
        assert self.engine is not None and p.sources is not None
        streamed = GenerationResult()
        pieces = self.engine.stream(
            p.messages, list(p.sources.ids), self._max_tokens(p), temperature=self._temperature(p), result=streamed
        )
        async for piece in pieces:
            if first:
                p.timings["first_token_ms"] = _ms(started)
                first = False
            raw.append(piece)
            text = contact_guard.feed(extractor.feed(piece))
            if text:
                yield "delta", text
        if held := contact_guard.flush():  # the words held back in case they were part of a contact
            yield "delta", held
        self._counted(p, streamed, p.messages, time.perf_counter() - t0)
        reply = await self._generate_valid(p, first_reply="".join(raw))
        p.timings["generate_ms"] = _ms(t0)
        yield "answer", await self._conclude(p, reply, started)

    async def _answer_prepared(self, p: Prepared, started: float) -> ChatResponse:
        t0 = time.perf_counter()
        try:
            reply = await self._generate_valid(p)
        except InvalidModelOutput:
            if self.settings.chat.answer_mode != "auto":
                raise  # generative mode: a reply invalid twice is a 502, as the contract says
            reply = None
        except ModelUnavailable as exc:
            if self.settings.chat.answer_mode != "auto":
                raise  # generative mode promises a phrased answer: a 503 (with Retry-After when busy)
            # Auto mode: the verified extractive answer is always at hand, so a busy or failing model costs
            # the customer the phrasing, not the answer.
            log.warning("answering extractively: %s", exc)
            p.timings["generate_ms"] = _ms(t0)
            check = Verification(checked=False, passed=None, reasons=[UNAVAILABLE], fallback=True)
            return await self._finish(p, self._extractive(p), "extractive", started, check)
        p.timings["generate_ms"] = _ms(t0)
        return await self._conclude(p, reply, started)

    async def answer_prepared_without_model(self, p: Prepared, started: float) -> ChatResponse:
        if p.outcome == "no_evidence":
            return await self._finish(p, self._handoff(p), "no_evidence", started)
        if p.outcome == "handoff":
            return await self._finish(p, self._handoff(p), "handoff", started)
        return await self._finish(p, self._extractive(p), "extractive", started)


def _source(hit: Hit, cited: bool) -> Source:
    c = hit.chunk
    return Source(id=c.id, title=c.title, path=c.doc_id, url=c.url, section=c.section, score=round(hit.relevance, 4), cited=cited)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
