"""CORS driven by the keys: which browser origins may call the API, and with which key.

A widget key lists the origins of the sites it is embedded in; `server.cors_origins` adds origins
allowed with any key. The middleware answers preflights for every origin some key (or the global
list) allows, and adds the CORS headers to every answer sent to such an origin, errors included,
so a browser can show a 401, 413 or 429. Whether the key actually presented may be used from the
request's origin is decided per request by `OriginPolicy.allows` (in `serve/auth.py`): a widget
key from one shop used on another shop's page is refused 403.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers, MutableHeaders

from ragtune.settings import AuthSettings

ALLOW_METHODS = "GET, POST, PUT, DELETE"
ALLOW_HEADERS = "Authorization, Content-Type, X-API-Key, X-Request-ID"
EXPOSE_HEADERS = "Retry-After, WWW-Authenticate, X-Request-ID"
PREFLIGHT_MAX_AGE_S = "600"


def _norm(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class OriginPolicy:
    def __init__(self, auth: AuthSettings, cors_origins: list[str]):
        self.global_origins = frozenset(_norm(o) for o in cors_origins)
        self.key_origins = frozenset(o for key in auth.widget_keys for o in key.origins)

    @staticmethod
    def _in(origin: str, allowed: frozenset[str]) -> bool:
        return "*" in allowed or origin in allowed

    def known(self, origin: str) -> bool:
        """Some key (or the global list) may be used from this origin: CORS headers are sent to it."""
        origin = _norm(origin)
        return self._in(origin, self.global_origins) or self._in(origin, self.key_origins)

    def allows(self, key_origins: frozenset[str], origin: str, host: str | None, trusted_host: bool = False) -> bool:
        """Whether a request from `origin`, with a key allowing `key_origins`, may go ahead. Host and
        Origin agreeing make a request same-origin only under a trusted Host (serve/hosts.py): both
        are the page's to choose when its DNS name points at this server."""
        origin = _norm(origin)
        if trusted_host and host and origin.partition("://")[2] == host.lower():
            return True  # same origin: a page this server itself serves (/demo, /admin)
        return self._in(origin, self.global_origins) or self._in(origin, key_origins)


class KeyedCORSMiddleware:
    """Pure ASGI: preflights answered here, CORS headers added to answers for known origins."""

    def __init__(self, app, policy: OriginPolicy, error_content: Callable[[str, int, str, str], dict[str, Any]]):
        self.app = app
        self.policy = policy
        self.error_content = error_content

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        known = self.policy.known(origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(scope, send, origin, known)
            return
        if not known:
            await self.app(scope, receive, send)  # the key check refuses it if it carries a key
            return

        async def send_with_cors(message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = origin
                out["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope, send, origin: str, known: bool) -> None:
        if known:
            status, body = 204, b""
            headers = [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE_S.encode()),
                (b"vary", b"Origin"),
            ]
        else:
            status = 403
            message = (
                f"origin {origin} may not call this API: add it to a widget key's origins (auth.widget_keys) "
                "or to server.cors_origins"
            )
            body = json.dumps(self.error_content(scope.get("path", ""), 403, message, "Forbidden")).encode()
            headers = [(b"content-type", b"application/json"), (b"vary", b"Origin")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
