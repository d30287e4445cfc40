"""Domain errors shared by every package.

Each carries a message written for the person who has to fix it. The CLI prints it as one line
and exits non-zero; the HTTP layer maps each class to one status code.
"""

from __future__ import annotations

import errno
from pathlib import Path


class RagtuneError(Exception):
    """Base class: a problem the user can act on (not a bug)."""

    status_code = 500
    # Fields the HTTP layer puts next to `detail` (a running job's id, the refused files); assign, never mutate.
    extra: dict[str, object] = {}


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


class Conflict(RagtuneError):
    """The request clashes with work in progress (an ingest already running, say).

    `extra` fields (the running job's id) are added to the error body next to `detail`.
    """

    status_code = 409

    def __init__(self, message: str, **extra: object):
        super().__init__(message)
        self.extra = dict(extra)


class UnsupportedFileType(UserInputError):
    """An uploaded file's type is not one ingestion reads (ingest.extensions)."""

    status_code = 415


class UploadRefused(UserInputError):
    """An uploaded file was refused: its content does not match its type, a zip bomb, a bad name."""

    status_code = 422


class ServiceUnavailable(RagtuneError):
    """A part of the server this request needs was not set up (no ingester wired in, say)."""

    status_code = 503


class VectorStoreUnavailable(RagtuneError):
    """The Chroma server (chroma.url) cannot be reached; answers and ingests wait until it is back."""

    status_code = 503


class StorageError(RagtuneError):
    """The data directory cannot take a write: the disk is full or it is not writable."""

    status_code = 503


def storage_error(exc: OSError, data_dir: Path | str) -> StorageError | None:
    """An OSError of a write into the data directory as the StorageError that names the problem and
    its fix; None when the OSError is not about space or permission."""
    where = exc.filename or data_dir
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(
            f"no space left in the data directory {data_dir} ({exc.strerror}: {where}); "
            "free space there or point data_dir at a bigger disk, then ingest again"
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(
            f"the data directory {data_dir} is not writable ({exc.strerror}: {where}); make it writable "
            "(its permissions, a read-only mount) or point data_dir elsewhere, then ingest again"
        )
    return None
