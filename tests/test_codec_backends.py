"""The two backends of the binary codec (``_codec_compiler.BACKEND``): the C extension
``centrifugo_types._speedups`` and the compiled pure-Python codec give the same bytes, the same
objects and the same errors, on valid, corrupted and badly typed messages. Both are also
checked against upb and Go by the codec tests (test_wire*.py, test_malformed.py, ...), which
scripts/test runs once with each backend."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import betterproto2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import centrifugo_types
from centrifugo_types import _codec_compiler, _runtime, proxy
from centrifugo_types._generated import api as generated_api
from centrifugo_types._generated import proxy as generated_proxy
from centrifugo_types.testing import message_types, messages

from .test_malformed import _corrupt
from .test_wire import _id

ALL_TYPES = message_types()
PURE = os.environ.get("CENTRIFUGO_TYPES_PURE_PYTHON", "") not in ("", "0")
BUILT = True
try:
    from centrifugo_types import _speedups  # noqa: F401
except ImportError:
    BUILT = False

needs_c = pytest.mark.skipif(
    _codec_compiler.BACKEND != "c", reason="the C codec is not active (pure-Python run)"
)


def test_the_c_codec_is_active_when_built() -> None:
    if PURE:
        assert _codec_compiler.BACKEND == centrifugo_types.CODEC_BACKEND == "python"
        return
    if not BUILT and not os.environ.get("CI"):
        pytest.skip("the C extension is not built here (no C compiler at install time)")
    # Under CI the extension must have been built by the project's install (hatch_build.py).
    assert BUILT
    assert _codec_compiler.BACKEND == centrifugo_types.CODEC_BACKEND == "c"
    message = proxy.ConnectRequest(client="c", transport="websocket")
    assert proxy.ConnectRequest.parse(bytes(message)) == message
    encode, decode = generated_proxy._codecs.binary(proxy.ConnectRequest)
    assert getattr(encode, "__self__", None) is getattr(decode, "__self__", None)
    assert type(encode.__self__).__module__ == "centrifugo_types._speedups"  # type: ignore[attr-defined]
    assert encode.__self__.state == "c"  # type: ignore[attr-defined]


def test_the_environment_variable_forces_the_pure_python_codec() -> None:
    code = (
        "import centrifugo_types; from centrifugo_types import proxy;"
        "m = proxy.ConnectRequest(client='c');"
        "assert proxy.ConnectRequest.parse(bytes(m)) == m;"
        "print(centrifugo_types.CODEC_BACKEND)"
    )
    env = {**os.environ, "CENTRIFUGO_TYPES_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "python"


def _codecs(cls: type[Any]) -> _codec_compiler.BinaryCodecs:
    module = generated_api if cls.__module__ == generated_api.__name__ else generated_proxy
    codecs: _codec_compiler.BinaryCodecs = module._codecs
    return codecs


def _outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return ("error", type(exc), str(exc))


def _encode(encoder: Callable[[Any, bytearray], None], message: Any) -> bytes:
    out = bytearray(b"prefix")  # encoders append to what the buffer holds
    encoder(message, out)
    return bytes(out)


def _same_message(a: Any, b: Any, python_encode: Callable[[Any, bytearray], None]) -> None:
    assert type(a) is type(b)
    assert list(vars(a)) == list(vars(b))
    assert repr(a) == repr(b)  # NaN-safe, unlike ==
    assert _encode(python_encode, a) == _encode(python_encode, b)
    assert a._unknown_fields == b._unknown_fields


_WRONG_VALUES: list[object] = [None, "x", b"x", 1.5, -1, 2**31, 2**64, True, math.nan, [], {}]
_WRONG_VALUES += [["x"], [None]]

#: A fifth of the profile's examples: the codec tests (test_wire*.py, test_malformed.py) already
#: check each codec against upb and Go on the full count; this compares the two codecs.
_EXAMPLES = max(10, settings().max_examples // 5)


@needs_c
@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
@settings(deadline=timedelta(seconds=5), max_examples=_EXAMPLES)
@given(data=st.data())
def test_both_backends_agree(cls: type[betterproto2.Message], data: st.DataObject) -> None:
    """Same bytes, same objects, same errors: valid and corrupted encodings, then a field
    set to a value of a wrong type or range."""
    codecs = _codecs(cls)
    c_encode, c_decode = codecs.binary(cls)
    py_encode, py_decode = codecs.python_binary(cls)
    message = data.draw(messages(cls, allow_nan=True), label="message")

    wire = _encode(py_encode, message)
    assert _encode(c_encode, message) == wire
    assert codecs.to_bytes(cls)(message) == wire[6:]
    assert codecs.function(f"_bytes_{cls.__name__}")(message) == wire[6:]

    for candidate in (wire[6:], _corrupt(data, wire[6:])):
        ours = _outcome(c_decode, cls, candidate, 0, len(candidate), _runtime.MAX_DEPTH)
        theirs = _outcome(py_decode, cls, candidate, 0, len(candidate), _runtime.MAX_DEPTH)
        assert ours[:1] == theirs[:1], (ours, theirs)
        if ours[0] == "ok":
            _same_message(ours[1], theirs[1], py_encode)
        else:
            assert ours == theirs

    fields = codecs.messages()[cls.__name__].fields
    if fields:
        field = data.draw(st.sampled_from(fields), label="field")
        value = data.draw(st.sampled_from(_WRONG_VALUES), label="wrong value")
        setattr(message, field.py_name, value)
        assert _outcome(_encode, c_encode, message) == _outcome(_encode, py_encode, message)
        assert _outcome(bytes, message) == _outcome(_encode_checked, py_encode, message)


def _encode_checked(encoder: Callable[[Any, bytearray], None], message: Any) -> bytes:
    """What ``bytes(message)`` does, with ``encoder``."""
    out = bytearray()
    try:
        encoder(message, out)
    except _runtime.ENCODE_FAILURES as exc:
        raise _runtime.encode_failed(type(message), exc) from None
    return bytes(out)


@needs_c
def test_subclasses_and_merges_take_the_python_path_with_the_same_result() -> None:
    class Mine(proxy.ConnectRequest):
        pass

    message = Mine(client="c", transport="websocket")
    wire = bytes(message)
    assert wire == bytes(proxy.ConnectRequest(client="c", transport="websocket"))
    decoded = Mine.parse(wire)
    assert type(decoded) is Mine and decoded.transport == "websocket"
    # A singular message field seen twice merges (the C side hands it to Python).
    part = bytes(proxy.ConnectResponse(result=proxy.ConnectResult(user="a")))
    other = bytes(proxy.ConnectResponse(result=proxy.ConnectResult(data=b"x")))
    merged = proxy.ConnectResponse.parse(part + other)
    assert merged.result == proxy.ConnectResult(user="a", data=b"x")


@needs_c
@pytest.mark.parametrize("size", [0, 100, 127, 128, 16383, 16384, 70000])
def test_length_prefixes_of_every_width(size: int) -> None:
    from centrifugo_types import api

    message = api.HistoryResult(
        publications=[api.Publication(data=b"x" * size, tags={"k" * size: "v"})] * 2,
        epoch="e" * size,
    )
    codecs = _codecs(api.HistoryResult)
    py_encode, py_decode = codecs.python_binary(api.HistoryResult)
    wire = _encode(py_encode, message)[6:]
    assert bytes(message) == wire
    assert api.HistoryResult.parse(wire) == message
    _same_message(
        api.HistoryResult.parse(wire),
        py_decode(api.HistoryResult, wire, 0, len(wire), 100),
        py_encode,
    )
