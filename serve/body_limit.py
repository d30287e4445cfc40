"""A request-body size limit enforced while the body is read, for every route.

A pure ASGI middleware: a Content-Length over the limit is answered 413 before a byte of the
body is read, and a body without one (chunked) is counted as it streams in, so at most one
chunk past the limit is ever held. A path prefix may have a limit of its own (document uploads).
The app's own reaction to the aborted read (FastAPI turns it
into a 400) is replaced by the 413, in the shared error shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyTooLarge(Exception):
    """Raised from `receive` to stop the app reading a body that went over the limit."""


class BodyLimitMiddleware:
    def __init__(
        self,
        app,
        max_bytes: int,
        error_content: Callable[[str, int, str, str], dict[str, Any]],
        setting: str = "server.max_body_mb",
        overrides: Sequence[tuple[str, int, str]] = (),
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.error_content = error_content
        self.setting = setting
        self.overrides = tuple(overrides)  # (path prefix, max bytes, setting name)

    def limit_for(self, path: str) -> tuple[int, str]:
        for prefix, max_bytes, setting in self.overrides:
            if path.startswith(prefix):
                return max_bytes, setting
        return self.max_bytes, self.setting

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes, setting = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > max_bytes:
            await self._reject(scope, send, max_bytes, setting)
            return

        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to the aborted read is replaced by the 413 below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._reject(scope, send, max_bytes, setting)

    async def _reject(self, scope: Scope, send, max_bytes: int, setting: str) -> None:
        limit_mb = max_bytes / 1048576
        message = f"request body is over the {limit_mb:g} MB limit ({setting})"
        body = json.dumps(self.error_content(scope.get("path", ""), 413, message, "PayloadTooLarge")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),  # the rest of the body is not wanted
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects a malformed header itself
    return None
