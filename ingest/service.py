"""The ingestion side of the admin API: what `ragtune serve` hands the app as its `ingester`.

It satisfies `serve.admin.ports.Ingester` by shape (serve never imports ingest): `check_upload`
runs the upload checks of `ingest.uploads`, `run` scans the knowledge folder and runs the same
pipeline as `ragtune ingest`, with the app's embedder and index, reporting progress to the job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.pipeline import IngestReport, run_ingest
from ingest.sources import scan_folder
from ingest.uploads import check_upload
from ragtune.embedding import Embedder
from ragtune.index import KnowledgeIndex
from ragtune.progress import Progress
from ragtune.settings import Settings


class FolderIngester:
    def __init__(self, settings: Settings):
        self.settings = settings

    def check_upload(self, doc_id: str, data: bytes) -> None:
        check_upload(doc_id, data, self.settings.ingest)

    def run(self, source: Path, *, embedder: Embedder, index: KnowledgeIndex, progress: Progress) -> dict[str, Any]:
        items, failures = scan_folder(source, self.settings.ingest)
        report = run_ingest(self.settings, items, failures, source=str(source), embedder=embedder, index=index, progress=progress)
        return outcome(report)


def outcome(report: IngestReport) -> dict[str, Any]:
    """The report as JSON: document ids by what happened to them, failures with their reasons."""
    return report.summary() | {
        "added": report.added,
        "updated": report.updated,
        "removed": report.removed,
        "unchanged": len(report.unchanged),
        "failed": [{"doc": f.doc_id, "reason": f.reason} for f in report.failed],
        "kept_stale": report.kept_stale,
        "flagged": [{"doc": doc_id} | found for doc_id, found in report.flagged.items()],
    }
