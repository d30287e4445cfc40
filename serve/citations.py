"""Citation checks: only chunks the model was given, once each, with quotes that are really there.

A citation id outside the given chunks is dropped (and reported). A quote that does not occur in
its chunk (a small model paraphrases or invents) is replaced by the chunk's sentence that best
matches the quote and the answer, so a widget never shows words the source does not contain.
"""

from __future__ import annotations

import re

from ragtune.answer import MAX_QUOTE_CHARS, Citation
from ragtune.documents import Hit

_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def best_sentence(chunk_text: str, hint: str) -> str:
    wanted = set(_WORD.findall(hint.lower()))
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(chunk_text.split())) if s.strip()]
    if not sentences:
        return ""
    best = max(sentences, key=lambda s: len(wanted & set(_WORD.findall(s.lower()))))
    return best if len(best) <= MAX_QUOTE_CHARS else best[: MAX_QUOTE_CHARS - 3].rsplit(" ", 1)[0] + "..."


def check_citations(citations: list[Citation], given: dict[str, Hit], answer: str) -> tuple[list[Citation], list[str]]:
    """(citations kept, ids dropped)."""
    kept: list[Citation] = []
    dropped: list[str] = []
    seen: set[str] = set()
    for citation in citations:
        if citation.id not in given:
            dropped.append(citation.id)
            continue
        if citation.id in seen:
            continue
        seen.add(citation.id)
        text = given[citation.id].chunk.text
        quote = citation.quote.strip()
        if not quote or _norm(quote) not in _norm(text):
            quote = best_sentence(text, f"{quote} {answer}")
        kept.append(Citation(id=citation.id, quote=quote))
    return kept, dropped
