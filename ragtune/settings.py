"""The one typed settings tree for ragtune.

Settings are built by `load_settings()`, never at import time, from three layers (later wins):
the defaults below, a `ragtune.toml` / `ragtune.yaml` file, and environment variables named
`RAGTUNE_<FIELD>` or `RAGTUNE_<SECTION>__<FIELD>` (for example `RAGTUNE_DATA_DIR=/srv/ragtune`,
`RAGTUNE_OLLAMA__HOST=http://gpu-box:11434`; lists and tables as JSON). The layers are
pydantic-settings' own sources (TOML, YAML, environment with the `__` delimiter), merged by the
library. Every field carries a description, so this module is the reference; `ragtune config`
prints the effective tree.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import tomllib
import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from ragtune.errors import ConfigError
from ragtune.settings_access import (
    KEY_ADVICE,
    AdminKey,
    ApiKey,
    AuthSettings,
    LimitsSettings,
    WidgetKey,
    key_problem,
    normalise_origin,
)
from ragtune.settings_base import _Section

# The access sections live in ragtune.settings_access; they are part of this tree and importable from here.
__all__ = ["KEY_ADVICE", "AdminKey", "ApiKey", "AuthSettings", "LimitsSettings", "WidgetKey", "key_problem", "normalise_origin"]

ENV_PREFIX = "RAGTUNE_"
CONFIG_FILES = ("ragtune.toml", "ragtune.yaml", "ragtune.yml")


class EmbeddingSettings(_Section):
    model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model: the bundled offline 'all-MiniLM-L6-v2', a Hugging "
        "Face model id (needs internet on first use) or a local directory. Changing it rebuilds "
        "the index from scratch instead of mixing vector spaces.",
    )
    backend: Literal["onnx", "onnx-int8", "onnx-int8-static", "torch"] = Field(
        "onnx",
        description="How the embedding model runs. onnx: exported once to ONNX (cached in onnx_cache_dir) and run on "
        "onnxruntime, same vectors as torch, faster and no torch in the serving process; onnx-int8: the same with int8 "
        "weights (slightly different vectors: changing to or from it rebuilds the index); onnx-int8-static: int8 weights "
        "and activations calibrated on the model folder's calibration.jsonl (a tuned retriever carries one); "
        "torch: sentence-transformers.",
    )
    onnx_cache_dir: Path | None = Field(None, description="Where ONNX exports are cached (default: ~/.cache/ragtune/onnx).")
    device: str = Field("cpu", description="torch device for the embedding model with backend=torch (cpu, cuda, mps).")
    batch_size: int = Field(32, ge=1, description="Chunks embedded per batch.")
    query_prefix: str = Field("", description="Text put before each query (e5/bge-style models want one).")
    document_prefix: str = Field("", description="Text put before each chunk when it is embedded.")


class ChunkingSettings(_Section):
    chunk_size: int = Field(300, ge=20, le=4000, description="Target chunk length in words.")
    chunk_overlap: int = Field(
        30, ge=0, description="Words of a chunk repeated at the start of the next one in the same section."
    )
    min_chunk_words: int = Field(8, ge=1, description="A last piece of a section shorter than this joins the chunk before it.")

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: Any) -> int:
        size = info.data.get("chunk_size", 300)
        if value >= size:
            raise ValueError(f"chunk_overlap ({value}) must be smaller than chunk_size ({size})")
        return value


class IngestSettings(_Section):
    source_dir: Path = Field(Path("knowledge"), description="Folder ingested when `ragtune ingest` is given no path.")
    max_file_mb: float = Field(20.0, gt=0, description="Files larger than this are reported and skipped.")
    extensions: list[str] = Field(
        [".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".pptx", ".csv", ".xlsx", ".epub", ".ipynb"],
        description="File types read; any other file in the folder is reported as unsupported.",
    )
    keep_versions: int = Field(2, ge=1, description="Index versions kept on disk (the current one included).")
    follow_links: bool = Field(
        False,
        description="Read symbolic links whose target stays inside the ingested folder. Links that lead out of "
        "the folder are always refused and reported, whatever this says.",
    )
    max_unzipped_mb: float = Field(
        100.0,
        gt=0,
        description="Most a zip-based file (docx, pptx, xlsx, epub) may inflate to, counted from its "
        "declared sizes and again while inflating; more is refused as a decompression bomb.",
    )
    max_compression_ratio: float = Field(
        100.0,
        gt=1,
        description="Highest inflated-to-compressed ratio of one entry of a zip-based file (entries under "
        "1 MB inflated are exempt); higher is refused as a decompression bomb.",
    )
    max_zip_entries: int = Field(10000, ge=1, description="Most entries a zip-based file may hold.")


class ChromaSettings(_Section):
    url: str | None = Field(
        None, description="Chroma server URL (http://host:8000). Unset: an embedded persistent Chroma under the data dir."
    )
    collection_prefix: str = Field(
        "ragtune", description="Prefix of the Chroma collection names (one collection per index version)."
    )


class RetrievalSettings(_Section):
    mode: Literal["hybrid", "dense", "bm25"] = Field(
        "hybrid", description="Dense (Chroma), BM25, or both fused by reciprocal rank fusion."
    )
    top_k: int = Field(6, ge=1, le=100, description="Chunks returned per query.")
    candidates: int = Field(50, ge=1, le=1000, description="Chunks taken from each side before fusion.")
    rrf_k: int = Field(10, ge=1, description="Reciprocal-rank-fusion constant k in 1/(k + rank).")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in the fusion.")
    bm25_weight: float = Field(1.5, ge=0, description="Weight of the BM25 ranking in the fusion.")
    tuned_fusion: bool = Field(
        True,
        description="When the searched index version was embedded with a tuned retriever that carries fusion weights "
        "(chosen on dev data by `ragtune train retriever`), fuse with those instead of dense_weight, bm25_weight and rrf_k.",
    )
    min_relevance: float = Field(
        0.30,
        ge=0,
        le=1,
        description="Relevance (0-1, the cosine similarity of query and chunk) below which a chunk "
        "does not count as evidence; when no chunk clears it the chat answers 'nothing found'.",
    )
    reranker_model: str | None = Field(
        None, description="Optional cross-encoder (model id or path) that reorders the fused candidates."
    )
    reranker_candidates: int = Field(20, ge=1, description="Fused candidates handed to the reranker.")
    evidence_rerank: bool = Field(
        False,
        description="Second stage: reorder the fused top evidence_rerank_depth chunks by the best sentence score the "
        "trained evidence selector (ragtune/grounding) gives each. Off by default: it lifts the company held-out hits "
        "but not the extractive answers, and costs latency (docs/benchmarks.md).",
    )
    evidence_rerank_depth: int = Field(10, ge=2, le=100, description="Fused chunks the evidence selector reorders.")


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


class ChatSettings(_Section):
    refuse_without_evidence: bool = Field(
        True,
        description="Hand off, without calling the model, when no chunk clears retrieval.min_relevance. "
        "False: the best chunks go to evidence selection anyway (chat.evidence_min_score still decides).",
    )
    history_turns: int = Field(6, ge=0, le=50, description="Earlier turns of the session put into the prompt.")
    rewrite_followups: bool = Field(True, description="Rewrite follow-up questions into standalone queries before retrieval.")
    context_tokens: int | None = Field(
        None,
        ge=64,
        description="Token budget for retrieved context. Default: what is left of n_ctx after the rest of the prompt and max_tokens.",
    )
    answer_mode: Literal["auto", "generative", "extractive"] = Field(
        "auto",
        description="How answers are made from the evidence the server selects. extractive: composed from the "
        "evidence (ragtune/grounding/compose.py), no model call; generative: the model phrases the answer from it; auto: "
        "the model phrases it when its measured pass rate reaches chat.min_model_pass_rate, verified against the evidence, "
        "extractive when verification fails or the model is not good enough.",
    )
    evidence_chunks: int = Field(6, ge=1, le=50, description="Relevant retrieved chunks whose sentences are scored as evidence.")
    known_questions: bool = Field(
        True,
        description="Also take the chunks answering the company's known example questions closest to the customer's "
        "(kept with the grounding model, ragtune/grounding/known.py) as evidence candidates, when retrieval missed them.",
    )
    evidence_sentences: int = Field(
        3, ge=1, le=8, description="Most evidence units (sentences, list items, rows) kept; they become the citations."
    )
    high_confidence: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Answerability (the grounding model's calibrated probability that the evidence answers the question) "
        "from which an answer's confidence is 'high' (else 'medium'; a hand-off is 'low').",
    )
    grounding_model: str | None = Field(
        None,
        description="The grounding model (evidence selector, answerability, intent) as JSON, from `ragtune train selector`. "
        "Unset: the one trained on the bundled examples (ragtune/grounding/data/grounding.json).",
    )
    min_model_pass_rate: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Auto mode asks the model only when the serving model version's measured verified-pass rate (stored in "
        "the model registry by `ragtune train eval`) reaches this; otherwise it answers extractively at once. "
        "0 asks any model; generative mode always asks.",
    )
    min_model_fact_accuracy: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Auto mode also needs the answers the model phrased in that eval to hold the right fact this often "
        "(phrased_fact_accuracy; extractive answers reach 0.87-0.93 on the bundled sets): a model that phrases more "
        "answers but gets fewer right is not asked. 0 skips this check.",
    )
    answer_max_tokens: int = Field(
        160,
        ge=16,
        description="Most tokens the model may generate for a phrased answer (short answers loop less and come sooner).",
    )
    support_contact: str = Field(
        "support@northwind.example",
        description="How customers reach a person (an e-mail address, phone number or URL), named in hand-off texts. "
        "Empty: the texts point at the contact option the widget shows.",
    )
    messages: dict[str, str] = Field(
        {},
        description="Hand-off texts replacing the built-in ones, keyed '<language>.<kind>' (language en, de, fr; kind "
        "no_answer, person, angry, action, action_steps), e.g. {'en.no_answer': 'Let me get a colleague ...'}; "
        "{contact_clause} is replaced by chat.support_contact, {answer} (action_steps) by the self-service steps.",
    )
    max_message_chars: int = Field(4000, ge=1, description="Longest accepted user message; longer ones get a 413.")
    max_history_messages: int = Field(40, ge=0, description="Most messages accepted in one OpenAI-style request.")
    company_name: str = Field("Northwind Cloud", description="Company the assistant speaks for (used in the system prompt).")
    company_domains: list[str] = Field(
        ["northwind.example"],
        description="The company's own domains: e-mail addresses and links on them (subdomains included) may appear in "
        "answers, as may the hosts of widget-key origins and server.cors_origins. An evidence sentence carrying any other "
        "e-mail address, phone number or link is withheld, and answer text loses it (docs/ingestion-safety.md).",
    )
    allowed_contacts: list[str] = Field(
        ["+49 30 1234 5678"],
        description="More contacts answers may carry: e-mail addresses, phone numbers, URL prefixes "
        "(https://partner.example/help) or domains (partner.example). chat.support_contact and contacts written in "
        "chat.messages are allowed too.",
    )


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address `ragtune serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `ragtune serve` listens on.")
    cors_origins: list[str] = Field(
        [],
        description="Origins allowed to call the API from a browser with any key (or, without keys, at all), on top of "
        "each widget key's own origins (auth.widget_keys[].origins).",
    )
    max_body_mb: float = Field(
        1.0,
        gt=0,
        description="Largest request body accepted, on every route but document uploads (server.max_upload_mb); "
        "checked against Content-Length and "
        "counted while the body streams in, so a larger one gets a 413 before it is buffered.",
    )
    max_upload_mb: float = Field(
        100.0,
        gt=0,
        description="Largest request body of a document upload or replace (/v1/admin/documents), all files together; "
        "each file is also held to ingest.max_file_mb.",
    )
    allowed_hosts: list[str] = Field(
        [],
        description="Host names this API answers under (its public name, e.g. api.shop.example), so a DNS-rebinding page "
        "cannot reach it under its own name; other Hosts get 400. Pages the server serves itself (/admin, /demo) are "
        "same-origin only under these names or a loopback name. Empty: any Host with keys; without keys loopback names only.",
    )
    trusted_proxies: list[str] = Field(
        [],
        description="Networks (CIDRs, e.g. 10.0.0.0/8, 127.0.0.1/32) of reverse proxies whose X-Forwarded-For is believed: "
        "for a request from one of them the client address (for the per-address rate limit and the access log) is the last "
        "hop not itself a trusted proxy. From any other peer the header is ignored and the socket's peer is the client "
        "(uvicorn's forwarded_allow_ips is set from this list; empty: proxy headers are never read).",
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return [normalise_origin(value) for value in values]

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from None
        return values


class StoreSettings(_Section):
    url: str | None = Field(
        None,
        description="Where the API keeps conversations, feedback, jobs and rate-limit counters. Unset: a SQLite file "
        "<data_dir>/conversations.sqlite3 (one machine); postgresql://user:password@host/db: Postgres, shared by "
        "several API replicas (needs psycopg).",
    )
    pool_size: int = Field(
        8,
        ge=1,
        le=200,
        description="Most Postgres connections one API process keeps open (the server's max_connections is shared by all replicas).",
    )


class ObservabilitySettings(_Section):
    log_format: Literal["json", "text"] = Field(
        "json",
        description="Log lines of `ragtune serve`: json (one object a line: one per request with method, route, status, "
        "latency, request id, caller, answer mode, index version, tokens) or text (the same fields as key=value).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged by `ragtune serve`.")
    log_messages: bool = Field(
        False,
        description="Also log the customer's message and the answer text in each request's line. Off by default: "
        "messages can hold personal data.",
    )


class Settings(BaseSettings):
    """All of ragtune's settings. Build with `load_settings()`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Field(Path("data"), description="Folder holding all state: index versions, Chroma, conversations.")
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    chroma: ChromaSettings = Field(default_factory=ChromaSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    ollama: OllamaSettings = Field(default_factory=OllamaSettings)
    openai_engine: OpenAIEngineSettings = Field(default_factory=OpenAIEngineSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        """Earlier sources win: explicit values, then RAGTUNE_ variables, then the config file."""
        return (init_settings, *(_SOURCES.get() or _sources(os.environ, find_config_file(os.environ, Path.cwd()))))


class Environment(EnvSettingsSource):
    """pydantic-settings' environment source (prefix and `__` nesting from `Settings.model_config`)
    over a given mapping, so `load_settings(environ=...)` needs no change to `os.environ`.

    A RAGTUNE_ variable whose first part names no setting (RAGTUNE_TEST_OLLAMA_MODEL, a tool's
    own) is not ours: the source ignores it and it gets a warning, in case it is a typo. Inside a
    known section an unknown field is an error (sections forbid extra fields): there it can only be
    a mistake.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)
        for key in environ:
            name = key[len(ENV_PREFIX) :].lower().split("__")[0]
            if key.upper().startswith(ENV_PREFIX) and key.upper() != "RAGTUNE_CONFIG" and name not in settings_cls.model_fields:
                logging.getLogger("ragtune").warning("ignoring environment variable %s: no setting is named %s", key, name)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The library reads os.environ here (case-insensitive: names lower-cased); ours reads the mapping given.
        return {key.lower(): value for key, value in self._environ.items()}


class _TomlFile(TomlConfigSettingsSource):
    def _read_file(self, file_path: Any) -> dict[str, Any]:  # a Path (a Traversable in newer pydantic-settings)
        return _table(Path(str(file_path)), lambda: super(_TomlFile, self)._read_file(file_path))


class _YamlFile(YamlConfigSettingsSource):
    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return _table(Path(str(file_path)), lambda: super(_YamlFile, self)._read_file(file_path))


def _table(path: Path, read: Callable[[], Any]) -> dict[str, Any]:
    """A config file's settings, or a ConfigError that says what is wrong with the file."""
    try:
        data = read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix.lstrip('.')}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings, not {type(data).__name__}")
    return data


def _sources(environ: Mapping[str, str], path: Path | None) -> tuple[PydanticBaseSettingsSource, ...]:
    files: tuple[PydanticBaseSettingsSource, ...] = ()
    if path is not None:
        files = (_TomlFile(Settings, path),) if path.suffix == ".toml" else (_YamlFile(Settings, path),)
    return (Environment(Settings, environ), *files)


# The sources of the Settings being built by load_settings() (unset: os.environ and the file in the working directory).
_SOURCES: ContextVar[tuple[PydanticBaseSettingsSource, ...] | None] = ContextVar("ragtune_settings_sources", default=None)


def find_config_file(environ: Mapping[str, str], cwd: Path) -> Path | None:
    explicit = environ.get("RAGTUNE_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"RAGTUNE_CONFIG points at {path}, which is not a file")
        return path
    for name in CONFIG_FILES:
        if (cwd / name).is_file():
            return cwd / name
    return None


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Build the settings: defaults < config file < environment < explicit overrides."""
    environ = os.environ if environ is None else environ
    path = config_file or find_config_file(environ, Path.cwd() if cwd is None else cwd)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    where = f" (from {path} and RAGTUNE_ variables)" if path else " (from RAGTUNE_ variables)"
    token = _SOURCES.set(_sources(environ, path))
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        # Not chained: the ValidationError would repeat the input values, API keys and passwords included.
        raise ConfigError(f"invalid settings{where}: {problems}") from None
    except SettingsError as exc:  # a list or table given in a variable that is not JSON
        raise ConfigError(
            f"invalid settings{where}: {exc} ({exc.__cause__}); lists and tables are given as JSON, "
            """e.g. RAGTUNE_SERVER__CORS_ORIGINS='["https://shop.example"]'"""
        ) from None
    finally:
        _SOURCES.reset(token)


def describe(model: type[BaseModel] = Settings, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, description) for every setting: the documentation table."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(describe(annotation, f"{prefix}{name}."))
        else:
            default = field.get_default(call_default_factory=True)
            shown = str(default) if isinstance(default, Path) else repr(default)
            rows.append((f"{prefix}{name}", shown, field.description or ""))
    return rows
