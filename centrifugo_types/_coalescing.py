"""A grpclib server whose connections write the frames of one event-loop iteration at once.

grpclib writes each batch of HTTP/2 frames as soon as h2 makes it: the headers, the message
and the trailers of every reply are a ``send()`` system call and a TCP segment each. On a busy
connection many replies are made in one iteration of the event loop; sending them together at
the start of the next iteration costs one system call instead of dozens. The bytes and their
order are unchanged: only the moment they reach the kernel moves, by one loop iteration.

This needs one private detail of grpclib: ``Server._protocol_factory``, the factory its
``start()`` gives the event loop for every connection. :func:`compatible` checks it is still
there; where it is not, :func:`server` warns and returns plain grpclib's server (unchanged
behaviour, one system call a frame batch). tests/test_grpc_server.py fails when it is gone.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Collection
from typing import Any, cast

import grpclib.server

logger = logging.getLogger("centrifugo_types.grpc")


def compatible() -> bool:
    """Whether grpclib still makes its connections' protocol in ``Server._protocol_factory``."""
    factory = getattr(grpclib.server.Server, "_protocol_factory", None)
    if not callable(factory):
        return False
    try:
        return "self._protocol_factory" in inspect.getsource(grpclib.server.Server.start)
    except (OSError, TypeError):  # no source (a frozen build): trust the attribute
        return True


def server(handlers: Collection[Any]) -> grpclib.server.Server:
    """A grpclib server over ``handlers`` whose connections coalesce their writes; plain
    grpclib's server, with a warning, if its internals changed (see the module)."""
    if compatible():
        return _Server(handlers)
    logger.warning(
        "grpclib %s no longer has Server._protocol_factory: replies are written "
        "without coalescing (correct, slower under load)",
        getattr(grpclib, "__version__", "?"),
    )
    return grpclib.server.Server(handlers)


class _Server(grpclib.server.Server):
    def _protocol_factory(self) -> Any:
        return _CoalescingProtocol(super()._protocol_factory())


class _CoalescingProtocol(asyncio.Protocol):
    """grpclib's protocol for one connection, handed a :class:`CoalescingTransport`."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self._protocol = protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not subclass
        # asyncio.Transport.
        coalescing = CoalescingTransport(cast(asyncio.Transport, transport))
        self._protocol.connection_made(coalescing)

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self._protocol.eof_received()

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()


class CoalescingTransport(asyncio.Transport):
    """Gathers the writes of one event-loop iteration into one write of ``transport``."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def _flush(self) -> None:
        pending = self._pending
        if pending:
            self._pending = []
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()
