"""Evidence selection: the sentences of the retrieved chunks that answer the question.

A 135M model picks its sources by position and cannot be trusted to find the fact in six chunks;
the embedding model can. The retrieved chunks are split into sentences, each is embedded with
its document title and section in front (so "30 days" under "Refund policy > Annual plans" knows
what it is about) and scored against the (standalone) question; the best one to three, within a
margin of the best, are the evidence: verbatim by construction, each with its chunk. Serving
answers from them; training renders its prompts from the same selection, so the model learns on
what it is served.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ragtune.documents import Hit
from ragtune.embedding import Embedder
from ragtune.prompt import ContextChunk

_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*(?:[-*\u2022]|\d+[.)])\s)")
MIN_SENTENCE_WORDS = 4
CACHE_SIZE = 50_000


MAX_HEADING_WORDS = 6


def _is_heading(line: str, following: str) -> bool:
    """A short line without closing punctuation, followed by a line starting a sentence: a heading
    that text extraction (PDF) left inline ("Annual plans" above "If you are not satisfied...")."""
    words = line.split()
    return 0 < len(words) <= MAX_HEADING_WORDS and line.rstrip()[-1] not in ".!?:;," and following.lstrip()[:1].isupper()


def split_with_headings(text: str) -> list[tuple[str, str]]:
    """(inline heading or "", sentence) pairs: headings are kept apart from the sentences under them."""
    lines = text.split("\n")
    blocks: list[tuple[str, list[str]]] = [("", [])]
    for i, line in enumerate(lines):
        following = next((ln for ln in lines[i + 1 :] if ln.strip()), "")
        if _is_heading(line, following):
            blocks.append((" ".join(line.split()), []))
        else:
            blocks[-1][1].append(line)
    return [(heading, sentence) for heading, body in blocks for sentence in split_sentences("\n".join(body))]


def split_sentences(text: str) -> list[str]:
    """Sentences of a text, verbatim (whitespace collapsed); a fragment shorter than
    MIN_SENTENCE_WORDS words ("Yes.", "Free:") joins the sentence after it."""
    pieces = [" ".join(p.split()) for p in _BOUNDARY.split(text)]
    sentences: list[str] = []
    carry = ""
    for piece in pieces:
        if not piece:
            continue
        piece = f"{carry} {piece}".strip() if carry else piece
        if len(piece.split()) < MIN_SENTENCE_WORDS:
            carry = piece
            continue
        carry = ""
        sentences.append(piece)
    if carry:
        if sentences:
            sentences[-1] = f"{sentences[-1]} {carry}"
        else:
            sentences.append(carry)
    return sentences


@dataclass(frozen=True)
class Evidence:
    """One selected sentence: verbatim text, its chunk (hit) and its similarity to the question."""

    hit: Hit
    sentence: str
    score: float

    @property
    def chunk_id(self) -> str:
        return self.hit.chunk.id


def top_evidence(ranked: list[Evidence], max_sentences: int = 3, margin: float = 0.1) -> list[Evidence]:
    """From sentences ranked best first: the best and up to `max_sentences - 1` more within `margin` of it."""
    if not ranked:
        return []
    floor = ranked[0].score - margin
    return [e for e in ranked[:max_sentences] if e.score >= floor]


def evidence_chunks(evidence: list[Evidence]) -> list[ContextChunk]:
    """The evidence as prompt sources: each sentence one source under its document's title and
    section. Serving and training both render the model's prompt from this (then `number_sources`)."""
    return [ContextChunk(e.chunk_id, e.hit.chunk.title, e.hit.chunk.section, e.sentence) for e in evidence]


def _heading(hit: Hit) -> str:
    c = hit.chunk
    return c.title if not c.section or c.section == c.title else f"{c.title} - {c.section}"


class EvidenceSelector:
    """Scores the sentences of retrieved chunks against a question with the retrieval embedder.

    Sentence vectors are cached by chunk id (a content hash), so a chunk is embedded once per
    process, not once per question."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self._cache: OrderedDict[str, tuple[list[str], np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def _sentences(self, hits: list[Hit]) -> list[tuple[list[str], np.ndarray]]:
        missing = []
        with self._lock:
            for hit in hits:
                if hit.id in self._cache:
                    self._cache.move_to_end(hit.id)
                elif hit not in missing:
                    missing.append(hit)
        if missing:
            split = [split_with_headings(h.chunk.text) for h in missing]
            texts = [
                f"{_heading(h)}{' - ' + inner if inner else ''}: {s}"
                for h, pairs in zip(missing, split, strict=False)
                for inner, s in pairs
            ]
            vectors = self.embedder.embed_documents(texts) if texts else np.zeros((0, 1), dtype=np.float32)
            start = 0
            with self._lock:
                for hit, pairs in zip(missing, split, strict=False):
                    self._cache[hit.id] = ([s for _, s in pairs], vectors[start : start + len(pairs)])
                    start += len(pairs)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        with self._lock:
            return [self._cache[h.id] for h in hits]

    def score(self, question: str, hits: list[Hit]) -> list[Evidence]:
        """Every sentence of `hits`, best first."""
        if not hits:
            return []
        qvec = self.embedder.embed_query(question)
        scored = []
        for hit, (sentences, vectors) in zip(hits, self._sentences(hits), strict=False):
            if not sentences:
                continue
            for sentence, sim in zip(sentences, vectors @ qvec, strict=False):
                scored.append(Evidence(hit=hit, sentence=sentence, score=float(sim)))
        return sorted(scored, key=lambda e: e.score, reverse=True)

    def select(self, question: str, hits: list[Hit], max_sentences: int = 3, margin: float = 0.1) -> list[Evidence]:
        """The best sentence and up to `max_sentences - 1` more within `margin` of it."""
        return top_evidence(self.score(question, hits), max_sentences, margin)
