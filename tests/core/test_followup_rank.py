"""The follow-up pool (ragtune/grounding/followup_rank.py): every unit a follow-up's readings found,
described by how each reading ranked it and by where the previous answer stopped."""

from __future__ import annotations

from ragtune.documents import Chunk, Hit
from ragtune.grounding.evidence import Evidence
from ragtune.grounding.followup_rank import FOLLOWUP_FEATURES, FollowupPool

STEPS = Chunk("sync-1", "troubleshooting/sync.md", "Fixes:\n1. Sign in.\n2. Pause sync.\n3. Restart the app.", "Sync", "Fixes", 0)
BILLING = Chunk("billing-1", "faq/billing.md", "We accept PayPal.", "Billing", "", 0)


def unit(chunk: Chunk, position: int, text: str, score: float, dense: float = 0.5) -> Evidence:
    return Evidence(Hit(chunk, 1.0, 0.5), text, score, dense=dense, position=position)


SIGN_IN, PAUSE, RESTART = (
    unit(STEPS, 1, "Sign in.", 0.6),
    unit(STEPS, 2, "Pause sync.", 0.3),
    unit(STEPS, 3, "Restart the app.", 0.2),
)
PAYPAL = unit(BILLING, 0, "We accept PayPal.", 0.7)


def feature(pool: FollowupPool, text: str, name: str) -> float:
    row = next(i for i, e in enumerate(pool.units) if e.sentence == text)
    return float(pool.x[row, FOLLOWUP_FEATURES.index(name)])


def test_the_pool_holds_every_reading_s_units_once_with_each_reading_s_score_and_rank():
    pool = FollowupPool(
        "does that work on android?",
        {"alone": [[PAYPAL, SIGN_IN]], "context": [[SIGN_IN, PAUSE], [PAUSE]], "chosen": [[SIGN_IN, PAUSE]]},
        previous_answer="",
        previous_doc=None,
    )
    assert sorted(e.sentence for e in pool.units) == ["Pause sync.", "Sign in.", "We accept PayPal."]
    assert pool.x.shape == (3, len(FOLLOWUP_FEATURES))
    assert feature(pool, "We accept PayPal.", "alone_score") == 0.7 and feature(pool, "We accept PayPal.", "alone_rank") == 1.0
    assert (
        feature(pool, "We accept PayPal.", "context_score") == 0.0 and feature(pool, "We accept PayPal.", "context_rank") == 0.0
    )
    # Two readings in one role: the unit's better score and rank of the two.
    assert feature(pool, "Pause sync.", "context_rank") == 1.0 and feature(pool, "Pause sync.", "context_score") == 0.3
    assert feature(pool, "Sign in.", "alone_rank") == 0.5


def test_where_the_previous_answer_stopped_marks_the_next_step_for_a_customer_still_stuck():
    pool = FollowupPool(
        "tried that, still not syncing",
        {"alone": [[PAYPAL, RESTART, PAUSE, SIGN_IN]]},
        previous_answer="Sign in. Pause sync.",
        previous_doc="troubleshooting/sync.md",
    )
    assert feature(pool, "Sign in.", "said") == 1.0 and feature(pool, "Sign in.", "said_stuck") == 1.0
    assert feature(pool, "Restart the app.", "said") == 0.0
    assert (
        feature(pool, "Restart the app.", "after_said_stuck") == 1.0 and feature(pool, "Restart the app.", "next_to_said") == 1.0
    )
    assert feature(pool, "Sign in.", "after_said") == 0.0
    assert feature(pool, "Restart the app.", "prev_doc_stuck") == 1.0 and feature(pool, "We accept PayPal.", "prev_doc") == 0.0
    assert feature(pool, "We accept PayPal.", "prev_chunk") == 0.0 and feature(pool, "Pause sync.", "prev_chunk") == 1.0
    # Serving leaves the units already given out of a still-stuck customer's readings: where the
    # answer stopped is read from the chunk itself.
    pool = FollowupPool("still not syncing", {"alone": [[PAYPAL, RESTART]]}, "Sign in. Pause sync.", "troubleshooting/sync.md")
    assert feature(pool, "Restart the app.", "next_to_said") == 1.0 and feature(pool, "Restart the app.", "prev_chunk") == 1.0
