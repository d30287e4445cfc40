"""Which `Host` names the API answers under (DNS rebinding), and whether a Host may be trusted.

A page on attacker.example whose DNS name is re-pointed at 127.0.0.1 makes the browser send
`Host: attacker.example:8000` with `Origin: http://attacker.example:8000`, same-origin by every
header. So:
- without API keys the server answers loopback names only (localhost, *.localhost, 127.0.0.1,
  [::1]); with keys, the names in `server.allowed_hosts` when it is set (any name when it is not);
  every other Host gets 400 before a route runs. `/healthz` and `/readyz` answer under any name,
  for probes that call the pod's address;
- a browser request counts as same-origin (the pages the server serves itself: /admin, /demo) only
  when its Host is a loopback name or one of `server.allowed_hosts` (`trusted_host`), never
  because Host and Origin agree.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from typing import Any

from starlette.datastructures import Headers

from serve.clients import IN_PROCESS_PEER

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
OPEN_PATHS = ("/healthz", "/readyz")
# Starlette's TestClient sends this Host; it is trusted only from the in-process test peer.
TEST_HOST = "testserver"


def host_name(host: str | None) -> str:
    """'Example.com:8000' -> 'example.com', '[::1]:8000' -> '::1'."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


class HostPolicy:
    def __init__(self, allowed_hosts: Iterable[str], keyless: bool):
        self.allowed = frozenset(host_name(h) for h in allowed_hosts)
        self.keyless = keyless

    @staticmethod
    def _loopback(name: str) -> bool:
        if name in LOOPBACK_NAMES or name.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(name).is_loopback  # 127.0.0.2 is; "127.attacker.example" is a name, not an address
        except ValueError:
            return False

    def trusted_host(self, host: str | None, peer: str | None) -> bool:
        """A Host under which the server's own pages are same-origin."""
        name = host_name(host)
        if not name:
            return False
        return self._loopback(name) or name in self.allowed or (name == TEST_HOST and peer == IN_PROCESS_PEER)

    def answers(self, host: str | None, peer: str | None) -> bool:
        """Whether a request under `host` is served at all."""
        if self.keyless or self.allowed:
            return self.trusted_host(host, peer)
        return True


class HostCheckMiddleware:
    """Pure ASGI: 400 for a Host the policy does not answer under, in the API's error shape."""

    def __init__(self, app, policy: HostPolicy, error_content: Callable[[str, int, str, str], dict[str, Any]]):
        self.app = app
        self.policy = policy
        self.error_content = error_content

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host")
        peer = scope["client"][0] if scope.get("client") else None
        if self.policy.answers(host, peer):
            await self.app(scope, receive, send)
            return
        if self.policy.keyless:
            why = "without API keys the server answers loopback names only (localhost, 127.0.0.1, [::1])"
        else:
            why = "add it to server.allowed_hosts if it is this API's public name"
        body = json.dumps(
            self.error_content(scope.get("path", ""), 400, f"host {host or '(none)'!r} is not served: {why}", "DisallowedHost")
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})
