"""The listening socket, bound before anything slow happens.

`ragtune serve` binds its address first, so a busy port or a wrong host fails at once with one
line that says what to do, instead of after the models have loaded. The socket is made the way
uvicorn makes its own and handed to it, so no other process can take the port in between. Only
the standard library is imported here: the CLI calls this before importing the serving stack.
"""

from __future__ import annotations

import errno
import socket

from ragtune.errors import ConfigError


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening address, bound now: a busy port fails at once, before minutes of model loading.

    The socket is made the way uvicorn makes its own (IPv6 for a host with a colon, SO_REUSEADDR) and
    handed to it, so no other process can take the port between this check and serving.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        where = f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot listen on {where}: the address is already in use (another server, or an earlier "
                "`ragtune serve` still running); stop it or choose another port (--port, server.port)"
            ) from None
        if exc.errno == errno.EACCES:
            raise ConfigError(
                f"cannot listen on {where}: permission denied (ports below 1024 need privileges); choose a port "
                "above 1023 (--port, server.port)"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            raise ConfigError(
                f"cannot listen on {where}: {host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of "
                "its interfaces (--host, server.host)"
            ) from None
        raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
