"""Who is on the other end: the client address a rate limit counts, and whether a peer is loopback.

The socket's peer is the client, unless the peer is a reverse proxy listed in
`server.trusted_proxies`: then X-Forwarded-For is read from the right (the hop the proxy saw
last) past every trusted proxy, so a client cannot pick its own address by sending the header
itself through a proxy that appends to it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from starlette.requests import HTTPConnection

log = logging.getLogger("ragtune.serve")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Starlette's TestClient reports this peer; it is a call inside the same process.
IN_PROCESS_PEER = "testclient"


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1, a Unix socket (no host) or an in-process test client."""
    if host is None or host in (IN_PROCESS_PEER, "localhost"):
        return True
    ip = _ip(host)
    if ip is None:
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback  # ::ffff:127.0.0.1 too


def peer(conn: HTTPConnection) -> str | None:
    return conn.client.host if conn.client else None


class ClientAddresses:
    def __init__(self, trusted_proxies: Iterable[str]):
        self.trusted = parse_networks(trusted_proxies)
        self._warned = False

    def _is_trusted(self, host: str) -> bool:
        ip = _ip(host)
        return ip is not None and any(ip in net for net in self.trusted)

    def address(self, conn: HTTPConnection) -> str:
        """The client address to count: the peer, or the forwarded one when the peer is a trusted proxy."""
        host = peer(conn) or "local"
        forwarded = conn.headers.get("x-forwarded-for")
        relayed = forwarded or conn.headers.get("x-real-ip") or conn.headers.get("forwarded")
        if not relayed:
            return host
        if not forwarded or not self._is_trusted(host):
            if is_loopback(host) and not self._warned and host != IN_PROCESS_PEER and not self._is_trusted(host):
                self._warned = True
                log.warning(
                    "requests arrive through a proxy at %s that is not in server.trusted_proxies: all of its clients "
                    "share one per-address rate limit; list the proxy there",
                    host,
                )
            return host
        for hop in reversed([h.strip() for h in forwarded.split(",")]):
            if _ip(hop) is None:
                return host  # a malformed chain: fall back to the proxy itself rather than trust it
            if not self._is_trusted(hop):
                return hop
        return host
