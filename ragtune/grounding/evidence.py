"""Evidence selection: the units (sentences, list items, table rows) of the retrieved chunks that
answer the question, ranked by the learned selector.

A 135M model picks its sources by position and cannot be trusted to find the fact in six chunks.
The retrieved chunks are cut into units (ragtune/grounding/text.py); each is embedded with its
document title and section in front (so "30 days" under "Refund policy > Annual plans" knows what
it is about), described by a few signals (ragtune/grounding/features.py) and scored by the
selector model trained on the company's own question -> sentence pairs. The evidence is verbatim
by construction, each unit with its chunk. Serving answers from it; training renders its prompts
from the same selection, so the model learns on what it is served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Container
from dataclasses import dataclass, field, replace

import numpy as np

from ragtune.documents import Hit
from ragtune.embedding import Embedder
from ragtune.grounding.features import Candidate, CorpusStats, features
from ragtune.grounding.known import KnownQuestions, Nearest, known_hits
from ragtune.grounding.model import GroundingModel
from ragtune.grounding.text import Unit, units
from ragtune.prompt import ContextChunk

CACHE_SIZE = 50_000


@dataclass(frozen=True)
class Evidence:
    """One scored unit: verbatim text, its chunk (hit), the selector's probability and its signals."""

    hit: Hit
    sentence: str
    score: float
    unit: Unit = field(default_factory=lambda: Unit(""))
    dense: float = 0.0
    position: int = 0

    @property
    def chunk_id(self) -> str:
        return self.hit.chunk.id


def evidence_chunks(evidence: list[Evidence]) -> list[ContextChunk]:
    """The evidence as prompt sources: each unit one source under its document's title and section.
    Serving and training both render the model's prompt from this (then `number_sources`)."""
    return [ContextChunk(e.chunk_id, e.hit.chunk.title, e.hit.chunk.section, e.sentence) for e in evidence]


def heading_of(hit: Hit, unit: Unit | None = None) -> str:
    c = hit.chunk
    head = c.title if not c.section or c.section == c.title else f"{c.title} - {c.section}"
    return f"{head} - {unit.heading}" if unit is not None and unit.heading else head


def corpus_stats_from(chunks: list) -> CorpusStats:
    return CorpusStats.from_texts([f"{c.title} {c.section} {c.text}" for c in chunks])


