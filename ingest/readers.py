"""Read the formats the project has no parser of its own for, through llama-index's file readers.

PowerPoint decks, CSV exports, Excel workbooks, EPUB e-books and Jupyter notebooks are read by
`llama-index-readers-file` (PptxReader, PandasCSVReader, PandasExcelReader, EpubReader,
IPYNBReader) and converted into the project's `ParsedDocument`, so chunking, incremental
re-ingest, failure reporting and atomic versions treat them like any other file. Structure is
kept where the reader gives it: a slide, a sheet, an e-book chapter (and its subheadings), a
notebook section become sections with a heading; the rows of a table become paragraphs of
"column: value" pairs, so the chunker cuts between rows and every chunk names its columns.

llama-index is imported inside the functions: ingesting only md/pdf never pays for it (about 2.5 s
of import on first use). No reader here is given an LLM, an embedding model or image captioning,
and llama-index's global `Settings` is never touched, so nothing can fall back to a hosted model.
`NLTK_DATA` and `TIKTOKEN_CACHE_DIR` are left unset on purpose: llama-index then uses the data it
bundles, which works offline. Every failure is a `ParseError` with a reason a person can act on,
including a missing extra package, named so that it can be installed.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

from ingest.parsers import PARSERS, ParsedDocument, ParseError, Section, parse_markdown
from ragtune.documents import NOTES_LABEL

# The package each reader needs beyond llama-index-readers-file, as pip names it.
EXTRA_PACKAGES = {
    ".pptx": "python-pptx",
    ".xlsx": "openpyxl",
    ".epub": "ebooklib html2text",
    ".ipynb": "nbconvert",
    ".csv": "pandas",
}


def _check_container(data: bytes, path: Path) -> zipfile.ZipFile:
    """Open a zip-based file (pptx, xlsx, epub), or say it is corrupt.

    Decompression bombs never get here: `ingest.safety.admit_file` checked the container's
    declared and actual inflated sizes, entry count and ratios before any parser runs.
    """
    kind = path.suffix.lstrip(".").upper()
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ParseError(f"corrupt or unreadable {kind} (not a valid zip container: {exc})") from exc


_TEMP_PATH = re.compile(r"[^\s'\"]*ragtune-read-[^/\\]+[/\\]document\.\w+")


def _run_reader(path: Path, load: Callable[[], list]) -> list:
    """Call a llama-index reader, turning its failures into a ParseError with a reason."""
    kind = path.suffix.lstrip(".").upper()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. nbconvert's "IPython is needed" for magics
            return load()
    except ImportError as exc:
        package = EXTRA_PACKAGES.get(path.suffix.lower(), "llama-index-readers-file")
        raise ParseError(f"reading {kind} files needs {package}: pip install {package} ({exc})") from exc
    except ParseError:
        raise
    except Exception as exc:  # readers raise anything from KeyError to lxml errors on bad input
        reason = _TEMP_PATH.sub(path.name, str(exc))  # the reader saw a temporary copy
        raise ParseError(f"corrupt or unreadable {kind} ({type(exc).__name__}: {reason})") from exc


def _with_temp_file(data: bytes, suffix: str, use: Callable[[Path], list]) -> list:
    # The readers take a path; the bytes parsed must be the bytes hashed, so write them out.
    with tempfile.TemporaryDirectory(prefix="ragtune-read-") as folder:
        file = Path(folder) / f"document{suffix}"
        file.write_bytes(data)
        return use(file)


def _paragraphs(lines: list[str]) -> str:
    return "\n\n".join(line.strip() for line in lines if line.strip())


def _import_readers():
    # Importing the PptxReader module calls logging.basicConfig(level=INFO), which would print
    # every library's INFO logs on stderr from then on; the root logger is put back as it was.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        import llama_index.readers.file as readers
    except ImportError as exc:
        raise ParseError(
            f"reading this file type needs llama-index: pip install llama-index-core llama-index-readers-file ({exc})"
        ) from exc
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return readers


# ---- PowerPoint


def read_pptx(data: bytes, path: Path) -> ParsedDocument:
    _check_container(data, path)
    readers = _import_readers()
    # No image captioning, no LLM consolidation (both would load or call a model); raise_on_error,
    # so a deck that cannot be opened fails instead of becoming an empty list; no thread pool.
    reader = readers.PptxReader(
        extract_images=False, context_consolidation_with_llm=False, llm=None, num_workers=0, raise_on_error=True
    )
    slides = _run_reader(path, lambda: _with_temp_file(data, ".pptx", reader.load_data))
    sections = []
    for number, slide in enumerate(slides, start=1):
        heading = (slide.metadata.get("title") or "").strip()
        parts = slide.text.split("\n-----\n")
        if parts and parts[0].startswith("Title:"):
            parts = parts[1:]  # the reader repeats the title as a header block
        lines = [line for part in parts for line in part.split("\n")]
        if heading and lines and lines[0].strip() == heading:
            lines = lines[1:]
        lines = [re.sub(r"^\[Speaker Notes\]:\s*", NOTES_LABEL, line) for line in lines]
        text = _paragraphs(lines)
        if text or heading:
            sections.append(Section(heading or f"slide {number}", text or heading))
    first_title = (slides[0].metadata.get("title") or "").strip() if slides else ""
    return ParsedDocument(first_title or _fallback_title(path), sections)


# ---- tables


def _rows_as_text(header: list[str], rows: list[list[str]]) -> str:
    lines = []
    for row in rows:
        pairs = [f"{name}: {value}" for name, value in zip(header, row, strict=False) if str(value).strip()]
        if pairs:
            lines.append(", ".join(pairs))
    return "\n\n".join(lines)


def read_csv(data: bytes, path: Path) -> ParsedDocument:
    if b"\x00" in data[:4096]:
        raise ParseError("looks like a binary file, not a CSV export")
    try:
        data.decode("utf-8")
        encoding = "utf-8-sig"
    except UnicodeDecodeError:
        encoding = "cp1252"  # what Excel writes on Windows
    readers = _import_readers()
    sep = "\x1f"  # a joiner no cell contains, so cells can be split back apart
    # sep=None sniffs the delimiter (comma, semicolon, tab: European Excel exports use ";").
    reader = readers.PandasCSVReader(
        concat_rows=False,
        col_joiner=sep,
        pandas_config={
            "sep": None,
            "engine": "python",
            "header": None,
            "dtype": str,
            "keep_default_na": False,
            "encoding": encoding,
        },
    )
    rows = _run_reader(path, lambda: _with_temp_file(data, ".csv", reader.load_data))
    table = [row.text.split(sep) for row in rows]
    if len(table) < 2:
        raise ParseError("CSV has a header but no rows" if table else "no text found in the file")
    header = [name.strip() or f"column {i}" for i, name in enumerate(table[0], start=1)]
    return ParsedDocument(_fallback_title(path), [Section("", _rows_as_text(header, table[1:]))])


def read_xlsx(data: bytes, path: Path) -> ParsedDocument:
    _check_container(data, path)
    readers = _import_readers()

    def load(file: Path) -> list:
        import pandas as pd

        with pd.ExcelFile(file, engine="openpyxl") as workbook:  # opened once: names, title, sheets
            names = workbook.sheet_names
            title = (workbook.book.properties.title or "").strip()
            # dtype=str: a column mixing 4.99 and 39 would otherwise print "39.0".
            reader = readers.PandasExcelReader(concat_rows=True, sheet_name=None, pandas_config={"dtype": str})
            # The reader returns one document per sheet, in workbook order, without sheet names.
            sheets = reader.load_data(workbook)
        return [(title, list(zip(names, sheets, strict=False)))]

    [(title, sheets)] = _run_reader(path, lambda: _with_temp_file(data, ".xlsx", load))
    sections = [Section(name, "\n\n".join(line for line in sheet.text.split("\n") if line.strip())) for name, sheet in sheets]
    return ParsedDocument(title or _fallback_title(path), [s for s in sections if s.text])


# ---- e-books


_TOC_LINE = re.compile(r"^\s*(\d+\.|[-*+])\s*\[[^\]]*\]\([^)]*\)\s*$")
_STRUCTURED_LINE = re.compile(r"^(\s|[-*+>|]\s|\d+\.\s|```)")


def _unwrap(text: str) -> str:
    """Join the lines html2text wrapped at 78 columns, leaving lists, quotes and code alone."""
    paragraphs = []
    for paragraph in text.split("\n\n"):
        lines = paragraph.split("\n")
        if not any(_STRUCTURED_LINE.match(line) for line in lines):
            paragraph = " ".join(line.strip() for line in lines)
        paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


_OPF_TITLE = re.compile(rb"<dc:title[^>]*>(.*?)</dc:title>", re.S)


def read_epub(data: bytes, path: Path) -> ParsedDocument:
    archive = _check_container(data, path)
    if "META-INF/encryption.xml" in archive.namelist() and b"EncryptedData" in archive.read("META-INF/encryption.xml"):
        raise ParseError("EPUB is DRM-protected (encrypted); export an unprotected copy")
    readers = _import_readers()
    reader = readers.EpubReader()
    books = _run_reader(path, lambda: _with_temp_file(data, ".epub", reader.load_data))
    # EpubReader gives the whole book as one markdown text (html2text); its chapter and section
    # headings are markdown headings, which the project's markdown parser turns into sections.
    markdown = "\n\n".join(book.text for book in books)
    parsed = parse_markdown(markdown.encode("utf-8"), path)
    sections = []
    for section in parsed.sections:
        text = "\n".join(line for line in section.text.split("\n") if not _TOC_LINE.match(line)).strip()
        if text:  # a table of contents (the EPUB 3 nav page) is a list of links only: dropped
            sections.append(Section(section.heading, _unwrap(text)))
    title = ""
    for name in archive.namelist():
        if name.endswith(".opf"):
            match = _OPF_TITLE.search(archive.read(name))
            if match:
                title = re.sub(r"\s+", " ", match.group(1).decode("utf-8", "replace")).strip()
                break
    # parse_markdown takes the first chapter's h1 as the title; the book's own title is better.
    return ParsedDocument(title or _fallback_title(path), sections)


# ---- notebooks


_NB_HEADING = re.compile(r"^# (#{1,6})\s+(.+?)\s*$")


def _normalised_notebook(data: bytes) -> bytes:
    """A copy of the notebook that IPYNBReader reads in full.

    The reader splits nbconvert's script export at "In[<number>]:" markers and drops what comes
    before the first one, and the export has markdown (as comments) and markers only when the
    notebook names its nbconvert exporter. So: name it, number every code cell (an unexecuted one
    says "In[ ]:"), and put an empty code cell first so leading markdown is not dropped.
    """
    try:
        notebook = json.loads(data.decode("utf-8-sig"))
        cells = notebook["cells"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ParseError(f"corrupt or unreadable IPYNB (not a Jupyter notebook: {exc})") from exc
    except RecursionError as exc:
        raise ParseError("corrupt or unreadable IPYNB (its JSON is nested too deeply to read)") from exc
    if not isinstance(cells, list) or notebook.get("nbformat", 0) < 4:
        raise ParseError("unsupported IPYNB: only nbformat 4 notebooks are read; open and save it in a current Jupyter")
    metadata = notebook.setdefault("metadata", {})
    language = metadata.setdefault("language_info", {})
    language.setdefault("name", (metadata.get("kernelspec") or {}).get("language") or "python")  # nbformat requires it
    language["nbconvert_exporter"] = "python"
    notebook["cells"] = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": ""}] + cells
    count = 0
    for cell in notebook["cells"]:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            count += 1
            cell["execution_count"] = count
    return json.dumps(notebook).encode("utf-8")


def read_ipynb(data: bytes, path: Path) -> ParsedDocument:
    normalised = _normalised_notebook(data)
    readers = _import_readers()
    reader = readers.IPYNBReader(concatenate=False)
    cells = _run_reader(path, lambda: _with_temp_file(normalised, ".ipynb", reader.load_data))
    title, heading, lines = "", "", list[str]()
    sections: list[Section] = []

    def flush() -> None:
        text = "\n".join(lines).strip()
        if text:
            sections.append(Section(heading, re.sub(r"\n{3,}", "\n\n", text)))

    for line in "\n".join(cell.text for cell in cells).split("\n"):
        match = _NB_HEADING.match(line)  # a markdown heading, commented out by the export
        if match:
            flush()
            heading, lines = match.group(2), []
            if not title and len(match.group(1)) == 1:
                title = heading
            continue
        # Markdown prose arrives as "# text" comment lines; code stays as it is.
        lines.append(line[2:] if line.startswith("# ") else ("" if line == "#" else line))
    flush()
    return ParsedDocument(title or _fallback_title(path), sections)


def _fallback_title(path: Path) -> str:
    return path.stem.replace("-", " ").replace("_", " ").strip().capitalize()


READERS = {
    ".pptx": read_pptx,
    ".csv": read_csv,
    ".xlsx": read_xlsx,
    ".epub": read_epub,
    ".ipynb": read_ipynb,
}
PARSERS.update(READERS)  # ingest.parsers imports this module, so every file type is known there
