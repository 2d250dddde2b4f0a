"""Centrifugo's gRPC proxy served by grpcio's asyncio server (``grpc.aio``) over a router.

The same service as :mod:`centrifugo_types.grpc` (grpclib, pure Python, the default) on
grpcio's C core: HTTP/2 and HPACK in C. It serves more calls per second from one process
(BENCHMARKS.md, "Issue 17"), and it needs the ``grpcio`` extra::

    pip install 'centrifugo-types[grpcio]'

::

    from centrifugo_types.grpcio import ProxyServer

    asyncio.run(ProxyServer(router, port=30000).serve())   # until SIGTERM / SIGINT

or ``centrifugo-types serve myapp:router --transport grpcio``.

grpcio only moves bytes: messages are decoded and encoded by this package's generated codec,
and every call goes through the router as with grpclib (the typed call, its metadata,
Centrifugo's deadline, credentials, the health service's ``Check``, the graceful shutdown,
``SO_REUSEPORT`` and the subscribe streams). The rpcs are those of the generated event table.
A request that does not decode gets the event's failure reply (``error`` 100, logged).

The gRPC framing is grpcio's, read before this code sees a call, and grpcio answers what it
cannot read itself: a compressed message without an encoding gets ``INTERNAL``; a call that
ends without a whole message (none, or a length prefix longer than what follows) gets no
reply until its deadline (grpcio drops it; Centrifugo sends its proxy timeout as every
call's deadline). grpclib's server answers those with the failure reply.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, Unpack

import betterproto2
import grpc
from grpc import aio

from ._call import stream_call
from ._generated import proxy_events as events
from ._server import PemFiles, Server, ServerOptions, undecodable
from .calls import CALL_CLASSES
from .errors import DecodeError, StartupError, StreamError
from .router import Router

__all__ = ["ProxyServer"]

logger = logging.getLogger("centrifugo_types.grpcio")

DEADLINE_MARGIN = 0.1
"""Seconds kept back from Centrifugo's deadline (at most a fifth of it), as in
:mod:`centrifugo_types.grpc`."""

HEALTH_SERVICE = "grpc.health.v1.Health"
_SERVING, _NOT_SERVING = 1, 2
_TRANSPORT_KEYS = frozenset(("te", "content-type", "user-agent"))
"""Metadata of the transport itself, not Centrifugo's (grpclib drops the same keys)."""

_Context = aio.ServicerContext[Any, Any]


def _server_credentials(files: PemFiles) -> grpc.ServerCredentials:
    """grpcio's TLS from the PEM files of a :func:`server_ssl_context`."""
    cert = Path(files.certfile).read_bytes()
    key = cert if files.keyfile is None else Path(files.keyfile).read_bytes()
    client_ca = None if files.client_ca is None else Path(files.client_ca).read_bytes()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details


def _decoder(cls: type[betterproto2.Message]) -> Callable[[bytes], Any]:
    """grpcio's request deserializer: the message, or the :class:`DecodeError` (raised, it
    would become an ``UNKNOWN`` status; the event's failure reply is the answer instead)."""
    parse = cls.parse

    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return exc

    return decode


def _health_service(data: bytes) -> str | None:
    """The ``service`` of a ``grpc.health.v1.HealthCheckRequest`` (its only field: 1, a
    string), or ``None`` if the bytes are not one. Two bytes of framing do not warrant
    protobuf."""
    service, pos = "", 0
    try:
        while pos < len(data):
            key, length = data[pos], data[pos + 1]
            if key != 0x0A or length & 0x80:
                return None  # another field, or a name longer than a service name is
            service = data[pos + 2 : pos + 2 + length].decode()
            pos += 2 + length
    except (IndexError, UnicodeDecodeError):
        return None
    return service if pos == len(data) else None


