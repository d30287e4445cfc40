"""Turns at a model that answers one request at a time (the embedded llama.cpp process).

Requests wait for their turn on the event loop, not in a worker thread: a thread parked on the
model's lock would hold one of the few threads that retrieval needs too, so a queue of answers
would stall every other request. The wait is bounded twice: at most `limit` requests wait (one
more is refused at once) and none waits longer than `timeout_s`. A refused request raises
`ModelBusy`, a 503 with Retry-After; in auto answer mode the chat answers it extractively instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ragtune.errors import ModelUnavailable


class ModelBusy(ModelUnavailable):
    """Every turn at the model is taken and the queue is full, or the wait ran out."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class GenerationQueue:
    def __init__(self, limit: int, timeout_s: float):
        self.limit = limit
        self.timeout_s = timeout_s
        self.waiting = 0
        self._slot: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        # One per event loop: an engine outlives the loop of a test client or an evaluation run.
        loop = asyncio.get_running_loop()
        if self._slot is None or self._slot[0] is not loop:
            self._slot = (loop, asyncio.Semaphore(1))
        return self._slot[1]

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        semaphore = self._semaphore()
        if semaphore.locked() and self.waiting >= self.limit:
            raise ModelBusy(
                f"the model is busy: {self.waiting} answers are already waiting for it (llm.queue_limit)",
                retry_after_s=max(1, round(self.timeout_s / 4)),
            )
        self.waiting += 1
        try:
            async with asyncio.timeout(self.timeout_s):  # cancels the acquire cleanly (wait_for can leak it on 3.11)
                await semaphore.acquire()
        except TimeoutError:
            raise ModelBusy(
                f"the model is busy: no turn within {self.timeout_s:g} s (llm.queue_timeout_s)",
                retry_after_s=max(1, round(self.timeout_s / 4)),
            ) from None
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            semaphore.release()
