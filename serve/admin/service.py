"""The admin service: documents in the knowledge folder, ingest jobs, index versions, stats.

Every change to the folder (upload, replace, delete) is checked whole before a byte is written,
takes the one ingest slot (a 409 names the running job otherwise), is written atomically, and
starts a re-ingest job that publishes a new index version. Chat keeps answering from the previous
version until the new one is published; the switch is one atomic rename (`KnowledgeIndex.publish`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ragtune.contacts import ContactPolicy
from ragtune.errors import Conflict, NotFoundError, RagtuneError, ServiceUnavailable, UserInputError
from ragtune.index import DocRecord, Snapshot
from ragtune.retriever import Retriever
from ragtune.settings import Settings
from serve.admin.files import KnowledgeFolder, check_doc_id, doc_id_for
from serve.admin.jobs import JobProgress, JobRunner, Outcome, running_conflict
from serve.admin.ports import Ingester
from serve.store import Database
from serve.store.jobs import JobStore, Owner

log = logging.getLogger("ragtune.serve.admin")


class AdminService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        retriever: Retriever,
        ingester: Ingester | None,
        on_job_finished: Callable[[str, float], None] | None = None,
    ):
        self.settings = settings
        self.retriever = retriever
        self.index = retriever.index
        self.ingester = ingester
        self.folder = KnowledgeFolder(Path(settings.ingest.source_dir))
        self.jobs = JobStore(db)
        self.runner = JobRunner(self.jobs, Owner.here(), on_finished=on_job_finished)
        self.contacts = ContactPolicy.from_settings(settings)

    def start(self) -> None:
        """At app start: the jobs table, jobs a killed process left running, its upload leftovers."""
        self.jobs.ensure()
        self.runner.reap()
        for doc_id in self.folder.complete_journals():
            log.warning("placed %s, part of an upload a stopped process had committed but not finished", doc_id)
        for path in self.folder.sweep_temporaries():
            log.warning("removed %s, an upload a stopped process left unfinished", path)

    def close(self, timeout_s: float = 30.0) -> None:
        if not self.runner.wait(timeout_s):
            log.warning("an ingest job is still running at shutdown; the next start marks it interrupted")

    # ---- documents ----------------------------------------------------------------------------
    def documents(self) -> list[dict[str, Any]]:
        manifest = self.index.current_manifest()
        indexed = manifest.documents if manifest else {}
        built = _timestamp(manifest.created_at) if manifest else 0.0
        last = self.jobs.last_finished()
        failed = {f["doc"]: f["reason"] for f in ((last or {}).get("result") or {}).get("failed", [])}
        ran_at = (last or {}).get("started_at") or 0.0
        rows = []
        for file in self.folder.files():
            record = indexed.get(file.doc_id)
            row: dict[str, Any] = {"doc_id": file.doc_id, "size": file.size, "modified_at": file.modified_at, "reason": None}
            row |= {"title": record.title, "doc_type": record.doc_type, "chunks": len(record.chunk_ids)} if record else {}
            if file.doc_id in failed and file.modified_at <= ran_at:
                row |= {"status": "failed", "reason": failed[file.doc_id]}
            elif record is None or record.size != file.size or file.modified_at > built + 1:
                row["status"] = "pending"  # not in the serving version as it is now: the next ingest takes it in
            else:
                row["status"] = "indexed"
            flags = self._flags(record) if record is not None else []
            if row["status"] == "indexed" and flags:
                row |= {"status": "flagged", "reason": _flag_reason(flags)}
            row["flags"] = flags
            rows.append(row)
        present = {r["doc_id"] for r in rows}
        for doc_id, record in indexed.items():
            if doc_id not in present:  # deleted from the folder, still served until the next ingest
                rows.append(
                    {"doc_id": doc_id, "title": record.title, "doc_type": record.doc_type, "chunks": len(record.chunk_ids)}
                    | {
                        "size": record.size,
                        "modified_at": None,
                        "status": "removed",
                        "reason": "file deleted; gone after the next ingest",
                    }
                )
        return sorted(rows, key=lambda r: r["doc_id"])

    def _flags(self, record: DocRecord) -> list[dict[str, str]]:
        """What serving withholds of a document: planted instructions, contacts the settings do not allow."""
        return [{"kind": "instruction", "text": t} for t in record.instructions] + [
            {"kind": "contact", "text": c} for c in self.contacts.not_allowed(record.contacts)
        ]

    def flag_counts(self) -> dict[str, int]:
        """Documents of the serving version with withheld text, by kind (for /metrics)."""
        manifest = self.index.current_manifest()
        counts = {"instruction": 0, "contact": 0}
        for record in (manifest.documents if manifest else {}).values():
            for kind in {f["kind"] for f in self._flags(record)}:
                counts[kind] += 1
        return counts

    def upload(self, files: list[tuple[str, bytes]], folder: str | None = None) -> dict[str, Any]:
        """Add new documents (all of them or none) and start a re-ingest."""
        ingester = self._ingester()
        if not files:
            raise UserInputError("no files: send them in the multipart field `files`")
        planned: dict[str, bytes] = {}
        rejected: list[tuple[str, RagtuneError]] = []
        for name, data in files:
            try:
                doc_id = doc_id_for(name, folder)
                if doc_id in planned:
                    raise UserInputError(f"{doc_id} is sent twice")
                if self.folder.path_for(doc_id).exists():
                    raise Conflict(f"{doc_id} already exists; replace it with PUT /v1/admin/documents/{doc_id}")
                ingester.check_upload(doc_id, data)
                planned[doc_id] = data
            except RagtuneError as exc:
                rejected.append((name, exc))
        if rejected:
            raise _rejection(rejected, len(files))
        return self._change("upload", planned, lambda: self._write_new(planned))

    def _write_new(self, planned: dict[str, bytes]) -> None:
        # Checked again holding the ingest slot: another upload may have added one since the first look.
        taken = [doc_id for doc_id in planned if self.folder.path_for(doc_id).exists()]
        if taken:
            raise Conflict(f"{', '.join(taken)} appeared meanwhile; replace with PUT /v1/admin/documents/{taken[0]}")
        self.folder.write_all(planned)

    def replace(self, doc_id: str, data: bytes) -> dict[str, Any]:
        ingester = self._ingester()
        doc_id = check_doc_id(doc_id)
        self.folder.existing(doc_id)
        try:
            ingester.check_upload(doc_id, data)
        except RagtuneError as exc:
            raise _rejection([(doc_id, exc)], 1) from exc
        return self._change("replace", {doc_id: data}, lambda: self.folder.write_all({doc_id: data}))

    def delete(self, doc_id: str) -> dict[str, Any]:
        self._ingester()
        doc_id = check_doc_id(doc_id)
        self.folder.existing(doc_id)
        return self._change("delete", {doc_id: b""}, lambda: self.folder.delete(doc_id))

    def ingest(self) -> dict[str, Any]:
        self._ingester()
        return self._change("ingest", {}, lambda: None)

    def _change(self, kind: str, docs: dict[str, bytes], write) -> dict[str, Any]:
        """Take the ingest slot, change the folder, start the re-ingest job."""
        with self._index_lock():  # an ingest outside the API (`ragtune ingest`) holds only the file lock
            pass
        job = self.runner.claim(kind, {"documents": sorted(docs)} if docs else {})
        try:
            write()
        except (OSError, RagtuneError) as exc:
            self.runner.abandon(job, f"the knowledge folder was not changed: {exc}")
            if isinstance(exc, RagtuneError):
                raise
            raise ServiceUnavailable(f"cannot write to the knowledge folder {self.folder.root}: {exc}") from exc
        return self.runner.launch(job, lambda progress: self._run_ingest(kind, sorted(docs), progress))

    def _run_ingest(self, kind: str, doc_ids: list[str], progress: JobProgress) -> Outcome:
        assert self.ingester is not None
        outcome = self.ingester.run(
            self.folder.root, embedder=self.retriever.ingest_embedder(), index=self.index, progress=progress
        )
        failed = {f["doc"]: f["reason"] for f in outcome.get("failed", [])}
        state = f"published {outcome['version']}" if outcome.get("published") else f"nothing changed, {outcome['version']} serves"
        counts = ", ".join(f"{k} {len(outcome.get(k, []))}" for k in ("added", "updated", "removed", "failed"))
        own_failures = [d for d in doc_ids if d in failed]
        if kind in ("upload", "replace") and own_failures:
            reasons = "; ".join(f"{d}: {failed[d]}" for d in own_failures)
            return "failed", f"{reasons} (the rest was ingested: {state}; {counts})", outcome
        return "succeeded", f"{state}: {counts}", outcome

    def _ingester(self) -> Ingester:
        if self.ingester is None:
            raise ServiceUnavailable(
                "this server was started without an ingester, so it cannot change documents or ingest; "
                "`ragtune serve` wires one in (or pass ingester= to create_app)"
            )
        return self.ingester

    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        lock = self.index.lock()
        try:
            lock.__enter__()
        except Conflict as exc:  # held: by a job of ours, or by `ragtune ingest`
            raise running_conflict(self.jobs.holder()) from exc
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    # ---- jobs ---------------------------------------------------------------------------------
    def job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}; GET /v1/admin/jobs lists recent ones")
        return job

    # ---- versions -----------------------------------------------------------------------------
    def versions(self) -> list[dict[str, Any]]:
        current = self.index.current_version()
        rows = []
        for version in self.index.list_versions():
            manifest = self.index.manifest(version)
            rows.append(
                {
                    "version": version,
                    "created_at": manifest.created_at,
                    "documents": len(manifest.documents),
                    "chunks": manifest.chunk_count,
                    "parent": manifest.parent,
                    "embedding_model": manifest.embedding_model,
                    "current": version == current,
                }
            )
        # Newest first. Creation times are whole seconds, so versions built within one second are
        # ordered by descent: a version before the one it was built from.
        parents = {r["version"]: r["parent"] for r in rows}

        def depth(version: str) -> int:  # ancestors kept on disk
            n, current = 0, parents.get(version)
            while current is not None and current in parents and n < len(parents):
                n, current = n + 1, parents[current]
            return n

        return sorted(rows, key=lambda r: (r["created_at"], depth(r["version"]), r["version"]), reverse=True)

    def activate(self, version: str) -> dict[str, Any]:
        """Serve an earlier kept version (a rollback): checked to open, then one atomic switch."""
        known = self.index.list_versions()
        if version not in known:
            raise NotFoundError(f"no index version {version!r}; kept versions: {', '.join(known) or 'none'}")
        manifest = self.index.manifest(version)
        if self.retriever.embedder_for(manifest) is None:
            raise Conflict(
                f"{version} was embedded with {manifest.embedding_model} under other embedding settings than this "
                f"server's ({self.settings.embedding.model}); its vectors cannot be searched"
            )
        holder = self.jobs.holder()
        if holder is not None:
            raise running_conflict(holder)
        with self._index_lock():
            Snapshot(self.index.versions_dir, manifest, self.index.store)  # chunks and BM25 load
            self.index.store.get(manifest.collection)  # and the vectors are there
            self.index.publish(version)
        log.info("index version %s activated", version)
        with contextlib.suppress(RagtuneError):
            self.retriever.snapshot()  # load it now, not during the next answer
        return next(r for r in self.versions() if r["version"] == version)

    # ---- stats --------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        manifest = self.index.current_manifest()
        last = self.jobs.last_finished()
        holder = self.jobs.holder()
        result = (last or {}).get("result") or {}
        return {
            "index_version": manifest.version if manifest else None,
            "index_created_at": manifest.created_at if manifest else None,
            "documents": len(manifest.documents) if manifest else 0,
            "chunks": manifest.chunk_count if manifest else 0,
            "versions_kept": len(self.index.list_versions()),
            "folder": str(self.folder.root),
            "folder_files": len(self.folder.files()),
            "last_ingest": None
            if last is None
            else {k: last[k] for k in ("job_id", "kind", "status", "detail", "started_at", "finished_at")}
            | {"version": result.get("version"), "published": result.get("published")},
            "failures": result.get("failed", []),
            "flagged_documents": sum(1 for r in (manifest.documents if manifest else {}).values() if self._flags(r)),
            "running_job": holder["job_id"] if holder else None,
            "jobs": self.jobs.counts(),
            "checked_at": time.time(),
        }


def _rejection(rejected: list[tuple[str, RagtuneError]], sent: int) -> RagtuneError:
    """One error for the whole request, named after the first refusal, listing every refused file."""
    first = rejected[0][1]
    reasons = "; ".join(f"{name}: {exc}" for name, exc in rejected)
    whole = f" (nothing of the {sent} files was written)" if sent > 1 else " (nothing was written)"
    error = type(first)(f"upload refused: {reasons}{whole}")
    error.extra = {"rejected": [{"file": name, "reason": str(exc), "error": type(exc).__name__} for name, exc in rejected]}
    return error


def _flag_reason(flags: list[dict[str, str]]) -> str:
    instructions = [f["text"] for f in flags if f["kind"] == "instruction"]
    contacts = [f["text"] for f in flags if f["kind"] == "contact"]
    parts = []
    if instructions:
        parts.append(
            f"{len(instructions)} sentence(s) read as instructions to the assistant, withheld from answers: {instructions[0][:120]!r}"
        )
    if contacts:
        parts.append(
            f"contacts not allowed, their sentences withheld: {', '.join(contacts[:5])} "
            "(if they are yours, add them to chat.allowed_contacts or chat.company_domains)"
        )
    return "; ".join(parts)


def _timestamp(created_at: str) -> float:
    try:
        return datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return 0.0
