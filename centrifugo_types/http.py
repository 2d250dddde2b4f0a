"""Centrifugo's HTTP proxy (``http://`` proxy endpoints) as an ASGI application over a router.

::

    from centrifugo_types.http import ProxyApp

    app = ProxyApp(router)     # POST /centrifugo/connect, /centrifugo/rpc, ...

:class:`ProxyApp` is a plain ASGI application: run it with any ASGI server, mount it in a
Starlette or FastAPI app (it answers the ASGI lifespan protocol by entering the router's
lifespan), or let :class:`ProxyServer` run it under uvicorn (the ``http`` extra) with a graceful
shutdown.

Like the gRPC transport, it only adapts the wire: it decodes Centrifugo's JSON request with
:func:`centrifugo_types.json.loads`, builds the typed request with the forwarded headers as
metadata, asks the router and encodes the reply with :func:`centrifugo_types.json.dumps`.
Every request of a proxy path gets exactly one reply in the event's response shape, with
HTTP 200, whatever the handler does; a body that is not a valid request gets the event's
failure reply (``error`` 100, logged). Only what is not a proxy call at all gets an HTTP
error: an unknown path (404), a method other than POST (405), missing credentials (401), a
content type other than JSON or an unknown content encoding (415), a body over the limit
(413), a corrupt gzip body (400).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import math
import socket
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias, Unpack

from . import json
from ._call import AnyCall, internal_error_reply
from ._generated import proxy_events as events
from ._server import Server, ServerOptions, describe, undecodable
from .calls import CALL_CLASSES
from .errors import StartupError
from .router import Router

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_PREFIX",
    "ProxyApp",
    "ProxyServer",
]

logger = logging.getLogger("centrifugo_types.http")

Scope: TypeAlias = MutableMapping[str, Any]
"""An ASGI connection scope."""
Message: TypeAlias = MutableMapping[str, Any]
"""An ASGI event (what ``receive`` returns and ``send`` takes)."""
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]

DEFAULT_PREFIX = "/centrifugo"
"""The default path of an event is ``<prefix>/<event name>``: ``/centrifugo/connect``,
``/centrifugo/sub_refresh``, ..."""
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
"""The largest request body accepted, in bytes, before and after gzip decompression (the same
4 MiB as gRPC's default message size limit)."""

KEEP_ALIVE_TIMEOUT = 75
"""Seconds :class:`ProxyServer` keeps an idle connection open (uvicorn's default is 5 s).
Centrifugo's HTTP client keeps idle connections without a limit of its own; every close by
the server is a chance that a request is sent on the closing connection (Go does not retry a
POST it has written), so close them rarely."""

UNARY_EVENTS: tuple[events.Event[Any, Any], ...] = tuple(
    event for event in events.EVENTS.values() if event.cardinality == "unary_unary"
)
"""The events Centrifugo can send over HTTP: all but the subscribe streams (Centrifugo v6.9.1
refuses to start with an ``http`` endpoint for ``subscribe_stream``)."""

TRANSPORT_HEADERS = frozenset(
    {
        b"host",
        b"content-type",
        b"content-length",
        b"content-encoding",
        b"transfer-encoding",
        b"accept-encoding",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
    }
)
"""Headers of the HTTP request itself, not metadata: Centrifugo's HTTP client sets them (or
Go's does: ``Accept-Encoding: gzip``), whatever it forwards. ``User-Agent`` is left out too
when it is Go's own (``Go-http-client/...``), kept when Centrifugo forwards the client's."""
_GO_USER_AGENT = b"go-http-client/"

_JSON_HEADERS = [(b"content-type", b"application/json")]
_TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
_GZIP = 16 + zlib.MAX_WBITS  # zlib's wbits for a gzip stream (header and trailer)


class _Refused(Exception):
    """A request that is not a proxy call: answered with an HTTP error, not a reply."""

    def __init__(self, status: int, reason: str, headers: Iterable[tuple[bytes, bytes]] = ()):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers)


class _Disconnected(Exception):
    """Centrifugo closed the connection before the request body arrived."""


