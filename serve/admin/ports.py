"""What the admin API needs from ingestion, as a Protocol: serve/ never imports ingest/.

`ragtune serve` (cli/main.py) passes `ingest.service.FolderIngester`, which satisfies it; tests
compose the same real implementation. Without one, the routes that write documents or start an
ingest answer 503 and say why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ragtune.embedding import Embedder
from ragtune.index import KnowledgeIndex
from ragtune.progress import Progress


class Ingester(Protocol):
    def check_upload(self, doc_id: str, data: bytes) -> None:
        """Refuse a file ingestion would not read, before anything is written: a type not in
        `ingest.extensions` (UnsupportedFileType), over `ingest.max_file_mb` (PayloadTooLarge), or
        content that is not what its extension says, a zip bomb, undecodable text (UploadRefused).
        The message says what is wrong; the caller names the file."""
        ...

    def run(self, source: Path, *, embedder: Embedder, index: KnowledgeIndex, progress: Progress) -> dict[str, Any]:
        """Ingest the folder into a new index version (published atomically) and return the outcome:
        {"version", "previous", "published", "added": [doc_id], "updated": [...], "removed": [...],
        "unchanged": int, "failed": [{"doc", "reason"}], "kept_stale": [...], "chunks_total",
        "chunks_embedded", "seconds"}. Raises a RagtuneError when nothing could be published."""
        ...
