"""Structure-aware chunking: sections, then paragraphs, then sentences, then words.

A chunk never spans two sections (so its heading is true for all of it). Inside a section,
paragraphs are packed up to `chunk_size` words; a paragraph too long for one chunk is cut between
sentences, and a sentence too long is cut between words. Consecutive chunks of one section share
about `chunk_overlap` words of whole sentences, so a fact on a boundary is found from either side.
"""

from __future__ import annotations

import re

from ingest.parsers import ParsedDocument
from ragtune.contacts import http_url
from ragtune.documents import Chunk
from ragtune.grounding.text import split_sentences
from ragtune.settings import ChunkingSettings


def _words(text: str) -> int:
    return len(text.split())


def _units(section_text: str, size: int) -> list[tuple[str, bool]]:
    """(piece, starts_paragraph) no longer than `size` words: paragraphs, or sentences of long ones."""
    units: list[tuple[str, bool]] = []
    for paragraph in re.split(r"\n\s*\n", section_text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if _words(paragraph) <= size:
            units.append((paragraph, True))
            continue
        first = True
        for sentence in split_sentences(paragraph):
            words = sentence.split()
            for start in range(0, len(words), size):
                units.append((" ".join(words[start : start + size]), first))
                first = False
    return units


def _join(units: list[tuple[str, bool]]) -> str:
    text = ""
    for piece, new_paragraph in units:
        text += (("\n\n" if new_paragraph else " ") if text else "") + piece
    return text


def _tail(units: list[tuple[str, bool]], overlap: int) -> list[tuple[str, bool]]:
    """The last whole sentences of a chunk, at most `overlap` words, to start the next one."""
    sentences = [s for piece, _ in units for s in split_sentences(piece)]
    carried: list[str] = []
    for sentence in reversed(sentences):
        if _words(sentence) + sum(_words(s) for s in carried) > overlap:
            break
        carried.insert(0, sentence)
    return [(" ".join(carried), True)] if carried else []


def _pack(units: list[tuple[str, bool]], size: int, overlap: int) -> list[str]:
    chunks: list[str] = []
    current: list[tuple[str, bool]] = []
    count = 0
    for unit in units:
        n = _words(unit[0])
        if current and count + n > size:
            chunks.append(_join(current))
            current = _tail(current, overlap) if overlap else []
            count = sum(_words(piece) for piece, _ in current)
            if count + n > size:
                current, count = [], 0
        current.append(unit)
        count += n
    if current:
        chunks.append(_join(current))
    return chunks


def chunk_document(
    document: ParsedDocument,
    doc_id: str,
    settings: ChunkingSettings,
    doc_type: str = "txt",
    category: str = "",
) -> list[Chunk]:
    pieces: list[tuple[str, str]] = []  # (heading, text)
    for section in document.sections:
        packed = _pack(_units(section.text, settings.chunk_size), settings.chunk_size, settings.chunk_overlap)
        # A trailing fragment too short to stand alone joins the chunk before it, if it fits.
        if (
            len(packed) > 1
            and _words(packed[-1]) < settings.min_chunk_words
            and _words(packed[-2]) + _words(packed[-1]) <= settings.chunk_size
        ):
            packed[-2:] = [f"{packed[-2]}\n\n{packed[-1]}"]
        pieces.extend((section.heading, text) for text in packed)
    return [
        Chunk(
            id=Chunk.make_id(doc_id, position, text),
            doc_id=doc_id,
            text=text,
            title=document.title,
            section=heading,
            position=position,
            doc_type=doc_type,
            category=category,
            url=http_url(document.url),  # front matter and canonical links: http(s) only, never javascript: or data:
        )
        for position, (heading, text) in enumerate(pieces)
    ]
