"""Centrifugo's gRPC proxy (``grpc://`` proxy endpoints) served by grpclib over a router.

::

    from centrifugo_types.grpc import serve

    asyncio.run(serve(router, "127.0.0.1", 30000))   # until SIGTERM / SIGINT

:class:`ProxyService` is the grpclib service implementing every rpc of ``CentrifugoProxy``
(the unary events and both subscribe streams); add it to your own ``grpclib.server.Server``, or
let :class:`ProxyServer` / :func:`serve` run it with the gRPC health service, an optional
credentials check, TLS and a graceful shutdown.

This transport only adapts the wire: it decodes the request, builds the typed request with the
call's metadata, asks the router and encodes the reply. A request that does not decode gets the
event's failure reply (``error`` 100, logged), never a crash.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import socket
import ssl as _ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any

import grpclib.const
import grpclib.server
from grpclib import GRPCError, Status
from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health

from . import proxy
from ._generated import proxy_events as events
from ._generated._runtime import DecodeError
from .requests import (
    REQUEST_CLASSES,
    StreamItem,
    SubscribeBidirectionalRequest,
    SubscribeStreamRequest,
    SubscribeUnidirectionalRequest,
    internal_error_reply,
)
from .router import Router, StreamError

__all__ = ["ProxyServer", "ProxyService", "serve", "server_ssl_context"]

logger = logging.getLogger("centrifugo_types.grpc")

DEADLINE_MARGIN = 0.1
"""Seconds kept back from Centrifugo's deadline (at most a fifth of it) so that the error reply
of a handler that overruns still reaches Centrifugo in time."""

_Stream = grpclib.server.Stream[Any, Any]


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
            if event.cardinality == "unary_unary":
                func = self._unary_handler(event)
                cardinality = grpclib.const.Cardinality.UNARY_UNARY
            elif event.cardinality == "unary_stream":
                func = self._subscribe_unidirectional
                cardinality = grpclib.const.Cardinality.UNARY_STREAM
            else:
                func = self._subscribe_bidirectional
                cardinality = grpclib.const.Cardinality.STREAM_STREAM
            mapping[event.path] = grpclib.const.Handler(
                func, cardinality, event.input_type, event.output_type
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

    def _unary_handler(
        self, event: events.Event[Any, Any]
    ) -> Callable[[_Stream], Coroutine[Any, Any, None]]:
        request_class = REQUEST_CLASSES[event.name]

        async def handle(stream: _Stream) -> None:
            metadata = self._admit(stream)
            self._inflight += 1
            self._idle.clear()
            try:
                try:
                    message = await stream.recv_message()
                except DecodeError as exc:
                    logger.warning("%s: undecodable request: %s", event.name, exc)
                    await stream.send_message(internal_error_reply(event))
                    return
                assert message is not None
                request = request_class(message, metadata)
                response = await self.router.handle(request, deadline=self._deadline(stream))
                await stream.send_message(response)
            finally:
                self._inflight -= 1
                if not self._inflight:
                    self._idle.set()

        return handle

    async def _subscribe_unidirectional(self, stream: _Stream) -> None:
        event = events.SUBSCRIBE_UNIDIRECTIONAL
        metadata = self._admit(stream)
        try:
            message = await stream.recv_message()
        except DecodeError as exc:
            logger.warning("%s: undecodable request: %s", event.name, exc)
            await stream.send_message(_stream_failure(event))
            return
        assert message is not None
        request = SubscribeUnidirectionalRequest(message, metadata)
        await self._serve_stream(stream, request)

    async def _subscribe_bidirectional(self, stream: _Stream) -> None:
        event = events.SUBSCRIBE_BIDIRECTIONAL
        metadata = self._admit(stream)
        try:
            first = await stream.recv_message()
        except DecodeError as exc:
            logger.warning("%s: undecodable request: %s", event.name, exc)
            await stream.send_message(_stream_failure(event))
            return
        if first is None or first.subscribe_request is None:
            logger.warning("%s: the first message has no subscribe_request", event.name)
            await stream.send_message(_stream_failure(event))
            return

        async def incoming() -> AsyncIterator[proxy.Publication]:
            async for message in stream:
                if message.publication is not None:
                    yield message.publication

        request = SubscribeBidirectionalRequest(
            first.subscribe_request, metadata, incoming=incoming()
        )
        await self._serve_stream(stream, request)

    async def _serve_stream(self, stream: _Stream, request: SubscribeStreamRequest) -> None:
        async def send(item: StreamItem) -> None:
            if isinstance(item, proxy.Publication):
                await stream.send_message(proxy.StreamSubscribeResponse(publication=item))
            else:
                await stream.send_message(proxy.StreamSubscribeResponse(subscribe_response=item))

        try:
            await self.router.handle_stream(request, send, deadline=self._deadline(stream))
        except StreamError as exc:
            # Centrifugo unsubscribes the client with "insufficient state"; it resubscribes.
            raise GRPCError(Status.INTERNAL, str(exc)) from None


def _stream_failure(event: events.Event[Any, Any]) -> proxy.StreamSubscribeResponse:
    return proxy.StreamSubscribeResponse(subscribe_response=internal_error_reply(event))


def server_ssl_context(
    certfile: str, keyfile: str | None = None, *, client_ca: str | None = None
) -> _ssl.SSLContext:
    """A TLS context for the proxy server (ALPN ``h2``, as gRPC clients require).

    ``client_ca``: require client certificates signed by this CA (mutual TLS, Centrifugo's
    ``grpc.tls.cert_pem`` / ``key_pem`` on the proxy).
    """
    context = _ssl.create_default_context(_ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["h2"])
    if client_ca is not None:
        context.verify_mode = _ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


class ProxyServer:
    """A grpclib server with :class:`ProxyService` and the gRPC health service.

    ::

        async with ProxyServer(router, port=30000) as server:
            ...  # serving on server.port

    :meth:`close` is graceful: the health status turns ``NOT_SERVING``, new calls get
    ``UNAVAILABLE``, unary calls in flight finish (for up to ``shutdown_timeout`` seconds),
    then the connections and any subscribe streams are closed.
    """

    def __init__(
        self,
        router: Router,
        host: str = "127.0.0.1",
        port: int = 30000,
        *,
        ssl: _ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.service = ProxyService(router, credentials=credentials)
        self.health = ServiceStatus()
        self.host = host
        self.port = port
        self.ssl = ssl
        self.shutdown_timeout = shutdown_timeout
        self._server = grpclib.server.Server([self.service, Health({self.service: [self.health]})])
        self._started = False

    async def start(self) -> None:
        """Listen (``port=0`` picks a free port; :attr:`port` then tells which)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not the default 0: grpclib and asyncio turn Nagle's algorithm off
        # (TCP_NODELAY) only on sockets that say they are TCP; with it on, replies waited
        # ~40 ms for the peer's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        await self._server.start(sock=sock, ssl=self.ssl)
        self._started = True
        self.health.set(True)
        logger.info("serving Centrifugo's gRPC proxy on %s:%d", self.host, self.port)

    async def close(self) -> None:
        """Shut down gracefully (see the class)."""
        if not self._started:
            return
        self._started = False
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
        self._server.close()
        await self._server.wait_closed()
        logger.info("stopped")

    async def __aenter__(self) -> ProxyServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def serve(
    router: Router,
    host: str = "127.0.0.1",
    port: int = 30000,
    *,
    ssl: _ssl.SSLContext | None = None,
    credentials: tuple[str, str] | None = None,
    shutdown_timeout: float = 10.0,
    started: Callable[[ProxyServer], None] | None = None,
) -> None:
    """Serve ``router`` until SIGTERM or SIGINT, then shut down gracefully.

    ``started`` is called once the server listens (e.g. to print the port when ``port=0``).
    """
    server = ProxyServer(
        router,
        host,
        port,
        ssl=ssl,
        credentials=credentials,
        shutdown_timeout=shutdown_timeout,
    )
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
