"""A question read one way or another (alone, in the conversation's context), and how the chat
service combines the readings of a follow-up (serve/chat.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ragtune.documents import Chunk, Hit
from ragtune.grounding.answerability import Decision
from ragtune.grounding.evidence import Evidence
from ragtune.grounding.followup import Said
from ragtune.grounding.text import collapse, split_sentences
from ragtune.retriever import RetrievalResult, Retriever


@dataclass
class Reading:
    """The question read one way (alone or in context): its retrieval, scored evidence and decision."""

    query: str
    retrieval: RetrievalResult
    relevant: list[Hit]
    ranked: list[Evidence]
    decision: Decision


SAID_WEIGHT = 0.5


def read_before(reading: Reading, said: Said) -> Reading:
    """The reading with the units the previous answer gave weighed down (SAID_WEIGHT)."""
    ranked = sorted(
        (replace(e, score=e.score * SAID_WEIGHT) if e.sentence in said else e for e in reading.ranked),
        key=lambda e: e.score,
        reverse=True,
    )
    return replace(reading, ranked=ranked)


def fused(readings: list[Reading], decided: Reading) -> Reading:
    """The readings that answer, as one: every unit any of them found, with its mean score across them (a unit a reading missed counts 0), under
    the decision of `decided` (the readings' answerability saturates on a good match, so picking
    one reading by it is close to arbitrary; the units compete instead)."""
    units: dict[tuple[str, int], Evidence] = {}
    totals: dict[tuple[str, int], float] = {}
    answering = [r for r in readings if not r.decision.handoff]
    for reading in answering:
        for e in reading.ranked:
            key = (e.chunk_id, e.position)
            totals[key] = totals.get(key, 0.0) + e.score
            if key not in units or e.score > units[key].score:
                units[key] = e
    if not units:
        return decided
    ranked = sorted((replace(e, score=totals[k] / len(answering)) for k, e in units.items()), key=lambda e: e.score, reverse=True)
    relevant = list({h.id: h for r in answering for h in r.relevant}.values())
    return Reading(decided.query, decided.retrieval, relevant, ranked, decided.decision)


QUOTED_CHARS = 40


def answered_from(retriever: Retriever, answer: str, filters: dict | None = None) -> Chunk | None:
    """The chunk a previous answer quoted from (its first sentence found verbatim in it), or None
    (a hand-off text, a phrased answer). Its section names what the customer's "it" is about
    ("how do I claim it" after an answer from "Service level agreement > Service credits")."""
    sentences = split_sentences(answer)
    if not sentences:
        return None
    hits = retriever.search(sentences[0], None, None, filters).hits[:3]
    for hit in hits:
        text = collapse(hit.chunk.text)
        if any(collapse(s)[:QUOTED_CHARS] in text for s in sentences[:3]):
            return hit.chunk
    return None


def subject_of(chunk: Chunk) -> str:
    """What a chunk is about, as a few words: its section, under its title when the section alone is short."""
    section = chunk.section if chunk.section and chunk.section != chunk.title else ""
    if not section:
        return chunk.title
    return section if len(section.split()) >= 3 else f"{chunk.title} {section}"
