"""What the evidence selector and the hand-off model look at: a few signals per sentence.

Each candidate unit (sentence, list item, table row) of the retrieved chunks gets a short vector:
its embedding similarity to the question (with its title and section in front), IDF-weighted word
overlap with the question (a sentence-level BM25), overlap of the question with its headings,
whether it holds the kind of thing the question asks for (a duration, a price, a percentage, a
step), where it stands, how close the question comes to a known question this unit answers and how
many known questions it answers. A small logistic model (ragtune/grounding/model.py) weighs them; the
weights are learned from the company's own question -> sentence pairs (`ragtune train selector`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ragtune.grounding.text import Unit, stems, words

SELECTOR_FEATURES = (
    "dense",
    "dense_gap",
    "lexical",
    "lexical_gap",
    "heading",
    "relevance",
    "top_chunk",
    "type_match",
    "type_missing",
    "item",
    "row",
    "first",
    "brevity",
    "known",
    "known_gap",
    "known_count",
)

_DURATION = re.compile(
    r"\b\d+(?:[.,]\d+)?\s*(?:-|to)?\s*\d*\s*(?:business\s+)?(?:minutes?|hours?|days?|weeks?|months?|years?)\b", re.I
)
_MONEY = re.compile(r"(?:\b(?:EUR|USD|GBP|CHF)\b|[€£$]|\bfree of charge\b|\b\d+[.,]\d{2}\b)", re.I)
_PERCENT = re.compile(r"\d\s*%|\bpercent\b", re.I)
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_TIME_OF_DAY = re.compile(r"\b\d{1,2}:\d{2}\b|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|24/7)\b", re.I)

# What a question asks for, by its wording; each kind has a test on the candidate sentence.
_ASKS = (
    ("percent", re.compile(r"\b(?:uptime|percent|percentage|sla|availability|discounts?|reductions?|rebates?)\b|%", re.I)),
    (
        "money",
        re.compile(
            r"\b(?:how much|cost|costs|price|prices|pricing|fee|fees|charge|charged|pay|eur|euros?|dollars?|cheap|expensive)\b",
            re.I,
        ),
    ),
    (
        "duration",
        re.compile(
            r"\b(?:how long|how many (?:days|hours|weeks|months|years)|how soon|how quickly|how fast|when will|until when|expire|expires|kept for|retention)\b",
            re.I,
        ),
    ),
    (
        "hours",
        re.compile(r"\b(?:opening hours|what time|when (?:are|is) (?:you|support)|hours of|available when|weekend)\b", re.I),
    ),
    ("quantity", re.compile(r"\b(?:how many|how much (?:storage|space|data)|how big|limit|maximum|max|minimum|size)\b", re.I)),
    (
        "steps",
        re.compile(
            r"\b(?:how (?:do|can|should) (?:i|we|you)|how to|steps?|set up|setup|what should i do|what now|still stuck|fix|troubleshoot)\b",
            re.I,
        ),
    ),
)


def asked_kinds(question: str) -> set[str]:
    return {kind for kind, pattern in _ASKS if pattern.search(question)}


def holds(unit: Unit, kind: str) -> bool:
    text = unit.text
    if kind == "percent":
        return bool(_PERCENT.search(text))
    if kind == "money":
        return bool(_MONEY.search(text))
    if kind == "duration":
        return bool(_DURATION.search(text))
    if kind == "hours":
        return bool(_TIME_OF_DAY.search(text))
    if kind == "quantity":
        return bool(_NUMBER.search(text))
    if kind == "steps":
        return unit.kind == "item" or bool(
            re.match(r"(?:open|go|click|tap|select|choose|sign|use|check|make|send|restart|pause)\b", text, re.I)
        )
    return False


@dataclass(frozen=True)
class CorpusStats:
    """Document frequencies of stemmed words over the index's chunks (one per index version)."""

    df: dict[str, int]
    n_docs: int

    def idf(self, stem: str) -> float:
        return math.log(1 + (self.n_docs + 1) / (self.df.get(stem, 0) + 0.5))

    @classmethod
    def from_texts(cls, texts: list[str]) -> CorpusStats:
        df: dict[str, int] = {}
        for text in texts:
            for s in set(stems(text)):
                df[s] = df.get(s, 0) + 1
        return cls(df, len(texts))


def weighted_overlap(question_stems: list[str], other: set[str], stats: CorpusStats) -> float:
    """Share of the question's (IDF-weighted) content words found in `other`."""
    if not question_stems:
        return 0.0
    total = sum(stats.idf(s) for s in set(question_stems))
    found = sum(stats.idf(s) for s in set(question_stems) if s in other)
    return found / total if total else 0.0


@dataclass(frozen=True)
class Candidate:
    """A unit of a retrieved chunk with what is known about it before scoring."""

    unit: Unit
    chunk_rank: int  # the chunk's place in the retrieval result (0 = best)
    relevance: float  # the chunk's retrieval relevance
    heading: str  # document title, section and inline heading
    dense: float  # cosine(question, heading + unit)
    position: int  # the unit's place in its chunk
    known: float = 0.0  # similarity of the closest known question this unit answers (ragtune/grounding/known.py)
    known_count: int = 0  # how many known questions this unit answers (a unit customers often ask about)


def features(question: str, candidates: list[Candidate], stats: CorpusStats) -> np.ndarray:
    """One row of SELECTOR_FEATURES per candidate."""
    if not candidates:
        return np.zeros((0, len(SELECTOR_FEATURES)), dtype=np.float32)
    q_stems = stems(question)
    kinds = asked_kinds(question)
    lexical = [weighted_overlap(q_stems, set(stems(c.unit.text)), stats) for c in candidates]
    best_dense = max(c.dense for c in candidates)
    best_lexical = max(lexical)
    best_known = max(c.known for c in candidates)
    rows = []
    for c, lex in zip(candidates, lexical, strict=True):
        heading = weighted_overlap(q_stems, set(stems(c.heading)), stats)
        matched = [holds(c.unit, k) for k in kinds]
        n_words = max(1, len(words(c.unit.text)))
        rows.append(
            [
                c.dense,
                c.dense - best_dense,
                lex,
                lex - best_lexical,
                heading,
                c.relevance,
                1.0 if c.chunk_rank == 0 else 0.0,
                1.0 if matched and any(matched) else 0.0,
                1.0 if matched and not any(matched) else 0.0,
                1.0 if c.unit.kind == "item" else 0.0,
                1.0 if c.unit.kind == "row" else 0.0,
                1.0 if c.position == 0 else 0.0,
                1.0 / math.sqrt(n_words),
                c.known,
                c.known - best_known,
                math.log1p(c.known_count),
            ]
        )
    return np.asarray(rows, dtype=np.float32)
