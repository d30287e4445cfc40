"""A client that stops reading gives its response up: every send must complete within a limit.

A response is written as fast as the client reads it; one that stops reading (50 unread streams
from one address, a slow-read attack) would hold its answer slot (serve/ratelimit.py) and its
connection until the answer slot expired (`limits.stream_ttl_s`, 10 minutes). With this
middleware a send that cannot complete within `limits.stream_send_timeout_s` (the client's
window and the server's buffers are full) ends the response: the route's dependencies unwind,
the slot is freed and the connection is closed.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

log = logging.getLogger("ragtune.serve")


class ClientStalled(Exception):
    """The client did not take a piece of the response within the limit."""


def _stalled(exc: BaseException) -> bool:
    if isinstance(exc, ClientStalled):
        return True
    return any(_stalled(inner) for inner in getattr(exc, "exceptions", ()))  # an exception group from a task group


class SendTimeoutMiddleware:
    def __init__(self, app: Any, timeout_s: float):
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.timeout_s:
            await self.app(scope, receive, send)
            return

        async def timed_send(message) -> None:
            try:
                with anyio.fail_after(self.timeout_s):
                    await send(message)
            except TimeoutError as exc:
                raise ClientStalled(f"the client took nothing for {self.timeout_s:g} s") from exc

        try:
            await self.app(scope, receive, timed_send)
        except BaseException as exc:
            if not _stalled(exc):
                raise
            client = scope.get("client") or ("?", 0)
            log.warning(
                "%s %s: client %s stopped reading the response; closed it after %g s (limits.stream_send_timeout_s)",
                scope.get("method"),
                scope.get("path"),
                client[0],
                self.timeout_s,
            )
