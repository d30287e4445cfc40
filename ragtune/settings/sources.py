"""Where settings come from: the RAGTUNE_ environment, the TOML/YAML config file, and how they are found."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import tomllib
import yaml
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from ragtune.errors import ConfigError

ENV_PREFIX = "RAGTUNE_"
CONFIG_FILES = ("ragtune.toml", "ragtune.yaml", "ragtune.yml")


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


def _sources(
    settings_cls: type[BaseSettings], environ: Mapping[str, str], path: Path | None
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The environment source, then the config file's (when there is one), for `settings_cls` (the `Settings` tree)."""
    files: tuple[PydanticBaseSettingsSource, ...] = ()
    if path is not None:
        files = (_TomlFile(settings_cls, path),) if path.suffix == ".toml" else (_YamlFile(settings_cls, path),)
    return (Environment(settings_cls, environ), *files)


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
