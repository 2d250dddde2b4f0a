"""Centrifugo's gRPC proxy (``grpc://`` proxy endpoints) served by grpclib over a router.

::

    from centrifugo_types.grpc import ProxyServer

    asyncio.run(ProxyServer(router, port=30000).serve())   # until SIGTERM / SIGINT

:class:`ProxyService` is the grpclib service implementing every rpc of ``CentrifugoProxy``
(the unary events and both subscribe streams); add it to your own ``grpclib.server.Server``, or
let :class:`ProxyServer` run it with the gRPC health service, an optional credentials check,
TLS and a graceful shutdown.

This transport only adapts the wire: it decodes the request, builds the typed request with the
call's metadata, asks the router and encodes the reply. A request that does not decode gets the
event's failure reply (``error`` 100, logged), never a crash: so does a call without a
message, with a compressed message (grpclib does not support compression) or with a length
prefix longer than its message.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any, Unpack

import betterproto2
import grpclib.const
import grpclib.server
from grpclib import GRPCError, Status
from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health

from . import _coalescing
from ._call import stream_call
from ._generated import proxy_events as events
from ._server import Server, ServerOptions, undecodable
from .calls import CALL_CLASSES
from .errors import DecodeError, StreamError
from .router import Router

__all__ = ["ProxyServer", "ProxyService"]

logger = logging.getLogger("centrifugo_types.grpc")

DEADLINE_MARGIN = 0.1
"""Seconds kept back from Centrifugo's deadline (at most a fifth of it) so that the error reply
of a handler that overruns still reaches Centrifugo in time."""

_Stream = grpclib.server.Stream[Any, Any]

_CARDINALITIES = {
    "unary_unary": grpclib.const.Cardinality.UNARY_UNARY,
    "unary_stream": grpclib.const.Cardinality.UNARY_STREAM,
    "stream_stream": grpclib.const.Cardinality.STREAM_STREAM,
}


class ProxyService:
    """The ``CentrifugoProxy`` gRPC service over ``router`` (a grpclib servable).

    ``credentials``: a ``(key, value)`` pair that every call must carry as metadata, matching
    Centrifugo's ``grpc.credentials_key`` / ``grpc.credentials_value``; others get
    ``UNAUTHENTICATED``.
    """

    def __init__(self, router: Router, *, credentials: tuple[str, str] | None = None) -> None:
        self.router = router
        if credentials is not None:
            key, value = credentials
            credentials = (key.lower(), value)
        self._credentials = credentials
        self._draining = False
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        mapping = {}
        for event in events.EVENTS.values():
            unary = event.cardinality == "unary_unary"
            mapping[event.path] = grpclib.const.Handler(
                self._unary_handler(event) if unary else self._stream_handler(event),
                _CARDINALITIES[event.cardinality],
                event.input_type,
                event.output_type,
            )
        return mapping

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        """Unary calls being served right now."""
        return self._inflight

    async def drain(self, grace: float | None = None) -> bool:
        """Refuse new calls (``UNAVAILABLE``) and wait for the unary calls in flight.

        Returns ``False`` if some were still running after ``grace`` seconds. Subscribe
        streams are long-lived and are not waited for.
        """
        self._draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            return False
        return True

    # -- calls ------------------------------------------------------------------------------

    def _admit(self, stream: _Stream) -> list[tuple[str, str]]:
        """Check the call may proceed; return its metadata as transport-neutral pairs."""
        pairs = [(k, v) for k, v in (stream.metadata or {}).items() if isinstance(v, str)]
        if self._credentials is not None:
            key, expected = self._credentials
            got = next((v for k, v in pairs if k == key), None)
            if got is None or not hmac.compare_digest(got.encode(), expected.encode()):
                raise GRPCError(Status.UNAUTHENTICATED, "invalid credentials")
            pairs = [(k, v) for k, v in pairs if k != key]
        if self._draining:
            raise GRPCError(Status.UNAVAILABLE, "server is shutting down")
        return pairs

    def _deadline(self, stream: _Stream) -> float | None:
        if stream.deadline is None:
            return None
        remaining = stream.deadline.time_remaining()
        return asyncio.get_running_loop().time() + remaining - min(DEADLINE_MARGIN, remaining / 5)

    async def _receive(self, stream: _Stream, event: events.Event[Any, Any]) -> Any:
        """The call's request message (for a stream of requests: the one its first message
        carries); ``None`` once the event's failure reply is sent instead."""
        try:
            message = await stream.recv_message()
            if message is None:
                raise DecodeError("the call has no message")
            if event.unwrap_input is not None:
                message = event.unwrap_input(message)[0]
                if message is None:
                    raise DecodeError("the first message carries no request")
            return message
        except _UNREADABLE as exc:
            reply = undecodable(event, exc)
            if event.wrap_output is not None:
                reply = event.wrap_output(reply)
            await stream.send_message(reply)
            return None

    def _unary_handler(
        self, event: events.Event[Any, Any]
    ) -> Callable[[_Stream], Coroutine[Any, Any, None]]:
        request_class = CALL_CLASSES[event.name]

        async def handle(stream: _Stream) -> None:
            metadata = self._admit(stream)
            self._inflight += 1
            self._idle.clear()
            try:
                message = await self._receive(stream, event)
                if message is None:
                    return
                request = request_class(message, metadata)
                response = await self.router.handle(request, deadline=self._deadline(stream))
                await stream.send_message(response)
            finally:
                self._inflight -= 1
                if not self._inflight:
                    self._idle.set()

        return handle

    def _stream_handler(
        self, event: events.Event[Any, Any]
    ) -> Callable[[_Stream], Coroutine[Any, Any, None]]:
        call_class = CALL_CLASSES[event.name]
        wrap = event.wrap_output
        assert wrap is not None

        async def handle(stream: _Stream) -> None:
            metadata = self._admit(stream)
            message = await self._receive(stream, event)
            if message is None:
                return
            call = stream_call(call_class, event, message, metadata, aiter(stream))

            async def send(item: betterproto2.Message) -> None:
                await stream.send_message(wrap(item))

            try:
                await self.router.handle_stream(call, send, deadline=self._deadline(stream))
            except StreamError as exc:
                # Centrifugo unsubscribes the client with "insufficient state"; it resubscribes.
                raise GRPCError(Status.INTERNAL, str(exc)) from None

        return handle


