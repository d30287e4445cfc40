"""Settings sections of the answer engines: llm (embedded llama.cpp), ollama, openai_engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr

from ragtune.settings.base import _Section


class LLMSettings(_Section):
    engine: Literal["auto", "llamacpp", "ollama", "openai", "none"] = Field(
        "auto",
        description="Answer engine. auto: Ollama when ollama.model is set, else the embedded llama.cpp model; openai: a "
        "server speaking the OpenAI chat API (vLLM, llama.cpp's server; see openai_engine); none: retrieval-only answers.",
    )
    gguf_path: Path | None = Field(
        None, description="GGUF file for the embedded engine. Unset: hf_repo/hf_file, else the bundled SmolLM2-135M-Instruct."
    )
    adapter: str | None = Field(
        "bundled",
        description="LoRA adapter (GGUF) the embedded llama.cpp engine applies over the base model. bundled: the adapter "
        "shipped in ragtune/data/adapters, tuned for the bundled SmolLM2-135M-Instruct (applied only when that base serves); "
        "a path: that adapter (a card.json beside it names its prompt style and measured pass rate); none: the base alone.",
    )
    hf_repo: str | None = Field(None, description="Hugging Face repo to fetch the GGUF from on first use (needs internet).")
    hf_file: str | None = Field(None, description="File name (or glob) of the GGUF inside hf_repo.")
    n_ctx: int = Field(4096, ge=256, description="Context window in tokens; sent to Ollama as num_ctx and used by llama.cpp.")
    max_tokens: int = Field(384, ge=16, description="Most tokens generated for one answer.")
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    repeat_penalty: float = Field(
        1.1,
        ge=0.5,
        le=2,
        description="Penalty on recently repeated tokens (1.0 = off; 1.1 is Ollama's default). "
        "Small models loop without it and run into max_tokens. Sent to the llama.cpp and Ollama engines (for "
        "engine=openai, name the server's own parameter in openai_engine.extra_body).",
    )
    seed: int = Field(0, description="Sampling seed, for repeatable answers.")
    threads: int | None = Field(None, ge=1, description="CPU threads for llama.cpp (default: all cores).")
    prefix_cache: bool = Field(
        True,
        description="Keep the prompts' static head (the system prompt's rules) decoded in llama.cpp's KV cache across "
        "requests, so each answer decodes only its sources and question (serve/engines/prefix_cache.py). Off: every "
        "prompt is decoded from its first token.",
    )
    timeout_s: float = Field(
        120.0,
        gt=0,
        description="Seconds one llama.cpp generation may take; past it the model process is stopped, the "
        "request gets a 503 and the next request starts a fresh process.",
    )
    load_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Seconds the llama.cpp model process may take to load the model and pass its start-up "
        "self-check (a multi-token decode in the child process) before it counts as failed.",
    )
    queue_limit: int = Field(
        8,
        ge=0,
        description="Answers that may wait for the embedded llama.cpp model while it writes another (it answers one at a "
        "time). One more is refused at once: in auto answer mode it gets the extractive answer, otherwise a 503 with "
        "Retry-After. 0 = no waiting.",
    )
    queue_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest wait for the embedded llama.cpp model before an answer is refused the same way.",
    )
    name: str | None = Field(None, description="Model name reported in answers (default: derived from the file or Ollama model).")


class OllamaSettings(_Section):
    host: str = Field("http://127.0.0.1:11434", description="Ollama server URL.")
    model: str | None = Field(
        None, description="Ollama model name (for example 'ragtune'); setting it selects the Ollama engine under engine=auto."
    )
    keep_alive: str = Field("10m", description="How long Ollama keeps the model loaded after a request.")
    timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for Ollama before failing with 503.")
    prompt: Literal["auto", "full", "short"] = Field(
        "auto",
        description="Prompt the Ollama model was tuned on. auto: read from the model (`ollama show`): the SYSTEM of a "
        "model built from this repository's Modelfile (the shipped adapter, tuned on the short prompt) is the short "
        "prompt's, so it gets the short prompt; any other model gets the full one.",
    )


class OpenAIEngineSettings(_Section):
    base_url: str = Field(
        "http://127.0.0.1:8080/v1",
        description="Base URL of a server speaking the OpenAI chat API, ending in /v1 (vLLM, llama.cpp's llama-server, "
        "llama-cpp-python's server). Used with llm.engine=openai.",
    )
    model: str | None = Field(
        None,
        description="Model name sent with each request, as the server lists it under /v1/models (vLLM: a --lora-modules "
        "name to answer with the tuned adapter, not the base model). Required for engine=openai.",
    )
    api_key: SecretStr | None = Field(None, description="Bearer token for the server, if it wants one (never logged).")
    timeout_s: float = Field(
        60.0, gt=0, description="Seconds one answer may take, streamed or not; past it the request gets a 503."
    )
    guided_decoding: Literal["json_schema", "json_object", "grammar", "none"] = Field(
        "json_schema",
        description="How the reply is held to the answer schema. json_schema: response_format type json_schema (the "
        "OpenAI form; vLLM, llama-server); json_object: response_format type json_object with the schema inside "
        "(llama-cpp-python's server); grammar: the GBNF answer grammar in a `grammar` field (llama.cpp servers; bounds "
        "string lengths too); none: not constrained, the reply is only validated.",
    )
    extra_body: dict[str, Any] = Field(
        {},
        description="Extra fields sent with every request, for sampling options the OpenAI API lacks "
        '(vLLM: {"repetition_penalty": 1.1}; llama.cpp: {"repeat_penalty": 1.1}).',
    )
