"""Access control: who may call which route, by API key.

Two kinds of key (settings `auth`): widget keys open the chat routes, from their own origins only;
admin keys open everything. A request carries its key as `Authorization: Bearer <key>` (or
`X-API-Key: <key>`); the key is hashed and compared, in constant time, against the SHA-256 of every
configured key (the settings keep nothing else). The caller becomes `request.state.principal`.

With no key configured the API is open, but only to loopback clients talking to it directly (the
principal is then `local`), for chat and the read-only admin routes: `run_server` refuses to listen
anywhere else, a request from another address, relayed by a proxy, or under a Host that is not a
loopback name (serve/hosts.py) is refused, and the admin routes that write (uploads, deletes,
ingests, rollbacks, deploys) always need an admin key. Routers are wired in `create_app` with
`dependencies=CHAT_ACCESS` (`require_chat_access` plus the request limit) for the chat routes and
`dependencies=ADMIN_ACCESS` (`require_admin`) for the admin API.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Request

from ragtune.errors import ConfigError, RagtuneError
from ragtune.settings import KEY_ADVICE, Settings
from serve.clients import IN_PROCESS_PEER, is_loopback, peer
from serve.cors import OriginPolicy
from serve.hosts import HostPolicy

log = logging.getLogger("ragtune.serve")


class Unauthorized(RagtuneError):
    """No key, or not a key this server knows."""

    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(RagtuneError):
    """A valid key used where it may not be: a widget key on an admin route, or from a foreign origin."""

    status_code = 403


@dataclass(frozen=True)
class Principal:
    name: str
    kind: Literal["widget", "admin", "local"]
    origins: frozenset[str] = field(default=frozenset(), repr=False)


LOCAL = Principal("local", "local")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Headers a reverse proxy adds: without keys a request carrying one is not "a loopback client talking to us directly".
PROXY_HEADERS = (
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "x-forwarded",
    "forwarded-for",
    "via",
)


def presented_key(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


class AccessControl:
    """The configured keys (as hashes) and the origin policy; one per app (`app.state.access`)."""

    def __init__(self, settings: Settings):
        auth = settings.auth
        self._keys: list[tuple[bytes, Principal]] = [
            (bytes.fromhex(k.key_sha256 or ""), Principal(k.name, "widget", frozenset(k.origins))) for k in auth.widget_keys
        ] + [(bytes.fromhex(k.key_sha256 or ""), Principal(k.name, "admin")) for k in auth.admin_keys]
        self.origins = OriginPolicy(auth, settings.server.cors_origins)
        self.hosts = HostPolicy(settings.server.allowed_hosts, keyless=not self._keys)
        if self.open and not auth.allow_unauthenticated_loopback:
            raise ConfigError(
                "no API key is configured and auth.allow_unauthenticated_loopback is false: add auth.admin_keys "
                f'or auth.widget_keys (RAGTUNE_AUTH__ADMIN_KEYS=\'[{{"name": "ops", "key": "..."}}]\'); {KEY_ADVICE}'
            )

    @property
    def open(self) -> bool:
        return not self._keys

    def describe(self) -> str:
        if self.open:
            return "no API keys configured: the API is open to loopback clients only (set auth.widget_keys / auth.admin_keys to serve others)"
        widget = [p.name for _, p in self._keys if p.kind == "widget"]
        admin = [p.name for _, p in self._keys if p.kind == "admin"]
        return f"API keys required: {len(widget)} widget key(s) {widget}, {len(admin)} admin key(s) {admin}"

    def identify(self, key: str) -> Principal | None:
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for stored, principal in self._keys:  # every key is compared, so the time says nothing about which matched
            if hmac.compare_digest(digest, stored):
                found = principal
        return found

    def authenticate(self, request: Request, admin: bool) -> Principal:
        if self.open:
            principal = self._local(request)
        else:
            key = presented_key(request)
            if key is None:
                raise Unauthorized("an API key is required: send Authorization: Bearer <key> (or X-API-Key: <key>)")
            found = self.identify(key)
            if found is None:
                raise Unauthorized("the API key is not valid")
            principal = found
        if admin and principal.kind == "widget":
            raise Forbidden(f"widget key {principal.name!r} may only use the chat routes; this one needs an admin key")
        if admin and principal.kind == "local" and request.method not in READ_METHODS:
            # Any local process (or a page a local browser shows) could otherwise rewrite the knowledge base.
            raise Forbidden(
                f"{request.method} {request.url.path} changes the server (documents, index, model) and needs an admin key, "
                "and none is configured: without keys the API serves chat and the read-only admin routes on loopback. "
                f'Add one: RAGTUNE_AUTH__ADMIN_KEYS=\'[{{"name": "ops", "key": "..."}}]\'; {KEY_ADVICE}'
            )
        origin = request.headers.get("origin")
        host = request.headers.get("host")
        trusted = self.hosts.trusted_host(host, peer(request))
        if origin is not None and not self.origins.allows(principal.origins, origin, host, trusted):
            who = f"widget key {principal.name!r}" if principal.kind == "widget" else "this API"
            raise Forbidden(
                f"origin {origin} may not use {who}: add it to the key's origins (auth.widget_keys) or to server.cors_origins"
            )
        request.state.principal = principal
        return principal

    @staticmethod
    def _local(request: Request) -> Principal:
        host = peer(request)
        if not is_loopback(host):
            raise Unauthorized(f"no API keys are configured, so only loopback clients are served, not {host}")
        relayed = next((h for h in PROXY_HEADERS if h in request.headers), None)
        if relayed is not None:
            raise Unauthorized(
                f"no API keys are configured, so requests relayed by a proxy ({relayed}) are not served; configure auth keys"
            )
        return LOCAL


async def require_chat_access(request: Request) -> Principal:
    """A widget or admin key (or the open loopback mode)."""
    return request.app.state.access.authenticate(request, admin=False)


async def require_admin(request: Request) -> Principal:
    """An admin key; a widget key gets 403. Without keys (the open loopback mode) the read-only
    admin routes (GET) are served and the writing ones get 403: they always need an admin key."""
    return request.app.state.access.authenticate(request, admin=True)


def check_bind(settings: Settings, host: str) -> str:
    """Refuse to listen on a non-loopback interface without keys; the start-up line saying which mode."""
    access = AccessControl(settings)
    if access.open and not _loopback_bind(host):
        raise ConfigError(
            f"refusing to listen on {host} without API keys: anyone who can reach it could use the API. "
            f"Listen on 127.0.0.1, or configure auth.widget_keys / auth.admin_keys; {KEY_ADVICE}"
        )
    return access.describe()


def _loopback_bind(host: str) -> bool:
    return bool(host) and host != IN_PROCESS_PEER and is_loopback(host)
