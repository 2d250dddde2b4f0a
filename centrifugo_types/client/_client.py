"""The two clients: :class:`ApiClient` (asyncio) and :class:`SyncApiClient` (threads)."""

from __future__ import annotations

import ssl as _ssl
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from .._generated.api_methods import ApiMethod, ApiMethods, SyncApiMethods
from ..errors import ApiError, ClientError
from ._transport import ApiTransport, AsyncApiTransport

__all__ = ["DEFAULT_TIMEOUT", "ApiClient", "SyncApiClient"]

DEFAULT_TIMEOUT = 10.0
"""Seconds a call may take unless the client or the call says otherwise."""

DEFAULT_URL = "http://127.0.0.1:8000/api"
"""Centrifugo's HTTP server API with its default port and ``http_api.handler_prefix``."""


def _result(method: ApiMethod[Any, Any, Any], response: Any) -> Any:
    """The ``result`` of a response (its default when absent); raise its ``error``."""
    if method.result is None:  # a batch: one reply per command, errors inside
        return response
    error = response.error
    if error is not None:
        raise ApiError.for_code(error.code, error.message, method.path)
    result = response.result
    return method.result() if result is None else result


def _where(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "grpc", "grpcs") or not parts.hostname:
        raise ValueError(
            f"{url!r}: expected http(s)://HOST[:PORT]/PREFIX (the HTTP API, e.g. "
            f"{DEFAULT_URL}) or grpc(s)://HOST:PORT (the gRPC API)"
        )
    return parts.scheme, parts.hostname, parts.port


def _async_transport(
    url: str, api_key: str | None, ssl: bool | _ssl.SSLContext | None
) -> AsyncApiTransport:
    scheme, host, port = _where(url)
    if scheme.startswith("grpc"):
        from .grpc import GrpcTransport

        tls = ssl if ssl is not None else scheme == "grpcs"
        return GrpcTransport(host, port or 10000, api_key=api_key, ssl=tls)
    from .http import HttpTransport

    return HttpTransport(url, api_key=api_key, ssl=ssl)


def _sync_transport(
    url: str, api_key: str | None, ssl: bool | _ssl.SSLContext | None
) -> ApiTransport:
    scheme, _, _ = _where(url)
    if scheme.startswith("grpc"):
        from .threaded import ThreadedTransport

        return ThreadedTransport(_async_transport(url, api_key, ssl))
    from .http_sync import SyncHttpTransport

    return SyncHttpTransport(url, api_key=api_key, ssl=ssl)


class ApiClient(ApiMethods):
    """Centrifugo's server API, asynchronous: one method per rpc of api.proto
    (``await client.publish(channel="news", data={"text": "hi"})``), ``call(request)`` for any
    request message, ``batch(requests)``.

    ``url`` picks the transport: ``http://HOST:PORT/api`` (``https://``) for the HTTP API
    (:class:`~centrifugo_types.client.HttpTransport`, HTTP/1.1 on httptools), ``grpc://HOST:PORT``
    (``grpcs://``) for the gRPC API (:class:`~centrifugo_types.client.GrpcTransport`,
    grpclib). ``transport=`` gives one directly (``url``, ``api_key`` and ``ssl`` are then
    unused), e.g. :class:`~centrifugo_types.client.MockTransport` in tests.

    ``ssl``: ``True`` for TLS with the default CA store, or an ``ssl.SSLContext`` (never
    modified). ``timeout``: default seconds per call (``None``: no limit).

    Connections are opened on the first call, per event loop, so one client can serve several
    ``asyncio.run()`` in turn. ``aclose()`` (or leaving ``async with``) closes it for good:
    any later call raises :class:`~centrifugo_types.ClientError`.
    """

    __slots__ = ("_closed", "_transport", "timeout")

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        ssl: bool | _ssl.SSLContext | None = None,
        transport: AsyncApiTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self._transport = transport or _async_transport(url, api_key, ssl)
        self._closed = False

    @property
    def transport(self) -> AsyncApiTransport:
        return self._transport

    async def _call(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        if self._closed:
            raise ClientError(f"{method.path}: the client is closed")
        limit = self.timeout if timeout is None else timeout
        response = await self._transport.handle_async_request(method, request, limit)
        return _result(method, response)

    async def aclose(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            await self._transport.aclose()

    async def __aenter__(self) -> Self:
        if self._closed:
            raise ClientError("the client is closed; make a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class SyncApiClient(SyncApiMethods):
    """Centrifugo's server API, synchronous: the methods of :class:`ApiClient` without
    ``await`` (``client.publish(channel="news", data={"text": "hi"})``), for scripts and
    WSGI views. One client can be shared by every thread of a process: connections are
    pooled and reused.

    ``url`` picks the transport: ``http(s)://HOST:PORT/api``
    (:class:`~centrifugo_types.client.SyncHttpTransport`, urllib3) or ``grpc(s)://HOST:PORT``
    (:class:`~centrifugo_types.client.GrpcTransport` on a background event loop thread);
    ``transport=`` gives one directly. ``close()`` (or leaving ``with``) closes it for good.
    """

    __slots__ = ("_closed", "_transport", "timeout")

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        ssl: bool | _ssl.SSLContext | None = None,
        transport: ApiTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self._transport = transport or _sync_transport(url, api_key, ssl)
        self._closed = False

    @property
    def transport(self) -> ApiTransport:
        return self._transport

    def _call(self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None) -> Any:
        if self._closed:
            raise ClientError(f"{method.path}: the client is closed")
        limit = self.timeout if timeout is None else timeout
        return _result(method, self._transport.handle_request(method, request, limit))

    def close(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self._transport.close()

    def __enter__(self) -> Self:
        if self._closed:
            raise ClientError("the client is closed; make a new one")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
