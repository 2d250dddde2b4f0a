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
import ssl as _ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any, cast

import betterproto2
import grpclib.const
import grpclib.server
from grpclib import GRPCError, Status
from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health
from grpclib.protocol import H2Protocol

from ._call import BidirectionalStreamCall, StreamCall, internal_error_reply
from ._generated import proxy_events as events
from ._serving import check_reuse_port, listening_socket, serve_until_signalled
from .calls import CALL_CLASSES
from .errors import DecodeError, StreamError
from .router import Router

__all__ = ["ProxyServer", "ProxyService", "serve", "server_ssl_context"]

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

    def _unary_handler(
        self, event: events.Event[Any, Any]
    ) -> Callable[[_Stream], Coroutine[Any, Any, None]]:
        request_class = CALL_CLASSES[event.name]

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

    def _stream_handler(
        self, event: events.Event[Any, Any]
    ) -> Callable[[_Stream], Coroutine[Any, Any, None]]:
        call_class = CALL_CLASSES[event.name]
        wrap = event.wrap_output
        unwrap = event.unwrap_input
        assert wrap is not None

        async def handle(stream: _Stream) -> None:
            metadata = self._admit(stream)
            try:
                first = await stream.recv_message()
            except DecodeError as exc:
                logger.warning("%s: undecodable request: %s", event.name, exc)
                await stream.send_message(wrap(internal_error_reply(event)))
                return
            if unwrap is None:
                assert first is not None
                call = call_class(first, metadata)
            else:
                message = None if first is None else unwrap(first)[0]
                if message is None:
                    logger.warning("%s: the first message carries no request", event.name)
                    await stream.send_message(wrap(internal_error_reply(event)))
                    return

                async def incoming() -> AsyncIterator[Any]:
                    async for later in stream:
                        item = unwrap(later)[1]
                        if item is not None:
                            yield item

                assert issubclass(call_class, BidirectionalStreamCall)
                call = call_class(message, metadata, incoming=incoming())
            assert isinstance(call, StreamCall)

            async def send(item: betterproto2.Message) -> None:
                await stream.send_message(wrap(item))

            try:
                await self.router.handle_stream(call, send, deadline=self._deadline(stream))
            except StreamError as exc:
                # Centrifugo unsubscribes the client with "insufficient state"; it resubscribes.
                raise GRPCError(Status.INTERNAL, str(exc)) from None

        return handle


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


class _CoalescingTransport(asyncio.Transport):
    """Gathers the writes of one event-loop iteration into one write of the real transport.

    grpclib writes each batch of HTTP/2 frames as soon as h2 makes it: the headers, the
    message and the trailers of every reply are a ``send()`` system call and a TCP segment
    each. On a busy connection many replies are made in one iteration of the event loop;
    sending them together at the start of the next iteration costs one system call instead of
    dozens. The bytes and their order are unchanged: only the moment they reach the kernel
    moves, by one loop iteration.
    """

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


class _CoalescingH2Protocol(H2Protocol):
    """grpclib's HTTP/2 protocol writing through a :class:`_CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not subclass
        # asyncio.Transport.
        super().connection_made(_CoalescingTransport(cast(asyncio.Transport, transport)))


class _Server(grpclib.server.Server):
    """A grpclib server whose connections coalesce their writes (see above)."""

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        return _CoalescingH2Protocol(protocol.handler, protocol.config, protocol.h2_config)


class ProxyServer:
    """A grpclib server with :class:`ProxyService` and the gRPC health service.

    ::

        async with ProxyServer(router, port=30000) as server:
            ...  # serving on server.port

    :meth:`close` is graceful: the health status turns ``NOT_SERVING``, new calls get
    ``UNAVAILABLE``, unary calls in flight finish (for up to ``shutdown_timeout`` seconds),
    then the connections and any subscribe streams are closed.

    ``reuse_port``: set ``SO_REUSEPORT`` on the listening socket, so that several processes
    can serve the same host and port (each started with ``reuse_port=True``; the kernel
    spreads new connections over them). This is how to use more than one core: one server
    per process. Not available on Windows.
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
        reuse_port: bool = False,
    ) -> None:
        check_reuse_port(reuse_port)
        self.service = ProxyService(router, credentials=credentials)
        self.health = ServiceStatus()
        self.host = host
        self.port = port
        self.ssl = ssl
        self.shutdown_timeout = shutdown_timeout
        self.reuse_port = reuse_port
        self._server = _Server([self.service, Health({self.service: [self.health]})])
        self._started = False

    async def start(self) -> None:
        """Listen (``port=0`` picks a free port; :attr:`port` then tells which)."""
        sock = listening_socket(self.host, self.port, reuse_port=self.reuse_port)
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
    reuse_port: bool = False,
    started: Callable[[ProxyServer], None] | None = None,
) -> None:
    """Serve ``router`` until SIGTERM or SIGINT, then shut down gracefully.

    The options are :class:`ProxyServer`'s. ``started`` is called once the server listens
    (e.g. to print the port when ``port=0``).
    """
    server = ProxyServer(
        router,
        host,
        port,
        ssl=ssl,
        credentials=credentials,
        shutdown_timeout=shutdown_timeout,
        reuse_port=reuse_port,
    )
    await serve_until_signalled(server, started)
