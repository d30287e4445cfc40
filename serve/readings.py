"""A question read one way or another (alone, in the conversation's context), and how the chat
service combines the readings of a follow-up (serve/chat.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ragtune.documents import Hit
from ragtune.grounding.answerability import Decision
from ragtune.grounding.evidence import Evidence
from ragtune.grounding.followup import Said
from ragtune.retriever import RetrievalResult


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
    """The readings that answer, as one: every unit any of them found, with its best score, under
    the decision of `decided` (the readings' answerability saturates on a good match, so picking
    one reading by it is close to arbitrary; the units compete instead)."""
    units: dict[tuple[str, int], Evidence] = {}
    for reading in readings:
        if reading.decision.handoff:
            continue
        for e in reading.ranked:
            key = (e.chunk_id, e.position)
            if key not in units or e.score > units[key].score:
                units[key] = e
    if not units:
        return decided
    ranked = sorted(units.values(), key=lambda e: e.score, reverse=True)
    relevant = list({h.id: h for r in readings if not r.decision.handoff for h in r.relevant}.values())
    return Reading(decided.query, decided.retrieval, relevant, ranked, decided.decision)
