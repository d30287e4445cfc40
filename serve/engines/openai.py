"""An engine for any server speaking the OpenAI chat API: vLLM (which serves LoRA adapters at scale),
llama.cpp's llama-server, llama-cpp-python's server. Several API replicas can share such a server,
or a load balancer in front of several.

The reply is held to the answer schema by the server's guided decoding (`openai_engine.guided_decoding`:
the OpenAI `json_schema` response format, llama-cpp-python's `json_object` with a schema, or the
GBNF answer grammar for llama.cpp servers) and validated here as with every engine.

The OpenAI API has no tokenizer endpoint, so prompts are budgeted with an estimate (as for Ollama);
each reply's `usage.prompt_tokens` says how many tokens the prompt really took, and an estimate
that came out low is scaled up from then on, so the budget corrects itself on a dense tokenizer.
One answer may take `timeout_s` in all, streamed or not; past it the request is a 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ragtune.answer import model_reply_schema
from ragtune.errors import ModelUnavailable, PayloadTooLarge
from ragtune.settings import Settings
from serve.engines.base import GenerationResult
from serve.engines.grammar import answer_grammar

log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 3.0  # English runs at about 4 characters a token: 3 over-counts, to stay inside the window
_PER_MESSAGE_OVERHEAD = 8


class OpenAIEngine:
    kind = "openai"

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None):
        self.settings = settings
        self.config = settings.openai_engine
        self.model = self.config.model or ""
        self.name = settings.llm.name or self.model or "openai"
        self.n_ctx = settings.llm.n_ctx
        self.unavailable_reason: str | None = None
        self.scale = 1.0  # how much the estimate under-counted the server's tokenizer, at worst
        key = self.config.api_key.get_secret_value() if self.config.api_key else None
        timeout = httpx.Timeout(self.config.timeout_s, connect=min(self.config.timeout_s, 5.0))
        self.client = client or httpx.AsyncClient(
            base_url=self.config.base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=timeout,
        )

    # ---- prompt budget ---------------------------------------------------------------------
    def _estimate(self, messages: list[dict[str, str]]) -> int:
        return sum(int(len(m["content"]) / CHARS_PER_TOKEN) + _PER_MESSAGE_OVERHEAD for m in messages) + 4

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return int(self._estimate(messages) * self.scale) + 1

    def _learn(self, messages: list[dict[str, str]], prompt_tokens: Any) -> None:
        if isinstance(prompt_tokens, int) and prompt_tokens > 0:
            self.scale = max(self.scale, prompt_tokens / self._estimate(messages))

    # ---- requests ------------------------------------------------------------------------
    def _body(self, messages, allowed_ids, max_tokens, tight, stream, temperature=None) -> dict[str, Any]:
        if not self.model:
            raise ModelUnavailable(self._no_model())
        estimate = self.count_tokens(messages)
        if estimate + max_tokens > self.n_ctx:
            raise PayloadTooLarge(
                f"prompt of about {estimate} tokens plus {max_tokens} to generate exceeds the {self.n_ctx}-token context (llm.n_ctx)"
            )
        body: dict[str, Any] = dict(self.config.extra_body) | {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.settings.llm.temperature if temperature is None else temperature,
            "seed": self.settings.llm.seed,
            "stream": stream,
        }
        if stream:  # the last event carries the token counts (OpenAI, vLLM and llama.cpp's server send it)
            body["stream_options"] = {"include_usage": True}
        mode = self.config.guided_decoding
        if mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": model_reply_schema(allowed_ids)},
            }
        elif mode == "json_object":
            body["response_format"] = {"type": "json_object", "schema": model_reply_schema(allowed_ids)}
        elif mode == "grammar":
            body["grammar"] = answer_grammar(allowed_ids, max_tokens, tight=tight)
        return body

    def _where(self) -> str:
        return f"the OpenAI-compatible server at {self.config.base_url}"

    def _no_model(self) -> str:
        return f"openai_engine.model is not set: name the model {self._where()} should answer with"

    def _failure(self, exc: Exception) -> ModelUnavailable:
        if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError):
            return ModelUnavailable(
                f"{self._where()} did not answer within {self.config.timeout_s:g} s (openai_engine.timeout_s)"
            )
        return ModelUnavailable(f"{self._where()} is not answering ({type(exc).__name__}: {exc})")

    async def _refusal(self, response: httpx.Response) -> Exception:
        """The error for a non-2xx reply, with the server's own message."""
        try:
            data = json.loads(await response.aread())
            error = data.get("error", data) if isinstance(data, dict) else data
            message = error.get("message") or error.get("detail") if isinstance(error, dict) else error
        except (json.JSONDecodeError, httpx.HTTPError):
            message = response.reason_phrase
        message = str(message)[:300]
        status = response.status_code
        if status in (401, 403):
            return ModelUnavailable(f"{self._where()} refused the request ({status}): check openai_engine.api_key")
        if status == 404:
            return ModelUnavailable(f"{self._where()} has no model {self.model!r} ({message})")
        if status == 400 and "context" in message.lower():
            return PayloadTooLarge(
                f"{self._where()} says the prompt does not fit: {message}; lower llm.n_ctx to the server's context"
            )
        hint = ""
        if "response_format" in message or "json_schema" in message:
            other = "json_object or grammar" if self.config.guided_decoding == "json_schema" else "another mode"
            hint = f"; the server may not support openai_engine.guided_decoding={self.config.guided_decoding}: try {other}"
        return ModelUnavailable(f"{self._where()} failed the request ({status}): {message}{hint}")

    async def generate(self, messages, allowed_ids, max_tokens, tight=False, *, temperature=None) -> GenerationResult:
        body = self._body(messages, allowed_ids, max_tokens, tight, stream=False, temperature=temperature)
        t0 = time.perf_counter()

        async def post() -> Any:
            response = await self.client.post("chat/completions", json=body)
            if response.status_code != 200:
                raise await self._refusal(response)
            return response.json()

        try:
            data = await asyncio.wait_for(post(), self.config.timeout_s)
        except (httpx.HTTPError, asyncio.TimeoutError, json.JSONDecodeError) as exc:
            raise self._failure(exc) from exc
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise ModelUnavailable(f"{self._where()} sent a reply without choices[0].message.content") from exc
        usage = data.get("usage") or {}
        self._learn(messages, usage.get("prompt_tokens"))
        return GenerationResult(
            text=text,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            timings_ms={"generate_ms": round((time.perf_counter() - t0) * 1000, 1)},
        )

    async def stream(self, messages, allowed_ids, max_tokens, *, temperature=None, result=None) -> AsyncIterator[str]:
        body = self._body(messages, allowed_ids, max_tokens, False, stream=True, temperature=temperature)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.config.timeout_s
        usage: dict[str, Any] = {}
        text: list[str] = []
        try:
            async with self.client.stream("POST", "chat/completions", json=body) as response:
                if response.status_code != 200:
                    raise await self._refusal(response)
                lines = response.aiter_lines()
                while True:
                    # The whole answer shares one deadline, so a server that trickles cannot hold a request forever.
                    try:
                        line = await asyncio.wait_for(lines.__anext__(), max(deadline - loop.time(), 0.001))
                    except StopAsyncIteration:
                        break
                    piece = self._piece(line, messages, usage)
                    if piece is None:
                        break
                    if piece:
                        text.append(piece)
                        yield piece
        except (httpx.HTTPError, asyncio.TimeoutError) as exc:
            raise self._failure(exc) from exc
        if result is not None:
            result.text = "".join(text)
            result.prompt_tokens = usage.get("prompt_tokens")
            # Some servers (llama-cpp-python's, under a grammar) report 0 completion tokens for a
            # stream that sent text: then each streamed piece counts as one token.
            result.completion_tokens = usage.get("completion_tokens") or (len(text) if text else usage.get("completion_tokens"))
            result.timings_ms = {"generate_ms": round((loop.time() - started) * 1000, 1)}

    def _piece(self, line: str, messages, usage: dict[str, Any]) -> str | None:
        """The text of one server-sent event line; None at the end of the stream."""
        if not line.startswith("data:"):
            return ""
        data = line[5:].strip()
        if data == "[DONE]":
            return None
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ModelUnavailable(f"{self._where()} sent a stream event that is not JSON: {data[:80]!r}") from exc
        if chunk.get("usage"):
            usage.update(chunk["usage"])
            self._learn(messages, chunk["usage"].get("prompt_tokens"))
        if "error" in chunk:
            raise ModelUnavailable(f"{self._where()} failed during the stream: {str(chunk['error'])[:300]}")
        choices = chunk.get("choices") or [{}]
        return (choices[0].get("delta") or {}).get("content") or ""

    # ---- life cycle ---------------------------------------------------------------------
    async def ready(self) -> bool:
        """Whether the server answers and lists the model."""

        async def models() -> list[Any]:
            response = await self.client.get("models")
            if response.status_code != 200:
                raise await self._refusal(response)
            return [m.get("id") for m in response.json().get("data", [])]

        try:
            listed = await asyncio.wait_for(models(), min(self.config.timeout_s, 10.0))
        except ModelUnavailable as exc:
            self.unavailable_reason = str(exc)
            return False
        except (httpx.HTTPError, asyncio.TimeoutError, json.JSONDecodeError, AttributeError) as exc:
            self.unavailable_reason = str(self._failure(exc))
            return False
        if not self.model:
            self.unavailable_reason = f"{self._no_model()} (it serves: {', '.join(map(str, listed)) or 'nothing'})"
            return False
        if self.model not in listed:
            self.unavailable_reason = (
                f"{self._where()} has no model {self.model!r}; it serves: {', '.join(map(str, listed)) or 'nothing'}"
            )
            return False
        self.unavailable_reason = None
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
