"""Turn a file into a titled list of sections, keeping the structure each format has.

Markdown headings, HTML h1-h4, DOCX heading styles and PDF pages become section boundaries;
paragraphs are kept (separated by blank lines) so the chunker can cut between them.
Each parser raises `ParseError` with a reason a person can act on.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path


class ParseError(Exception):
    """The file cannot be turned into text (corrupt, encrypted, empty, unsupported)."""


@dataclass
class Section:
    heading: str
    text: str  # paragraphs separated by blank lines


@dataclass
class ParsedDocument:
    title: str
    sections: list[Section] = field(default_factory=list)
    url: str | None = None

    @property
    def word_count(self) -> int:
        return sum(len(s.text.split()) for s in self.sections)


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)


# A multi-byte UTF-8 sequence: its presence in a file that fails to decode as UTF-8 means the file
# is UTF-8 with damaged bytes, and reading it as a legacy code page would turn "Café" into "CafÃ©".
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _decode(data: bytes) -> str:
    """Text of a file: UTF-8 (with or without BOM), else the encoding charset-normalizer finds with
    confidence; damaged UTF-8 and undecidable bytes are refused instead of indexed as mojibake."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ParseError(f"invalid UTF-16 text at byte {exc.start}") from exc
    if b"\x00" in data[:4096]:
        raise ParseError("looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        error = exc
    if _UTF8_MULTIBYTE.search(data):
        raise ParseError(
            f"invalid UTF-8 at byte {error.start} in a file that is otherwise UTF-8; fix the damaged bytes or re-save it as UTF-8"
        )
    from charset_normalizer import from_bytes

    # Only encodings that read ASCII as ASCII: a text document's markup, digits and punctuation
    # are ASCII, so EBCDIC or BOM-less UTF-16 "fits" are artefacts of short texts.
    matches = [m for m in from_bytes(data) if _ascii_compatible(m.encoding)]
    if not matches:  # every candidate was too chaotic (charset-normalizer's default threshold)
        raise ParseError("text is not UTF-8 and its encoding cannot be detected with confidence; re-save it as UTF-8")
    least = min(m.chaos for m in matches)
    clean = [m for m in matches if m.chaos <= least + 0.01]
    fit = max(m.coherence for m in clean)  # how well the text reads as a known language
    contenders = [m for m in clean if m.coherence >= fit - 0.05]
    readings = {str(m) for m in contenders}
    if len(readings) == 1:
        return readings.pop()
    # Several code pages read it cleanly but differently (short texts fit many). Windows-1252 is
    # the legacy encoding Western documents are overwhelmingly in; without it among them, guessing
    # would index mojibake half the time.
    western = [m for m in contenders if m.encoding == "cp1252"]
    if western:
        return str(western[0])
    names = ", ".join(sorted({m.encoding for m in contenders})[:4])
    raise ParseError(f"text is not UTF-8 and its encoding is ambiguous ({names}, ...); re-save it as UTF-8")


decode_text = _decode  # the text check of uploads (ingest.uploads) decides as parsing will


_ASCII_SAMPLE = bytes(range(0x20, 0x7F)) + b"\t\n\r"


def _ascii_compatible(encoding: str) -> bool:
    try:
        return _ASCII_SAMPLE.decode(encoding) == _ASCII_SAMPLE.decode("ascii")
    except (UnicodeDecodeError, LookupError):
        return False


def _fallback_title(path: Path) -> str:
    return path.stem.replace("-", " ").replace("_", " ").strip().capitalize()


def parse_markdown(data: bytes, path: Path) -> ParsedDocument:
    text = _decode(data).replace("\r\n", "\n")
    url = None
    front = _FRONT_MATTER.match(text)
    if front:
        for line in front.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "url":
                url = value.strip() or None
        text = text[front.end() :]
    title = ""
    sections: list[Section] = []
    heading, lines = "", list[str]()
    in_code = False
    for line in text.split("\n"):
        if line.strip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _MD_HEADING.match(line)
        if match:
            if "\n".join(lines).strip():
                sections.append(Section(heading, "\n".join(lines).strip()))
            heading, lines = match.group(2).strip(), []
            if not title and len(match.group(1)) == 1:
                title = heading
            continue
        lines.append(line)
    if "\n".join(lines).strip():
        sections.append(Section(heading, "\n".join(lines).strip()))
    return ParsedDocument(title or _fallback_title(path), sections, url)


def parse_text(data: bytes, path: Path) -> ParsedDocument:
    text = _decode(data).replace("\r\n", "\n").strip()
    first, _, rest = text.partition("\n")
    # A short first line followed by a blank line reads as a title.
    if first and len(first) <= 100 and rest.startswith("\n"):
        return ParsedDocument(first.strip(), [Section("", rest.strip())] if rest.strip() else [])
    return ParsedDocument(_fallback_title(path), [Section("", text)] if text else [])


def parse_html(data: bytes, path: Path) -> ParsedDocument:
    from bs4 import BeautifulSoup, CData

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "header", "noscript", "template"]):
        tag.decompose()
    # A browser shows no <![CDATA[...]]> in HTML (it is a comment there), but get_text() would:
    # hidden text, which could carry markup, is not the page's content.
    for hidden in soup.find_all(string=lambda s: isinstance(s, CData)):
        hidden.extract()
    canonical = soup.find("link", rel="canonical")
    href = canonical.get("href") if canonical else None
    url = href if isinstance(href, str) else None
    h1 = soup.find("h1")
    # The h1 is the page's own title; <title> often carries a site suffix ("Pricing | Acme").
    title = (h1.get_text(" ", strip=True) if h1 else "") or (soup.title.get_text(" ", strip=True) if soup.title else "")
    body = soup.body or soup
    sections: list[Section] = []
    heading, paragraphs = "", list[str]()
    for element in body.find_all(["h1", "h2", "h3", "h4", "p", "li", "td", "th", "pre", "dt", "dd"]):
        if element.find_parent(["p", "li", "td", "th", "pre", "dd"]):
            continue  # its text is taken with its parent
        text = element.get_text(" ", strip=True)
        if not text:
            continue
        if element.name in ("h1", "h2", "h3", "h4"):
            if paragraphs:
                sections.append(Section(heading, "\n\n".join(paragraphs)))
            heading, paragraphs = text, []
        else:
            paragraphs.append(("- " if element.name == "li" else "") + text)
    if paragraphs:
        sections.append(Section(heading, "\n\n".join(paragraphs)))
    return ParsedDocument(title or _fallback_title(path), sections, url)


