"""The model's part of an answer: the pass-rate gate, a reply held to the JSON contract, its verification, the fallback."""

from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

from ragtune.answer import Answer, ModelReply, parse_reply
from ragtune.errors import InvalidModelOutput, ModelUnavailable
from ragtune.grounding.verify import verify_answer
from ragtune.settings import ChatSettings, Settings
from serve.citations import evidence_citations, model_cited
from serve.engines import Engine
from serve.engines.base import GenerationResult
from serve.events import ChatEvents
from serve.prepared import Prepared, ms
from serve.prompting import PROMPT_RULES, REPAIR_HINT, max_tokens, temperature
from serve.responses import composed_answer, confidence, extractive, phrased_with_rest
from serve.schemas import Verification

log = logging.getLogger("ragtune.chat")
INVALID = "invalid"  # verification reason: the reply broke the JSON contract twice
UNAVAILABLE = "unavailable"  # the model was busy (its queue full) or failed mid-answer; auto mode answered extractively


class Made(NamedTuple):
    """An answer made on the model path, before the service finishes it (guard, store, response)."""

    answer: Answer
    mode: str  # "generated", or "extractive" when auto mode fell back
    verification: Verification
    dropped: list[str]  # cited ids that named no source


def model_phrased_accuracy(engine: Any) -> float | None:
    """Fact accuracy of the answers the serving model phrased in its measured eval, if measured."""
    getter = getattr(engine, "phrased_accuracy", None)
    value = getter() if callable(getter) else None
    return float(value) if isinstance(value, (int, float)) else None


def model_pass_rate(engine: Any) -> float | None:
    """The serving model version's verified-pass rate from its gated eval, if measured."""
    getter = getattr(engine, "pass_rate", None)
    value = getter() if callable(getter) else None
    return float(value) if isinstance(value, (int, float)) else None


def measured_well_enough(chat: ChatSettings, engine: Any) -> bool:
    """Auto mode's gate: the serving model's measured verified-pass rate reaches
    chat.min_model_pass_rate and the answers it phrased were as often right as
    chat.min_model_fact_accuracy asks (either minimum at 0 asks nothing)."""
    if chat.min_model_pass_rate <= 0:
        return True
    rate, accuracy = model_pass_rate(engine), model_phrased_accuracy(engine)
    return (
        rate is not None
        and rate >= chat.min_model_pass_rate
        and (chat.min_model_fact_accuracy <= 0 or (accuracy is not None and accuracy >= chat.min_model_fact_accuracy))
    )


def count_generation(
    engine: Engine, events: ChatEvents, p: Prepared, result: GenerationResult, messages: list[dict[str, str]], seconds: float
) -> None:
    """Add one generation to the answer's usage and report it."""
    prompt = result.prompt_tokens if result.prompt_tokens is not None else engine.count_tokens(messages)
    completion = result.completion_tokens or 0
    p.usage.prompt_tokens += prompt
    p.usage.completion_tokens += completion
    p.usage.total_tokens = p.usage.prompt_tokens + p.usage.completion_tokens
    p.usage.cached_prompt_tokens += result.cached_tokens
    if "prompt_eval_ms" in result.timings_ms:  # the engine's own prompt decoding, summed over a retry
        p.timings["prompt_eval_ms"] = p.timings.get("prompt_eval_ms", 0.0) + result.timings_ms["prompt_eval_ms"]
    events.generated(seconds, prompt, completion)