class EvidenceSelector:
    """Scores the units of retrieved chunks against a question.

    Unit vectors are cached by chunk id (a content hash), so a chunk is embedded once per process,
    not once per question. `stats` gives the index's word statistics (for IDF weights)."""

    def __init__(
        self,
        embedder: Embedder,
        model: GroundingModel | None = None,
        stats: Callable[[], CorpusStats] | None = None,
        known: KnownQuestions | None = None,
    ):
        self.embedder = embedder
        self._model = model
        self._known = known
        self._stats = stats
        self._cache: OrderedDict[str, tuple[list[Unit], np.ndarray]] = OrderedDict()
        self._words: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def word_vectors(self, wanted: list[str]) -> np.ndarray:
        """Embeddings of single words (cached for the process)."""
        with self._lock:
            missing = [w for w in dict.fromkeys(wanted) if w not in self._words]
        if missing:
            vectors = self.embedder.embed_documents(missing)
            with self._lock:
                if len(self._words) > CACHE_SIZE:
                    self._words.clear()
                self._words.update(zip(missing, vectors, strict=True))
        with self._lock:
            return np.vstack([self._words[w] for w in wanted]) if wanted else np.zeros((0, 1), dtype=np.float32)

    @property
    def model(self) -> GroundingModel:
        if self._model is None:
            self._model = GroundingModel.load()
        return self._model

    @property
    def known(self) -> KnownQuestions | None:
        """The known questions compared with (given, or the model's)."""
        return self._known if self._known is not None else self.model.known

    def known_nearest(
        self, qvec: np.ndarray, evidence_doc: str = "", exclude: str | None = None, hide_doc: str | None = None
    ) -> Nearest:
        """Similarity of the closest answerable and unanswerable known question (0 without any;
        see `KnownQuestions.nearest`). The unanswerable side counts only when the best evidence
        (`evidence_doc`) comes from a document that was in the index when they were judged (and not
        from `hide_doc`)."""
        known = self.known
        if known is None or not len(known):
            return Nearest(0.0, 0.0, 0.0)
        nearest = known.nearest(known.similarity(self.embedder, qvec, exclude, hide_doc))
        if evidence_doc and (not known.judged(evidence_doc) or evidence_doc == hide_doc):
            return Nearest(nearest.yes, 0.0, 0.0)
        return nearest

    def with_known(
        self,
        qvec: np.ndarray,
        hits: list[Hit],
        chunks: list,
        floor: float,
        exclude: str | None = None,
        hide_doc: str | None = None,
    ) -> list[Hit]:
        """`hits` and after them the chunks answering the closest known questions that retrieval
        missed (ragtune/grounding/known.py); `chunks`: the index version's (filtered) chunks."""
        known = self.known
        if known is None or not len(known):
            return hits
        relevance = min((h.relevance for h in hits), default=floor)
        sims = known.similarity(self.embedder, qvec, exclude, hide_doc)
        return hits + known_hits(known, sims, chunks, {h.id for h in hits}, relevance)

    def new_units(self, docs: list[str], hide_doc: str | None = None) -> np.ndarray:
        """For each candidate's document: whether no known question is about it (or it is `hide_doc`),
        so its units are scored as a new document's (`GroundingModel.unit_probs`)."""
        known = self.known
        return np.asarray([known is None or not known.about(d) or d == hide_doc for d in docs], dtype=bool)

    def stats(self, hits: list[Hit]) -> CorpusStats:
        return self._stats() if self._stats is not None else corpus_stats_from([h.chunk for h in hits])

    def _units(self, hits: list[Hit]) -> list[tuple[list[Unit], np.ndarray]]:
        missing: list[Hit] = []
        with self._lock:
            for hit in hits:
                if hit.id in self._cache:
                    self._cache.move_to_end(hit.id)
                elif all(m.id != hit.id for m in missing):
                    missing.append(hit)
        if missing:
            split = [units(h.chunk.text) for h in missing]
            texts = [f"{heading_of(h, u)}: {u.text}" for h, us in zip(missing, split, strict=True) for u in us]
            vectors = self.embedder.embed_documents(texts) if texts else np.zeros((0, 1), dtype=np.float32)
            start = 0
            with self._lock:
                for hit, us in zip(missing, split, strict=True):
                    self._cache[hit.id] = (us, vectors[start : start + len(us)])
                    start += len(us)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        with self._lock:
            return [self._cache[h.id] for h in hits]

    def candidates(
        self,
        question: str,
        hits: list[Hit],
        qvec: np.ndarray | None = None,
        exclude: str | None = None,
        hide_doc: str | None = None,
    ) -> list[Candidate]:
        """The units of `hits` with their signals. `exclude` / `hide_doc`: known questions left out
        of the comparison (training scores each example question as if it were new, some as if
        their document were; ragtune/grounding/known.py)."""
        if not hits:
            return []
        qvec = self.embedder.embed_query(question) if qvec is None else qvec
        out = []
        for rank, (hit, (us, vectors)) in enumerate(zip(hits, self._units(hits), strict=True)):
            sims = vectors @ qvec if len(us) else []
            for position, (unit, sim) in enumerate(zip(us, sims, strict=True)):
                out.append(Candidate(unit, rank, float(hit.relevance), heading_of(hit, unit), float(sim), position))
        known = self.known
        if known is not None and len(known) and out:
            sims = known.similarity(self.embedder, qvec, exclude, hide_doc)
            scores = known.unit_scores(sims, [(hits[c.chunk_rank].chunk.doc_id, c.unit.text) for c in out])
            out = [replace(c, known=float(k), known_count=int(n)) for c, (k, n) in zip(out, scores, strict=True)]
        return out

    def score(
        self,
        question: str,
        hits: list[Hit],
        said: Container[str] = (),
        qvec: np.ndarray | None = None,
        hide_doc: str | None = None,
    ) -> list[Evidence]:
        """Every unit of `hits`, best first (score: the selector's probability that it answers).

        Units the assistant already gave in this conversation (`said`) are left out while others remain.
        `hide_doc`: score as if no known question were about that document (see `candidates`)."""
        cands = self.candidates(question, hits, qvec, exclude=question if hide_doc else None, hide_doc=hide_doc)
        fresh = [c for c in cands if c.unit.text not in said]
        cands = fresh or cands
        if not cands:
            return []
        new = self.new_units([hits[c.chunk_rank].chunk.doc_id for c in cands], hide_doc)
        probs = self.model.unit_probs(features(question, cands, self.stats(hits)), new)
        scored = [
            Evidence(
                hit=hits[c.chunk_rank], sentence=c.unit.text, score=float(p), unit=c.unit, dense=c.dense, position=c.position
            )
            for c, p in zip(cands, probs, strict=True)
        ]
        return sorted(scored, key=lambda e: e.score, reverse=True)

    def select(self, question: str, hits: list[Hit], max_sentences: int = 3, said: Container[str] = ()) -> list[Evidence]:
        """The best unit and up to `max_sentences - 1` more that the selector also finds likely."""
        return top_evidence(self.score(question, hits, said), max_sentences, self.model.support)


DENSE_MARGIN = 0.1


def top_evidence(
    ranked: list[Evidence], max_sentences: int = 3, support: float = 0.5, across_documents: bool = False
) -> list[Evidence]:
    """From units ranked best first: the best and up to `max_sentences - 1` more among the next
    best that the selector finds likely (`support`) or that are about as similar to the question as
    the best one (within DENSE_MARGIN): a fact the selector ranks second is still given. Similarity
    alone admits a unit of another document only `across_documents` (a question asking two
    things): otherwise such a unit is mostly about something else ("An unfinished session expires
    after 24 hours." under an answer about file requests)."""
    if not ranked:
        return []
    chosen = [ranked[0]]
    lead_doc = ranked[0].hit.chunk.doc_id
    for e in ranked[1 : max_sentences + 2]:
        if len(chosen) >= max_sentences:
            break
        similar = e.dense >= ranked[0].dense - DENSE_MARGIN and (across_documents or e.hit.chunk.doc_id == lead_doc)
        likely = e.score >= support or similar
        if likely and all(e.sentence != c.sentence for c in chosen):
            chosen.append(e)
    return chosen
