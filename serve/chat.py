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

This module orchestrates (prepare -> decide -> answer or stream); the parts live beside it: a
reading made (serve/reader.py) and chosen (serve/readings.py), the state of one answer
(serve/prepared.py), the prompt and its token budget (serve/prompting.py), the model's path with
its gate, verification and fallback (serve/generation.py), the answers made without the model and
the response (serve/responses.py).

Each step is reported to the optional `events` collaborator (serve/events.py), which metrics and
the request log implement; the response's `usage` counts the tokens the engine processed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.answer import Answer
from ragtune.errors import PayloadTooLarge, UserInputError
from ragtune.grounding.answerability import LANGUAGE, LOW_EVIDENCE, NO_EVIDENCE
from ragtune.grounding.evidence import Evidence, top_evidence
from ragtune.grounding.followup import Said, answer_subject, in_context, no_progress, question_parts, tried
from ragtune.grounding.followup_rank import FollowupPool
from ragtune.grounding.messages import GROUNDED_LANGUAGE, detect_language
from ragtune.grounding.model import GroundingModel
from ragtune.grounding.polarity import swapped_in
from ragtune.prompt import Turn
from ragtune.retriever import Retriever
from ragtune.settings import Settings
from serve.answer_text import AnswerTextExtractor
from serve.engines import Engine
from serve.engines.base import GenerationResult
from serve.events import ChatEvents, Events
from serve.generation import (
    conclude,
    count_generation,
    generate_valid,
    measured_well_enough,
    model_answer,
    model_pass_rate,
    model_phrased_accuracy,
)
from serve.guard import AnswerGuard
from serve.prepared import AnswerOptions, Prepared, ms
from serve.prompting import max_tokens, pack, temperature
from serve.reader import QuestionReader
from serve.readings import Reading, answered_from, choose, learned_followup, subject_of
from serve.responses import chat_response, extractive, handoff, leads_with_row
from serve.schemas import ChatResponse, Verification
from serve.store.conversations import ConversationStore, check_session_id, new_session_id

__all__ = ["READY_CHECK_SECONDS", "AnswerOptions", "ChatService", "Prepared"]

READY_CHECK_SECONDS = 5.0


