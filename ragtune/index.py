"""The versioned knowledge index: what ingestion writes and retrieval reads.

Layout under `<data_dir>/index/`:
    current.json                 {"version": ...}: the one version readers use, switched atomically
    versions/<version>/manifest.json   documents, their content hashes and chunk ids, model, settings
    versions/<version>/chunks.jsonl    every chunk's text and metadata
    versions/<version>/bm25/           the BM25 index, built at ingest time
    .lock                        held by the one ingest run allowed at a time
Vectors live in Chroma, one collection per version. A version is complete before `current.json`
points at it, so a failed or killed run leaves the previous version serving; its leftovers (the
version folder, the Chroma collection and the segment folder Chroma leaves on disk) are removed
by the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.documents import Chunk
from ragtune.errors import Conflict, IndexNotReady, RagtuneError, storage_error
from ragtune.settings import Settings
from ragtune.vectorstore import VectorStore


@dataclass
class DocRecord:
    doc_id: str
    content_hash: str
    title: str
    doc_type: str
    chunk_ids: list[str]
    size: int = 0
    # What ingestion found that serving withholds (ragtune/injection.py, ragtune/contacts.py): sentences
    # read as instructions to the assistant, and every contact in the text (the admin API tells which
    # ones the current settings do not allow).
    instructions: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    version: str
    created_at: str
    collection: str
    embedding_model: str
    embedding_fingerprint: str
    chunking: dict[str, Any]
    documents: dict[str, DocRecord] = field(default_factory=dict)
    parent: str | None = None
    source: str = ""

    @property
    def chunk_count(self) -> int:
        return sum(len(d.chunk_ids) for d in self.documents.values())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["chunk_count"] = self.chunk_count
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        data = dict(data)
        data.pop("chunk_count", None)
        data["documents"] = {k: DocRecord(**v) for k, v in data.get("documents", {}).items()}
        return cls(**data)


def new_version_id() -> str:
    return datetime.now(timezone.utc).strftime("v%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk must not keep the half-written file too
            tmp.unlink()
        raise


def bm25_tokenize(texts: list[str], return_ids: bool = True):
    """BM25's one tokenizer, for chunks at ingest and queries at search: English stopwords out,
    Snowball-stemmed. `return_ids=False` gives token strings, which a saved index maps to its ids."""
    import bm25s
    import Stemmer

    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=return_ids, show_progress=False)


class Snapshot:
    """One published version, loaded for reading: chunks in memory, BM25 loaded, Chroma collection."""

    def __init__(self, root: Path, manifest: Manifest, store: VectorStore):
        self.manifest = manifest
        self.version = manifest.version
        self.store = store
        folder = root / manifest.version
        with open(folder / "chunks.jsonl", encoding="utf-8") as handle:
            self.chunks = [Chunk.from_json(json.loads(line)) for line in handle if line.strip()]
        self.by_id = {c.id: c for c in self.chunks}
        self.position = {c.id: i for i, c in enumerate(self.chunks)}
        self._bm25 = None
        if self.chunks:
            import bm25s

            self._bm25 = bm25s.BM25.load(str(folder / "bm25"))

    def bm25_search(self, query: str, n: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        if self._bm25 is None:
            return []
        tokens = bm25_tokenize([query], return_ids=False)
        if not tokens or not tokens[0]:
            return []
        k = min(n, len(self.chunks))
        docs, scores = self._bm25.retrieve(tokens, k=k, show_progress=False, weight_mask=mask, n_threads=1)
        return [(self.chunks[int(i)].id, float(s)) for i, s in zip(docs[0], scores[0], strict=False) if s > 0]

    def dense_search(self, vector: np.ndarray, n: int, where: dict | None = None) -> list[tuple[str, float]]:
        return self.store.query(self.manifest.collection, vector, n, where)

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        return self.store.vectors(self.manifest.collection, ids)


class KnowledgeIndex:
    def __init__(self, settings: Settings, store: VectorStore | None = None):
        self.settings = settings
        self.root = Path(settings.data_dir) / "index"
        self.versions_dir = self.root / "versions"
        self._store = store

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            self._store = VectorStore(self.settings.chroma, Path(self.settings.data_dir))
        return self._store

    # ---- reading -------------------------------------------------------------------------
    def current_version(self) -> str | None:
        try:
            return json.loads((self.root / "current.json").read_text())["version"]
        except (FileNotFoundError, KeyError, json.JSONDecodeError):
            return None

    def manifest(self, version: str) -> Manifest:
        path = self.versions_dir / version / "manifest.json"
        try:
            return Manifest.from_json(json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise IndexNotReady(f"index version {version} is missing its manifest") from exc

    def current_manifest(self) -> Manifest | None:
        version = self.current_version()
        return self.manifest(version) if version else None

    def open_current(self) -> Snapshot:
        version = self.current_version()
        if version is None:
            raise IndexNotReady(f"no knowledge index in {self.settings.data_dir}: run `ragtune ingest` first")
        return Snapshot(self.versions_dir, self.manifest(version), self.store)

    def read_chunks(self, version: str) -> list[Chunk]:
        with open(self.versions_dir / version / "chunks.jsonl", encoding="utf-8") as handle:
            return [Chunk.from_json(json.loads(line)) for line in handle if line.strip()]

    def list_versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if (p / "manifest.json").is_file())

    # ---- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time; a second `ragtune ingest` fails fast instead of interleaving."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / ".lock", "w")
        except OSError as exc:  # a read-only or full data dir: say so before any work starts
            raise storage_error(exc, self.settings.data_dir) or exc from exc
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise Conflict(f"another ingest is running on {self.settings.data_dir}; wait for it to finish") from exc
            yield
        finally:
            handle.close()

    def write_version(self, manifest: Manifest, chunks: list[Chunk]) -> None:
        """Write the files of a version (its vectors must already be in Chroma)."""
        folder = self.versions_dir / manifest.version
        folder.mkdir(parents=True, exist_ok=False)
        with open(folder / "chunks.jsonl", "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(json.dumps(chunk.to_json(), ensure_ascii=False) + "\n")
        if chunks:
            import bm25s

            retriever = bm25s.BM25()
            retriever.index(bm25_tokenize([c.embedding_text() for c in chunks]), show_progress=False)
            retriever.save(str(folder / "bm25"))
        # The manifest goes last: a folder without one is an unfinished build.
        _write_atomic(folder / "manifest.json", json.dumps(manifest.to_json(), indent=1, ensure_ascii=False))

    def publish(self, version: str) -> None:
        """Point readers at `version` (one atomic rename)."""
        try:
            _write_atomic(
                self.root / "current.json",
                json.dumps({"version": version, "published_at": datetime.now(timezone.utc).isoformat()}),
            )
        except OSError as exc:
            raise storage_error(exc, self.settings.data_dir) or exc from exc

    def discard(self, version: str) -> None:
        """Remove an unpublished build (the folder and collection of a run that failed) at once, so
        a disk that filled up gets its space back; what cannot go now, the next run's prune removes."""
        if version == self.current_version():
            return
        shutil.rmtree(self.versions_dir / version, ignore_errors=True)
        with contextlib.suppress(RagtuneError):
            self.store.drop(self.store.collection_name(version))
            self.store.sweep_orphans()

    def lineage(self, keep: int) -> list[str]:
        """The current version and its predecessors (by each manifest's `parent`), at most `keep`."""
        chain: list[str] = []
        version = self.current_version()
        while version and len(chain) < keep:
            chain.append(version)
            try:
                version = self.manifest(version).parent
            except IndexNotReady:
                break  # the parent was pruned already
        return chain

    def prune(self, keep: int) -> list[str]:
        """Remove unfinished builds and every version but the current one and its `keep - 1`
        predecessors, then the Chroma collections and segment folders of what was removed.

        The kept versions follow the publish chain, not version-id order: ids carry whole seconds,
        so several versions built within one second would otherwise be kept or dropped at random.
        """
        keep_set = set(self.lineage(keep)) or set(self.list_versions()[-keep:])
        removed: list[str] = []
        if self.versions_dir.is_dir():
            for folder in self.versions_dir.iterdir():
                if folder.name not in keep_set:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder.name)
        live = {self.store.collection_name(v) for v in keep_set}
        for name in self.store.names():
            if name not in live:
                self.store.drop(name)
        self.store.sweep_orphans()  # dropped collections leave their segment folders behind
        return removed
