"""Chroma access: an embedded persistent client by default, a Chroma server when a URL is set.

Each index version lives in its own collection, so a version being built is invisible to readers
of the current one. We always pass embeddings ourselves: a text-only add or query would make
Chroma fetch its own default model.

Chroma's `delete_collection` leaves the collection's vector segment folder (`chroma/<uuid>/`) on
disk, so every dropped version would leak an index's worth of disk; `sweep_orphans` removes the
folders that Chroma's own catalogue (the `segments` table of chroma.sqlite3) no longer lists.

Chroma's failures leave here as errors that say what to do: a server that cannot be reached is
`VectorStoreUnavailable` (503; the HTTP client reconnects by itself once the server is back), a
write the embedded store's disk refused is `StorageError`, a collection dropped under a reader is
`IndexNotReady`.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ragtune.errors import ConfigError, IndexNotReady, RagtuneError, StorageError, VectorStoreUnavailable
from ragtune.settings import ChromaSettings

_GET_BATCH = 2000
REOPEN_FREE_BYTES = 1 << 20  # free space below which a store whose write was refused is not reopened


def open_client(settings: ChromaSettings, data_dir: Path):
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    client_settings = ChromaClientSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.url:
        parsed = urlparse(settings.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"chroma.url {settings.url!r} is not an http(s) URL like http://localhost:8000")
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        try:
            return chromadb.HttpClient(host=parsed.hostname, port=port, ssl=parsed.scheme == "https", settings=client_settings)
        except ValueError as exc:  # chromadb's "Could not connect to a Chroma server"
            raise unreachable(settings.url, exc) from exc
    path = data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=client_settings)


class VectorStore:
    """The few Chroma operations the index needs, over one client."""

    def __init__(self, settings: ChromaSettings, data_dir: Path):
        self.settings = settings
        self.data_dir = data_dir
        self.client = open_client(settings, data_dir)
        self.path = None if settings.url else data_dir / "chroma"
        self._collections: dict[str, Any] = {}
        self._stale = False  # a write refused for a full disk: reopen the client before the next write

    def collection_name(self, version: str) -> str:
        return f"{self.settings.collection_prefix}_{version}".replace(":", "-")

    @contextlib.contextmanager
    def _calls(self, name: str | None = None, write: bool = False) -> Iterator[None]:
        """Chroma's failures as ragtune's errors (see the module's docstring); `name` is the
        collection the calls use, `write` whether they change the store."""
        if write and self._stale:
            self._reopen()
        try:
            yield
        except RagtuneError:
            raise
        except Exception as exc:
            error = self._translate(exc, name)
            if error is None:
                raise
            raise error from exc

    def _translate(self, exc: Exception, name: str | None) -> RagtuneError | None:
        import httpx
        from chromadb.errors import NotFoundError

        if isinstance(exc, httpx.TransportError) and self.settings.url:
            return unreachable(self.settings.url, exc)
        if isinstance(exc, NotFoundError) and name is not None:
            self._collections.pop(name, None)
            return IndexNotReady(f"Chroma collection {name!r} is gone (a newer index version replaced it)")
        problem = _disk_problem(str(exc))
        if problem is not None and self.path is not None:
            # A full disk or a read-only store: the next write reopens the client (see _reopen).
            self._stale = True
            return StorageError(f"{problem.format(folder=self.path)}, then ingest again")
        return None

    def _reopen(self) -> None:
        """A new embedded client before the first write after one refused for a full disk or a
        read-only store.

        Chroma's embedded store can keep the refused write's transaction open in its connection
        pool: the next write then waits on that lock for ever (reads still work). A connection
        SQLite opened while the folder was read-only stays read-only after the folder is writable
        again, so every later ingest would fail until a restart. Closing the client
        stops the pool when it is the process's last client of the folder (ragtune holds one per
        index). Opening needs some disk, so while the disk is still full the old client stays, for
        the reads, and the write is refused at once.
        """
        assert self.path is not None
        if shutil.disk_usage(self.path).free < REOPEN_FREE_BYTES:
            raise StorageError(f"{_DISK_PROBLEMS[_DISK_FULL].format(folder=self.path)}, then ingest again")
        self._collections.clear()
        close = getattr(self.client, "close", None)  # chromadb >= 1.1
        if close is not None:
            close()
        try:
            self.client = open_client(self.settings, self.data_dir)
        except Exception as exc:  # still refused: tried again before the next write
            raise StorageError(f"the Chroma store in {self.path} cannot be opened again ({exc}); check data_dir") from exc
        self._stale = False

    def create(self, name: str):
        with self._calls(write=True):
            collection = self.client.create_collection(name=name, metadata={"hnsw:space": "cosine"}, embedding_function=None)
        self._collections[name] = collection
        return collection

    def get(self, name: str):
        if name not in self._collections:
            with self._calls():
                try:
                    self._collections[name] = self.client.get_collection(name=name, embedding_function=None)
                except Exception as exc:
                    if self._translate(exc, None) is not None:
                        raise  # unreachable, or a disk problem: `_calls` says which
                    raise IndexNotReady(f"Chroma collection {name!r} is missing; run `ragtune ingest` again") from exc
        return self._collections[name]

    def drop(self, name: str) -> None:
        self._collections.pop(name, None)
        try:
            with self._calls(write=True):
                self.client.delete_collection(name=name)
        except Exception:
            pass  # already gone (dropping is idempotent), or it cannot go now: the next prune retries

    def sweep_orphans(self) -> list[str]:
        """Remove segment folders no Chroma segment refers to (embedded Chroma only); their names.

        Fails safe: when the catalogue cannot be read, or lists no segments table, nothing is
        removed. Folders are listed before the catalogue is read, so a segment created meanwhile
        is in the catalogue and kept.
        """
        if self.settings.url or self.path is None:
            return []  # a Chroma server manages its own disk
        candidates = [p for p in self.path.iterdir() if p.is_dir() and not p.is_symlink() and _is_uuid(p.name)]
        if not candidates:
            return []
        try:
            db = sqlite3.connect(f"file:{self.path / 'chroma.sqlite3'}?mode=ro", uri=True, timeout=10)
            try:
                referenced = {str(row[0]) for row in db.execute("SELECT id FROM segments")}
            finally:
                db.close()
        except sqlite3.Error:
            return []
        removed = []
        for folder in candidates:
            if folder.name not in referenced:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed

    def names(self) -> list[str]:
        prefix = f"{self.settings.collection_prefix}_"
        with self._calls():
            listed = self.client.list_collections()
        return [c if isinstance(c, str) else c.name for c in listed if (c if isinstance(c, str) else c.name).startswith(prefix)]

    def heartbeat(self) -> None:
        """Raise VectorStoreUnavailable when the Chroma server cannot be reached (a readiness check)."""
        with self._calls():
            self.client.heartbeat()

    def add(self, name: str, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict]) -> None:
        with self._calls(name, write=True):
            collection = self.get(name)
            step = max(1, min(self.client.get_max_batch_size(), 5000))
            for start in range(0, len(ids), step):
                end = start + step
                collection.add(
                    ids=list(ids[start:end]),
                    embeddings=vectors[start:end],
                    metadatas=list(metadatas[start:end]),
                )

    def vectors(self, name: str, ids: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors by chunk id (used to carry unchanged chunks into a new version)."""
        ids = list(ids)
        found: dict[str, np.ndarray] = {}
        with self._calls(name):
            collection = self.get(name)
            for start in range(0, len(ids), _GET_BATCH):
                got = collection.get(ids=ids[start : start + _GET_BATCH], include=["embeddings"])
                for chunk_id, vector in zip(got["ids"], got["embeddings"], strict=False):
                    found[chunk_id] = np.asarray(vector, dtype=np.float32)
        return found

    def query(self, name: str, vector: np.ndarray, n: int, where: dict | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the n nearest chunks."""
        with self._calls(name):
            collection = self.get(name)
            count = collection.count()
            if count == 0:
                return []
            result = collection.query(
                query_embeddings=[vector], n_results=min(n, count), where=where or None, include=["distances"]
            )
        return [(cid, 1.0 - float(dist)) for cid, dist in zip(result["ids"][0], result["distances"][0], strict=False)]


def unreachable(url: str, exc: Exception) -> VectorStoreUnavailable:
    reason = str(exc) or type(exc).__name__
    return VectorStoreUnavailable(
        f"the Chroma server at {url} (chroma.url) cannot be reached ({reason}); start it or correct chroma.url"
    )


# What SQLite (inside embedded Chroma) says when the disk refuses a write, and what to do about it.
_DISK_FULL = "database or disk is full"
_DISK_PROBLEMS = {
    _DISK_FULL: "no space left for the Chroma store in {folder}; free space there or point data_dir at a bigger disk",
    "readonly database": "the Chroma store in {folder} is not writable; make data_dir writable (permissions, a read-only mount)",
}


def _disk_problem(message: str) -> str | None:
    return next((fix for text, fix in _DISK_PROBLEMS.items() if text in message), None)


def _is_uuid(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def chroma_where(filters: dict[str, Any] | None) -> dict | None:
    """Our simple filter dict as a Chroma `where` clause."""
    if not filters:
        return None
    clauses = [{key: {"$in": value}} if isinstance(value, list) else {key: value} for key, value in filters.items()]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
