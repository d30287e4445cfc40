"""Hybrid retrieval over the current index version: dense (Chroma) + BM25, fused by RRF.

Used by the chat service and by `ragtune eval`. The retriever follows `current.json`: when an
ingest publishes a new version, the next query opens it, so a running server never needs a restart
and never sees a half-built index. Queries are embedded with the model the version was built with
(its manifest names it): a version re-embedded with a tuned retriever (`ragtune train retriever
deploy`) is searched with that model from its first query, and a rollback to an older version
brings the older model back. `embedder` stays the configured model, which the chat service's
evidence selection uses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ragtune.documents import FILTER_FIELDS, Hit, matches
from ragtune.embedders import Fusion, effective_embedding, read_fusion
from ragtune.embedding import Embedder
from ragtune.errors import IndexNotReady, UserInputError
from ragtune.index import KnowledgeIndex, Manifest, Snapshot
from ragtune.settings import RetrievalSettings
from ragtune.vectorstore import chroma_where

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass
class RetrievalResult:
    hits: list[Hit]
    version: str
    mode: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    def relevant(self, threshold: float) -> list[Hit]:
        return [h for h in self.hits if h.relevance >= threshold]


def rrf(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    """Reciprocal rank fusion: sum over rankings of weight / (k + rank), rank starting at 1."""
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, chunk_id in enumerate(ids, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (k + rank)
    return fused


def validate_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    if not filters:
        return None
    for key, value in filters.items():
        if key not in FILTER_FIELDS:
            raise UserInputError(f"unknown filter {key!r}; filters can use {', '.join(FILTER_FIELDS)}")
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise UserInputError(f"filter {key!r} takes a string or a non-empty list of strings")
    return filters


class Retriever:
    def __init__(self, index: KnowledgeIndex, embedder: Embedder, settings: RetrievalSettings):
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._reranker: Any = None  # a sentence-transformers CrossEncoder, loaded on first use
        self._embedders: dict[str, Embedder] = {}  # by fingerprint: the spaces of versions seen
        self._fusions: dict[str, tuple[int, Fusion | None]] = {}  # model -> (file mtime, weights it carries)
        self._selector: tuple[str, Any] | None = None  # (version, the second stage's evidence selector), on first use

    def snapshot(self) -> Snapshot:
        """The current version, reopened when a new one has been published."""
        version = self.index.current_version()
        with self._lock:
            if self._snapshot is None or self._snapshot.version != version:
                self._snapshot = self.index.open_current()
            return self._snapshot

    def ingest_embedder(self) -> Embedder:
        """What a re-ingest embeds with: the deployed tuned retriever (ragtune/embedders.py) or the
        configured model, loaded once. `embedder` itself stays the configured model: evidence
        selection and the grounding model were calibrated on its vectors."""
        wanted = Embedder(effective_embedding(self.index.settings))
        return self._known(wanted.fingerprint(), lambda: wanted)

    def _known(self, fingerprint: str, make: Callable[[], Embedder]) -> Embedder:
        if fingerprint not in self._embedders:
            self._embedders[fingerprint] = self.embedder if self.embedder.fingerprint() == fingerprint else make()
        return self._embedders[fingerprint]

    def embedder_for(self, manifest: Manifest) -> Embedder | None:
        """The embedder whose vectors `manifest`'s version holds, or None when no embedder built
        from these settings can produce them (another prefix or backend)."""
        fingerprint = manifest.embedding_fingerprint
        if fingerprint in self._embedders or self.embedder.fingerprint() == fingerprint:
            return self._known(fingerprint, lambda: self.embedder)
        other = Embedder(self.embedder.settings.model_copy(update={"model": manifest.embedding_model}))
        return self._known(fingerprint, lambda: other) if other.fingerprint() == fingerprint else None

    def fusion_for(self, manifest: Manifest) -> Fusion:
        """The RRF weights for a search of `manifest`'s version: those its embedding model carries
        (a tuned retriever's, chosen on dev data) when `retrieval.tuned_fusion`, else the settings'."""
        configured = Fusion(self.settings.dense_weight, self.settings.bm25_weight, self.settings.rrf_k)
        if not self.settings.tuned_fusion:
            return configured
        carried = self._carried_fusion(manifest.embedding_model)
        return carried if carried is not None else configured

    def _carried_fusion(self, model: str) -> Fusion | None:
        from ragtune.embedders import FUSION_FILE

        try:
            stamp = (Path(model) / FUSION_FILE).stat().st_mtime_ns
        except OSError:
            stamp = 0  # no file (or a model id): the settings' weights
        known = self._fusions.get(model)
        if known is None or known[0] != stamp:  # read once, again only when the file changes
            known = (stamp, read_fusion(model) if stamp else None)
            self._fusions[model] = known
        return known[1]

    def search(
        self,
        query: str,
        top_k: int | None = None,
        mode: Mode | None = None,
        filters: dict[str, Any] | None = None,
    ) -> RetrievalResult:
        filters = validate_filters(filters)
        mode = mode or self.settings.mode
        top_k = top_k or self.settings.top_k
        snap = self.snapshot()
        try:
            return self._search(snap, query, top_k, mode, filters)
        except IndexNotReady:
            # The version this search started on was removed under it (a re-ingest that keeps one
            # version prunes the one it replaced): search the version that replaced it, whole.
            fresh = self.snapshot()
            if fresh.version == snap.version:
                raise
            return self._search(fresh, query, top_k, mode, filters)

    def _search(self, snap: Snapshot, query: str, top_k: int, mode: Mode, filters: dict[str, Any] | None) -> RetrievalResult:
        timings: dict[str, float] = {}
        n = max(self.settings.candidates, top_k)

        t0 = time.perf_counter()
        qvec = (self.embedder_for(snap.manifest) or self.embedder).embed_query(query)
        timings["embed_ms"] = _ms(t0)

        dense: list[tuple[str, float]] = []
        sparse: list[tuple[str, float]] = []
        if mode in ("hybrid", "dense"):
            t0 = time.perf_counter()
            dense = snap.dense_search(qvec, n, chroma_where(filters))
            timings["dense_ms"] = _ms(t0)
        if mode in ("hybrid", "bm25"):
            t0 = time.perf_counter()
            mask = None
            if filters:
                mask = np.array([matches(c, filters) for c in snap.chunks], dtype=np.float32)
            sparse = snap.bm25_search(query, n, mask)
            timings["bm25_ms"] = _ms(t0)

        t0 = time.perf_counter()
        dense_rank = {cid: r for r, (cid, _) in enumerate(dense, start=1)}
        bm25_rank = {cid: r for r, (cid, _) in enumerate(sparse, start=1)}
        if mode == "hybrid":
            fusion = self.fusion_for(snap.manifest)
            scores = rrf(
                [([c for c, _ in dense], fusion.dense_weight), ([c for c, _ in sparse], fusion.bm25_weight)], fusion.rrf_k
            )
        else:
            scores = dict(dense if mode == "dense" else sparse)
        ordered = sorted(scores, key=lambda cid: scores[cid], reverse=True)
        keep = self.settings.reranker_candidates if self.settings.reranker_model else top_k
        if self.settings.evidence_rerank:
            keep = max(keep, self.settings.evidence_rerank_depth)
        ordered = [cid for cid in ordered if cid in snap.by_id][: max(keep, top_k)]
        relevance = self._relevance(snap, qvec, ordered, dict(dense))
        hits = [
            Hit(
                chunk=snap.by_id[cid],
                score=float(scores[cid]),
                relevance=relevance[cid],
                dense_rank=dense_rank.get(cid),
                bm25_rank=bm25_rank.get(cid),
            )
            for cid in ordered
        ]
        timings["fuse_ms"] = _ms(t0)
        if self.settings.reranker_model and hits:
            t0 = time.perf_counter()
            hits = self._rerank(query, hits)
            timings["rerank_ms"] = _ms(t0)
        if self.settings.evidence_rerank and hits:
            t0 = time.perf_counter()
            hits = self._evidence_rerank(snap, query, hits)
            timings["evidence_rerank_ms"] = _ms(t0)
        return RetrievalResult(hits=hits[:top_k], version=snap.version, mode=mode, timings_ms=timings)

    def _relevance(self, snap: Snapshot, qvec: np.ndarray, ids: list[str], known: dict[str, float]) -> dict[str, float]:
        """Cosine similarity for every hit; BM25-only hits get theirs from their stored vectors."""
        missing = [cid for cid in ids if cid not in known]
        out = {cid: known[cid] for cid in ids if cid in known}
        if missing:
            vectors = snap.vectors(missing)
            for cid in missing:
                vec = vectors.get(cid)
                out[cid] = float(np.dot(qvec, vec)) if vec is not None else 0.0
        return {cid: max(0.0, min(1.0, score)) for cid, score in out.items()}

    def _evidence_rerank(self, snap: Snapshot, query: str, hits: list[Hit]) -> list[Hit]:
        """The first `evidence_rerank_depth` hits reordered by their best unit's selector probability
        (stable: equal scores keep the fused order); the rest follow unchanged. The selector embeds
        with the configured model, whose vectors it was trained on."""
        from ragtune.grounding.evidence import EvidenceSelector, corpus_stats_from

        if self._selector is None or self._selector[0] != snap.version:  # IDF from the searched version's words
            stats = corpus_stats_from(snap.chunks)
            self._selector = (snap.version, EvidenceSelector(self.embedder, stats=lambda: stats))
        selector = self._selector[1]
        depth = self.settings.evidence_rerank_depth
        head, tail = hits[:depth], hits[depth:]
        best: dict[str, float] = {}
        for evidence in selector.score(query, head):
            best[evidence.chunk_id] = max(best.get(evidence.chunk_id, 0.0), evidence.score)
        for hit in head:
            hit.rerank_score = best.get(hit.id, 0.0)
        return sorted(head, key=lambda h: h.rerank_score or 0.0, reverse=True) + tail

    def _rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        if self._reranker is None:
            from sentence_transformers import CrossEncoder

            from ragtune.embedding import resolve_model

            assert self.settings.reranker_model is not None
            self._reranker = CrossEncoder(resolve_model(self.settings.reranker_model), device=self.embedder.settings.device)
        scores = self._reranker.predict([(query, h.chunk.embedding_text()) for h in hits], show_progress_bar=False)
        for hit, score in zip(hits, scores, strict=True):
            hit.rerank_score = float(score)
        return sorted(hits, key=lambda h: h.rerank_score or 0.0, reverse=True)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
