"""Follow the model registry's "current" pointer: deploy and rollback without a restart.

When `llm.gguf_path` / `llm.hf_repo` are not set, the engine factory wraps the embedded engine in a
`SwitchingEngine`. It checks the pointer file's mtime (one stat) at the start of each request's
token counting and on readiness checks; when the pointer names another version it builds an engine
for that GGUF, named after the version, so every answer reports the model version that produced it.
With no version deployed (or after rolling back past the first) it serves the default model: the
bundled base with the shipped adapter (llm.adapter), or the base alone.
A replaced engine is closed at the next switch or at shutdown, not while a request may still use it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from ragtune.registry import ModelRegistry
from ragtune.settings import Settings

log = logging.getLogger(__name__)


class SwitchingEngine:
    kind = "llamacpp"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.registry = ModelRegistry(Path(settings.data_dir))
        self._lock = threading.Lock()
        self._mtime: float | None = -1.0
        self._version: str | None = "\x00unset"
        self._engine: Any = None
        self._retired: list[Any] = []
        self.check()

    def _pointer_mtime(self) -> float | None:
        try:
            return os.stat(self.registry.pointer_path).st_mtime_ns
        except FileNotFoundError:
            return None

    def check(self) -> None:
        """Switch engines if the pointer moved since the last look."""
        from ragtune.adapters import resolve_adapter
        from serve.engines.llamacpp import LlamaCppEngine, resolve_gguf

        mtime = self._pointer_mtime()
        if mtime == self._mtime and self._engine is not None:
            return
        with self._lock:
            if mtime == self._mtime and self._engine is not None:
                return
            current = self.registry.current()
            version = current.version if current else None
            if version != self._version or self._engine is None:
                if current is not None:
                    llm = self.settings.llm.model_copy(update={"name": current.version})
                    # A version trained with the short prompt is served the short prompt.
                    style = "short" if current.config.get("prompt") == "short" else "full"
                    engine = LlamaCppEngine(self.settings.model_copy(update={"llm": llm}), Path(current.gguf), prompt_style=style)
                else:
                    base = resolve_gguf(self.settings.llm)
                    adapter = resolve_adapter(self.settings.llm.adapter, base)
                    engine = LlamaCppEngine(self.settings, base, adapter=adapter)
                if self._engine is not None:
                    self._retired.append(self._engine)
                    log.info("answer model switched from %s to %s", self._engine.name, engine.name)
                self._engine, self._version = engine, version
            self._mtime = mtime

    @property
    def engine(self) -> Any:
        return self._engine

    def pass_rate(self) -> float | None:
        """The serving version's measured share of answerable questions it phrased and passed verification
        (from `ragtune train eval`, run with the model asked on every answer); None when never measured."""
        current = self.registry.current() if self._version not in (None, "\x00unset") else None
        if current is None:  # the default model: the shipped adapter's card has its rate
            return self._engine.pass_rate() if self._engine is not None else None
        pipeline = current.eval.get("pipeline") or {}
        value = pipeline.get("phrased_share")
        return float(value) if isinstance(value, (int, float)) else None

    def phrased_accuracy(self) -> float | None:
        """Fact accuracy of the answers the serving version phrased in its measured eval; None when never measured."""
        current = self.registry.current() if self._version not in (None, "\x00unset") else None
        if current is None:
            getter = getattr(self._engine, "phrased_accuracy", None) if self._engine is not None else None
            return getter() if callable(getter) else None
        value = (current.eval.get("pipeline") or {}).get("phrased_fact_accuracy")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def name(self) -> str:
        return self._engine.name

    @property
    def n_ctx(self) -> int:
        return self._engine.n_ctx

    @property
    def unavailable_reason(self) -> str | None:
        return self._engine.unavailable_reason

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        self.check()
        return self._engine.count_tokens(messages)

    async def generate(self, messages, allowed_ids, max_tokens, tight=False, *, temperature=None):
        return await self._engine.generate(messages, allowed_ids, max_tokens, tight=tight, temperature=temperature)

    def stream(self, messages, allowed_ids, max_tokens, *, temperature=None, result=None):
        return self._engine.stream(messages, allowed_ids, max_tokens, temperature=temperature, result=result)

    async def ready(self) -> bool:
        self.check()
        await self._close_retired()
        return await self._engine.ready()

    async def _close_retired(self, keep: int = 1) -> None:
        # The engine replaced last may still be finishing a request; older ones are idle.
        while len(self._retired) > keep:
            await self._retired.pop(0).aclose()

    async def aclose(self) -> None:
        await self._close_retired(keep=0)
        if self._engine is not None:
            await self._engine.aclose()

    def __getattr__(self, item: str) -> Any:  # render(), load(), path ... of the current engine
        engine = self.__dict__.get("_engine")
        if engine is None:
            raise AttributeError(item)
        return getattr(engine, item)
