"""Whether to answer or hand off, decided from the evidence and the question, never by the model.

Two learned parts (ragtune/grounding/model.py), trained by `ragtune train selector`:
- `answerable`: from the selector's best probabilities, the best similarity, the retrieval
  relevance, how much of the question's (IDF-weighted) wording the evidence chunks cover, and how
  much of it the whole index never uses (a product of another company, a plan that does not exist),
  the probability that the evidence answers the question; below the fitted threshold: a hand-off.
- `intent`: from the question's embedding, a request for a person, an angry complaint, or an
  account action the assistant cannot carry out. A person or a complaint is handed off at once; an
  action is handed off too, with the self-service steps when the documents have them.

A word missing from the documents is never quoted back to the customer: the reason is recorded
(`handoff_reason`), the text the customer reads is the operator's (ragtune/grounding/messages.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ragtune.contacts import find_contacts
from ragtune.grounding.evidence import Evidence
from ragtune.grounding.features import CorpusStats, weighted_overlap
from ragtune.grounding.model import GroundingModel, Logistic
from ragtune.grounding.text import STOPWORDS, stem_of, stems, words

ANSWERABLE_FEATURES = (
    "best",
    "second",
    "best_dense",
    "relevance",
    "coverage",
    "unknown",
    "unknown_brand",
    "named_missing",
    "brevity",
    "known_yes",
    "known_no",
)

PERSON, ANGRY, ACTION, INFO = "person", "angry", "action", "info"
# Reasons a hand-off is given (the response's context.handoff_reason).
NO_EVIDENCE, LOW_EVIDENCE, ASKED_PERSON, COMPLAINT, ACCOUNT_ACTION, LANGUAGE, OTHER_COMPANY = (
    "no_evidence",
    "low_evidence",
    "person",
    "angry",
    "action",
    "language",
    "other_company",
)
# A word the index knows but the evidence does not mention counts as another company's product
# only when the brand model is this sure ("my dropbox app won't sync" when the documents mention
# Dropbox only as an import source).
KNOWN_WORD_BRAND = 0.9


@dataclass
class Decision:
    """What the evidence and the question say about answering."""

    handoff: bool
    reason: str | None = None
    answerable: float = 0.0  # P(the evidence answers the question)
    intent: str = INFO
    intent_score: float = 0.0
    with_steps: bool = False  # an action hand-off that also gives the documents' self-service steps
    signals: dict[str, float] = field(default_factory=dict)


WordVectors = Callable[[list[str]], np.ndarray]

# A name the question gives a thing ("the Family plan", "a discount for veterans", "dark theme"):
# if the evidence never says it (nor a close synonym of it), the question is about something the
# company does not have, however well the rest of it matches.
_HEADS = (
    r"plans?|tiers?|editions?|packages?|subscriptions?|memberships?|bundles?|add-?ons?|versions?|features?|"
    r"discounts?|deals?|themes?|modes?|integrations?|extensions?|programs?|managers?|options?"
)
_NAMED = re.compile(rf"\b([a-z][\w\-]*)\s+(?:{_HEADS})\b", re.I)
_NAMED_FOR = re.compile(
    r"\b(?:discounts?|deals?|integrations?|apps?|versions?|plugins?|clients?)\s+(?:for|with|on)\s+(?:the\s+|a\s+|an\s+|my\s+|our\s+)?([a-z][\w\-]*)",
    re.I,
)


def named_words(question: str) -> list[str]:
    found = [m.group(1).lower() for m in _NAMED.finditer(question)] + [m.group(1).lower() for m in _NAMED_FOR.finditer(question)]
    return [w for w in dict.fromkeys(found) if w not in STOPWORDS and len(w) > 2]


def answerable_features(
    question: str,
    ranked: list[Evidence],
    stats: CorpusStats,
    vectors: WordVectors | None = None,
    brand: Logistic | None = None,
    known: tuple[float, ...] = (0.0, 0.0, 0.0),
    brand_threshold: float = 0.5,
) -> np.ndarray:
    """The answerability model's input. For the question's words the index never uses, `vectors`
    (word embeddings) say how close each comes to a word of the evidence (a synonym: "educators"
    for "teachers") and `brand` how much it looks like another company's product ("gmail").
    `known`: the closest answerable and unanswerable known question (`KnownQuestions.nearest`); the
    unanswerable examples about another company's product count only for a question that names
    something the documents do not, or a word that looks like a product name (`brand` at least
    `brand_threshold`, "google")."""
    q = stems(question)
    if not ranked:
        return np.zeros(len(ANSWERABLE_FEATURES), dtype=np.float64)
    chunks: dict[str, str] = {}
    for e in ranked:
        if e.chunk_id not in chunks and len(chunks) < 3:
            c = e.hit.chunk
            chunks[e.chunk_id] = f"{c.title} {c.section} {c.text}"
    covered = set(stems(" ".join(chunks.values())))
    unknown = [s for s in set(q) if s not in stats.df]
    total = sum(stats.idf(s) for s in set(q)) or 1.0
    # The share of the question's meaning the index has no word for: each unknown word weighs its
    # IDF, discounted by how close it comes to a word of the evidence (a synonym counts as known).
    unknown_share = sum(stats.idf(s) for s in unknown) / total
    brandish = 0.0
    if unknown and vectors is not None:
        unknown_words = list(dict.fromkeys(w for w in words(question) if w not in STOPWORDS and stem_of(w) in unknown))
        context = sorted(
            {w for text in chunks.values() for w in words(text) if w.isalpha() and len(w) > 2 and w not in STOPWORDS}
        )
        if unknown_words and context:
            wanted = vectors(unknown_words)
            closest = np.clip((wanted @ vectors(context).T).max(axis=1), 0.0, 1.0)
            unknown_share = sum(stats.idf(stem_of(w)) * (1.0 - c) for w, c in zip(unknown_words, closest, strict=True)) / total
            if brand is not None:
                brandish = float(brand.prob(wanted).max())
    named_missing = 0.0
    named = named_words(question)
    if named:
        evidence_words = {w for text in chunks.values() for w in words(text)}
        missing = [w for w in named if w not in evidence_words]
        if missing:
            named_missing = 1.0
            if vectors is not None:
                context = sorted({w for w in evidence_words if w.isalpha() and len(w) > 2 and w not in STOPWORDS})
                if context:
                    closest = (vectors(missing) @ vectors(context).T).max(axis=1)
                    named_missing = float(1.0 - np.clip(closest, 0.0, 1.0).min())
    names_outside = bool(unknown) or named_missing > 0 or _brandlike(question, vectors, brand, brand_threshold)
    return np.asarray(
        [
            ranked[0].score,
            ranked[1].score if len(ranked) > 1 else 0.0,
            max(e.dense for e in ranked),
            ranked[0].hit.relevance,
            weighted_overlap(q, covered, stats),
            unknown_share,
            brandish,
            named_missing,
            1.0 / math.sqrt(max(1, len(set(q)))),
            known[0],
            known[1] if names_outside or len(known) < 3 else known[2],
        ],
        dtype=np.float64,
    )


_ASKING = re.compile(r"^\W*(?:how|where|what|when|which|why|who|is|are|do|does|can|could|would|will|should|may)\b", re.I)
_URGENT = re.compile(r"\b(?:now|right away|immediately|asap|today|for me|please)\b", re.I)
_FIRST_PERSON_WANT = re.compile(r"\bi (?:want|need|demand|would like|'d like)\b|\bi wanna\b", re.I)


def form_features(text: str) -> np.ndarray:
    """How the request is put, which a sentence embedding blurs: asked as a question ("how do I
    cancel?" wants the steps) or as an order ("cancel it now" wants it done)."""
    letters = [c for c in text if c.isalpha()]
    return np.asarray(
        [
            1.0 if _ASKING.search(text) else 0.0,
            1.0 if text.rstrip().endswith("?") else 0.0,
            1.0 if _URGENT.search(text) else 0.0,
            1.0 if _FIRST_PERSON_WANT.search(text) else 0.0,
            1.0 if letters and sum(c.isupper() for c in letters) > 0.6 * len(letters) else 0.0,
            1.0 if "!" in text else 0.0,
        ],
        dtype=np.float64,
    )


def intent_input(qvec: np.ndarray, text: str) -> np.ndarray:
    return np.concatenate([np.asarray(qvec, dtype=np.float64), form_features(text)])


def _brandlike(question: str, vectors: WordVectors | None, brand: Logistic | None, threshold: float) -> bool:
    """Whether a word of the question looks like a product name, known to the index or not."""
    if brand is None or vectors is None:
        return True  # cannot tell: keep every known unanswerable question
    candidates = [w for w in dict.fromkeys(words(question)) if len(w) >= 3 and w.isalpha() and w not in STOPWORDS]
    return bool(candidates) and float(brand.prob(vectors(candidates)).max()) >= threshold


def other_products(
    model: GroundingModel,
    question: str,
    ranked: list[Evidence],
    stats: CorpusStats,
    vectors: WordVectors | None,
    own: str = "",
    sure: float = 0.0,
) -> list[str]:
    """Words of the question that name another company's product: brand-like (the brand model, at
    least `sure`) and not mentioned by the chunks the evidence comes from."""
    if model.brand is None or vectors is None:
        return []
    seen: set[str] = set()
    for e in ranked[:5]:
        c = e.hit.chunk
        seen |= set(words(f"{c.title} {c.section} {c.text}"))
    own_words = set(words(own))
    # An e-mail address names a person and their organisation ("remove jan@ourfirm.example"), not a
    # product; a contraction ("i'd") is not a name.
    in_addresses = set(words(" ".join(c.text for c in find_contacts(question) if c.kind == "email")))
    candidates = [
        w
        for w in dict.fromkeys(words(question))
        if len(w) >= 3 and w.isalpha() and w not in STOPWORDS and w not in seen and w not in own_words and w not in in_addresses
    ]
    if not candidates:
        return []
    probs = model.brand.prob(vectors(candidates))
    return [
        w
        for w, p in zip(candidates, probs, strict=True)
        if p >= max(model.brand_threshold, sure) and (stem_of(w) not in stats.df or p >= KNOWN_WORD_BRAND)
    ]


def intent_of(model: GroundingModel, qvec: np.ndarray | None, text: str = "") -> tuple[str, float]:
    """The question's intent (person, angry, action, info) when its probability clears its threshold."""
    if model.intent is None or qvec is None:
        return INFO, 0.0
    probs = model.intent.probs(intent_input(qvec, text))[0]
    best, score = INFO, 0.0
    for label, p in zip(model.intent.labels, probs, strict=True):
        threshold = model.intent_thresholds.get(label)
        if label != INFO and threshold is not None and p >= threshold and p > score:
            best, score = label, float(p)
    return best, score


def decide(
    model: GroundingModel,
    question: str,
    ranked: list[Evidence],
    stats: CorpusStats,
    qvec: np.ndarray | None = None,
    intent_text: str | None = None,
    vectors: WordVectors | None = None,
    own: str = "",
    known: tuple[float, ...] = (0.0, 0.0, 0.0),
    confident: float = 1.0,
) -> Decision:
    """Answer or hand off. `ranked`: every scored unit, best first (may be empty); `own`: the
    company's own name (never another company's product); `known`: see `answerable_features`;
    `confident`: from this P(answerable) on, a word must look as surely like another company's
    product as an indexed word must (KNOWN_WORD_BRAND) to hand off ("tether my laptop to my phone,
    will the app blow my data plan" is answered by the documents; "tether" is a product name too)."""
    intent, intent_score = intent_of(model, qvec, intent_text if intent_text is not None else question)
    if intent in (PERSON, ANGRY):
        return Decision(True, ASKED_PERSON if intent == PERSON else COMPLAINT, 0.0, intent, intent_score)
    if not ranked:
        # "ok do it for me then" names no subject the documents know, but it is still a request to act.
        return Decision(True, ACCOUNT_ACTION if intent == ACTION else NO_EVIDENCE, 0.0, intent, intent_score)
    x = answerable_features(question, ranked, stats, vectors, model.brand, known, model.brand_threshold)
    p = float(model.answerable.prob(x)[0])
    if other_products(model, question, ranked, stats, vectors, own, KNOWN_WORD_BRAND if p >= confident else 0.0):
        return Decision(True, OTHER_COMPANY, 0.0, intent, intent_score)
    signals = dict(zip(ANSWERABLE_FEATURES, (round(float(v), 4) for v in x), strict=True))
    if intent == ACTION:
        return Decision(True, ACCOUNT_ACTION, p, intent, intent_score, with_steps=p >= model.threshold, signals=signals)
    if p < model.threshold:
        return Decision(True, LOW_EVIDENCE, p, intent, intent_score, signals=signals)
    return Decision(False, None, p, intent, intent_score, signals=signals)
