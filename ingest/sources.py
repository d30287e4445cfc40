"""Where documents come from: a folder of files, or a BEIR `corpus.jsonl` (for evaluation).

Scanning reads every file once to hash it; parsing happens later and only for documents whose
hash changed, so an unchanged knowledge base costs no parsing and no embedding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest.parsers import PARSERS, ParsedDocument, Section, parse_file
from ragtune.errors import UserInputError
from ragtune.settings import IngestSettings

DOC_TYPES = {".markdown": "md", ".htm": "html"}
PARSER_VERSION = "1"  # bump when parsing changes, so every document is re-read


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


def scan_folder(root: Path, settings: IngestSettings) -> tuple[list[SourceItem], list[Failure]]:
    root = Path(root)
    if not root.exists():
        raise UserInputError(f"{root} does not exist; give the folder holding your documents")
    if not root.is_dir():
        raise UserInputError(f"{root} is not a folder; give the folder holding your documents")
    allowed = {e.lower() for e in settings.extensions} & set(PARSERS)
    limit = int(settings.max_file_mb * 1024 * 1024)
    items: list[SourceItem] = []
    failures: list[Failure] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue  # hidden files (.DS_Store, .git) are not documents
        doc_id = rel.as_posix()
        suffix = path.suffix.lower()
        if suffix not in allowed:
            failures.append(Failure(doc_id, f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(allowed))}"))
            continue
        size = path.stat().st_size
        if size > limit:
            failures.append(Failure(doc_id, f"file is {size / 1048576:.1f} MB, over the {settings.max_file_mb:g} MB limit (ingest.max_file_mb)"))
            continue
        if size == 0:
            failures.append(Failure(doc_id, "file is empty"))
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            failures.append(Failure(doc_id, f"cannot read file: {exc.strerror}"))
            continue
        category = rel.parts[0] if len(rel.parts) > 1 else ""
        items.append(
            SourceItem(
                doc_id=doc_id,
                doc_type=DOC_TYPES.get(suffix, suffix.lstrip(".")),
                size=size,
                content_hash=_hash(data),
                category=category,
                load=lambda p=path: parse_file(p.read_bytes(), p),
            )
        )
    return items, failures


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
                    load=lambda t=title, x=text: ParsedDocument(t, [Section("", x)]),
                )
            )
    return items
