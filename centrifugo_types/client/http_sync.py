"""The HTTP transport of :class:`~centrifugo_types.client.SyncApiClient`, on urllib3.

One thread-safe connection pool, shared by every thread; chosen by ``scripts/bench api``
(BENCHMARKS.md, "Server API clients"). Needs the ``http`` extra.
"""

from __future__ import annotations

import ssl as _ssl
from typing import Any
from urllib.parse import urlsplit

import urllib3

from .. import json as dialect
from .._generated.api_methods import ApiMethod
from ..errors import ApiTimeoutError, TransportError
from . import _http

__all__ = ["SyncHttpTransport"]


class SyncHttpTransport:
    """Centrifugo's HTTP server API over a urllib3 connection pool.

    ``url``: the API's base URL. ``ssl``: ``True``/``None`` to verify with the default CA
    store, ``False`` not to verify, or an ``ssl.SSLContext`` (not modified). ``connections``:
    connections kept open for reuse (more threads than that still run at once, on extra
    connections that are closed after use).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000/api",
        *,
        api_key: str | None = None,
        ssl: bool | _ssl.SSLContext | None = None,
        connections: int = 10,
    ) -> None:
        self.url = _http.base_url(url)
        self._prefix = urlsplit(self.url).path
        self._headers = _http.headers(api_key)
        options: dict[str, Any] = {"maxsize": connections, "retries": False}
        if isinstance(ssl, _ssl.SSLContext):
            options["ssl_context"] = ssl
        elif ssl is False:
            options["cert_reqs"] = "CERT_NONE"
        self._pool = urllib3.connection_from_url(self.url, **options)

    def handle_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        body = dialect.dumps(request)
        path = f"{self._prefix}/{method.path}"
        try:
            reply = self._pool.urlopen(
                "POST",
                path,
                body=body,
                headers=self._headers,
                timeout=urllib3.Timeout(total=timeout),
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # a ConnectTimeoutError in urllib3 2
            url = f"{self.url}/{method.path}"
            raise TransportError(f"{method.path}: HTTP request to {url} failed: {exc!r}") from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise ApiTimeoutError(f"{method.path}: no answer within {timeout}s") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            url = f"{self.url}/{method.path}"
            raise TransportError(f"{method.path}: HTTP request to {url} failed: {exc!r}") from exc
        return _http.response(method, f"{self.url}/{method.path}", reply.status, reply.data)

    @property
    def connections_opened(self) -> int:
        """How many connections the pool has opened so far."""
        return self._pool.num_connections

    def close(self) -> None:
        self._pool.close()
