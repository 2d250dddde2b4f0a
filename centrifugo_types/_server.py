"""The contract every proxy server keeps, whatever its transport (gRPC, HTTP, ...).

A transport subclasses :class:`Server` and writes three methods: how it listens on a bound
socket (:meth:`Server._listen`), how it drains and stops (:meth:`Server._shutdown`) and its
:attr:`Server.url`. The rest is here, once: the constructor's options, binding the socket,
entering the router's lifespan, ``async with``, serving until a signal, and the one failure
reply of a request that cannot be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl as _ssl
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, Self, TypedDict

from ._call import internal_error_reply
from ._generated.proxy_events import Event
from .errors import StartupError
from .router import Router

logger = logging.getLogger("centrifugo_types.server")


class ServerOptions(TypedDict, total=False):
    """The options every server takes (see :class:`Server`)."""

    host: str
    port: int
    ssl: _ssl.SSLContext | None
    credentials: tuple[str, str] | None
    reuse_port: bool
    shutdown_timeout: float


class Server:
    """A proxy server: ``router`` served on ``host:port`` over one transport.

    ::

        async with ProxyServer(router, port=0) as server:
            ...  # serving on server.port (port=0: a free one)

        await ProxyServer(router).serve()  # until SIGTERM / SIGINT

    ``ssl``: serve TLS with this context (see :func:`server_ssl_context`; the server sets the
    ALPN protocols it speaks on it, so give each server its own). ``credentials``: a
    ``(key, value)`` pair every call must carry (gRPC metadata or an HTTP header, as
    Centrifugo's proxy settings send it); others are refused, and handlers do not see it.
    ``reuse_port``: set ``SO_REUSEPORT``, so that several processes can serve one port (the
    kernel spreads new connections over them): one process a core. Not available on Windows.
    ``shutdown_timeout``: how long :meth:`close` lets the calls in flight finish.

    :meth:`start` binds the port, then enters the router's lifespan
    (:meth:`Router.lifespan_context`) once, before the first call is accepted; :meth:`close`
    drains the calls in flight, stops, then leaves the lifespan. What fails at startup (the
    address, the lifespan) raises :class:`~centrifugo_types.StartupError`.
    """

    transport: ClassVar[str]
    """The transport's name in logs (``"gRPC"``, ``"HTTP"``)."""
    alpn_protocols: ClassVar[tuple[str, ...]]
    """What the transport speaks over TLS (ALPN)."""

    def __init__(
        self,
        router: Router,
        *,
        host: str = "127.0.0.1",
        port: int = 30000,
        ssl: _ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
        reuse_port: bool = False,
        shutdown_timeout: float = 10.0,
    ) -> None:
        if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ValueError("reuse_port needs SO_REUSEPORT, which this platform lacks")
        if ssl is not None:
            ssl.set_alpn_protocols(list(self.alpn_protocols))
            ssl.sslobject_class = _HandshakeLoggingSSLObject
        self.router = router
        self.host = host
        self.port = port
        """The port; once started with ``port=0``, the one picked."""
        self.ssl = ssl
        self.credentials = credentials
        self.reuse_port = reuse_port
        self.shutdown_timeout = shutdown_timeout
        self._lifespan: contextlib.AsyncExitStack | None = None

    @property
    def url(self) -> str:
        """Where Centrifugo reaches the server (its proxy ``endpoint``, or the base of it)."""
        raise NotImplementedError

    async def _listen(self, sock: socket.socket) -> None:
        """Serve on ``sock`` (bound, not listening yet; the transport owns it now)."""
        raise NotImplementedError

    async def _shutdown(self) -> None:
        """Stop accepting calls, let those in flight finish (up to the shutdown timeout),
        close the connections."""
        raise NotImplementedError

    # -- the lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the port, enter the router's lifespan and listen (see the class)."""
        if self._lifespan is not None:
            return
        try:
            sock = _bind(self.host, self.port, reuse_port=self.reuse_port)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        lifespan = contextlib.AsyncExitStack()
        try:
            try:
                await lifespan.enter_async_context(self.router.lifespan_context())
            except StartupError:
                raise
            except Exception as exc:
                raise StartupError(f"the router's lifespan failed: {describe(exc)}") from exc
            self.port = sock.getsockname()[1]
            await self._listen(sock)
        except BaseException:
            sock.close()
            await lifespan.aclose()
            raise
        self._lifespan = lifespan
        logger.info("serving Centrifugo's %s proxy on %s", self.transport, self.url)

    async def close(self) -> None:
        """Shut down gracefully: the calls in flight finish (up to ``shutdown_timeout``
        seconds), then the router's lifespan is left."""
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is None:
            return
        try:
            await self._shutdown()
        finally:
            await lifespan.aclose()
        logger.info("stopped")

    async def serve(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then close gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            async with self:
                await stop.wait()
                logger.info("shutting down")
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _HandshakeLoggingSSLObject(_ssl.SSLObject):
    """An SSLObject that logs why a TLS handshake failed (a client certificate refused, no
    certificate, a protocol mismatch): asyncio closes such connections without a word outside
    its debug mode, which leaves the server's side of a misconfiguration silent."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (_ssl.SSLWantReadError, _ssl.SSLWantWriteError):
            raise  # the handshake goes on when more bytes come
        except _ssl.SSLError as exc:
            reason, detail = exc.reason or str(exc), getattr(exc, "verify_message", None)
            logger.warning("TLS handshake failed: %s", f"{reason}: {detail}" if detail else reason)
            raise


class PemFiles(NamedTuple):
    """The PEM files a :class:`ServerSSLContext` was loaded from."""

    certfile: str
    keyfile: str | None
    client_ca: str | None


class ServerSSLContext(_ssl.SSLContext):
    """An :class:`ssl.SSLContext` that remembers the PEM files it was loaded from
    (:attr:`pem_files`): grpcio's server (:mod:`centrifugo_types.grpcio`) reads TLS from
    them, not from a context."""

    pem_files: PemFiles | None = None


def server_ssl_context(
    certfile: str, keyfile: str | None = None, *, client_ca: str | None = None
) -> ServerSSLContext:
    """A TLS context for a proxy server, from PEM files (every server takes it).

    ``client_ca``: require client certificates signed by this CA (mutual TLS: Centrifugo's
    ``grpc.tls`` / ``http.tls`` settings of the proxy). A file that cannot be read raises
    :class:`~centrifugo_types.StartupError` naming it.
    """
    context = ServerSSLContext(_ssl.PROTOCOL_TLS_SERVER)  # create_default_context's server
    context.pem_files = PemFiles(certfile, keyfile, client_ca)
    for path in (certfile, keyfile, client_ca):
        if path is not None:
            try:
                open(path, "rb").close()
            except OSError as exc:
                raise StartupError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        context.load_cert_chain(certfile, keyfile)
        if client_ca is not None:
            context.verify_mode = _ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise StartupError(f"cannot load the TLS certificate {certfile}: {exc}") from exc
    return context


def describe(exc: BaseException) -> str:
    """``"RuntimeError: no database"``: an exception in one line."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def undecodable(event: Event[Any, Any], exc: Exception) -> Any:
    """The reply to a request of ``event`` that cannot be read: logged, error 100."""
    logger.warning("%s: undecodable request: %s", event.name, exc)
    return internal_error_reply(event)


def _bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port=0``: a free one), not yet listening.

    It is created as ``IPPROTO_TCP``, not with the default protocol 0: asyncio (and grpclib)
    turn Nagle's algorithm off (``TCP_NODELAY``) only on accepted sockets whose protocol says
    TCP. With Nagle left on, the second of a reply's small writes waits for the peer's
    delayed ACK: ~40 ms a call on Linux.
    """
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
