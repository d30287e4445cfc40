"""An engine wrapper that counts generation calls: proof that the model was, or was not, asked.

Used by the tests (a hand-off must not call the model) and by `bench/chat_pipeline.py` (how many
answers needed a retry). It wraps any real engine and satisfies the `Engine` protocol itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from serve.engines.base import Engine, GenerationResult


class CountingEngine:
    def __init__(self, inner: Engine):
        self.inner = inner
        self.calls = 0
        self.kind, self.name, self.n_ctx = inner.kind, inner.name, inner.n_ctx

    @property
    def prompt_style(self) -> str:
        return getattr(self.inner, "prompt_style", "full")

    @property
    def unavailable_reason(self) -> str | None:
        return self.inner.unavailable_reason

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return self.inner.count_tokens(messages)

    async def generate(
        self,
        messages: list[dict[str, str]],
        allowed_ids: list[str],
        max_tokens: int,
        tight: bool = False,
        *,
        temperature: float | None = None,
    ) -> GenerationResult:
        self.calls += 1
        return await self.inner.generate(messages, allowed_ids, max_tokens, tight, temperature=temperature)

    def stream(
        self,
        messages: list[dict[str, str]],
        allowed_ids: list[str],
        max_tokens: int,
        *,
        temperature: float | None = None,
        result: GenerationResult | None = None,
    ) -> AsyncIterator[str]:
        self.calls += 1
        return self.inner.stream(messages, allowed_ids, max_tokens, temperature=temperature, result=result)

    async def ready(self) -> bool:
        return await self.inner.ready()

    async def aclose(self) -> None:
        await self.inner.aclose()
