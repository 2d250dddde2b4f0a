"""The listening socket both proxy servers (gRPC and HTTP) start from."""

from __future__ import annotations

import socket


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
