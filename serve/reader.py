"""How one reading of a question is made: retrieval, typos corrected, units scored by the selector, the hand-off decision."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ragtune.documents import matches
from ragtune.grounding.answerability import decide
from ragtune.grounding.evidence import EvidenceSelector
from ragtune.grounding.features import CorpusStats
from ragtune.grounding.followup import Said
from ragtune.grounding.model import GroundingModel
from ragtune.grounding.polarity import Alternatives
from ragtune.grounding.spelling import Speller
from ragtune.retriever import Retriever
from ragtune.settings import Settings
from serve.guard import AnswerGuard
from serve.readings import Reading


class QuestionReader:
    """Reads questions against the serving index (`retriever`, which the chat service may swap) with
    the grounding model's selector; the serve/readings.py functions choose among the readings."""

    def __init__(self, settings: Settings, retriever: Retriever, grounding: GroundingModel, guard: AnswerGuard):
        self.settings = settings
        self.retriever = retriever
        self.grounding = grounding
        self.guard = guard  # serve/guard.py: planted text, contacts
        self._stats: tuple[str, tuple[CorpusStats, Speller, Alternatives]] | None = None
        self.selector = EvidenceSelector(retriever.embedder, grounding, self.corpus_stats)

    def corpus_stats(self) -> CorpusStats:
        """Word statistics of the serving index version (computed once per version)."""
        return self._corpus()[0]

    def alternatives(self) -> Alternatives:
        """The names the serving index's documents list side by side (ragtune/grounding/polarity.py)."""
        return self._corpus()[2]

    def _corpus(self) -> tuple[CorpusStats, Speller, Alternatives]:
        snap = self.retriever.snapshot()
        cached = self._stats
        if cached is None or cached[0] != snap.version:
            texts = [f"{c.title} {c.section} {c.text}" for c in snap.chunks]
            bodies = [c.text for c in snap.chunks]
            cached = (snap.version, (CorpusStats.from_texts(texts), Speller.from_texts(texts), Alternatives.from_texts(bodies)))
            self._stats = cached
        return cached[1]

    def read(
        self, query: str, question: str, filters: dict[str, Any] | None, said: Said, scored_as: str | None = None
    ) -> Reading:
        """One reading of the question: retrieval for `query` (the question alone, or in context),
        its units scored against the question itself (in context, the earlier question would pull
        back the sentences already given) and against `scored_as` (default `query`; never the
        previous answer, which would bring its own sentences back), the decision on the reading."""
        chat = self.settings.chat
        speller = self._corpus()[1]
        query, asked = speller.correct(query), speller.correct(question)  # typos, against the index's own words
        scored_as = query if scored_as is None else speller.correct(scored_as)
        retrieval = self.retriever.search(query, None, None, filters)
        # With refuse_without_evidence off, weak chunks still go to evidence selection (and its hand-off check).
        floor = self.settings.retrieval.min_relevance if chat.refuse_without_evidence else 0.0
        relevant = retrieval.relevant(floor)[: chat.evidence_chunks]
        qvec = self.retriever.embedder.embed_query(asked)
        if chat.known_questions:
            chunks = self.retriever.snapshot().chunks
            chunks = [c for c in chunks if matches(c, filters)] if filters else chunks
            relevant = self.selector.with_known(qvec, relevant, chunks, floor)
        ranked = self.selector.score(asked, relevant, said, qvec) if relevant else []
        if relevant and scored_as != asked:
            # In context, whether the question is answered takes each unit's better score (a unit may
            # answer it only with the earlier question in front: "and on the free plan?"); which unit
            # answers takes their geometric mean, high only for a unit good on both ("and if I pay
            # monthly?" after a refund question: monthly refunds, not monthly billing nor annual refunds).
            other = {(e.chunk_id, e.position): e.score for e in self.selector.score(scored_as, relevant, said)}
            both = [(e, other.get((e.chunk_id, e.position), e.score)) for e in ranked]
            judged = sorted((replace(e, score=max(e.score, o)) for e, o in both), key=lambda e: e.score, reverse=True)
            ranked = sorted((replace(e, score=(e.score * o) ** 0.5) for e, o in both), key=lambda e: e.score, reverse=True)
        else:
            judged = ranked
        ranked = self.guard.evidence(ranked)  # no planted instructions, no foreign contacts (serve/guard.py)
        judged = self.guard.evidence(judged)
        # The known questions are compared with the reading the decision is on ("and on Business?"
        # alone is close to no known question; in context it is a version-history question).
        known_vec = qvec if scored_as == asked else self.retriever.embedder.embed_query(scored_as)
        # The intent is read from the customer's own words, not from the reading in context.
        intent_vec = qvec if asked == question else self.retriever.embedder.embed_query(question)
        decision = decide(
            self.grounding,
            scored_as,
            judged,
            self.corpus_stats(),
            intent_vec,
            question,
            self.selector.word_vectors,
            chat.company_name,
            self.selector.known_nearest(known_vec, judged[0].hit.chunk.doc_id if judged else ""),
            chat.high_confidence,
        )
        if not relevant and decision.reason is None:
            decision.handoff, decision.reason = True, "no_evidence"
        return Reading(query, retrieval, relevant, ranked, decision)
