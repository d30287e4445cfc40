"""The parent side of the llama.cpp model process: start, self-check, requests, crashes, restarts.

`ModelProcess` owns one child (serve/engines/llama_worker.py). Starting it is the self-check: the
child loads the model and decodes a multi-token prompt before it says ready. If the child dies
natively (a signal, not a Python error), it is started once more with safe parameters (no extra
CPU buffer types); if that dies too, the model is marked unavailable with one clear reason and is
not retried (a deterministic crash would only crash again), and the server answers extractively.

A child that dies during a request makes that request fail with `ModelUnavailable` (a 503) and is
started again, with the parameters that worked, by the next request. A request that outlives
`llm.timeout_s` has its child killed the same way.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from ragtune.errors import ModelUnavailable

log = logging.getLogger("ragtune.serve")

Worker = Callable[[Any, dict[str, Any]], None]


class WorkerDied(Exception):
    """The child process ended without an answer (a native crash, a kill, an exit)."""


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if name == "SIGILL":
            return (
                "killed by SIGILL (illegal instruction): this llama.cpp build uses CPU instructions this machine "
                "does not run; rebuild it portable with `bash scripts/setup.sh`"
            )
        return f"killed by {name}"
    return f"exited with status {exitcode}"


class ModelProcess:
    def __init__(self, spec: dict[str, Any], worker: Worker, start_timeout_s: float, request_timeout_s: float):
        self.spec = spec
        self.worker = worker
        self.start_timeout_s = start_timeout_s
        self.request_timeout_s = request_timeout_s
        self.info: dict[str, Any] | None = None  # the last self-check's figures
        self.safe: bool | None = None  # which parameters passed the self-check (None: not yet started)
        self.failed: str | None = None  # set when both parameter sets crashed: not retried
        self.restarts = 0
        self._proc: Any = None
        self._conn: Any = None
        self._lock = threading.RLock()  # one request at a time: the model has one context

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> dict[str, Any]:
        """Start the child (if it is not running) and return its self-check figures."""
        info = self.info
        if info is not None and self.alive:  # without the lock: a readiness probe must not wait for a generation
            return info
        with self._lock:
            if self.alive and self.info is not None:
                return self.info
            if self.failed:
                raise ModelUnavailable(self.failed)
            first = bool(self.safe)
            attempts = [first] if first else [False, True]
            crashes = []
            for safe in attempts:
                try:
                    self.info = self._spawn(safe)
                except WorkerDied as exc:
                    crashes.append(f"{'safe' if safe else 'default'} parameters: {exc}")
                    log.warning(
                        "llama.cpp self-check died with %s parameters (%s)%s",
                        "safe" if safe else "default",
                        exc,
                        "; retrying without extra CPU buffer types" if not safe else "",
                    )
                    continue
                if self.safe is None and safe:
                    log.warning(
                        "llama.cpp runs only without extra CPU buffer types (AMX / repacked weights) here: slower, but safe"
                    )
                self.safe = safe
                return self.info
            self.failed = (
                "the llama.cpp model process crashed in its start-up self-check ("
                + "; ".join(crashes)
                + "); answering without the model"
            )
            raise ModelUnavailable(self.failed)  # the caller logs it once, with what happens next

    def _spawn(self, safe: bool) -> dict[str, Any]:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=self.worker, args=(child, self.spec | {"safe": safe}), daemon=True, name="ragtune-llama")
        proc.start()
        child.close()
        try:
            kind, body = self._receive(parent, proc, self.start_timeout_s)
        except WorkerDied:
            self._kill(proc, parent)
            raise
        if kind != "ready":
            self._kill(proc, parent)
            raise ModelUnavailable(f"cannot load GGUF model {self.spec['path']}: {body}")
        self._proc, self._conn = proc, parent
        return body

    def _receive(self, conn, proc, timeout_s: float) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill(proc, conn)
                raise WorkerDied(f"no reply within {timeout_s:g} s (llm.timeout_s); the process was stopped")
            try:
                if conn.poll(min(remaining, 0.5)):
                    return conn.recv()
            except (EOFError, OSError):
                proc.join(5)
                raise WorkerDied(describe_exit(proc.exitcode)) from None
            if not proc.is_alive():
                if conn.poll(0):  # a last message may still be in the pipe
                    try:
                        return conn.recv()
                    except (EOFError, OSError):
                        pass
                raise WorkerDied(describe_exit(proc.exitcode))

    def request(self, op: str, payload: dict[str, Any], on_piece: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Send one request and wait for its result; pieces go to `on_piece` as they arrive."""
        with self._lock:
            if not self.alive:
                if self.info is not None:
                    self.restarts += 1
                    log.warning("restarting the llama.cpp model process (restart %d)", self.restarts)
                self.info = None
                self.start()
            try:
                self._conn.send((op, payload))
                while True:
                    kind, body = self._receive(self._conn, self._proc, self.request_timeout_s)
                    if kind == "piece":
                        if on_piece is not None:
                            on_piece(body)
                    elif kind == "result":
                        return body
                    else:
                        raise ModelUnavailable(f"llama.cpp generation failed: {body}")
            except (WorkerDied, BrokenPipeError, OSError) as exc:
                reason = str(exc) if isinstance(exc, WorkerDied) else describe_exit(self._proc.exitcode)
                self._kill(self._proc, self._conn)
                self._proc = self._conn = None
                log.error("llama.cpp model process died during a request: %s", reason)
                raise ModelUnavailable(
                    f"the llama.cpp model process died during generation ({reason}); it is restarted for the next request"
                ) from None

    @staticmethod
    def _kill(proc, conn) -> None:
        if proc is not None and proc.is_alive():
            proc.kill()
        if proc is not None:
            proc.join(5)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self.alive:
                try:
                    self._conn.send(("close", None))
                    self._proc.join(5)
                except (BrokenPipeError, OSError):
                    pass
            self._kill(self._proc, self._conn)
            self._proc = self._conn = None
            self.info = None
