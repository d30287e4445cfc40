"""Which unit answers a follow-up, learned from the company's example conversations.

A follow-up is read several ways (serve/chat.py): alone, in context (the previous question, the
previous answer's subject), kept to the document the previous answer quoted, two questions back,
with a bare alternative swapped in. Each reading ranks its units; which reading's ranking to trust
depends on the turn ("can I pay with PayPal?" switches topic, "how do I claim it?" leans on the
answer, "tried that, still stuck" wants the next step). `FollowupPool` puts every unit any reading
found in one pool and describes each by how each reading scored it, whether the previous answer
gave it, whether it is in that answer's document and after the steps already given; a logistic
model (`GroundingModel.followup`, fitted by `ragtune train followups` on
train/examples/conversations.jsonl, reported on held-out conversations) scores the pool. The rules
of serve/readings.py `choose` still make the hand-off decision and enter as one more reading
("chosen"), so the model learns where to trust them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from ragtune.grounding.evidence import Evidence
from ragtune.grounding.followup import no_progress, points_back
from ragtune.grounding.model import Logistic, by_name
from ragtune.grounding.text import collapse, units

ROLES = ("alone", "context", "about", "same_doc", "two_back", "swap", "chosen")
FOLLOWUP_FEATURES = [
    *(f"{role}_score" for role in ROLES),
    *(f"{role}_rank" for role in ROLES),
    "dense",
    "said",
    "said_stuck",
    "prev_doc",
    "prev_doc_back",
    "prev_chunk",
    "after_said",
    "after_said_stuck",
    "next_to_said",
    "alone_not_back",
    "context_back",
    "about_back",
    "same_doc_back",
    "same_doc_stuck",
    "prev_doc_stuck",
]
POOL_DEPTH = 8  # units taken from each reading's ranking


def _key(e: Evidence) -> tuple[str, int]:
    return (e.chunk_id, e.position)


class FollowupPool:
    """The units of a follow-up's readings (`roles`: role -> its rankings, best first; a role may
    have several readings, e.g. "context"), described for the follow-up model."""

    def __init__(
        self,
        question: str,
        roles: Mapping[str, Sequence[Sequence[Evidence]]],
        previous_answer: str,
        previous_doc: str | None,
    ):
        best: dict[tuple[str, int], Evidence] = {}
        score: dict[str, dict[tuple[str, int], float]] = {r: {} for r in ROLES}
        rank: dict[str, dict[tuple[str, int], int]] = {r: {} for r in ROLES}
        for role, rankings in roles.items():
            for ranking in rankings:
                for i, e in enumerate(ranking[:POOL_DEPTH]):
                    k = _key(e)
                    score[role][k] = max(score[role].get(k, 0.0), e.score)
                    rank[role][k] = min(rank[role].get(k, i), i)
                    if k not in best or e.dense > best[k].dense:
                        best[k] = e
        self.units = list(best.values())
        said_text = collapse(previous_answer)
        said = [bool(said_text) and collapse(e.sentence) in said_text for e in self.units]
        # Where the previous answer stopped in each chunk: the furthest unit it gave there (read
        # from the chunk itself: a customer still stuck gets readings without the units given).
        reached: dict[str, int] = {}
        for chunk in {e.chunk_id: e.hit.chunk for e in self.units}.values():
            given = [i for i, u in enumerate(units(chunk.text)) if said_text and collapse(u.text) in said_text]
            if given:
                reached[chunk.id] = max(given)
        chunks_said = set(reached)
        stuck = float(no_progress(question))
        back = float(points_back(question))
        rows = []
        for e, s in zip(self.units, said, strict=True):
            k = _key(e)
            after = float(e.chunk_id in reached and e.position > reached[e.chunk_id])
            doc = float(previous_doc is not None and e.hit.chunk.doc_id == previous_doc)
            rows.append(
                [
                    *(score[r].get(k, 0.0) for r in ROLES),
                    *(1.0 / (1 + rank[r][k]) if k in rank[r] else 0.0 for r in ROLES),
                    e.dense,
                    float(s),
                    float(s) * stuck,
                    doc,
                    doc * back,
                    float(e.chunk_id in chunks_said),
                    after,
                    after * stuck,
                    float(e.chunk_id in reached and e.position == reached[e.chunk_id] + 1),
                    score["alone"].get(k, 0.0) * (1 - back),
                    score["context"].get(k, 0.0) * back,
                    score["about"].get(k, 0.0) * back,
                    score["same_doc"].get(k, 0.0) * back,
                    score["same_doc"].get(k, 0.0) * stuck,
                    doc * stuck,
                ]
            )
        self.x = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FOLLOWUP_FEATURES))

    def probs(self, model: Logistic) -> np.ndarray:
        """Each unit's probability of answering under a follow-up model."""
        return model.prob(by_name(self.x, model.features, FOLLOWUP_FEATURES))

    def ranked(self, probs: np.ndarray) -> list[Evidence]:
        """The pool best first, each unit's score its probability under the follow-up model."""
        order = np.argsort(-np.asarray(probs), kind="stable")
        return [replace(self.units[i], score=float(probs[i])) for i in order]
