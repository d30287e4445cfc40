"""The prompt of a model answer: history and evidence packed into the context window, and the per-request limits."""

from __future__ import annotations

from typing import Any

from ragtune.errors import PayloadTooLarge
from ragtune.grounding.evidence import Evidence, evidence_chunks
from ragtune.prompt import PromptStyle, build_messages, number_sources, prompt_rules
from ragtune.settings import Settings
from serve.engines import Engine
from serve.prepared import Prepared

REPAIR_HINT = "Your previous reply was rejected: {error}. Reply again with only the JSON object described in the instructions."
SAFETY_MARGIN_TOKENS = 16
# The system prompt's rules: an answer repeating them verbatim leaks the prompt.
PROMPT_RULES = prompt_rules()
# Fewest tokens a per-request max_tokens is raised to: the answer JSON's keys alone need about this.
MIN_ANSWER_TOKENS = 16


def prompt_style(engine: Any) -> PromptStyle:
    """The prompt the serving model was tuned on (`short` for a tuned adapter), else the full one."""
    style = getattr(engine, "prompt_style", None)
    return "short" if style == "short" else "full"


def max_tokens(settings: Settings, p: Prepared) -> int:
    """Most tokens the answer may take: the request's max_tokens clamped, else chat.answer_max_tokens."""
    requested = p.options.max_tokens
    if requested is not None:
        return max(MIN_ANSWER_TOKENS, min(requested, settings.llm.max_tokens))
    return min(settings.llm.max_tokens, settings.chat.answer_max_tokens)


def temperature(p: Prepared) -> float | None:
    """The request's temperature clamped to [0, 2]; None keeps the engine's setting."""
    t = p.options.temperature
    return None if t is None else min(max(t, 0.0), 2.0)


def pack(settings: Settings, engine: Engine | None, p: Prepared) -> None:
    """Fit history and the evidence into n_ctx - answer tokens; report what was left out."""
    assert engine is not None
    llm, chat = settings.llm, settings.chat
    # Room is kept for the repair message of a retry, so the retry fits the window too.
    repair = engine.count_tokens([{"role": "user", "content": REPAIR_HINT.format(error="x" * 160)}])
    available = llm.n_ctx - max_tokens(settings, p) - SAFETY_MARGIN_TOKENS - repair
    history = list(p.history)
    style = prompt_style(engine)
    base = build_messages(p.question, [], history, chat.company_name, style)
    while history and engine.count_tokens(base) > available // 2:
        history = history[2:]  # the oldest turns go first
        base = build_messages(p.question, [], history, chat.company_name, style)
    base_tokens = engine.count_tokens(base)
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
        if engine.count_tokens(messages) - base_tokens <= budget:
            used = candidate
        else:
            p.omitted.append(item)
    if not used:
        raise PayloadTooLarge(f"no evidence sentence fits the {budget}-token context budget; raise llm.n_ctx")
    p.history, p.evidence, p.budget = history, used, budget
    p.sources = number_sources(evidence_chunks(used))
    p.messages = build_messages(p.question, p.sources.chunks, history, chat.company_name, style)
    p.prompt_tokens = engine.count_tokens(p.messages)
