"""The engine interface and the factory that picks one from settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from ragtune.errors import ModelUnavailable
from ragtune.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class GenerationResult:
    """One generation: its text and what it cost, as the engine counted it.

    `prompt_tokens` is the prompt as the engine's tokenizer rendered it; `completion_tokens` the
    tokens actually generated. A stream fills one of these in when it ends (see `Engine.stream`).
    """

    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached_tokens: int = 0  # prompt tokens the engine found already decoded (its prefix cache)


class Engine(Protocol):
    # Read-only to callers: plain attributes and properties (a wrapper's) both satisfy these.
    @property
    def kind(self) -> str: ...  # "llamacpp" | "ollama" | "openai"

    @property
    def name(self) -> str: ...  # the model, as reported in answers

    @property
    def n_ctx(self) -> int: ...

    @property
    def unavailable_reason(self) -> str | None: ...  # why ready() last said no, for /readyz and the log

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens the formatted prompt takes (an upper estimate where the engine cannot say)."""

    async def generate(
        self,
        messages: list[dict[str, str]],
        allowed_ids: list[str],
        max_tokens: int,
        tight: bool = False,
        *,
        temperature: float | None = None,
    ) -> GenerationResult:
        """The answer JSON, constrained to the Answer schema with citations limited to `allowed_ids`.

        `tight` asks for the strictest constraint the engine has (used for the one retry);
        `temperature` overrides llm.temperature for this request (None: the setting).
        """

    def stream(
        self,
        messages: list[dict[str, str]],
        allowed_ids: list[str],
        max_tokens: int,
        *,
        temperature: float | None = None,
        result: GenerationResult | None = None,
    ) -> AsyncIterator[str]:
        """Text pieces as they are generated, under the same constraint as generate().

        When the stream ends, `result` (if given) holds the whole text and its token counts.
        """

    async def ready(self) -> bool: ...

    async def aclose(self) -> None: ...


def create_engine(settings: Settings) -> Engine | None:
    """The configured engine, or None for answers without a model (engine=none, or no model to be had)."""
    engine = settings.llm.engine
    if engine == "none":
        return None
    if engine == "openai":
        from serve.engines.openai import OpenAIEngine

        return OpenAIEngine(settings)
    if engine == "ollama" or (engine == "auto" and settings.ollama.model):
        from serve.engines.ollama import OllamaEngine

        return OllamaEngine(settings)
    from ragtune.adapters import resolve_adapter
    from serve.engines.llamacpp import LlamaCppEngine, resolve_gguf

    try:
        if not settings.llm.gguf_path and not settings.llm.hf_repo:  # follow the model registry (ragtune train deploy)
            from serve.model_switch import SwitchingEngine

            return SwitchingEngine(settings)
        gguf = resolve_gguf(settings.llm)
        return LlamaCppEngine(settings, gguf, adapter=resolve_adapter(settings.llm.adapter, gguf))
    except ModelUnavailable as exc:
        if engine == "llamacpp":
            raise
        log.warning("no language model available, serving extractive answers: %s", exc)
        return None