_UNREADABLE = (DecodeError, NotImplementedError, AssertionError, struct.error)
"""What reading a call's message raises when it cannot be read: the codec's
:class:`DecodeError`, and from grpclib's framing (``grpclib.stream.recv_message``) a compressed
message (``NotImplementedError``), a length prefix longer than the message
(``AssertionError``) and a prefix cut short (``struct.error``)."""


class ProxyServer(Server):
    """:class:`ProxyService` and the gRPC health service, served by grpclib.

    ::

        async with ProxyServer(router, port=0) as server:
            ...  # serving on server.port: Centrifugo's endpoint is server.url

    The options and the lifecycle are every server's (:class:`centrifugo_types.http.ProxyServer`
    has the same): see :class:`~centrifugo_types._server.Server`. ``credentials`` is
    Centrifugo's ``grpc.credentials_key`` / ``grpc.credentials_value`` (others get
    ``UNAUTHENTICATED``). :meth:`close` is graceful: the health status turns ``NOT_SERVING``,
    new calls get ``UNAVAILABLE``, unary calls in flight finish (for up to
    ``shutdown_timeout`` seconds), then the connections and any subscribe streams are closed.
    """

    transport = "gRPC"
    alpn_protocols = ("h2",)

    def __init__(self, router: Router, **options: Unpack[ServerOptions]) -> None:
        super().__init__(router, **options)
        self.service = ProxyService(router, credentials=self.credentials)
        self.health = ServiceStatus()
        self._server: grpclib.server.Server | None = None

    @property
    def url(self) -> str:
        """``grpc://host:port``: Centrifugo's proxy ``endpoint``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"grpc://{host}:{self.port}"

    async def _listen(self, sock: socket.socket) -> None:
        # Made here, not in __init__: grpclib's server takes the event loop running it.
        server = _coalescing.server([self.service, Health({self.service: [self.health]})])
        await server.start(sock=sock, ssl=self.ssl)
        self._server = server
        self.health.set(True)

    async def _shutdown(self) -> None:
        self.health.set(False)
        inflight = self.service.inflight
        if inflight:
            logger.info("waiting for %d call(s) in flight", inflight)
        if not await self.service.drain(self.shutdown_timeout):
            logger.warning(
                "%d call(s) still running after %ss; cancelling",
                self.service.inflight,
                self.shutdown_timeout,
            )
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
