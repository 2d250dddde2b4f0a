"""What both proxy servers (gRPC and HTTP) share: their listening socket, and serving until
SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from typing import Protocol, TypeVar

logger = logging.getLogger("centrifugo_types")


class _Server(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...


S = TypeVar("S", bound=_Server)


def check_reuse_port(reuse_port: bool) -> None:
    """Fail early where ``SO_REUSEPORT`` does not exist (Windows)."""
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port needs SO_REUSEPORT, which this platform lacks")


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port=0``: a free one), not yet listening.

    It is created as ``IPPROTO_TCP``, not with the default protocol 0: asyncio (and grpclib)
    turn Nagle's algorithm off (``TCP_NODELAY``) only on accepted sockets whose protocol says
    TCP. With Nagle left on, the second of a reply's small writes waits for the peer's
    delayed ACK: ~40 ms a call on Linux. ``reuse_port`` sets ``SO_REUSEPORT``, so that several
    processes can serve one port (the kernel spreads connections over them).
    """
    check_reuse_port(reuse_port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def serve_until_signalled(server: S, started: Callable[[S], None] | None = None) -> None:
    """Start ``server``, serve until SIGTERM or SIGINT, then close it (gracefully: that is the
    server's ``close``). ``started`` is called once it listens."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        if started is not None:
            started(server)
        await stop.wait()
        logger.info("shutting down")
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await server.close()