class _Service:
    """The calls: admission (credentials, draining), the codec and the router."""

    def __init__(self, router: Router, credentials: tuple[str, str] | None) -> None:
        self.router = router
        if credentials is not None:
            credentials = (credentials[0].lower(), credentials[1])
        self._credentials = credentials
        self.serving = False
        self.draining = False
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for event in events.EVENTS.values():
            decode = _decoder(event.input_type)
            if event.cardinality == "unary_unary":
                methods[event.rpc] = grpc.unary_unary_rpc_method_handler(
                    self._unary(event), request_deserializer=decode
                )
            elif event.cardinality == "unary_stream":
                methods[event.rpc] = grpc.unary_stream_rpc_method_handler(
                    self._stream(event), request_deserializer=decode
                )
            else:
                methods[event.rpc] = grpc.stream_stream_rpc_method_handler(
                    self._stream(event), request_deserializer=decode
                )
        check: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
            self._health_check
        )
        return [
            grpc.method_handlers_generic_handler(events.SERVICE, methods),
            grpc.method_handlers_generic_handler(HEALTH_SERVICE, {"Check": check}),
        ]

    def _admit(self, context: _Context) -> list[tuple[str, str]]:
        """Check the call may proceed; return its metadata as transport-neutral pairs."""
        pairs = [
            (key, value)
            for key, value in context.invocation_metadata() or ()
            if isinstance(value, str)
            and key not in _TRANSPORT_KEYS
            and not key.startswith((":", "grpc-"))
        ]
        if self._credentials is not None:
            key, expected = self._credentials
            got = next((v for k, v in pairs if k == key), None)
            if got is None or not hmac.compare_digest(got.encode(), expected.encode()):
                raise _Refused(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
            pairs = [(k, v) for k, v in pairs if k != key]
        if self.draining:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
        return pairs

    @staticmethod
    def _deadline(context: _Context) -> float | None:
        remaining = context.time_remaining()
        if remaining is None:
            return None
        margin = min(DEADLINE_MARGIN, remaining / 5)
        return asyncio.get_running_loop().time() + remaining - margin

    def _unary(
        self, event: events.Event[Any, Any]
    ) -> Callable[[Any, _Context], Coroutine[Any, Any, bytes]]:
        call_class = CALL_CLASSES[event.name]
        handle = self.router.handle

        async def unary(message: Any, context: _Context) -> bytes:
            try:
                metadata = self._admit(context)
            except _Refused as refused:
                await context.abort(refused.code, refused.details)
            if isinstance(message, DecodeError):
                return bytes(undecodable(event, message))
            # In flight until grpcio's core has sent the reply (the call's end), not only
            # until the handler returns: a drain must not stop the server under a reply.
            self.inflight += 1
            self.idle.clear()
            context.add_done_callback(self._call_ended)  # type: ignore[arg-type]  # stubs: a class, not a Protocol
            reply = await handle(call_class(message, metadata), deadline=self._deadline(context))
            return bytes(reply)

        return unary

    def _call_ended(self, context: _Context) -> None:
        self.inflight -= 1
        if not self.inflight:
            self.idle.set()

    def _stream(
        self, event: events.Event[Any, Any]
    ) -> Callable[[Any, _Context], Coroutine[Any, Any, None]]:
        """A subscribe stream: one request (``unary_stream``) or a stream of messages whose
        first carries the request (``stream_stream``)."""
        call_class = CALL_CLASSES[event.name]
        wrap, unwrap = event.wrap_output, event.unwrap_input
        assert wrap is not None

        async def stream(received: Any, context: _Context) -> None:
            try:
                metadata = self._admit(context)
            except _Refused as refused:
                await context.abort(refused.code, refused.details)
            messages: AsyncIterator[Any] | None = None
            try:
                if unwrap is None:
                    message = received
                else:
                    messages = aiter(received)
                    message = await anext(messages, None)
                    if message is None:
                        raise DecodeError("the call has no message")
                if isinstance(message, DecodeError):
                    raise message
                if unwrap is not None:
                    message = unwrap(message)[0]
                    if message is None:
                        raise DecodeError("the first message carries no request")
            except DecodeError as exc:
                await context.write(bytes(wrap(undecodable(event, exc))))
                return
            call = stream_call(call_class, event, message, metadata, messages)

            async def send(item: betterproto2.Message) -> None:
                await context.write(bytes(wrap(item)))

            try:
                await self.router.handle_stream(call, send, deadline=self._deadline(context))
            except StreamError as exc:
                # Centrifugo unsubscribes the client with "insufficient state"; it resubscribes.
                await context.abort(grpc.StatusCode.INTERNAL, str(exc))

        return stream

    async def _health_check(self, data: bytes, context: _Context) -> bytes:
        service = _health_service(data)
        if service is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad HealthCheckRequest")
        if service not in ("", events.SERVICE):
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return bytes((0x08, _SERVING if self.serving else _NOT_SERVING))


class ProxyServer(Server):
    """The ``CentrifugoProxy`` service and the health service's ``Check``, served by grpcio.

    ::

        async with ProxyServer(router, port=0) as server:
            ...  # serving on server.port: Centrifugo's endpoint is server.url

    The options and the lifecycle are every server's (see
    :class:`~centrifugo_types._server.Server`), as with :class:`centrifugo_types.grpc.ProxyServer`;
    ``ssl`` must come from :func:`~centrifugo_types.server_ssl_context` (grpcio reads the PEM
    files, not the context). :meth:`close` is graceful: the health status turns
    ``NOT_SERVING``, new calls get ``UNAVAILABLE``, unary calls in flight finish (for up to
    ``shutdown_timeout`` seconds), then the server stops and any subscribe streams end.
    ``options``: more grpcio channel arguments of the server (``("grpc.…", value)`` pairs).
    """

    transport = "gRPC (grpcio)"
    alpn_protocols = ("h2",)

    def __init__(
        self,
        router: Router,
        *,
        options: list[tuple[str, Any]] | None = None,
        **server_options: Unpack[ServerOptions],
    ) -> None:
        super().__init__(router, **server_options)
        self._credentials: grpc.ServerCredentials | None = None
        if self.ssl is not None:
            files = getattr(self.ssl, "pem_files", None)
            if files is None:
                raise ValueError(
                    "grpcio reads TLS from PEM files: make the context with server_ssl_context()"
                )
            self._credentials = _server_credentials(files)
        self.options = [("grpc.so_reuseport", int(self.reuse_port)), *(options or [])]
        self.service = _Service(router, self.credentials)
        self._server: aio.Server | None = None

    @property
    def url(self) -> str:
        """``grpc://host:port``: Centrifugo's proxy ``endpoint``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"grpc://{host}:{self.port}"

    async def _listen(self, sock: socket.socket) -> None:
        # grpcio cannot adopt a socket: it binds the port the contract's socket holds, once
        # that is closed (the port was checked free, or picked, by binding it).
        sock.close()
        server = aio.server(handlers=self.service.handlers(), options=self.options)
        host = f"[{self.host}]" if ":" in self.host else self.host
        address = f"{host}:{self.port}"
        try:
            if self._credentials is None:
                server.add_insecure_port(address)
            else:
                server.add_secure_port(address, self._credentials)
        except RuntimeError as exc:  # grpcio does not say why
            raise StartupError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        await server.start()
        self._server = server
        self.service.serving = True

    async def _shutdown(self) -> None:
        service = self.service
        service.serving = False
        service.draining = True
        if service.inflight:
            logger.info("waiting for %d call(s) in flight", service.inflight)
        # The calls' replies leave once grpcio's core has sent them, after our handlers
        # return: grpcio's own grace lets them go out; past our timeout, nothing waits.
        grace: float | None = self.shutdown_timeout
        try:
            await asyncio.wait_for(service.idle.wait(), self.shutdown_timeout)
        except TimeoutError:
            logger.warning(
                "%d call(s) still running after %ss; cancelling",
                service.inflight,
                self.shutdown_timeout,
            )
            grace = None
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