class ProxyApp:
    """An ASGI application serving Centrifugo's HTTP proxy over ``router``: one path per
    event, POST only.

    ``prefix``: the paths are ``<prefix>/<event>`` (``/centrifugo/connect``, ...);
    ``paths``: other paths for some events (``{"connect": "/auth"}``). Paths are matched
    exactly, below the ASGI ``root_path`` when the app is mounted in another one.
    :attr:`paths` tells the path of every event, for Centrifugo's ``endpoint`` settings.

    ``max_body_size``: bodies larger than this many bytes (also once gzip-decompressed) get
    HTTP 413. ``credentials``: a ``(header, value)`` pair every request must carry (set it in
    Centrifugo's ``http.static_headers``); others get HTTP 401, and handlers do not see it.

    The handler's deadline is the router's ``timeout``: Centrifugo does not send its own over
    HTTP, so keep the router's below Centrifugo's proxy ``timeout`` for the error reply of an
    overrunning handler to reach it in time.
    """

    def __init__(
        self,
        router: Router,
        *,
        prefix: str = DEFAULT_PREFIX,
        paths: Mapping[str, str] | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if max_body_size < 0:
            raise ValueError("max_body_size must not be negative")
        self.router = router
        self.max_body_size = max_body_size
        prefix = prefix.rstrip("/")
        if prefix and not prefix.startswith("/"):
            raise ValueError(f"prefix must start with '/', got {prefix!r}")
        chosen = {event.name: f"{prefix}/{event.name}" for event in UNARY_EVENTS}
        for name, path in (paths or {}).items():
            if name not in chosen:
                streams = name in events.EVENTS
                raise ValueError(
                    f"Centrifugo's HTTP proxy has no {name!r} event"
                    + (" (subscribe streams are served over gRPC only)" if streams else "")
                )
            if not path.startswith("/"):
                raise ValueError(f"the path of {name!r} must start with '/', got {path!r}")
            chosen[name] = path
        routes: dict[str, events.Event[Any, Any]] = {}
        for name, path in chosen.items():
            if path in routes:
                raise ValueError(f"{routes[path].name!r} and {name!r} have the same path {path!r}")
            routes[path] = events.EVENTS[name]
        self.paths: Mapping[str, str] = MappingProxyType(chosen)
        """The path of every event: ``{"connect": "/centrifugo/connect", ...}``."""
        self._routes = routes
        self._classes = {event.name: CALL_CLASSES[event.name] for event in UNARY_EVENTS}
        self._credentials: tuple[bytes, bytes] | None = None
        if credentials is not None:
            key, value = credentials
            self._credentials = (key.lower().encode("latin-1"), value.encode())

    def __repr__(self) -> str:
        return f"<ProxyApp {dict(self.paths)}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})
        else:
            raise RuntimeError(f"ProxyApp does not serve ASGI {kind!r} connections")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol: the router's lifespan is entered at startup and left
        at shutdown; what it raises is reported as ``lifespan.startup.failed`` (or
        ``lifespan.shutdown.failed``) with its message."""
        await receive()  # lifespan.startup: always the first
        lifespan = contextlib.AsyncExitStack()
        try:
            await lifespan.enter_async_context(self.router.lifespan_context())
        except Exception as exc:
            logger.exception("the router's lifespan failed at startup")
            cause = exc.__cause__ if isinstance(exc, StartupError) and exc.__cause__ else exc
            await send({"type": "lifespan.startup.failed", "message": describe(cause)})
            return
        await send({"type": "lifespan.startup.complete"})
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        try:
            await lifespan.aclose()
        except Exception as exc:
            logger.exception("the router's lifespan failed at shutdown")
            await send({"type": "lifespan.shutdown.failed", "message": describe(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    # -- one request ------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        event = self._routes.get(path)
        try:
            if event is None:
                raise _Refused(404, f"not a proxy path: {path}")
            if scope["method"] != "POST":
                raise _Refused(405, "proxy calls are POST requests", [(b"allow", b"POST")])
            metadata, gzipped = self._headers(scope["headers"])
            body = await self._body(receive, gzipped)
        except _Refused as refused:
            logger.warning("%s %s: %d %s", scope["method"], path, refused.status, refused.reason)
            await _respond(send, refused.status, refused.reason.encode(), refused.headers)
            return
        except _Disconnected:
            return
        await _respond(send, 200, await self._reply(event, body, metadata))

    def _headers(
        self, headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[list[tuple[str, str]], bool]:
        """The metadata, and whether the body is gzipped; refuse what is no proxy call."""
        metadata: list[tuple[str, str]] = []
        content_type = encoding = length = None
        credentials = self._credentials
        authenticated = credentials is None
        for name, value in headers:
            if name in TRANSPORT_HEADERS:
                if name == b"content-type":
                    content_type = value
                elif name == b"content-encoding":
                    encoding = value
                elif name == b"content-length":
                    length = value
                continue
            if name == b"user-agent" and value[:15].lower() == _GO_USER_AGENT:
                continue
            if credentials is not None and name == credentials[0]:
                authenticated = authenticated or hmac.compare_digest(value, credentials[1])
                continue
            metadata.append((name.decode("latin-1"), _text(value)))
        if not authenticated:
            raise _Refused(401, "invalid credentials")
        if length is not None and length.isdigit() and int(length) > self.max_body_size:
            raise _Refused(413, f"body larger than {self.max_body_size} bytes")
        if content_type is not None and not _is_json(content_type):
            raise _Refused(415, f"expected a JSON body, got Content-Type {_text(content_type)}")
        gzipped = False
        if encoding is not None:
            coding = encoding.strip().lower()
            if coding in (b"gzip", b"x-gzip"):
                gzipped = True
            elif coding not in (b"", b"identity"):
                raise _Refused(415, f"unsupported Content-Encoding {_text(encoding)}")
        return metadata, gzipped

    async def _body(self, receive: Receive, gzipped: bool) -> bytes:
        limit = self.max_body_size
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _Refused(413, f"body larger than {limit} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        # One chunk (the usual case) is used as it is: no copy.
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return _gunzip(body, limit) if gzipped else body

    async def _reply(
        self, event: events.Event[Any, Any], body: bytes, metadata: list[tuple[str, str]]
    ) -> bytes:
        """The encoded reply to ``body``: always exactly one, in the event's shape."""
        try:
            message = json.loads(event.request_type, body)
        except json.JSONDecodeError as exc:
            return json.dumps(undecodable(event, exc))
        except Exception:  # a bug of the codec: still one reply
            logger.exception("%s: the request could not be decoded", event.name)
            return json.dumps(internal_error_reply(event))
        request: AnyCall = self._classes[event.name](message, metadata)
        response = await self.router.handle(request)
        try:
            return json.dumps(response)
        except json.JSONEncodeError as exc:
            # A raw field that is not JSON (a binary payload outside binary mode), ...
            logger.error("%s: the reply cannot be sent as JSON: %s", event.name, exc)
            return json.dumps(internal_error_reply(event))


def _text(value: bytes) -> str:
    """A header value as text: UTF-8 as Go sends it, else Latin-1 (never fails)."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _is_json(content_type: bytes) -> bool:
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(_GZIP)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _Refused(400, f"invalid gzip body: {exc}") from None
    if len(out) > limit:
        raise _Refused(413, f"body larger than {limit} bytes once decompressed")
    if not inflater.eof:
        raise _Refused(400, "invalid gzip body: truncated")
    return out


async def _respond(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    base = _JSON_HEADERS if status == 200 else _TEXT_HEADERS
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*base, (b"content-length", b"%d" % len(body)), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- running it under uvicorn ----------------------------------------------------------------


@functools.cache
def _server_class() -> type[uvicorn.Server]:
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the dev environment has it
        raise ImportError(
            "serving the HTTP proxy needs uvicorn: pip install 'centrifugo-types[http]'"
        ) from exc

    class Server(uvicorn.Server):
        """uvicorn's server, leaving signals to whoever runs it."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server


class ProxyServer(Server):
    """:class:`ProxyApp` served by [uvicorn](https://www.uvicorn.org), in this event loop.

    ::

        async with ProxyServer(router, port=0) as server:
            ...  # serving server.url + server.app.paths["connect"], ...

    The options and the lifecycle are every server's (:class:`centrifugo_types.grpc.ProxyServer`
    has the same): see :class:`~centrifugo_types._server.Server`. ``ssl`` serves HTTPS
    (Centrifugo's ``https://`` endpoints); ``credentials`` is a header of Centrifugo's
    ``http.static_headers`` (others get HTTP 401). ``prefix``, ``paths`` and
    ``max_body_size`` are :class:`ProxyApp`'s (:attr:`app`). :meth:`close` is graceful: it stops
    listening, lets requests in flight finish for up to ``shutdown_timeout`` seconds (whole
    seconds, at least one), then closes the connections. Centrifugo opens a connection per
    concurrent HTTP call, so with ``reuse_port`` the kernel spreads even one node's calls over
    the processes. Needs the ``http`` extra (uvicorn).
    """

    transport = "HTTP"
    alpn_protocols = ("http/1.1",)

    def __init__(
        self,
        router: Router,
        *,
        prefix: str = DEFAULT_PREFIX,
        paths: Mapping[str, str] | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        access_log: bool = False,
        **options: Unpack[ServerOptions],
    ) -> None:
        super().__init__(router, **options)
        self.app = ProxyApp(
            router,
            prefix=prefix,
            paths=paths,
            max_body_size=max_body_size,
            credentials=self.credentials,
        )
        self._access_log = access_log
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The base URL, ``http://host:port`` (``https`` with TLS); the paths are the app's
        :attr:`ProxyApp.paths`."""
        scheme = "https" if self.ssl is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def _listen(self, sock: socket.socket) -> None:
        server_class = _server_class()
        import uvicorn

        config = uvicorn.Config(
            self.app,
            lifespan="off",  # the server enters the router's lifespan itself
            log_config=None,
            access_log=self._access_log,
            timeout_graceful_shutdown=max(1, math.ceil(self.shutdown_timeout)),
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
            server_header=False,
        )
        config.load()
        config.ssl = self.ssl  # the same SSLContext as every server's, not uvicorn's files
        server = server_class(config)
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("uvicorn stopped while starting")
            await asyncio.sleep(0.005)
        self._server, self._task = server, task

    async def _shutdown(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._server = self._task = None
        server.should_exit = True
        await task
