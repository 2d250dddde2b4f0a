"""Typed, fast, wire-exact Centrifugo messages for Python backends.

- :mod:`centrifugo_types.proxy`: the proxy protocol (connect, refresh, subscribe, publish, ...).
- :mod:`centrifugo_types.api`: the server API.
- :mod:`centrifugo_types.json`: Centrifugo's JSON dialect (HTTP proxy, HTTP server API).
- :mod:`centrifugo_types.client`: server API clients over gRPC and HTTP.
- :mod:`centrifugo_types.testing`: hypothesis strategies for every message type.
"""

from ._generated import CENTRIFUGO_VERSION
from ._generated._runtime import DecodeError, EncodeError

__version__ = "0.1.0"

__all__ = ["CENTRIFUGO_VERSION", "DecodeError", "EncodeError", "__version__"]
