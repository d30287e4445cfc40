"""Background jobs (ingests, uploads, replaces, deletes) in the shared store.

One row per job. `slot` holds "ingest" while a job that writes the index is queued or running and
is cleared when it ends; its UNIQUE constraint is what lets one ingest run at a time across
processes and replicas (a second claim inserts nothing and reads back the holder). A job's owner
(host, pid, app instance) and a heartbeat let the next process tell a job whose process died from
one still running elsewhere: such a job is marked failed ("interrupted") and its slot freed.
Portable SQL only (SQLite and Postgres); the table is made by the store's migrations
(serve/store/migrations), timestamps in unix seconds as DOUBLE PRECISION.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from serve.store.db import Database

INGEST_SLOT = "ingest"
COLUMNS = (
    "job_id, kind, status, detail, done, total, stage, request, result, owner, created_at, started_at, finished_at, heartbeat_at"
)


@dataclass(frozen=True)
class Owner:
    """Who runs a job: this host, this process, this app instance (a process may build several apps)."""

    host: str
    pid: int
    instance: str

    @classmethod
    def here(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.instance}"

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class JobStore:
    def __init__(self, db: Database):
        self.db = db

    def ensure(self) -> None:
        """The jobs table is there (the store's migrations)."""
        self.db.migrate()

    # ---- creating and claiming --------------------------------------------------------------
    def claim(self, kind: str, owner: Owner, request: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
        """Insert a queued job holding the ingest slot: (the job, True), or (the job holding it, False)."""
        job_id = uuid.uuid4().hex
        now = time.time()
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO jobs (job_id, kind, status, slot, owner, request, created_at, heartbeat_at) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?) ON CONFLICT (slot) DO NOTHING",
                (job_id, kind, INGEST_SLOT, str(owner), json.dumps(request or {}), now, now),
            )
            rows = tx.execute(f"SELECT {COLUMNS} FROM jobs WHERE slot = ?", (INGEST_SLOT,))
        if not rows:  # the holder finished between the two statements: try again
            return self.claim(kind, owner, request)
        job = _job(rows[0])
        return job, job["job_id"] == job_id

    def holder(self) -> dict[str, Any] | None:
        rows = self.db.execute(f"SELECT {COLUMNS} FROM jobs WHERE slot = ?", (INGEST_SLOT,))
        return _job(rows[0]) if rows else None

    # ---- a job's life -------------------------------------------------------------------------
    def start(self, job_id: str) -> None:
        now = time.time()
        self.db.execute(
            "UPDATE jobs SET status = 'running', started_at = ?, heartbeat_at = ? WHERE job_id = ? AND status = 'queued'",
            (now, now, job_id),
        )

    def progress(self, job_id: str, done: int, total: int, stage: str, detail: str | None = None) -> None:
        self.db.execute(
            "UPDATE jobs SET done = ?, total = ?, stage = ?, detail = COALESCE(?, detail), heartbeat_at = ? "
            "WHERE job_id = ? AND status = 'running'",
            (done, total, stage, detail, time.time(), job_id),
        )

    def heartbeat(self, job_id: str) -> None:
        self.db.execute("UPDATE jobs SET heartbeat_at = ? WHERE job_id = ? AND status = 'running'", (time.time(), job_id))

    def finish(self, job_id: str, status: str, detail: str, result: dict[str, Any] | None = None) -> None:
        """End a job (succeeded or failed) and free the ingest slot; a job already ended stays as it was."""
        now = time.time()
        self.db.execute(
            "UPDATE jobs SET status = ?, detail = ?, result = ?, slot = NULL, finished_at = ?, heartbeat_at = ? "
            "WHERE job_id = ? AND status IN ('queued', 'running')",
            (status, detail, json.dumps(result) if result is not None else None, now, now, job_id),
        )

    def reap(self, owner: Owner, stale_s: float) -> list[str]:
        """Mark failed ("interrupted") the active jobs whose process is gone; their ids.

        A job is gone when its owner ran on this host and that process is dead, or is this very
        process under another app instance (a restarted container runs as the same pid), or when
        its heartbeat is older than `stale_s` (a process on another host that stopped beating).
        """
        rows = self.db.execute(f"SELECT {COLUMNS} FROM jobs WHERE status IN ('queued', 'running')")
        now = time.time()
        reaped = []
        for row in rows:
            job = _job(row)
            other = Owner.parse(job["owner"])
            dead_here = (
                other is not None
                and other.host == owner.host
                and (not pid_alive(other.pid) or (other.pid == owner.pid and other.instance != owner.instance))
            )
            if dead_here or now - job["heartbeat_at"] > stale_s:
                reason = "its process stopped" if dead_here else f"no heartbeat for {now - job['heartbeat_at']:.0f} s"
                self.finish(job["job_id"], "failed", f"interrupted: {reason} before the job ended; run it again")
                reaped.append(job["job_id"])
        return reaped

    # ---- reading ------------------------------------------------------------------------------
    def get(self, job_id: str) -> dict[str, Any] | None:
        rows = self.db.execute(f"SELECT {COLUMNS} FROM jobs WHERE job_id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def recent(self, limit: int = 50, kind: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self.db.execute(f"SELECT {COLUMNS} FROM jobs {where} ORDER BY created_at DESC LIMIT ?", (*params, limit))
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        return {status: int(n) for status, n in self.db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")}

    def last_finished(self) -> dict[str, Any] | None:
        rows = self.db.execute(f"SELECT {COLUMNS} FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1")
        return _job(rows[0]) if rows else None


def _job(row: tuple) -> dict[str, Any]:
    (job_id, kind, status, detail, done, total, stage, request, result, owner, created, started, finished, beat) = row
    return {
        "job_id": job_id,
        "kind": kind,
        "status": status,
        "progress": {"done": done, "total": total, "stage": stage},
        "detail": detail,
        "request": json.loads(request or "{}"),
        "result": json.loads(result) if result else None,
        "owner": owner,
        "created_at": created,
        "started_at": started,
        "finished_at": finished,
        "heartbeat_at": beat,
    }
