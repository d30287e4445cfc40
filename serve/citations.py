"""Citations from the evidence the server selected: verbatim, with their chunk ids.

The model sees each evidence sentence as a short numbered source (S1, S2, ...; see
`ragtune.prompt.number_sources`) and names the ones it used (`ModelReply.sources`). Those ids are
mapped back to chunk ids; an id that names no source is dropped and reported; when it names none
that exist, every evidence sentence is cited. The quote is always the evidence sentence itself, never the model's paraphrase, so a
widget shows only words the source contains.
"""

from __future__ import annotations

from ragtune.answer import MAX_CITATIONS, MAX_QUOTE_CHARS, Citation
from ragtune.grounding.evidence import Evidence
from ragtune.prompt import NumberedSources


def _clip(text: str) -> str:
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 3].rsplit(" ", 1)[0] + "..."


def evidence_citations(evidence: list[Evidence]) -> list[Citation]:
    """One citation per chunk, quoting its evidence sentences in order of score."""
    quotes: dict[str, list[str]] = {}
    for item in evidence:
        quotes.setdefault(item.chunk_id, []).append(item.sentence)
    citations = []
    for chunk_id, sentences in quotes.items():
        joined = " ".join(sentences)
        citations.append(Citation(id=chunk_id, quote=_clip(joined if len(joined) <= MAX_QUOTE_CHARS else sentences[0])))
    return citations[:MAX_CITATIONS]


def model_cited(used: list[str], sources: NumberedSources, evidence: list[Evidence]) -> tuple[list[Evidence], list[str]]:
    """The evidence the model's source ids (S1, ...) point at, and the ids that point nowhere.

    Source S<i> is evidence[i - 1]: `number_sources` numbers the evidence in order."""
    by_short = dict(zip(sources.ids, evidence, strict=False))
    cited: list[Evidence] = []
    dropped: list[str] = []
    for short in used:
        item = by_short.get(short.strip())
        if item is None:
            dropped.append(short)
        elif item not in cited:
            cited.append(item)
    return (cited or list(evidence)), dropped
