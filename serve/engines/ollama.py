"""Ollama engine through the official `ollama` client.

Every request sends `options.num_ctx`: Ollama's default context is small and it silently drops
the start of a longer prompt (our sources!), so the window is always set explicitly, and the
prompt is budgeted against it before sending. `format` carries the answer schema.

The prompt style follows the model (`ollama.prompt`): a model built from the repository's Modelfile
carries the shipped adapter, tuned on the short prompt, and says so by its SYSTEM (the short
prompt's); it gets the short prompt, as llama.cpp serving the same adapter does. Any other model
gets the full prompt with the rules spelled out.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ragtune.answer import model_reply_schema
from ragtune.errors import ModelUnavailable, PayloadTooLarge
from ragtune.prompt import PromptStyle, system_prompt
from ragtune.settings import Settings
from serve.engines.base import GenerationResult

# Ollama has no tokenize endpoint; budget with a conservative estimate (English averages about
# 4 characters per token, so 3 over-counts and keeps the prompt inside num_ctx).
CHARS_PER_TOKEN = 3.0
_PER_MESSAGE_OVERHEAD = 8
_SYSTEM = re.compile(r'^SYSTEM """(.*?)"""', re.DOTALL | re.MULTILINE)


def tuned_style(modelfile: str, company: str) -> PromptStyle:
    """The prompt style a model was built for, from its Modelfile (as `ollama show` returns it):
    `short` when its SYSTEM is the short prompt's (train/modelfile.py writes it so), else `full`."""
    found = _SYSTEM.search(modelfile or "")
    system = found.group(1).strip() if found else ""
    return "short" if system and system == system_prompt([], company, "short").strip() else "full"


class OllamaEngine:
    kind = "ollama"

    def __init__(self, settings: Settings, client: Any = None):
        from ollama import AsyncClient

        self.settings = settings
        self.model = settings.ollama.model or "ragtune"
        self.name = settings.llm.name or self.model
        self.n_ctx = settings.llm.n_ctx
        self.unavailable_reason: str | None = None
        self.client = client or AsyncClient(host=settings.ollama.host, timeout=settings.ollama.timeout_s)
        setting = settings.ollama.prompt
        self._style: PromptStyle | None = None if setting == "auto" else setting

    @property
    def prompt_style(self) -> PromptStyle:
        """The prompt the chat service builds for this model (full until `ready` has read the model)."""
        return self._style or "full"

    async def _read_style(self) -> PromptStyle:
        try:
            shown = await self.client.show(self.model)
        except Exception:  # an old server without /api/show: the full prompt is always safe
            return "full"
        return tuned_style(shown.get("modelfile") or "", self.settings.chat.company_name)

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return sum(int(len(m["content"]) / CHARS_PER_TOKEN) + _PER_MESSAGE_OVERHEAD for m in messages) + 4

    def _request(self, messages, allowed_ids, max_tokens, temperature=None) -> dict[str, Any]:
        estimate = self.count_tokens(messages)
        if estimate + max_tokens > self.n_ctx:
            raise PayloadTooLarge(
                f"prompt of about {estimate} tokens plus {max_tokens} to generate exceeds num_ctx={self.n_ctx} (llm.n_ctx)"
            )
        return dict(
            model=self.model,
            messages=messages,
            format=model_reply_schema(allowed_ids),
            keep_alive=self.settings.ollama.keep_alive,
            options={
                "num_ctx": self.n_ctx,
                "num_predict": max_tokens,
                "temperature": self.settings.llm.temperature if temperature is None else temperature,
                "repeat_penalty": self.settings.llm.repeat_penalty,
                "seed": self.settings.llm.seed,
            },
        )

    def _unavailable_model(self) -> ModelUnavailable:
        return ModelUnavailable(
            f"Ollama at {self.settings.ollama.host} has no model {self.model!r}: run `ollama create {self.model} -f Modelfile`"
        )

    def _unavailable(self, exc: Exception) -> ModelUnavailable:
        from ollama import ResponseError

        if isinstance(exc, ResponseError) and exc.status_code == 404:
            return self._unavailable_model()
        if isinstance(exc, ResponseError):
            return ModelUnavailable(f"Ollama at {self.settings.ollama.host} failed during the request: {exc.error}")
        return ModelUnavailable(f"Ollama at {self.settings.ollama.host} is not answering ({type(exc).__name__}: {exc})")

    async def generate(self, messages, allowed_ids, max_tokens, tight=False, *, temperature=None) -> GenerationResult:
        from ollama import ResponseError

        request = self._request(messages, allowed_ids, max_tokens, temperature)
        t0 = time.perf_counter()
        try:
            response = await self.client.chat(stream=False, **request)
        except (ResponseError, httpx.HTTPError, ConnectionError) as exc:
            raise self._unavailable(exc) from exc
        return GenerationResult(
            text=response["message"]["content"] or "",
            prompt_tokens=response.get("prompt_eval_count"),
            completion_tokens=response.get("eval_count"),
            timings_ms={"generate_ms": round((time.perf_counter() - t0) * 1000, 1)},
        )

    async def stream(self, messages, allowed_ids, max_tokens, *, temperature=None, result=None) -> AsyncIterator[str]:
        from ollama import ResponseError

        request = self._request(messages, allowed_ids, max_tokens, temperature)
        pieces: list[str] = []
        t0 = time.perf_counter()
        try:
            async for part in await self.client.chat(stream=True, **request):
                content = part["message"]["content"]
                if content:
                    pieces.append(content)
                    yield content
                if part.get("done") and result is not None:  # the last part carries the counts
                    result.prompt_tokens = part.get("prompt_eval_count")
                    result.completion_tokens = part.get("eval_count")
        except (ResponseError, httpx.HTTPError, ConnectionError) as exc:
            raise self._unavailable(exc) from exc
        if result is not None:
            result.text = "".join(pieces)
            result.timings_ms = {"generate_ms": round((time.perf_counter() - t0) * 1000, 1)}

    async def ready(self) -> bool:
        try:
            listed = await self.client.list()
        except Exception as exc:
            self.unavailable_reason = str(self._unavailable(exc))
            return False
        names = {m.get("model") or m.get("name") for m in listed.get("models", [])}
        if self.model in names or f"{self.model}:latest" in names:
            self.unavailable_reason = None
            if self._style is None:
                self._style = await self._read_style()
            return True
        self.unavailable_reason = str(self._unavailable_model())
        return False

    async def aclose(self) -> None:
        inner = getattr(self.client, "_client", None)
        if inner is not None:
            await inner.aclose()
