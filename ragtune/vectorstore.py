"""Chroma access: an embedded persistent client by default, a Chroma server when a URL is set.

Each index version lives in its own collection, so a version being built is invisible to readers
of the current one. We always pass embeddings ourselves: a text-only add or query would make
Chroma fetch its own default model.

Chroma's `delete_collection` leaves the collection's vector segment folder (`chroma/<uuid>/`) on
disk, so every dropped version would leak an index's worth of disk; `sweep_orphans` removes the
folders that Chroma's own catalogue (the `segments` table of chroma.sqlite3) no longer lists.
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

from ragtune.errors import ConfigError, IndexNotReady
from ragtune.settings import ChromaSettings

_GET_BATCH = 2000


def open_client(settings: ChromaSettings, data_dir: Path):
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    client_settings = ChromaClientSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.url:
        parsed = urlparse(settings.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"chroma.url {settings.url!r} is not an http(s) URL like http://localhost:8000")
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        return chromadb.HttpClient(host=parsed.hostname, port=port, ssl=parsed.scheme == "https", settings=client_settings)
    path = data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=client_settings)


class VectorStore:
    """The few Chroma operations the index needs, over one client."""

    def __init__(self, settings: ChromaSettings, data_dir: Path):
        self.settings = settings
        self.client = open_client(settings, data_dir)
        self.path = None if settings.url else data_dir / "chroma"
        self._collections: dict[str, Any] = {}

    def collection_name(self, version: str) -> str:
        return f"{self.settings.collection_prefix}_{version}".replace(":", "-")

    def create(self, name: str):
        collection = self.client.create_collection(name=name, metadata={"hnsw:space": "cosine"}, embedding_function=None)
        self._collections[name] = collection
        return collection

    def get(self, name: str):
        if name not in self._collections:
            try:
                self._collections[name] = self.client.get_collection(name=name, embedding_function=None)
            except Exception as exc:
                raise IndexNotReady(f"Chroma collection {name!r} is missing; run `ragtune ingest` again") from exc
        return self._collections[name]

    def drop(self, name: str) -> None:
        self._collections.pop(name, None)
        try:
            self.client.delete_collection(name=name)
        except Exception:
            pass  # already gone: dropping is idempotent

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
        return [
            c if isinstance(c, str) else c.name
            for c in self.client.list_collections()
            if (c if isinstance(c, str) else c.name).startswith(prefix)
        ]

    def add(self, name: str, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict]) -> None:
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
        with self._gone_as_not_ready(name):
            collection = self.get(name)
            for start in range(0, len(ids), _GET_BATCH):
                got = collection.get(ids=ids[start : start + _GET_BATCH], include=["embeddings"])
                for chunk_id, vector in zip(got["ids"], got["embeddings"], strict=False):
                    found[chunk_id] = np.asarray(vector, dtype=np.float32)
        return found

    @contextlib.contextmanager
    def _gone_as_not_ready(self, name: str) -> Iterator[None]:
        """A collection dropped while a reader held it (a version pruned by a re-ingest) is IndexNotReady."""
        from chromadb.errors import NotFoundError

        try:
            yield
        except NotFoundError as exc:
            self._collections.pop(name, None)
            raise IndexNotReady(f"Chroma collection {name!r} is gone (a newer index version replaced it)") from exc

    def query(self, name: str, vector: np.ndarray, n: int, where: dict | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the n nearest chunks."""
        with self._gone_as_not_ready(name):
            collection = self.get(name)
            count = collection.count()
            if count == 0:
                return []
            result = collection.query(
                query_embeddings=[vector], n_results=min(n, count), where=where or None, include=["distances"]
            )
        return [(cid, 1.0 - float(dist)) for cid, dist in zip(result["ids"][0], result["distances"][0], strict=False)]


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
