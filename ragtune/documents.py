"""The shapes that cross package boundaries: a chunk of a document, and a retrieval hit."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Chunk:
    """A piece of a document as stored in the index.

    `id` is stable: the same document content chunked with the same settings gets the same ids,
    so citations survive a re-ingest that changed nothing about their document.
    """

    id: str
    doc_id: str  # the document's path relative to the knowledge folder (or a corpus id)
    text: str
    title: str
    section: str
    position: int  # order of the chunk inside its document
    doc_type: str = "txt"
    category: str = ""  # first folder of the path (faq, policies, ...), usable as a filter
    url: str | None = None

    @staticmethod
    def make_id(doc_id: str, position: int, text: str) -> str:
        digest = hashlib.sha256(f"{doc_id}\x00{position}\x00{text}".encode()).hexdigest()
        return digest[:20]

    def embedding_text(self) -> str:
        """What is embedded and BM25-indexed: the text with its title and heading for context."""
        head = self.title if not self.section or self.section == self.title else f"{self.title} - {self.section}"
        return f"{head}\n{self.text}" if head else self.text

    def metadata(self) -> dict[str, Any]:
        """Flat metadata for Chroma (and for filters)."""
        meta: dict[str, Any] = {
            "doc_id": self.doc_id,
            "title": self.title,
            "section": self.section,
            "position": self.position,
            "doc_type": self.doc_type,
            "category": self.category,
        }
        if self.url:
            meta["url"] = self.url
        return meta

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chunk:
        return cls(**data)


@dataclass
class Hit:
    """A chunk returned by the retriever, with how it ranked."""

    chunk: Chunk
    score: float  # the fused (or single-side) ranking score; only meaningful for ordering
    relevance: float  # cosine similarity of query and chunk, 0..1: the evidence threshold uses it
    dense_rank: int | None = None
    bm25_rank: int | None = None
    rerank_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.chunk.id


FILTER_FIELDS = ("doc_id", "doc_type", "category", "title", "section")
# The label ingest puts in front of a slide's speaker notes: it tells the notes from the slide in
# the chunk; an answer quoting a note leaves it out.
NOTES_LABEL = "Speaker notes: "


def matches(chunk: Chunk, filters: dict[str, Any] | None) -> bool:
    """Equality ({"category": "faq"}) or membership ({"doc_type": ["pdf", "docx"]}) on metadata."""
    if not filters:
        return True
    for key, wanted in filters.items():
        value = getattr(chunk, key)
        if isinstance(wanted, list):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True
