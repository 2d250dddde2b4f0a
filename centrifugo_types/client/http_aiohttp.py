"""An HTTP transport of :class:`~centrifugo_types.client.ApiClient` on aiohttp, for what the
default :class:`~centrifugo_types.client.HttpTransport` does not do (HTTP proxies, aiohttp's
options). ``POST <url>/<method>`` with ``X-API-Key``, bodies in Centrifugo's JSON dialect.
Needs aiohttp (``pip install centrifugo-types[aiohttp]``); 0.5x the default transport's calls
per second with 1,000 in flight (BENCHMARKS.md, "Server API clients").
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import weakref
from typing import Any

import aiohttp

from .. import json as dialect
from .._generated.api_methods import ApiMethod
from ..errors import ApiTimeoutError, TransportError
from . import _http

__all__ = ["AiohttpTransport"]


class AiohttpTransport:
    """Centrifugo's HTTP server API over aiohttp.

    ``url``: the API's base URL (``http_api.handler_prefix``, ``/api`` by default).
    ``ssl``: ``True``/``None`` for aiohttp's default verification, ``False`` to skip it, or an
    ``ssl.SSLContext`` (not modified). ``connections``: at most this many connections per
    event loop (the calls beyond it wait for one). One ``aiohttp.ClientSession`` per event
    loop, made on the first call in that loop.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000/api",
        *,
        api_key: str | None = None,
        ssl: bool | _ssl.SSLContext | None = None,
        connections: int = 100,
    ) -> None:
        self.url = _http.base_url(url)
        self.connections = connections
        self._ssl: bool | _ssl.SSLContext = True if ssl is None else ssl
        self._headers = _http.headers(api_key)
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, aiohttp.ClientSession
        ] = weakref.WeakKeyDictionary()
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self.connections, ssl=self._ssl)
            session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
            self._sessions[loop] = session
        return session

    def _timeout(self, seconds: float | None) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def handle_async_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        url = f"{self.url}/{method.path}"
        body = dialect.dumps(request)
        try:
            async with self._session().post(
                url, data=body, timeout=self._timeout(timeout)
            ) as reply:
                status = reply.status
                content = await reply.read()
        except TimeoutError as exc:
            raise ApiTimeoutError(f"{method.path}: no answer within {timeout}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"{method.path}: HTTP request to {url} failed: {exc!r}") from exc
        return _http.response(method, url, status, content)

    async def aclose(self) -> None:
        """Close the session of the running loop; forget those of other loops (their
        connections go with their loops)."""
        sessions = dict(self._sessions)
        self._sessions.clear()
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - aclose is a coroutine
            current = None
        for loop, session in sessions.items():
            if loop is current:
                await session.close()
            else:
                session.detach()
