import pytest

from ingest.chunking import chunk_document
from ingest.parsers import ParsedDocument, Section
from ragtune.settings import ChunkingSettings


def _doc(sections):
    return ParsedDocument("Title", [Section(h, t) for h, t in sections])


def test_chunks_respect_size_and_never_cross_sections():
    sentences = " ".join(f"Sentence number {i} says something useful." for i in range(60))
    doc = _doc([("Long", sentences), ("Short", "One short paragraph that stands alone here.")])
    chunks = chunk_document(doc, "a.md", ChunkingSettings(chunk_size=50, chunk_overlap=10))
    assert all(len(c.text.split()) <= 50 for c in chunks)
    assert {c.section for c in chunks} == {"Long", "Short"}
    assert chunks[-1].section == "Short" and chunks[-1].text.startswith("One short")
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_consecutive_chunks_overlap_by_whole_sentences():
    sentences = " ".join(f"Fact {i} is here." for i in range(40))
    chunks = chunk_document(_doc([("S", sentences)]), "a.md", ChunkingSettings(chunk_size=30, chunk_overlap=8))
    assert len(chunks) > 2
    for first, second in zip(chunks, chunks[1:], strict=False):
        last_sentence = first.text.rsplit(". ", 1)[-1].rstrip(".")
        assert second.text.startswith(last_sentence) or last_sentence in second.text


def test_paragraph_boundaries_are_preferred():
    words = " one two three four five six seven eight nine ten eleven."
    doc = _doc([("S", f"Alpha{words}\n\nBeta{words}\n\nGamma{words}")])
    chunks = chunk_document(doc, "a.md", ChunkingSettings(chunk_size=20, chunk_overlap=0, min_chunk_words=1))
    assert [c.text.split()[0] for c in chunks] == ["Alpha", "Beta", "Gamma"]


def test_ids_are_stable_and_depend_on_content():
    doc = _doc([("S", "Some text about refunds and plans.")])
    a = chunk_document(doc, "a.md", ChunkingSettings())
    b = chunk_document(doc, "a.md", ChunkingSettings())
    c = chunk_document(_doc([("S", "Other text about refunds and plans.")]), "a.md", ChunkingSettings())
    assert [x.id for x in a] == [x.id for x in b]
    assert a[0].id != c[0].id
    assert a[0].title == "Title" and a[0].doc_id == "a.md"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.domain)",
        "  JaVaScRiPt:alert(document.domain)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "/help/refunds",
    ],
)
def test_only_http_source_urls_reach_the_index(url):
    """Issue 18.6: front matter and canonical links carried javascript: and data: URLs to sources[].url."""
    from pathlib import Path

    from ingest.parsers import parse_html, parse_markdown
    from ragtune.settings import ChunkingSettings

    markdown = f"---\nurl: {url}\n---\n# Refunds\n\nAnnual plans can be refunded within 30 days.\n".encode()
    html = f'<html><head><link rel="canonical" href="{url}"></head><body><h1>Refunds</h1><p>Annual plans can be refunded within 30 days.</p></body></html>'.encode()
    for document in (parse_markdown(markdown, Path("refunds.md")), parse_html(html, Path("refunds.html"))):
        chunks = chunk_document(document, "refunds", ChunkingSettings())
        assert chunks and all(c.url is None for c in chunks)
    good = parse_markdown(
        b"---\nurl: https://help.example/refunds\n---\n# Refunds\n\nAnnual plans can be refunded.\n", Path("r.md")
    )
    assert chunk_document(good, "r", ChunkingSettings())[0].url == "https://help.example/refunds"
