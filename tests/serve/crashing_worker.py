"""Stands in for a llama.cpp build that dies natively (SIGILL / SIGSEGV), or hangs.

A real native crash cannot be produced on demand on every machine, so these wrap the real model
process (serve/engines/llama_worker.py) and kill it with the signal such a build dies of, at the
moment that build would: in the start-up self-check, or on a request. Everything else is the real
llama.cpp worker.
"""

from __future__ import annotations

import os
import signal
import time

from serve.engines.llama_worker import worker_main

TRIGGER = "crash-the-model-process"  # lower case: not a name the hand-off check would look up


class _Tripwire:
    """The worker's pipe, dying with `sig` when a request's messages contain TRIGGER (or hanging)."""

    def __init__(self, conn, sig: int | None):
        self.conn, self.sig = conn, sig

    def recv(self):
        op, payload = self.conn.recv()
        if op == "chat" and any(TRIGGER in m["content"] for m in payload["messages"]):
            if self.sig is None:
                time.sleep(3600)
            os.kill(os.getpid(), self.sig)
        return op, payload

    def send(self, message):
        self.conn.send(message)


def crash_at_start(mode: str, conn, spec) -> None:
    """mode "always": every start dies of SIGILL; "unless_safe": only starts with default parameters do."""
    if mode == "always" or (mode == "unless_safe" and not spec.get("safe")):
        os.kill(os.getpid(), signal.SIGILL)
    worker_main(conn, spec)


def crash_on_trigger(sig: int | None, conn, spec) -> None:
    """A working model process that dies of `sig` (or hangs, for None) on a TRIGGER request."""
    worker_main(_Tripwire(conn, sig), spec)
