"""The follow-up model: which unit of a follow-up's readings answers it (ragtune/grounding/followup_rank.py).

Examples are conversations (train/examples/conversations.jsonl): each turn a question, and for an
answerable turn the document and the quoted words of the unit that answers it in context. The
chat service reads every turn of a conversation in order, as it would serve it, and hands the pool
of each follow-up to `label` (cli/followups.py composes the two). A logistic model is fitted on the
pools of 70% of the conversations and reported on the others: how often its best unit is an
answering one, against the rules' reading alone (the "chosen" ranking).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.grounding.followup_rank import FOLLOWUP_FEATURES, ROLES, FollowupPool
from ragtune.grounding.model import Logistic, by_name
from ragtune.grounding.text import collapse
from train.logistic import fit_listwise, fit_logistic
from train.sources import DatasetError, read_jsonl

KINDS = ("in_scope", "handoff")


def load_conversations(path: Path) -> list[dict[str, Any]]:
    """The conversations of a JSONL file, checked: every turn a question and a kind; an in_scope turn
    a doc and quotes (a located error otherwise: train/sources.py `read_jsonl`)."""
    conversations = []
    for number, row in read_jsonl(path):
        where = f"{path}:{number}"
        turns = row.get("turns")
        if not isinstance(turns, list) or len(turns) < 2:
            raise DatasetError(f'{where}: give "turns", a list of at least two turns')
        for i, turn in enumerate(turns, start=1):
            if not isinstance(turn, dict) or not str(turn.get("question", "")).strip():
                raise DatasetError(f'{where} turn {i}: give the customer\'s "question"')
            if turn.get("kind") not in KINDS:
                raise DatasetError(f'{where} turn {i}: "kind" must be one of {", ".join(KINDS)}')
            if turn["kind"] == "in_scope" and not (turn.get("doc") and turn.get("quotes")):
                raise DatasetError(f'{where} turn {i}: an in_scope turn needs "doc" and "quotes" (the answering words)')
        conversations.append({"id": str(row.get("id", number)), "turns": turns})
    return conversations


def label(pool: FollowupPool, turn: dict[str, Any]) -> np.ndarray:
    """1 for each unit of the pool that holds one of the turn's quotes in the turn's document (or a
    quote of "also": another document's unit that answers it as well)."""
    quotes = [(turn.get("doc"), collapse(q)) for q in turn.get("quotes", []) if collapse(q)]
    quotes += [(o.get("doc"), collapse(o.get("quote", ""))) for o in turn.get("also") or [] if collapse(o.get("quote", ""))]
    return np.asarray(
        [float(any(e.hit.chunk.doc_id == doc and q in collapse(e.sentence) for doc, q in quotes)) for e in pool.units]
    )


@dataclass
class Example:
    conversation: str
    x: np.ndarray
    y: np.ndarray
    reranked: bool  # serving re-ranks this turn (serve/readings.py `reranks`)


@dataclass
class FollowupResult:
    model: Logistic
    report: dict[str, Any] = field(default_factory=dict)


def _top1(y: np.ndarray, scores: np.ndarray) -> float:
    return float(y[int(np.argmax(scores))]) if len(y) else 0.0


def _figures(examples: list[Example], model: Logistic) -> dict[str, Any]:
    chosen = FOLLOWUP_FEATURES.index("chosen_rank")
    served = [e for e in examples if e.reranked]
    learned = [_top1(e.y, model.prob(by_name(e.x, model.features, FOLLOWUP_FEATURES))) for e in served]
    rules = [_top1(e.y, e.x[:, chosen]) for e in served]
    in_pool = [float(e.y.any()) for e in served]
    n = max(len(served), 1)
    return {
        "turns": len(served),
        "answer_in_pool": round(sum(in_pool) / n, 4),
        "top1_learned": round(sum(learned) / n, 4),
        "top1_rules": round(sum(rules) / n, 4),
    }


def fit_followups(
    examples: list[Example], holdout: float = 0.3, seed: int = 13, l2: float = 1.0, listwise: bool = True
) -> FollowupResult:
    """Fitted on the pools of the training conversations' turns that serving re-ranks and that hold
    an answering unit; reported on the held-out conversations' turns that serving re-ranks."""
    conversations = sorted({e.conversation for e in examples})
    random.Random(seed).shuffle(conversations)
    held = set(conversations[: round(len(conversations) * holdout)])
    fit = [e for e in examples if e.conversation not in held and e.reranked and e.y.any()]
    if len(fit) < 20:
        raise ValueError(
            f"{len(fit)} follow-up turns with the answering unit among their readings' units: give more conversations"
        )
    if listwise:
        model = fit_listwise([(e.x, e.y) for e in fit], list(FOLLOWUP_FEATURES), l2=l2)
    else:
        model = fit_logistic(np.vstack([e.x for e in fit]), np.concatenate([e.y for e in fit]), list(FOLLOWUP_FEATURES), l2=l2)
    report = {
        "heldout": _figures([e for e in examples if e.conversation in held], model),
        "training": _figures([e for e in examples if e.conversation not in held], model),
        "conversations": {"training": len(conversations) - len(held), "heldout": len(held)},
        "roles": list(ROLES),
    }
    return FollowupResult(model, report)