def parse_pdf(data: bytes, path: Path) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ParseError("PDF is encrypted; export an unencrypted copy")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ParseError(f"corrupt or unreadable PDF ({exc})") from exc
    sections = []
    for number, page in enumerate(pages, start=1):
        paragraphs = re.sub(r"[ \t]+\n", "\n", page).strip()
        if paragraphs:
            sections.append(Section(f"page {number}", paragraphs))
    if not sections:
        raise ParseError("PDF has no extractable text (scanned image? run OCR first)")
    first_line = sections[0].text.split("\n", 1)[0].strip()
    title = meta_title.strip() or (first_line if len(first_line) <= 100 else _fallback_title(path))
    return ParsedDocument(title, sections)


def parse_docx(data: bytes, path: Path) -> ParsedDocument:
    import zipfile

    from docx import Document
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseError(f"corrupt or unreadable DOCX ({exc})") from exc
    title = (document.core_properties.title or "").strip()
    sections: list[Section] = []
    heading, paragraphs = "", list[str]()
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name or "").lower() if para.style is not None else ""
        if style == "title":
            title = title or text
        elif style.startswith("heading"):
            if paragraphs:
                sections.append(Section(heading, "\n\n".join(paragraphs)))
            heading, paragraphs = text, []
        else:
            paragraphs.append(("- " if "list" in style else "") + text)
    if paragraphs:
        sections.append(Section(heading, "\n\n".join(paragraphs)))
    for table in document.tables:
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
        if rows:
            sections.append(Section("table", "\n".join(rows)))
    return ParsedDocument(title or _fallback_title(path), sections)


PARSERS = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": parse_text,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
    ".docx": parse_docx,
}


def parse_file(data: bytes, path: Path) -> ParsedDocument:
    parser = PARSERS.get(path.suffix.lower())
    if parser is None:
        raise ParseError(f"unsupported file type {path.suffix or '(none)'}; supported: {', '.join(sorted(PARSERS))}")
    if not data.strip():
        raise ParseError("file is empty")
    document = parser(data, path)
    if document.word_count == 0:
        raise ParseError("no text found in the file")
    return document


import ingest.readers  # noqa: E402,F401  registers .pptx .csv .xlsx .epub .ipynb (read through llama-index)
