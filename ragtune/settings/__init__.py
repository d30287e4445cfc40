"""The one typed settings tree for ragtune.

Settings are built by `load_settings()`, never at import time, from three layers (later wins):
the defaults below, a `ragtune.toml` / `ragtune.yaml` file, and environment variables named
`RAGTUNE_<FIELD>` or `RAGTUNE_<SECTION>__<FIELD>` (for example `RAGTUNE_DATA_DIR=/srv/ragtune`,
`RAGTUNE_OLLAMA__HOST=http://gpu-box:11434`; lists and tables as JSON). The layers are
pydantic-settings' own sources (TOML, YAML, environment with the `__` delimiter), merged by the
library. Every field carries a description, so this package is the reference; `ragtune config`
prints the effective tree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from ragtune.errors import ConfigError
from ragtune.settings.access import (
    KEY_ADVICE,
    AdminKey,
    ApiKey,
    AuthSettings,
    LimitsSettings,
    WidgetKey,
    key_problem,
    normalise_origin,
)
from ragtune.settings.engines import LLMSettings, OllamaSettings, OpenAIEngineSettings
from ragtune.settings.indexing import ChromaSettings, ChunkingSettings, EmbeddingSettings, IngestSettings, RetrievalSettings
from ragtune.settings.serving import ChatSettings, ObservabilitySettings, ServerSettings, StoreSettings
from ragtune.settings.sources import _SOURCES, CONFIG_FILES, ENV_PREFIX, Environment, _sources, find_config_file

# The sections and sources live in the modules beside this one; they are part of this tree and importable from here.
__all__ = [
    "CONFIG_FILES",
    "ENV_PREFIX",
    "KEY_ADVICE",
    "AdminKey",
    "ApiKey",
    "AuthSettings",
    "ChatSettings",
    "ChromaSettings",
    "ChunkingSettings",
    "EmbeddingSettings",
    "Environment",
    "IngestSettings",
    "LLMSettings",
    "LimitsSettings",
    "ObservabilitySettings",
    "OllamaSettings",
    "OpenAIEngineSettings",
    "RetrievalSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "WidgetKey",
    "describe",
    "find_config_file",
    "key_problem",
    "load_settings",
    "normalise_origin",
]


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
        return (init_settings, *(_SOURCES.get() or _sources(Settings, os.environ, find_config_file(os.environ, Path.cwd()))))


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
    token = _SOURCES.set(_sources(Settings, environ, path))
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