async def generate_valid(
    settings: Settings, engine: Engine, events: ChatEvents, p: Prepared, first_reply: str | None = None
) -> ModelReply:
    """A reply that keeps the answer's JSON contract (`first_reply` when already streamed), retried
    once in generative mode; InvalidModelOutput when none does."""
    assert p.sources is not None
    allowed = list(p.sources.ids)
    messages = p.messages
    error: InvalidModelOutput | None = None
    # In auto mode an invalid reply is not retried: the extractive answer is as good and costs
    # no second generation.
    attempts = 1 if settings.chat.answer_mode == "auto" else 2
    for attempt in range(attempts):
        if attempt == 0 and first_reply is not None:
            raw = first_reply
        else:
            # The retry runs under the engine's tightest constraint (for llama.cpp a grammar
            # whose longest output fits into max_tokens), with the error explained.
            t0 = time.perf_counter()
            result = await engine.generate(
                messages, allowed, max_tokens(settings, p), tight=attempt > 0, temperature=temperature(p)
            )
            count_generation(engine, events, p, result, messages, time.perf_counter() - t0)
            raw = result.text
        try:
            return parse_reply(raw)
        except InvalidModelOutput as exc:
            error = exc
            events.invalid_reply(retried=attempt + 1 < attempts)
            # The rejected reply itself is not sent back: it could be long enough to overflow
            # the window; the error says what was wrong with it.
            messages = p.messages + [{"role": "user", "content": REPAIR_HINT.format(error=str(exc)[:160])}]
    times = "twice" if attempts == 2 else "once"
    raise InvalidModelOutput(f"{error}; the reply was rejected {times}, so no answer is given")


def verify(settings: Settings, p: Prepared, reply: ModelReply) -> list[str]:
    """Why the reply fails verification against the evidence (ragtune/grounding/verify.py); [] passes."""
    reasons = verify_answer(
        reply.answer,
        p.question,
        [e.sentence for e in p.evidence],
        allowed_names=settings.chat.company_name.split(),
        secrets=PROMPT_RULES,
        headings=[f"{e.hit.chunk.title} {e.hit.chunk.section}" for e in p.evidence],
        composed=composed_answer(p),
        similarity=p.similarity,
    )
    # Hand-off is not the model's call: the evidence decided that the question is answered; a
    # reply that says it cannot help is caught by the refusal rule.
    return reasons


def conclude(settings: Settings, events: ChatEvents, p: Prepared, reply: ModelReply | None) -> Made:
    """Verify a generated reply; in auto mode a rejected one gives way to the extractive answer."""
    reasons = [INVALID] if reply is None else verify(settings, p, reply)
    if reply is not None and reasons:
        events.verification_rejected(reasons)
    check = Verification(checked=True, passed=not reasons, reasons=reasons, fallback=False)
    if reasons and settings.chat.answer_mode == "auto":
        check.fallback = True
        return Made(extractive(settings, p), "extractive", check, [])
    assert reply is not None and p.sources is not None
    cited, dropped = model_cited(reply.sources, p.sources, p.evidence)
    if dropped:
        events.citations_corrected("dropped", len(dropped))
    if len(dropped) == len(reply.sources):  # no id named a source: every evidence sentence is cited
        events.citations_corrected("filled", 1)
    text = reply.answer
    if settings.chat.answer_mode == "auto":  # the server's verified answer: the phrased lead, then what it left out
        text, added = phrased_with_rest(p, reply.answer)
        cited += [e for e in added if e not in cited]
    answer = Answer(answer=text, citations=evidence_citations(cited), confidence=confidence(settings, p), handoff=False)
    return Made(answer, "generated", check, dropped)


async def model_answer(settings: Settings, engine: Engine, events: ChatEvents, p: Prepared) -> Made:
    """The model phrases the answer, verified; auto mode falls back to the extractive answer when the
    reply is invalid or rejected or the model is unavailable, generative mode raises."""
    t0 = time.perf_counter()
    try:
        reply: ModelReply | None = await generate_valid(settings, engine, events, p)
    except InvalidModelOutput:
        if settings.chat.answer_mode != "auto":
            raise  # generative mode: a reply invalid twice is a 502, as the contract says
        reply = None
    except ModelUnavailable as exc:
        if settings.chat.answer_mode != "auto":
            raise  # generative mode promises a phrased answer: a 503 (with Retry-After when busy)
        # Auto mode: the verified extractive answer is always at hand, so a busy or failing model costs
        # the customer the phrasing, not the answer.
        log.warning("answering extractively: %s", exc)
        p.timings["generate_ms"] = ms(t0)
        check = Verification(checked=False, passed=None, reasons=[UNAVAILABLE], fallback=True)
        return Made(extractive(settings, p), "extractive", check, [])
    p.timings["generate_ms"] = ms(t0)
    return conclude(settings, events, p, reply)
