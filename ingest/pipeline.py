"""The ingest run: compare sources with the current version, embed only what changed, publish.

Unchanged documents keep their chunks and vectors (copied from the previous version's collection,
no embedding work). Edited documents are re-chunked and re-embedded, deleted ones are left out.
Nothing is published until the whole new version is written; then `current.json` switches to it.
A run that finds nothing changed publishes nothing and costs only the hashing of the files.
A run the data directory refuses (a full disk, a read-only mount) fails with a `StorageError` that
says so and what to do, and removes its unpublished build at once: the previous version serves on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ingest.chunking import chunk_document
from ingest.parsers import ParseError
from ingest.sources import Failure, SourceItem
from ragtune.contacts import ContactPolicy, find_contacts
from ragtune.documents import Chunk
from ragtune.embedders import effective_embedding
from ragtune.embedding import Embedder
from ragtune.errors import StorageError, UserInputError, storage_error
from ragtune.grounding.text import units
from ragtune.index import DocRecord, KnowledgeIndex, Manifest, new_version_id
from ragtune.injection import InjectionDetector
from ragtune.progress import NullProgress, Progress
from ragtune.settings import Settings

EMBED_BATCH = 128
MAX_FLAGS = 50  # flagged sentences and contacts kept per document (the admin's list, not the filter)


@dataclass
class IngestReport:
    version: str | None
    previous: str | None
    published: bool
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    kept_stale: list[str] = field(default_factory=list)  # failed now, previous content kept
    # Documents with text serving withholds: {doc_id: {"instructions": [sentence], "contacts": [not allowed]}}
    flagged: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    chunks_total: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    rebuild_reason: str | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> dict:
        return {
            "version": self.version,
            "previous": self.previous,
            "published": self.published,
            "added": len(self.added),
            "updated": len(self.updated),
            "removed": len(self.removed),
            "unchanged": len(self.unchanged),
            "failed": len(self.failed),
            "flagged": len(self.flagged),
            "chunks_total": self.chunks_total,
            "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 2),
            "rebuild_reason": self.rebuild_reason,
        }


def _rebuild_reason(previous: Manifest | None, fingerprint: str, model: str, chunking: dict) -> str | None:
    if previous is None:
        return None
    if previous.embedding_fingerprint != fingerprint:
        return f"embedding model or prefix changed (was {previous.embedding_model}, now {model}): rebuilding from scratch"
    if previous.chunking != chunking:
        return "chunking settings changed: rebuilding from scratch"
    return None


def run_ingest(
    settings: Settings,
    items: list[SourceItem],
    failures: list[Failure] | None = None,
    *,
    source: str = "",
    embedder: Embedder | None = None,
    index: KnowledgeIndex | None = None,
    progress: Progress | None = None,
    scan_planted: bool = True,
) -> IngestReport:
    """`scan_planted`: check every new sentence for planted instructions and contacts (a knowledge
    base served to customers); an evaluation corpus (BEIR) is not served and skips the cost."""
    index = index or KnowledgeIndex(settings)
    try:
        return _run(
            settings,
            items,
            list(failures or []),
            source,
            embedder or Embedder(effective_embedding(settings)),
            index,
            progress,
            scan_planted,
        )
    except (OSError, StorageError) as exc:
        error = exc if isinstance(exc, StorageError) else storage_error(exc, settings.data_dir)
        if error is None:
            raise
        serving = index.current_version()
        raise StorageError(f"{error}; nothing was published" + (f", {serving} still serves" if serving else "")) from exc


def _run(
    settings: Settings,
    items: list[SourceItem],
    failures: list[Failure],
    source: str,
    embedder: Embedder,
    index: KnowledgeIndex,
    progress: Progress | None,
    scan_planted: bool = True,
) -> IngestReport:
    started = time.perf_counter()
    progress = progress or NullProgress()
    chunking = settings.chunking.model_dump()

    with index.lock():
        index.prune(settings.ingest.keep_versions)  # leftovers of a failed or killed run
        previous = index.current_manifest()
        fingerprint = embedder.fingerprint()
        reason = _rebuild_reason(previous, fingerprint, embedder.settings.model, chunking)
        base = previous if previous is not None and reason is None else None
        old_docs = base.documents if base else {}
        report = IngestReport(
            version=None, previous=previous.version if previous else None, published=False, rebuild_reason=reason
        )

        current_ids = {item.doc_id for item in items} | {f.doc_id for f in failures}
        report.removed = sorted(d for d in (previous.documents if previous else {}) if d not in current_ids)
        changed: list[SourceItem] = []
        for item in items:
            record = old_docs.get(item.doc_id)
            if record is not None and record.content_hash == item.content_hash:
                report.unchanged.append(item.doc_id)
            else:
                changed.append(item)
        # A document that fails now but was indexed before keeps its previous content (reported).
        report.kept_stale = sorted(f.doc_id for f in failures if f.doc_id in old_docs)

        if not items and not report.kept_stale:
            report.failed = failures
            raise_if_nothing(source, failures)
        if base is not None and not changed and not report.removed:
            report.failed = failures
            report.version = base.version
            report.chunks_total = base.chunk_count
            report.seconds = time.perf_counter() - started
            return report

        # ---- parse and chunk what changed; flag planted instructions and contacts
        detector = InjectionDetector(embedder) if scan_planted else None
        new_chunks: dict[str, list[Chunk]] = {}
        records: dict[str, DocRecord] = {}
        progress.start("parse", len(changed))
        for item in changed:
            try:
                document = item.load()
                chunks = chunk_document(document, item.doc_id, settings.chunking, item.doc_type, item.category)
                if not chunks:
                    raise ParseError("no text found in the file")
            except ParseError as exc:
                failures.append(Failure(item.doc_id, str(exc)))
                if item.doc_id in old_docs:
                    report.kept_stale.append(item.doc_id)
            except Exception as exc:  # a parser library bug must not end the whole run
                failures.append(Failure(item.doc_id, f"could not parse ({type(exc).__name__}: {exc})"))
                if item.doc_id in old_docs:
                    report.kept_stale.append(item.doc_id)
            else:
                new_chunks[item.doc_id] = chunks
                instructions, contacts = scan_for_planted(chunks, detector) if detector is not None else ([], [])
                records[item.doc_id] = DocRecord(
                    item.doc_id,
                    item.content_hash,
                    document.title,
                    item.doc_type,
                    [c.id for c in chunks],
                    item.size,
                    instructions,
                    contacts,
                )
                (report.updated if item.doc_id in old_docs else report.added).append(item.doc_id)
            progress.advance("parse")
        report.failed = failures

        # ---- carry over unchanged (and stale-kept) documents from the previous version
        carried_docs = sorted(set(report.unchanged) | set(report.kept_stale))
        carried_chunks: list[Chunk] = []
        carried_vectors: dict[str, np.ndarray] = {}
        if base is not None and carried_docs:
            keep_ids = {cid for d in carried_docs for cid in old_docs[d].chunk_ids}
            carried_chunks = [c for c in index.read_chunks(base.version) if c.id in keep_ids]
            carried_vectors = index.store.vectors(base.collection, sorted(keep_ids))
            for d in carried_docs:
                records[d] = old_docs[d]

        policy = ContactPolicy.from_settings(settings)
        for doc_id, record in sorted(records.items()):
            foreign = policy.not_allowed(record.contacts)
            if record.instructions or foreign:
                report.flagged[doc_id] = {"instructions": record.instructions, "contacts": foreign}

        all_chunks = sorted(
            carried_chunks + [c for chunks in new_chunks.values() for c in chunks],
            key=lambda c: (c.doc_id, c.position),
        )
        if not all_chunks:
            raise_if_nothing(source, failures)

        # ---- embed, store, write, publish
        version = new_version_id()
        try:
            _build(index, embedder, progress, version, new_chunks, carried_chunks, carried_vectors)
            manifest = Manifest(
                version=version,
                created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                collection=index.store.collection_name(version),
                embedding_model=embedder.settings.model,
                embedding_fingerprint=fingerprint,
                chunking=chunking,
                documents=dict(sorted(records.items())),
                parent=previous.version if previous else None,
                source=source,
            )
            index.write_version(manifest, all_chunks)
            index.publish(version)
        except BaseException:
            index.discard(version)
            raise
        index.prune(settings.ingest.keep_versions)

        report.version = version
        report.published = True
        report.chunks_total = len(all_chunks)
        report.chunks_embedded = sum(len(chunks) for chunks in new_chunks.values())
        report.seconds = time.perf_counter() - started
        return report


def _build(
    index: KnowledgeIndex,
    embedder: Embedder,
    progress: Progress,
    version: str,
    new_chunks: dict[str, list[Chunk]],
    carried_chunks: list[Chunk],
    carried_vectors: dict[str, np.ndarray],
) -> None:
    """The version's Chroma collection: new chunks embedded, carried ones with their stored vectors."""
    collection = index.store.collection_name(version)
    index.store.create(collection)
    to_embed = [c for chunks in new_chunks.values() for c in chunks]
    progress.log(f"embedding {len(to_embed)} chunks ({len(carried_chunks)} reused)")
    progress.start("embed", len(to_embed))
    for start in range(0, len(to_embed), EMBED_BATCH):
        batch = to_embed[start : start + EMBED_BATCH]
        vectors = embedder.embed_documents([c.embedding_text() for c in batch])
        index.store.add(collection, [c.id for c in batch], vectors, [c.metadata() for c in batch])
        progress.advance("embed", len(batch))
    if carried_chunks:
        ids = [c.id for c in carried_chunks if c.id in carried_vectors]
        index.store.add(
            collection,
            ids,
            np.stack([carried_vectors[i] for i in ids]),
            [c.metadata() for c in carried_chunks if c.id in carried_vectors],
        )


def scan_for_planted(chunks: list[Chunk], detector: InjectionDetector) -> tuple[list[str], list[str]]:
    """The units (sentences, list items, rows) of a document that read as instructions to the assistant,
    as evidence selection splits them, and the contacts it holds."""
    sentences = list(dict.fromkeys(u.text for chunk in chunks for u in units(chunk.text)))
    instructions = [s for s, flagged in zip(sentences, detector.flagged(sentences), strict=True) if flagged]
    contacts = list(dict.fromkeys(c.text for chunk in chunks for c in find_contacts(chunk.text)))
    return instructions[:MAX_FLAGS], contacts[:MAX_FLAGS]


def raise_if_nothing(source: str, failures: list[Failure]) -> None:
    detail = (
        f" ({len(failures)} files failed: " + "; ".join(f"{f.doc_id}: {f.reason}" for f in failures[:3]) + ")" if failures else ""
    )
    raise UserInputError(f"no readable documents in {source or 'the source'}{detail}; nothing was published")
