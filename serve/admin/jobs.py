"""Running index-writing work in the background, one job at a time, with progress in the store.

`claim` takes the store's ingest slot (409 `Conflict` naming the running job when it is taken);
`launch` runs the work in a thread that reports progress and a heartbeat to the job row and ends
it as succeeded or failed with a summary. A job whose process died is marked failed
("interrupted") by `JobStore.reap`, which runs at start and whenever the slot is found taken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ragtune.errors import Conflict, RagtuneError
from serve.store.jobs import JobStore, Owner

log = logging.getLogger("ragtune.serve.admin")

# (status, detail, result) of a finished piece of work
Outcome = tuple[str, str, dict[str, Any] | None]


class JobProgress:
    """`ragtune.progress.Progress` written to the job row: the current stage's {done, total}.

    Writes are throttled (a store write per `interval_s` at most, and every stage start and end),
    so embedding thousands of chunks does not cost thousands of updates.
    """

    def __init__(self, store: JobStore, job_id: str, interval_s: float = 0.25):
        self.store, self.job_id, self.interval_s = store, job_id, interval_s
        self.stage, self.done, self.total = "", 0, 0
        self._written = 0.0

    def start(self, task: str, total: int) -> None:
        self.stage, self.done, self.total = task, 0, total
        self._write(force=True)

    def advance(self, task: str, n: int = 1) -> None:
        if task == self.stage:
            self.done += n
            self._write(force=self.done >= self.total)

    def log(self, message: str) -> None:
        self._write(force=True, detail=message)

    def _write(self, force: bool, detail: str | None = None) -> None:
        now = time.monotonic()
        if force or now - self._written >= self.interval_s:
            self._written = now
            try:
                self.store.progress(self.job_id, self.done, self.total, self.stage, detail)
            except RagtuneError as exc:  # progress is best effort: the store being down must not fail the ingest
                log.warning("job %s: progress not recorded: %s", self.job_id, exc)


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        owner: Owner,
        heartbeat_s: float = 5.0,
        stale_s: float = 60.0,
        on_finished: Callable[[str, float], None] | None = None,
    ):
        self.store, self.owner = store, owner
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.on_finished = on_finished  # (status, seconds) once per job that ran: the metrics
        self._threads: dict[str, threading.Thread] = {}

    def reap(self) -> list[str]:
        reaped = self.store.reap(self.owner, self.stale_s)
        for job_id in reaped:
            log.warning("job %s was left unfinished by a stopped process; marked failed (interrupted)", job_id)
        return reaped

    def claim(self, kind: str, request: dict[str, Any]) -> dict[str, Any]:
        job, ours = self.store.claim(kind, self.owner, request)
        if not ours and self.reap():  # the holder may be a dead process's job
            job, ours = self.store.claim(kind, self.owner, request)
        if not ours:
            raise running_conflict(job)
        return job

    def abandon(self, job: dict[str, Any], detail: str) -> None:
        """End a claimed job that never started (its files could not be written, say)."""
        self.store.finish(job["job_id"], "failed", detail)

    def launch(self, job: dict[str, Any], work: Callable[[JobProgress], Outcome]) -> dict[str, Any]:
        job_id = job["job_id"]
        thread = threading.Thread(target=self._run, args=(job_id, work), name=f"ragtune-job-{job_id[:8]}", daemon=True)
        self._threads[job_id] = thread
        thread.start()
        return self.store.get(job_id) or job

    def _run(self, job_id: str, work: Callable[[JobProgress], Outcome]) -> None:
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job_id, stop), daemon=True)
        status, detail, result = "failed", "", None
        started = time.monotonic()
        try:
            self.store.start(job_id)
            beat.start()
            status, detail, result = work(JobProgress(self.store, job_id))
        except RagtuneError as exc:
            detail = str(exc)
        except Exception as exc:  # the job must end in the store whatever broke; the log keeps the traceback
            log.exception("job %s failed", job_id)
            detail = f"internal error ({type(exc).__name__}); the server log has the details"
        finally:
            stop.set()
            if self.on_finished is not None:  # counted before the store shows the job ended
                self.on_finished(status, time.monotonic() - started)
            try:
                self.store.finish(job_id, status, detail, result)
            except RagtuneError:
                log.exception("job %s: its end could not be recorded", job_id)
            self._threads.pop(job_id, None)

    def _beat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_s):
            try:
                self.store.heartbeat(job_id)
            except RagtuneError as exc:
                log.warning("job %s: heartbeat not recorded: %s", job_id, exc)

    def wait(self, timeout_s: float) -> bool:
        """Wait for running jobs (at shutdown); False if one is still running after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads.values())


def running_conflict(job: dict[str, Any] | None) -> Conflict:
    if job is None:
        return Conflict(
            "an ingest is running outside the API (`ragtune ingest` on this data dir); try again when it has finished",
            job_id=None,
        )
    return Conflict(
        f"an ingest is already running (job {job['job_id']}, {job['kind']}, {job['status']}); "
        f"follow it at GET /v1/admin/jobs/{job['job_id']} and try again when it has finished",
        job_id=job["job_id"],
    )
