"""Domain errors shared by every package.

Each carries a message written for the person who has to fix it. The CLI prints it as one line
and exits non-zero; the HTTP layer maps each class to one status code.
"""

from __future__ import annotations


class RagtuneError(Exception):
    """Base class: a problem the user can act on (not a bug)."""

    status_code = 500


class ConfigError(RagtuneError):
    """Settings or a config file are invalid."""

    status_code = 500


class UserInputError(RagtuneError):
    """A request or command-line argument is invalid."""

    status_code = 400


class PayloadTooLarge(UserInputError):
    status_code = 413


class NotFoundError(RagtuneError):
    status_code = 404


class IndexNotReady(RagtuneError):
    """No knowledge index has been built yet (run `ragtune ingest`)."""

    status_code = 503


class EmbeddingModelError(RagtuneError):
    """The embedding model cannot be loaded."""

    status_code = 503


class ModelUnavailable(RagtuneError):
    """The language model (Ollama or llama.cpp) cannot be reached or loaded."""

    status_code = 503


class InvalidModelOutput(RagtuneError):
    """The model's reply did not validate against the answer schema, even after a retry."""

    status_code = 502
