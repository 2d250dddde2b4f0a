"""Typed, fast, wire-exact Centrifugo messages and proxy backends for Python.

- :mod:`centrifugo_types.proxy`: the proxy protocol messages (connect, subscribe, publish, ...).
- :mod:`centrifugo_types.api`: the server API messages.
- :mod:`centrifugo_types.requests`: typed proxy requests with their reply methods.
- :class:`Router`: a handler per proxy event, interceptors, exactly one reply.
- :mod:`centrifugo_types.grpc`: the gRPC proxy server (grpclib).
- :mod:`centrifugo_types.http`: the HTTP proxy as an ASGI app (served by uvicorn).
- :mod:`centrifugo_types.json`: Centrifugo's JSON dialect (HTTP proxy, HTTP server API).
- :mod:`centrifugo_types.client`: server API clients over gRPC and HTTP.
- :mod:`centrifugo_types.testing`: hypothesis strategies for every message type.
"""

from ._generated import CENTRIFUGO_VERSION
from ._generated._runtime import DecodeError, EncodeError
from .exceptions import AlreadyRepliedError, Disconnect, ProxyError
from .router import Router

__version__ = "0.1.0"

__all__ = [
    "CENTRIFUGO_VERSION",
    "AlreadyRepliedError",
    "DecodeError",
    "Disconnect",
    "EncodeError",
    "ProxyError",
    "Router",
    "__version__",
]
