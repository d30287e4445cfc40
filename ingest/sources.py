"""Where documents come from: a folder of files, or a BEIR `corpus.jsonl` (for evaluation).

Scanning reads every file once to hash it; parsing happens later and only for documents whose
hash changed, so an unchanged knowledge base costs no parsing and no embedding. Both go through
`ingest.safety` (real path inside the folder, regular file, size, zip-bomb limits), so a refused
file is reported by name and never parsed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ingest.parsers import ParsedDocument, ParseError, Section, parse_file
from ingest.safety import Refused, admit_file, read_checked, resolve_inside
from ragtune.errors import UserInputError
from ragtune.folders import visible_entries
from ragtune.settings import IngestSettings

DOC_TYPES = {".markdown": "md", ".htm": "html"}
PARSER_VERSION = "3"  # bump when parsing changes, so every document is re-read (3: planted-text flags)


@dataclass
class SourceItem:
    doc_id: str
    doc_type: str
    size: int
    content_hash: str
    category: str
    load: Callable[[], ParsedDocument]


@dataclass
class Failure:
    doc_id: str
    reason: str


def _hash(data: bytes) -> str:
    return hashlib.sha256(PARSER_VERSION.encode() + b"\x00" + data).hexdigest()


def _walk(root: Path, failures: list[Failure]) -> list[Path]:
    """Every entry below `root` that is not a real folder, in path order; links are not followed."""

    def unreadable(folder: Path, exc: OSError) -> None:
        failures.append(Failure(folder.relative_to(root).as_posix() + "/", f"cannot read folder: {exc.strerror}"))

    found = [Path(entry.path) for entry in visible_entries(root, unreadable)]
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _folder_link(path: Path, root: Path, settings: IngestSettings) -> str | None:
    """Why a link to a folder is reported, or None to pass over it quietly."""
    try:
        resolve_inside(path, root, settings.follow_links)
    except Refused as exc:
        return str(exc)
    return None  # allowed and inside: its target is scanned under its own path


def scan_folder(root: Path, settings: IngestSettings) -> tuple[list[SourceItem], list[Failure]]:
    """Hash every admissible file under `root`; refused files come back as failures with a reason."""
    root = Path(root)
    if not root.exists():
        raise UserInputError(f"{root} does not exist; give the folder holding your documents")
    if not root.is_dir():
        raise UserInputError(f"{root} is not a folder; give the folder holding your documents")
    items: list[SourceItem] = []
    failures: list[Failure] = []
    for path in _walk(root, failures):
        rel = path.relative_to(root)
        doc_id = rel.as_posix()
        if path.is_symlink() and path.is_dir():
            reason = _folder_link(path, root, settings)
            if reason:
                failures.append(Failure(doc_id, reason))
            continue
        try:
            data = read_checked(path, root, settings)
        except ParseError as exc:
            failures.append(Failure(doc_id, str(exc)))
            continue
        suffix = path.suffix.lower()
        content_hash = _hash(data)
        items.append(
            SourceItem(
                doc_id=doc_id,
                doc_type=DOC_TYPES.get(suffix, suffix.lstrip(".")),
                size=len(data),
                content_hash=content_hash,
                category=rel.parts[0] if len(rel.parts) > 1 else "",
                load=partial(_load, path, root, settings, content_hash),
            )
        )
    return items, failures


def _load(path: Path, root: Path, settings: IngestSettings, content_hash: str) -> ParsedDocument:
    # Read again through every check: the file may have been replaced (by a link, say) since the scan.
    data = admit_file(path, root, settings)
    if _hash(data) != content_hash:
        raise ParseError("file changed while it was being ingested; run the ingest again")
    return parse_file(data, path)


def beir_items(corpus_path: Path) -> list[SourceItem]:
    """One item per line of a BEIR corpus.jsonl ({"_id", "title", "text"})."""
    items: list[SourceItem] = []
    with open(corpus_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                doc_id, title, text = str(row["_id"]), row.get("title") or "", row.get("text") or ""
            except (json.JSONDecodeError, KeyError) as exc:
                raise UserInputError(f"{corpus_path}:{number} is not a BEIR corpus line ({exc})") from exc
            data = f"{title}\n{text}".encode()
            items.append(
                SourceItem(
                    doc_id=doc_id,
                    doc_type="txt",
                    size=len(data),
                    content_hash=_hash(data),
                    category="",
                    load=partial(_plain_document, title, text),
                )
            )
    return items


def _plain_document(title: str, text: str) -> ParsedDocument:
    return ParsedDocument(title, [Section("", text)])