class ChatService:
    """One answer per message: the question prepared (read, evidence, decision), then answered or streamed."""

    def __init__(
        self,
        settings: Settings,
        retriever: Retriever,
        engine: Engine | None,
        store: ConversationStore,
        events: ChatEvents | None = None,
    ):
        self.settings = settings
        self.engine = engine
        self.store = store
        self.events: ChatEvents = events or Events()
        path = settings.chat.grounding_model
        self.grounding = GroundingModel.load(Path(path) if path else None)
        self.guard = AnswerGuard(settings, retriever.embedder, self.events)  # serve/guard.py: planted text, contacts
        self.reader = QuestionReader(settings, retriever, self.grounding, self.guard)  # serve/reader.py
        self._ready: tuple[float, bool] = (float("-inf"), False)  # the first call checks, however young the clock
        # Called with (question, pool, chosen reading) for every follow-up: how `ragtune train
        # followups` collects the follow-up model's examples (cli/followups.py).
        self.on_followup: Callable[[str, FollowupPool, Reading], None] | None = None

    @property
    def retriever(self) -> Retriever:
        return self.reader.retriever

    @retriever.setter
    def retriever(self, retriever: Retriever) -> None:
        self.reader.retriever = retriever  # the next question is read against it

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
        answers = [t.content for t in history if t.role == "assistant"]
        # What was said is left out only when the customer says it did not help.
        # A follow-up saying what the customer already did ("already updated and did the shift reset
        # thing, still crashes") leaves those steps out too.
        if no_progress(question):
            said = Said(answers, done=tried(question) if answers else "", problem=" ".join(previous))
        else:
            said = Said([])
        language = detect_language(question)
        t0 = time.perf_counter()
        # (retrieval query, what units are scored against besides the question)
        readings: list[tuple[str, str, dict[str, Any] | None]] = [(question, question, filters)]
        roles = ["alone"]  # what each reading is, for the follow-up model (ragtune/grounding/followup_rank.py)
        same_doc: tuple[str, str, dict[str, Any]] | None = None  # the reading kept to the previous answer's document
        source = None  # the chunk the previous answer quoted
        if previous and chat.rewrite_followups:
            ctx_query = in_context(question, previous)
            readings.append((ctx_query, ctx_query, filters))
            roles.append("context")
            if answers:
                # A hand-off text (or a phrased answer) quotes no chunk: it says nothing about the subject.
                source = await asyncio.to_thread(answered_from, self.retriever, answers[-1], filters)
                if source is not None:
                    subject = answer_subject(answers[-1])
                    readings.append((in_context(question, [f"{previous[-1]} {subject}"]), ctx_query, filters))
                    # The question with what the previous answer was about ("how do I claim it" after
                    # an answer about service credits): "Service credits how do I claim it".
                    about = in_context(question, [subject_of(source)])
                    readings.append((about, about, filters))
                    roles += ["context", "about"]
                    # The same, kept to the document that answer quoted: a follow-up usually goes on
                    # about it ("do we pay for them straight away" after how to invite members).
                    same_doc = (about, ctx_query, {**(filters or {}), "doc_id": source.doc_id})
            if len(previous) > 1:
                # A subject two questions back ("does it read french?" after a question about the scanner).
                two_back = in_context(question, [f"{previous[-2]} {previous[-1]}"])
                readings.append((two_back, two_back, filters))
                roles.append("two_back")
        # The readings are independent: read side by side (a follow-up's three or four readings
        # otherwise wait on each other's retrieval and scoring).
        # "and on business?" after a question about the Free plan: that question, about Business.
        alternatives = self.reader.alternatives()  # of the index version read now
        swap = swapped_in(question, previous, alternatives)
        specs = [(r, question, s, f) for r, s, f in readings + ([same_doc] if same_doc else [])]
        if swap:  # read as if the customer had asked it so
            specs.append((swap, swap, swap, filters))
        read = list(await asyncio.gather(*(asyncio.to_thread(self.reader.read, r, q, f, said, s) for r, q, s, f in specs)))
        chosen = choose(
            question,
            read[: len(readings)],
            read[len(readings)] if same_doc else None,
            answers[-1:],
            alternatives,
            previous[-1] if previous else None,
            read[-1] if swap else None,
        )
        if previous and chat.rewrite_followups and (self.grounding.followup is not None or self.on_followup is not None):
            found: dict[str, list[list[Evidence]]] = {}
            for role, reading in zip(roles, read, strict=False):
                found.setdefault(role, []).append(reading.ranked)
            if same_doc:
                found["same_doc"] = [read[len(readings)].ranked]
            if swap:
                found["swap"] = [read[-1].ranked]
            found["chosen"] = [chosen.ranked]
            pool = FollowupPool(question, found, answers[-1] if answers else "", source.doc_id if source else None)
            if self.on_followup is not None:
                self.on_followup(question, pool, chosen)
            chosen = learned_followup(self.grounding.followup, pool, chosen)
        timings = {"retrieval_ms": ms(t0)}
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
        if language != GROUNDED_LANGUAGE and p.decision.handoff:
            # Answered when the documents answer it clearly; otherwise the hand-off says why, in the
            # customer's language, instead of a reason read by models of another language.
            p.decision = replace(p.decision, reason=LANGUAGE, with_steps=False)
        p.alternatives, p.similarity = alternatives, self._similarity
        parts = question_parts(question)
        p.evidence = top_evidence(
            chosen.ranked, chat.evidence_sentences, self.grounding.support, across_documents=len(parts) == 2
        )
        if len(parts) == 2 and (not p.decision.handoff or p.decision.reason in (LOW_EVIDENCE, NO_EVIDENCE)):
            # Two questions in one: each part finds its own evidence (the second read after the
            # first, for its "it"), and the answer gives both when both are answered (also when the
            # question as a whole matched neither well enough).
            first = await asyncio.to_thread(self.reader.read, parts[0], parts[0], filters, said)
            second = await asyncio.to_thread(self.reader.read, in_context(parts[1], [parts[0]]), parts[1], filters, said)
            if not first.decision.handoff and not second.decision.handoff:
                per_part = max(1, chat.evidence_sentences - 1)
                combined = top_evidence(first.ranked, per_part, self.grounding.support)
                combined += [e for e in top_evidence(second.ranked, per_part, self.grounding.support) if e not in combined]
                p.evidence, p.parts = combined, 2
                p.relevant = list({h.id: h for h in first.relevant + second.relevant + p.relevant}.values())
                if p.decision.handoff:
                    p.decision = min(first.decision, second.decision, key=lambda d: d.answerable)
        if p.outcome == "answer" and not leads_with_row(p) and await self.model_allowed():
            p.use_model = True
            t0 = time.perf_counter()
            pack(self.settings, self.engine, p)
            timings["prompt_ms"] = ms(t0)
        return p

    def _similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts' embeddings (a phrased answer and the unit it should restate)."""
        vectors = self.retriever.embedder.embed_documents([a, b])
        return float(np.dot(vectors[0], vectors[1]))

    async def model_allowed(self) -> bool:
        """Whether this answer is phrased by the model: always in generative mode; in auto mode only
        when the serving model's measured verified-pass rate reaches chat.min_model_pass_rate and the
        answers it phrased were as often right as chat.min_model_fact_accuracy asks."""
        chat = self.settings.chat
        if chat.answer_mode == "extractive" or not await self.engine_ready():
            return False
        if chat.answer_mode == "generative":
            return True
        return measured_well_enough(chat, self.engine)

    def model_phrased_accuracy(self) -> float | None:
        """Fact accuracy of the answers the serving model phrased in its measured eval, if measured."""
        return model_phrased_accuracy(self.engine)

    def model_pass_rate(self) -> float | None:
        """The serving model version's verified-pass rate from its gated eval, if measured."""
        return model_pass_rate(self.engine)

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

    async def _answer_prepared(self, p: Prepared, started: float) -> ChatResponse:
        assert self.engine is not None
        made = await model_answer(self.settings, self.engine, self.events, p)
        return await self._finish(p, made.answer, made.mode, started, made.verification, made.dropped)

    async def answer_prepared_without_model(self, p: Prepared, started: float) -> ChatResponse:
        if p.outcome == "no_evidence":
            return await self._finish(p, handoff(self.settings, p), "no_evidence", started)
        if p.outcome == "handoff":
            return await self._finish(p, handoff(self.settings, p), "handoff", started)
        return await self._finish(p, extractive(self.settings, p), "extractive", started)

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
        if p.persist:
            p.turn = await asyncio.to_thread(self.store.append, p.session_id, p.question, answer.answer)
        p.timings["total_ms"] = ms(started)
        response = chat_response(self.settings, self.engine, p, answer, mode, verification, dropped)
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
            response.timings_ms["first_token_ms"] = ms(started)
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
            p.messages, list(p.sources.ids), max_tokens(self.settings, p), temperature=temperature(p), result=streamed
        )
        async for piece in pieces:
            if first:
                p.timings["first_token_ms"] = ms(started)
                first = False
            raw.append(piece)
            text = contact_guard.feed(extractor.feed(piece))
            if text:
                yield "delta", text
        if held := contact_guard.flush():  # the words held back in case they were part of a contact
            yield "delta", held
        count_generation(self.engine, self.events, p, streamed, p.messages, time.perf_counter() - t0)
        reply = await generate_valid(self.settings, self.engine, self.events, p, first_reply="".join(raw))
        p.timings["generate_ms"] = ms(t0)
        made = conclude(self.settings, self.events, p, reply)
        yield "answer", await self._finish(p, made.answer, made.mode, started, made.verification, made.dropped)
