"""Centrifugo's JSON dialect: the JSON its HTTP proxy and HTTP server API speak.

Centrifugo marshals its messages with Go's ``encoding/json``, not protojson:

- keys are the .proto field names (``expire_at``, ``b64data``); decoding matches them
  case-insensitively, as Go does, and ignores unknown keys;
- every ``bytes`` field (``data``, ``info``, ``meta``, ``params``, ...) holds a raw JSON value,
  embedded as is: ``ConnectResult(data=b'{"a":1}')`` is written ``"data":{"a":1}``, and decoding
  gives back the exact bytes of the value (``null`` included). Binary payloads travel in the
  ``b64*`` string fields, which are plain strings here;
- 64-bit integers are JSON numbers (a quoted number is an error);
- zero values are left out, except for the few fields Centrifugo always writes (``user`` in
  several proxy requests, counters and positions in API results).

::

    from centrifugo_types import json
    from centrifugo_types.proxy import ConnectResponse, ConnectResult

    body = json.dumps(ConnectResponse(result=ConnectResult(user="42", data=b'{"a":1}')))
    assert body == b'{"result":{"user":"42","data":{"a":1}}}'
    assert json.loads(ConnectResponse, body).result.data == b'{"a":1}'

Malformed input raises :class:`JSONDecodeError` (a :class:`centrifugo_types.DecodeError`) that
says where (``result.publications[2].offset``) and what is wrong; a message that cannot be
written (a raw field that is not JSON, an int out of range, an infinite double) raises
:class:`JSONEncodeError` (a :class:`centrifugo_types.EncodeError`).

With ``orjson`` installed (the ``fast`` extra) both directions use it where it gives the very
same result; the standard library path is complete on its own.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import _json_runtime
from .errors import JSONDecodeError, JSONEncodeError

__all__ = ["JSONDecodeError", "JSONEncodeError", "dumps", "loads", "use_orjson"]

if TYPE_CHECKING:
    import betterproto2

M = TypeVar("M", bound="betterproto2.Message")

_ENCODERS: dict[type[Any], Callable[[Any], str]] = {}
_DECODERS: dict[type[Any], tuple[Any, Any, Any]] = {}

_CODECS = {
    f"{__package__}._generated.proxy": f"{__package__}._generated.proxy_json",
    f"{__package__}._generated.api": f"{__package__}._generated.api_json",
}
"""The generated JSON codec of each .proto's messages, imported when one of them is first
written or read: a process that speaks only the proxy protocol never loads the server API's
(nor, through it, the API's messages). See BENCHMARKS.md, "Issue 17"."""


_LOADING = threading.Lock()


def _load_codec(messages: str) -> None:
    # Another thread may be loading it: the codec leaves _CODECS only once it is in the tables,
    # and the lock holds the others until then.
    with _LOADING:
        codec = _CODECS.get(messages)
        if codec is not None:
            module = importlib.import_module(codec)
            _ENCODERS.update(module.ENCODERS)
            _DECODERS.update(module.DECODERS)
            del _CODECS[messages]


def _lookup(table: dict[type[Any], Any], message_type: type[Any]) -> Any:
    for base in message_type.__mro__:
        if getattr(base, "__module__", "") in _CODECS:
            _load_codec(base.__module__)
        if base in table:
            return table[base]
    raise TypeError(f"{message_type!r} is not a centrifugo_types message class")


def dumps(message: betterproto2.Message) -> bytes:
    """Encode ``message`` (any message of ``centrifugo_types.proxy`` or ``.api``) as UTF-8
    JSON in Centrifugo's dialect. Raises :class:`JSONEncodeError` for values that cannot be
    written."""
    encode = _ENCODERS.get(message.__class__)
    if encode is None:
        encode = _lookup(_ENCODERS, message.__class__)
    return _json_runtime.dumps(message, encode)


def loads(message_type: type[M], data: bytes | bytearray | memoryview | str) -> M:
    """Decode a JSON document (UTF-8 bytes or text) as a ``message_type``. Raises
    :class:`JSONDecodeError` when it is not valid JSON or does not fit the message type."""
    decoders = _DECODERS.get(message_type)
    if decoders is None:
        decoders = _lookup(_DECODERS, message_type)
    return _json_runtime.loads(message_type, data, *decoders)


def use_orjson(enabled: bool = True) -> bool:
    """Turn the orjson fast path on (the default when orjson is installed) or off; returns
    whether it is on. Both paths give the same results; this is for tests and benchmarks."""
    return _json_runtime.use_orjson(enabled)
