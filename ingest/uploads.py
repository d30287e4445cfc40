"""Checks on an uploaded file's bytes before it is written to the knowledge folder.

The same limits as the folder scan (type in `ingest.extensions`, `ingest.max_file_mb`, the zip-bomb
checks of `ingest.safety`), plus content sniffing, since an upload's name is the client's word:
a PDF must start like one, a docx/pptx/xlsx/epub must be a zip container holding that format's
own parts, a text type must decode as text (the decision parsing will make) and must not be a
binary format under a text name, a notebook must be JSON with cells. Deep parsing is left to the
ingest run, which reports a file it cannot read by name without stopping. Each refusal is a
`ragtune.errors` error (415, 413, 422) whose message says what is wrong.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import PurePosixPath

from ingest.parsers import PARSERS, ParseError, decode_text
from ingest.safety import check_zip
from ragtune.errors import PayloadTooLarge, UnsupportedFileType, UploadRefused
from ragtune.settings import IngestSettings

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".csv", ".html", ".htm"})
# The parts a container of each format must hold (a plain zip renamed .docx holds none of them).
CONTAINER_PARTS = {
    ".docx": ("[Content_Types].xml", "word/document.xml"),
    ".pptx": ("[Content_Types].xml", "ppt/presentation.xml"),
    ".xlsx": ("[Content_Types].xml", "xl/workbook.xml"),
    ".epub": ("mimetype", "META-INF/container.xml"),
}
# Binary formats that must not pass as text: (magic, what it is).
BINARY_MAGIC = (
    (b"%PDF-", "a PDF"),
    (b"PK\x03\x04", "a zip container (docx, xlsx, ...)"),
    (b"\x7fELF", "a Linux program"),
    (b"MZ\x90\x00", "a Windows program"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\xd0\xcf\x11\xe0", "an old-format Office file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
)


def check_upload(doc_id: str, data: bytes, settings: IngestSettings) -> None:
    """Refuse `data` as the content of `doc_id` (its extension decides the type), or return."""
    suffix = PurePosixPath(doc_id).suffix.lower()
    allowed = {e.lower() for e in settings.extensions} & set(PARSERS)
    if suffix not in allowed:
        raise UnsupportedFileType(f"unsupported file type {suffix or '(none)'}; accepted: {', '.join(sorted(allowed))}")
    limit = int(settings.max_file_mb * 1048576)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"file is {len(data) / 1048576:.1f} MB, over the {settings.max_file_mb:g} MB limit (ingest.max_file_mb)"
        )
    if not data.strip():
        raise UploadRefused("file is empty")
    try:
        _sniff(data, suffix, settings)
    except ParseError as exc:  # ingest.safety's refusals and the decoder's
        raise UploadRefused(str(exc)) from exc


def _sniff(data: bytes, suffix: str, settings: IngestSettings) -> None:
    kind = suffix.lstrip(".").upper()
    if suffix == ".pdf":
        # At offset 0, as strict PDF readers want it: a header further in is how a program (MZ...)
        # or an archive passes itself off as a PDF to a lenient reader.
        if not data.startswith(b"%PDF-"):
            where = " at its start" if b"%PDF-" in data[:1024] else ""
            raise UploadRefused(f"content is not a PDF (no %PDF- header{where}){_looks_like(data)}")
        return
    if suffix in CONTAINER_PARTS or suffix in (".odt", ".ods", ".odp"):
        if not data.startswith(b"PK\x03\x04"):
            raise UploadRefused(f"content is not a {kind} (a {kind} is a zip container){_looks_like(data)}")
        check_zip(data, settings, kind=kind)  # decompression bombs, by declared and by real sizes
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            missing = [part for part in CONTAINER_PARTS.get(suffix, ("mimetype",)) if part not in names]
            if missing:
                raise UploadRefused(f"content is a zip container but not a {kind}: it lacks {', '.join(missing)}")
            if suffix == ".epub" and archive.read("mimetype").strip() != b"application/epub+zip":
                raise UploadRefused("content is a zip container but not an EPUB (its mimetype is not application/epub+zip)")
        return
    if suffix in TEXT_SUFFIXES or suffix == ".ipynb":
        for magic, what in BINARY_MAGIC:
            if data.lstrip()[: len(magic)] == magic:
                raise UploadRefused(f"content is {what}, not {kind} text")
        text = decode_text(data)
        if suffix == ".ipynb":
            try:
                notebook = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UploadRefused(f"content is not a Jupyter notebook (invalid JSON: {exc})") from exc
            except RecursionError as exc:  # a notebook is a few levels deep; this is built to exhaust the parser
                raise UploadRefused("content is not a Jupyter notebook (its JSON is nested too deeply to read)") from exc
            if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
                raise UploadRefused("content is JSON but not a Jupyter notebook (no list of cells)")


def _looks_like(data: bytes) -> str:
    for magic, what in BINARY_MAGIC:
        if data.startswith(magic):
            return f"; it looks like {what}"
    return ""
