"""Citation checks: only chunks the model was given, once each, with quotes that are really there.

A citation id outside the given chunks is dropped (and reported). A citation of a given chunk
that does not support the answer, while another given chunk clearly does (small models often
cite the wrong one of their sources), is moved to that chunk and reported; so is a confident
answer that cites nothing. Support is the cosine similarity of the answer and the chunk, from
the same embedding model as retrieval. A quote that does not occur in its chunk (a small model
paraphrases or invents) is replaced by the chunk's sentence that best matches the quote and the
answer, so a widget never shows words the source does not contain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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


@dataclass
class CitationCheck:
    kept: list[Citation] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # ids that were not among the chunks given
    moved: list[dict[str, str | None]] = field(default_factory=list)  # {"from": id or None, "to": id or None}


def _repoint(ids: list[str], support: dict[str, float], margin: float, cite_if_none: bool) -> tuple[list[str], list[dict]]:
    """Citations of chunks that support the answer `margin` less than the best chunk are moved to the
    best supporting chunk not yet cited, or removed when every such chunk is cited already."""
    ranked = sorted(support, key=support.get, reverse=True)
    if not ranked:
        return ids, []
    floor = support[ranked[0]] - margin
    moved: list[dict] = []
    out: list[str] = []
    for cid in ids:
        if cid in support and support[cid] < floor:
            target = next((b for b in ranked if b not in out and support[b] >= floor), None)
            moved.append({"from": cid, "to": target})
            if target is None:
                continue
            cid = target
        if cid not in out:
            out.append(cid)
    if not out and cite_if_none:
        moved.append({"from": None, "to": ranked[0]})
        out.append(ranked[0])
    return out, moved


def check_citations(
    citations: list[Citation],
    given: dict[str, Hit],
    answer: str,
    support: dict[str, float] | None = None,
    margin: float = 0.1,
    cite_if_none: bool = False,
) -> CitationCheck:
    """Keep citations of given chunks, once each; move them to the chunks that support the answer
    (when `support` is known); ground every quote in its chunk."""
    result = CitationCheck()
    quotes: dict[str, str] = {}
    for citation in citations:
        if citation.id not in given:
            result.dropped.append(citation.id)
        else:
            quotes.setdefault(citation.id, citation.quote.strip())
    ids = list(quotes)
    if support:
        ids, result.moved = _repoint(ids, {k: v for k, v in support.items() if k in given}, margin, cite_if_none)
    for cid in ids:
        text = given[cid].chunk.text
        quote = quotes.get(cid, "")
        if not quote or _norm(quote) not in _norm(text):
            quote = best_sentence(text, f"{quote} {answer}")
        result.kept.append(Citation(id=cid, quote=quote))
    return result
