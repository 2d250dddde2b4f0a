"""The transport protocol under the API clients: what a new transport implements.

A transport sends one method's request and returns its response; it knows nothing of the
method surface, batching or result types, which the clients implement once for every
transport. A transport module imports only its own dependency.

The contract, for :class:`AsyncApiTransport` and :class:`ApiTransport` alike:

- ``method`` is the :class:`ApiMethod` of the call (its HTTP ``path``, ``grpc_path``, the
  ``request``/``response`` message types); ``request`` an instance of ``method.request``.
- Return an instance of ``method.response`` as the server sent it, ``error`` included (the
  client raises :class:`~centrifugo_types.ApiError` for it).
- ``timeout``: seconds the call may take (``None``: no limit). Past it, raise
  :class:`~centrifugo_types.ApiTimeoutError`.
- Raise :class:`~centrifugo_types.TransportError` when there is no valid answer (connection
  refused or lost, unexpected status, undecodable body),
  :class:`~centrifugo_types.AuthenticationError` when the API key is refused,
  :class:`~centrifugo_types.UnsupportedMethodError` when the server lacks the method, and
  :class:`~centrifugo_types.ApiError` when the transport itself carries Centrifugo's error
  (Centrifugo's ``error_mode: transport``). Nothing else (no library's own exceptions).
- Async transports may be called from any event loop: keep connections per loop (a client
  used under a second ``asyncio.run()`` must work), or raise a ``ClientError`` at once.
  Sync transports may be called from any thread at the same time.
- ``aclose()`` / ``close()`` release the connections. Clients never call a transport after
  closing it.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._generated.api_methods import ApiMethod

__all__ = ["ApiTransport", "AsyncApiTransport"]


class AsyncApiTransport(Protocol):
    """An asynchronous transport of :class:`~centrifugo_types.client.ApiClient`."""

    async def handle_async_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        """Send ``request`` of ``method``; return the ``method.response`` message."""
        ...

    async def aclose(self) -> None:
        """Close the connections."""
        ...


class ApiTransport(Protocol):
    """A synchronous transport of :class:`~centrifugo_types.client.SyncApiClient`."""

    def handle_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        """Send ``request`` of ``method``; return the ``method.response`` message."""
        ...

    def close(self) -> None:
        """Close the connections."""
        ...
