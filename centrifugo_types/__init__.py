"""Typed, fast, wire-exact Centrifugo messages and proxy backends for Python.

Everything a handler module needs comes from here: the :class:`Router`, the typed calls
(:class:`ConnectCall`, :class:`PublishCall`, ...), :data:`CallNext` for interceptors and every
exception (:mod:`centrifugo_types.errors` has the tree). The rest lives in modules:

- :mod:`centrifugo_types.proxy`: the proxy protocol messages (connect, subscribe, publish, ...).
- :mod:`centrifugo_types.api`: the server API messages.
- :mod:`centrifugo_types.grpc`: the gRPC proxy server (grpclib).
- :mod:`centrifugo_types.http`: the HTTP proxy as an ASGI app (served by uvicorn).
- :mod:`centrifugo_types.json`: Centrifugo's JSON dialect (HTTP proxy, HTTP server API).
- :mod:`centrifugo_types.client`: server API clients over gRPC and HTTP.
- :mod:`centrifugo_types.testing`: hypothesis strategies for every message type.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from ._generated import CENTRIFUGO_VERSION
from ._generated import proxy_calls as _proxy_calls
from ._generated.proxy_calls import *  # noqa: F403  (the call class of every event of the schema)
from .calls import (
    AnyCall,
    BidirectionalStreamCall,
    DisconnectableCall,
    Metadata,
    ProxyCall,
    RejectableCall,
    StreamCall,
    UnidirectionalStreamCall,
)
from .errors import (
    AlreadyRepliedError,
    ApiError,
    ApiTimeoutError,
    AuthenticationError,
    BadRequestError,
    CentrifugoTypesError,
    ClientError,
    Code,
    CodecError,
    ConflictError,
    DecodeError,
    DisconnectReply,
    EncodeError,
    ErrorReply,
    HandlerReply,
    InternalError,
    JSONDecodeError,
    JSONEncodeError,
    NotAvailableError,
    NotFoundError,
    StartupError,
    StreamError,
    TransportError,
    UnknownChannelError,
    UnrecoverablePositionError,
    UnsupportedMethodError,
)
from .router import CallNext, Handler, Interceptor, Router

try:
    __version__ = _version("centrifugo-types")
except PackageNotFoundError:  # pragma: no cover - running from a tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "CENTRIFUGO_VERSION",
    "AlreadyRepliedError",
    "AnyCall",
    "ApiError",
    "ApiTimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BidirectionalStreamCall",
    "CallNext",
    "CentrifugoTypesError",
    "ClientError",
    "Code",
    "CodecError",
    "ConflictError",
    "DecodeError",
    "DisconnectReply",
    "DisconnectableCall",
    "EncodeError",
    "ErrorReply",
    "Handler",
    "HandlerReply",
    "Interceptor",
    "InternalError",
    "JSONDecodeError",
    "JSONEncodeError",
    "Metadata",
    "NotAvailableError",
    "NotFoundError",
    "ProxyCall",
    "RejectableCall",
    "Router",
    "StartupError",
    "StreamCall",
    "StreamError",
    "TransportError",
    "UnidirectionalStreamCall",
    "UnknownChannelError",
    "UnrecoverablePositionError",
    "UnsupportedMethodError",
    "__version__",
]
__all__ += _proxy_calls.__all__
