"""Typed clients of Centrifugo's server API: one method surface over pluggable transports.

- :class:`ApiClient` (asyncio) and :class:`SyncApiClient` (threads) have the same methods,
  generated from the ``CentrifugoApi`` service of api.proto: one per rpc, whose keyword
  arguments are the request's fields (``await client.publish(channel="news", data={...})``),
  ``call(request)`` for any request message, and ``batch(requests)`` with typed results.
- Transports (the protocol: :class:`AsyncApiTransport`, :class:`ApiTransport`):
  :class:`HttpTransport` (HTTP/1.1 on httptools), :class:`AiohttpTransport` (aiohttp, optional)
  and :class:`SyncHttpTransport` (urllib3) for the HTTP API,
  :class:`GrpcTransport` (grpclib) and :class:`GrpcioTransport` (grpcio, optional) for the
  gRPC API, :class:`ThreadedTransport` to run an
  async transport for the sync client, :class:`MockTransport` answering from a function of
  yours in tests. A client picks one from its URL (``http://...``, ``grpc://...``) or takes
  ``transport=``. Each transport module imports only its own library; they are imported here
  on first use.

Errors are the same on every transport, all :class:`~centrifugo_types.ClientError`: an
``error`` of a reply raises :class:`~centrifugo_types.ApiError` (a subclass per code), a refused
API key :class:`~centrifugo_types.AuthenticationError`, a method the server lacks
:class:`~centrifugo_types.UnsupportedMethodError`, no valid answer
:class:`~centrifugo_types.TransportError` (:class:`~centrifugo_types.ApiTimeoutError` when
late).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._generated.api_methods import (
    METHODS,
    ApiMethod,
    ApiMethods,
    BatchableRequest,
    BatchResult,
    SyncApiMethods,
    payload,
)
from ._client import DEFAULT_TIMEOUT, ApiClient, SyncApiClient
from ._transport import ApiTransport, AsyncApiTransport
from .mock import MockTransport
from .threaded import ThreadedTransport

if TYPE_CHECKING:
    from .grpc import GrpcTransport
    from .grpcio import GrpcioTransport
    from .http import HttpTransport
    from .http_aiohttp import AiohttpTransport
    from .http_sync import SyncHttpTransport

__all__ = [
    "DEFAULT_TIMEOUT",
    "METHODS",
    "AiohttpTransport",
    "ApiClient",
    "ApiMethod",
    "ApiMethods",
    "ApiTransport",
    "AsyncApiTransport",
    "BatchResult",
    "BatchableRequest",
    "GrpcTransport",
    "GrpcioTransport",
    "HttpTransport",
    "MockTransport",
    "SyncApiClient",
    "SyncApiMethods",
    "SyncHttpTransport",
    "ThreadedTransport",
    "payload",
]

_LAZY = {
    "GrpcTransport": "grpc",
    "GrpcioTransport": "grpcio",
    "HttpTransport": "http",
    "AiohttpTransport": "http_aiohttp",
    "SyncHttpTransport": "http_sync",
}


def __getattr__(name: str) -> Any:
    """The network transports, imported on first use (each needs its own library)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
