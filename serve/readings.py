"""A question read one way or another (alone, in the conversation's context, kept to the document
the previous answer quoted), and how the chat service chooses among a follow-up's readings
(serve/chat.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ragtune.documents import Chunk, Hit
from ragtune.grounding.answerability import ACTION, ANGRY, OTHER_COMPANY, PERSON, Decision
from ragtune.grounding.evidence import Evidence
from ragtune.grounding.followup import Said, points_back
from ragtune.grounding.followup_rank import FollowupPool
from ragtune.grounding.model import Logistic
from ragtune.grounding.polarity import Alternatives, asks_about_alternative, names_kind_of
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
    how: str = ""  # how `choose` came to it: "swap", "alternative", "same_doc", "context" or "alone"


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


# How far the best unit of the previous answer's document may score below the best unit found for
# the question alone, and the follow-up still continue there.
CONTINUE_MARGIN = 0.1


def continues(same_doc: Reading, alone: Reading) -> bool:
    """Whether a follow-up goes on about the document the previous answer quoted ("do we pay for
    them straight away" after how to invite members; "will I lose my files?" after a failed
    payment): that reading answers it, its best unit scores within CONTINUE_MARGIN of the best unit
    the question alone finds, and the question alone is not a hand-off of its own (another
    company's product, a person, a complaint, an account action). A topic switch ("can I pay with
    PayPal?" after a trial question) finds its better unit elsewhere and is read alone."""
    if same_doc.decision.handoff or not same_doc.ranked:
        return False
    if alone.decision.reason == OTHER_COMPANY or alone.decision.intent in (PERSON, ANGRY, ACTION):
        return False
    if alone.decision.handoff or not alone.ranked:
        return True
    return same_doc.ranked[0].score >= alone.ranked[0].score - CONTINUE_MARGIN


def on_alternative(same_doc: Reading, name: str, alternatives: Alternatives, last_answer: list[str]) -> Reading | None:
    """A follow-up asking whether what came before covers another alternative ("is it on the free
    plan?" after a Vault answer) is answered by the previous document's unit that says which
    alternatives it covers ("The Vault is included in Pro, Business and Enterprise plans."), when
    that document has one among its answering units: it leads, the others follow. The previous
    answer's own unit comes first when it names them ("does that work on the free plan too?" after
    "On Pro and Business plans, Share > Link activity lists ..."), then the units of the chunk it
    came from (its paragraph: "does it work on pro too?" after how to apply for the nonprofit discount)."""
    if same_doc.decision.handoff:
        return None
    covering = [e for e in same_doc.ranked if names_kind_of(e.sentence, name, alternatives)]
    if not covering:
        return None
    # What the previous answer said first, then the units of the paragraph it began with, then the rest by score.
    said = Said(last_answer)
    text = collapse(last_answer[-1]) if last_answer else ""
    given = sorted(((text.find(collapse(e.sentence)), e) for e in same_doc.ranked if e.sentence in said), key=lambda t: t[0])
    quoted = (given[0][1].chunk_id, given[0][1].unit.block) if given else None  # where the previous answer began
    covering.sort(key=lambda e: (e.sentence not in said, (e.chunk_id, e.unit.block) != quoted))
    lead = replace(covering[0], score=same_doc.ranked[0].score + 1e-3)
    rest = [e for e in same_doc.ranked if e is not covering[0]]
    return replace(same_doc, ranked=[lead, *rest])


def choose(
    question: str,
    readings: list[Reading],
    same_doc: Reading | None,
    last_answer: list[str],
    alternatives: Alternatives | None = None,
    previous: str | None = None,
    swapped: Reading | None = None,
) -> Reading:
    """The reading a question is answered on. `readings`: the question alone first, then its
    readings in context; `same_doc`: the one kept to the previous answer's document (None when
    there is no such answer); `last_answer`: the previous answer, if any (what it said yields to
    what it did not: the customer has read it); `alternatives` and `previous` (the previous
    question): for a follow-up that asks whether it also holds for another plan (or platform,
    region: ragtune/grounding/polarity.py); `swapped`: the previous question asked about the
    alternative a bare follow-up names ("and on business?"), answered on when it is answered."""
    alone = readings[0]
    if swapped is not None and not swapped.decision.handoff and swapped.ranked:
        return replace(swapped, how="swap")
    if same_doc is not None and alternatives is not None and alone.decision.reason != OTHER_COMPANY:
        name = asks_about_alternative(question, alternatives, previous)
        covered = on_alternative(same_doc, name, alternatives, last_answer) if name else None
        if covered is not None:
            return replace(covered, how="alternative")
    if same_doc is not None and continues(same_doc, alone):
        return replace(read_before(same_doc, Said(last_answer)), how="same_doc")
    if len(readings) == 1 or alone.decision.reason == OTHER_COMPANY:
        return replace(alone, how="alone")  # another company's product named in the customer's own words stays a hand-off
    ctx = max(readings[1:], key=lambda c: c.decision.answerable)
    # A question that points back ("and if I pay monthly?") is read in context unless that reading
    # is handed off (answerability saturates near 1 for both readings, so comparing them decides
    # nothing); another question only when it is not answered alone.
    if (points_back(question) and not ctx.decision.handoff) or (alone.decision.handoff and not ctx.decision.handoff):
        chosen = fused(readings[1:], ctx)  # the readings in context; the question alone lost
        return replace(read_before(chosen, Said(last_answer)) if last_answer else chosen, how="context")
    return replace(alone, how="alone")


KEPT = ("swap", "alternative")  # readings the follow-up model does not re-rank


def reranks(chosen: Reading) -> bool:
    """Whether the follow-up model re-ranks the chosen reading: not a hand-off, not a reading the
    rules made for the follow-up's construction (KEPT)."""
    return not chosen.decision.handoff and chosen.how not in KEPT


def learned_followup(model: Logistic | None, pool: FollowupPool, chosen: Reading) -> Reading:
    """The chosen reading with its units ranked by the follow-up model over every unit the
    follow-up's readings found (ragtune/grounding/followup_rank.py); the decision stays the rules'
    (a hand-off is not re-ranked), and so does a reading made for the follow-up's construction (the
    previous question with the alternative it names swapped in, "and on business?"; the previous
    document's unit naming the alternatives). Without a model, or with an empty pool, `chosen` as it is."""
    if model is None or not pool.units or not reranks(chosen):
        return chosen
    ranked = pool.ranked(pool.probs(model))
    relevant = list({h.id: h for h in [*chosen.relevant, *(e.hit for e in ranked[:3])]}.values())
    return replace(chosen, ranked=ranked, relevant=relevant)
