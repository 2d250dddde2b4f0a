"""The HTTP transport of :class:`~centrifugo_types.client.ApiClient`: HTTP/1.1 keep-alive
connections on asyncio's protocols, responses parsed by httptools (llhttp, the parser of
Node.js and uvicorn). ``POST <url>/<method>`` with ``X-API-Key``, bodies in Centrifugo's JSON
dialect (:mod:`centrifugo_types.json`). Needs the ``http`` extra.

Hand-written because of the numbers (BENCHMARKS.md, "Server API clients"): the server API is
one small POST after another to one host, and a general-purpose client spends most of each
call in its own machinery (URL objects, header multidicts, hooks, pool bookkeeping). Here a
call is one ``write()`` of bytes prepared per method and a C parser's callbacks; the pool is a
list of idle connections and a queue of waiters.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl as _ssl
import weakref
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from .. import json as dialect
from .._generated.api_methods import ApiMethod
from ..errors import ApiTimeoutError, TransportError
from . import _http

__all__ = ["HttpTransport"]


class _Stale(ConnectionError):
    """A reused connection was closed before any byte of the answer: the server closed it
    while idle, so the request was not processed and may be sent again."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.chunks: list[bytes] = []
        self.closed = False
        self.keep_alive = True
        self.used = False
        self.received = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TransportError(f"unreadable HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.used and not self.received:
            self._fail(_Stale("connection closed by the server"))
        else:
            self._fail(ConnectionError(f"connection lost: {exc or 'closed by the server'}"))

    # httptools callbacks

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        self.keep_alive = self.parser.should_keep_alive()
        content = b"".join(self.chunks)
        self.chunks = []
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), content))

    # ours

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.received = False
        self.transport.write(data)
        try:
            return await self.waiter
        finally:
            self.used = True

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Pool:
    """The connections of one event loop: at most ``limit``, idle ones reused last-in first-out,
    callers beyond the limit queued in order."""

    def __init__(self, host: str, port: int, ssl: _ssl.SSLContext | None, limit: int) -> None:
        self.host, self.port, self.ssl, self.limit = host, port, ssl, limit
        self.idle: list[_Connection] = []
        self.open = 0
        self.waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()

    async def acquire(self) -> _Connection:
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                return connection
            self.open -= 1
        if self.open >= self.limit:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed over, then cancelled
                    self.release(waiter.result(), True)
                raise
            if handed is not None:
                return handed
        else:
            self.open += 1
        return await self.connect()

    async def connect(self) -> _Connection:
        """A new connection, in a slot already counted in ``open``."""
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                _Connection,
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.host if self.ssl else None,
            )
        except BaseException:
            self.release(None, False)
            raise
        return connection

    def release(self, connection: _Connection | None, reusable: bool) -> None:
        """Give back a connection (``None``: a slot whose connection failed to open)."""
        if connection is not None and not (reusable and connection.keep_alive):
            connection.close()
        if connection is None or connection.closed:
            connection = None
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)  # None: the waiter opens its own
                return
        if connection is None:
            self.open -= 1
        else:
            self.idle.append(connection)

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            with contextlib.suppress(RuntimeError):  # a transport of a closed loop
                connection.close()


class HttpTransport:
    """Centrifugo's HTTP server API over HTTP/1.1 keep-alive connections (see the module).

    ``url``: the API's base URL (``http_api.handler_prefix``, ``/api`` by default).
    ``ssl``: for ``https://``: ``True``/``None`` to verify with the default CA store, or an
    ``ssl.SSLContext`` (not modified). ``connections``: at most this many connections per
    event loop (the calls beyond it wait for one).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000/api",
        *,
        api_key: str | None = None,
        ssl: bool | _ssl.SSLContext | None = None,
        connections: int = 20,
    ) -> None:
        self.url = _http.base_url(url)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r}: expected http(s)://HOST[:PORT]/PREFIX")
        tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if tls else 80)
        self.connections = connections
        context: _ssl.SSLContext | None = None
        if tls:
            context = ssl if isinstance(ssl, _ssl.SSLContext) else _ssl.create_default_context()
            if ssl is False:
                context.check_hostname = False
                context.verify_mode = _ssl.CERT_NONE
        self._ssl = context
        host = parts.netloc.rsplit("@", 1)[-1]
        fixed = [f"Host: {host}", *(f"{k}: {v}" for k, v in _http.headers(api_key).items())]
        self._prefix = parts.path
        self._fixed = "\r\n".join(fixed)
        self._heads: dict[str, bytes] = {}
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = (
            weakref.WeakKeyDictionary()
        )

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = _Pool(self.host, self.port, self._ssl, self.connections)
        return pool

    def _head(self, path: str) -> bytes:
        head = self._heads.get(path)
        if head is None:
            line = f"POST {self._prefix}/{path} HTTP/1.1\r\n{self._fixed}\r\nContent-Length: "
            head = self._heads[path] = line.encode()
        return head

    async def handle_async_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        body = dialect.dumps(request)
        data = b"%s%d\r\n\r\n%s" % (self._head(method.path), len(body), body)
        pool = self._pool()
        try:
            async with asyncio.timeout(timeout):
                for attempt in (1, 2):
                    connection = await pool.acquire()
                    try:
                        status, content = await connection.request(data)
                    except _Stale:
                        pool.release(connection, False)
                        if attempt == 2:
                            raise
                        continue
                    except BaseException:
                        pool.release(connection, False)
                        raise
                    pool.release(connection, True)
                    break
        except TimeoutError as exc:
            raise ApiTimeoutError(f"{method.path}: no answer within {timeout}s") from exc
        except (OSError, TransportError) as exc:
            url = f"{self.url}/{method.path}"
            raise TransportError(f"{method.path}: HTTP request to {url} failed: {exc!r}") from exc
        return _http.response(method, f"{self.url}/{method.path}", status, content)

    async def aclose(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            pool.close()
