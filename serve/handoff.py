"""Hand-off decided by the evidence, never by the model.

A question is handed to a person when the best evidence sentence scores below
`chat.evidence_min_score`, or when it names something (a plan, a product, a feature) that the
evidence never mentions: "how much is the Family plan" retrieves the pricing page with a decent
score, and a model would happily invent a price for it. The name check is what catches those
near misses; the score catches questions the knowledge base does not cover at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragtune.evidence import Evidence

# Words that name a kind of thing: the word in front of one is the thing's name ("Family plan").
_HEADS = r"plans?|tiers?|editions?|packages?|subscriptions?|memberships?|bundles?|add-ons?|modes?|extensions?|features?|deals?|licen[cs]es?|programs?|accounts?"
_NAMED = re.compile(rf"\b([A-Za-z][\w\-]*)\s+(?:{_HEADS})\b", re.I)
# Who or what an offer is for: "a discount for veterans", "an integration with Dropbox", "an app for Linux".
_OFFERED_FOR = re.compile(
    r"\b(?:discounts?|integrations?|plugins?|plug-ins?|extensions?|apps?|clients?)\s+(?:for|with)\s+"
    r"(?:(?:the|a|an|my|our|your)\s+)?([A-Za-z][\w\-]*)",
    re.I,
)
# Modifiers that do not name a plan or feature ("my plan", "the paid plans", "monthly subscription").
GENERIC = set(
    """a an the my your our their his her its this that these those which what whose any every each some no
current new old paid unpaid monthly annual yearly cheapest cheaper cheap expensive best better higher lower bigger smaller
larger same other different whole entire existing company personal work own subscription payment pricing price
storage cloud trial user users member members admin one two all""".split()
)
ALWAYS_KNOWN = {
    "i",
    "hi",
    "hello",
    "ok",
    "okay",
    "please",
    "thanks",
    "can",
    "could",
    "is",
    "are",
    "do",
    "does",
    "how",
    "what",
    "why",
    "when",
    "where",
    "which",
    "who",
    "will",
    "would",
    "should",
    "my",
    "the",
    "a",
    "an",
    "and",
    "or",
    "if",
}


@dataclass
class HandoffDecision:
    handoff: bool
    reason: str | None = None  # "low_evidence" | "unknown_terms"
    terms: list[str] | None = None


def _named(question: str) -> list[str]:
    """Words naming a plan, tier or feature: "family" in "the family plan"."""
    words = [m.group(1) for m in _NAMED.finditer(question)] + [m.group(1) for m in _OFFERED_FOR.finditer(question)]
    return [w for w in words if w.lower() not in GENERIC and w.lower() not in ALWAYS_KNOWN]


def key_terms(question: str) -> list[str]:
    """Names in the question that the answer must be about: the word naming a plan/tier/feature,
    capitalised words inside a sentence (customers capitalise product names), and words with a
    capital inside them (iCloud)."""
    terms = _named(question)
    for sentence in re.split(r"(?<=[.!?])\s+", question.strip()):
        words = re.findall(r"[A-Za-z][\w\-]*", sentence)
        if len(words) > 2 and sum(w[0].isupper() for w in words) > 0.6 * len(words):
            continue  # Title Case or SHOUTING: the capitals say nothing about names
        terms += [w for w in words[1:] if w[0].isupper() and w.lower() not in ALWAYS_KNOWN]
        # Brand-style names with a capital inside (iCloud, WeTransfer) are names wherever they stand.
        terms += [w for w in words if any(c.isupper() for c in w[1:]) and not w.isupper()]
    seen: dict[str, str] = {}
    for term in terms:
        seen.setdefault(term.lower(), term)
    return list(seen.values())


def _mentions(text: str, term: str, as_name: bool) -> bool:
    """Whether `text` mentions `term`. A plan or feature name must occur as a name: capitalised, as
    the documents write plan names ("Free", "Business"), or right before the same kind of word;
    "Account basics" does not mention a "Basic plan". Other terms may differ in case and number."""
    if as_name:
        name = term[0].upper() + term[1:].lower()
        return bool(
            re.search(rf"\b{re.escape(name)}s?\b", text) or re.search(rf"\b{re.escape(term)}\s+(?:{_HEADS})\b", text, re.I)
        )
    t = term.lower()
    tokens = re.findall(r"[\w\-]+", text.lower())
    words = set(tokens)
    if t in words or t.rstrip("s") in words or f"{t}s" in words or f"{t}es" in words:
        return True
    if term.isupper() and 2 <= len(term) <= 5:  # an acronym spelled out: "SLA" in "Service level agreement"
        n = len(term)
        return any("".join(w[0] for w in tokens[i : i + n]) == t for i in range(len(tokens) - n + 1))
    return False


def decide(question: str, evidence: list[Evidence], min_score: float, known: str = "") -> HandoffDecision:
    """Whether the evidence answers `question`; `known` is text every answer may name (the company)."""
    if not evidence or evidence[0].score < min_score:
        return HandoffDecision(True, "low_evidence")
    # The terms must appear in the chunks the evidence comes from (title and section included).
    context = " ".join(f"{e.hit.chunk.title} {e.hit.chunk.section} {e.hit.chunk.text}" for e in evidence) + " " + known
    named = {t.lower() for t in _named(question)}
    missing = [t for t in key_terms(question) if not _mentions(context, t, t.lower() in named)]
    if missing:
        return HandoffDecision(True, "unknown_terms", missing)
    return HandoffDecision(False)
