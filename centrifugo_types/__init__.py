"""Typed, fast, wire-exact Centrifugo messages and proxy backends for Python.

Everything a handler module needs comes from here: the :class:`Router`, the typed calls
(:class:`ConnectCall`, :class:`PublishCall`, ...), :data:`CallNext` for interceptors and every
exception (:mod:`centrifugo_types.errors` has the tree), and :func:`server_ssl_context` for
the servers' TLS. The rest lives in modules:

- :mod:`centrifugo_types.proxy`: the proxy protocol messages (connect, subscribe, publish, ...).
- :mod:`centrifugo_types.api`: the server API messages.
- :mod:`centrifugo_types.grpc`: the gRPC proxy server (grpclib).
- :mod:`centrifugo_types.http`: the HTTP proxy as an ASGI app and its server (uvicorn); both
  servers keep one contract (options, ``async with``, ``serve()``, lifespan).
- :mod:`centrifugo_types.json`: Centrifugo's JSON dialect (HTTP proxy, HTTP server API).
- :mod:`centrifugo_types.client`: server API clients (async and sync) over HTTP, gRPC or a mock.
- :mod:`centrifugo_types.testing`: hypothesis strategies for every message type.

``CODEC_BACKEND`` says which binary codec runs: ``"c"`` (the optional C extension, built at
install time where a C compiler exists) or ``"python"`` (the fallback, or forced with
``CENTRIFUGO_TYPES_PURE_PYTHON=1``).

Importing the package is cheap: each of these names is imported on first use (a module
``__getattr__``), so ``import centrifugo_types`` alone does not load the router, the messages or
the codec (BENCHMARKS.md, "Issue 17"). Type checkers and IDEs see the imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors as _errors
from ._generated import CENTRIFUGO_VERSION
from .errors import *  # noqa: F403  (every exception: cheap, and wanted in `except` clauses)

if TYPE_CHECKING:
    from ._codec_compiler import BACKEND as CODEC_BACKEND
    from ._generated.proxy_calls import *  # noqa: F403  (the call class of every event)
    from ._server import server_ssl_context
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
    from .router import (
        CallNext,
        Handler,
        Interceptor,
        Router,
    )

    __version__: str

    __all__: list[str] = [
        "CENTRIFUGO_VERSION",
        "CODEC_BACKEND",
        "AnyCall",
        "BidirectionalStreamCall",
        "CallNext",
        "DisconnectableCall",
        "Handler",
        "Interceptor",
        "Metadata",
        "ProxyCall",
        "RejectableCall",
        "Router",
        "StreamCall",
        "UnidirectionalStreamCall",
        "__version__",
        "server_ssl_context",
    ]
    __all__ += _errors.__all__  # and the call classes: the star import above

_LAZY = {
    **dict.fromkeys(
        (
            "AnyCall",
            "BidirectionalStreamCall",
            "DisconnectableCall",
            "Metadata",
            "ProxyCall",
            "RejectableCall",
            "StreamCall",
            "UnidirectionalStreamCall",
        ),
        "calls",
    ),
    **dict.fromkeys(("CallNext", "Handler", "Interceptor", "Router"), "router"),
    "server_ssl_context": "_server",
}
"""The module of each lazy name (the call classes come from the generated proxy_calls)."""

_SUBMODULES = frozenset(
    (
        "api",
        "calls",
        "client",
        "errors",
        "fuzz",
        "grpc",
        "grpcio",
        "http",
        "json",
        "proxy",
        "roadrunner",
        "router",
        "testing",
    )
)
"""Public submodules: ``centrifugo_types.proxy`` works after ``import centrifugo_types``."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("centrifugo-types")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that is not installed
        return "0+unknown"


def _calls() -> Any:
    return importlib.import_module("._generated.proxy_calls", __name__)


def _getattr(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name == "__version__":
        value = _version()
    elif name == "CODEC_BACKEND":
        value = importlib.import_module("._codec_compiler", __name__).BACKEND
    elif name == "__all__":
        value = [
            "CENTRIFUGO_VERSION",
            "CODEC_BACKEND",
            "__version__",
            *_LAZY,
            *_errors.__all__,
            *_calls().__all__,
        ]
    elif not name.startswith("_") and name in _calls().__all__:
        value = getattr(_calls(), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # the next lookup does not come here
    return value


def _dir() -> list[str]:
    return sorted({*globals(), *_getattr("__all__")})


if not TYPE_CHECKING:  # hidden from type checkers: they see the imports above, and no others
    __getattr__, __dir__ = _getattr, _dir
