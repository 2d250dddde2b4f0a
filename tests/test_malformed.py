"""Malformed input: decoders raise DecodeError or return a valid message, as upb decides
(except where Go's runtime, Centrifugo's, decides otherwise: see test_wire_rules.py).

Every message type gets valid encodings corrupted by truncation, bit flips, inserted or
deleted bytes, or replaced by random bytes. Our decoder must accept exactly what upb accepts,
decode it to the same values, and otherwise raise :class:`centrifugo_types.DecodeError` --
never another exception, never a hang (hypothesis' deadline), never a big allocation.
"""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import betterproto2
import pytest
from google.protobuf.message import DecodeError as UpbDecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from centrifugo_types import DecodeError
from centrifugo_types.proxy import ConnectRequest, FilterNode, SubscribeResult
from centrifugo_types.testing import message_types, messages

from . import oracle
from .test_wire import _id, _varint

ALL_TYPES = message_types()


def _corrupt(data: st.DataObject, wire: bytes) -> bytes:
    kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete", "random"]))
    buf = bytearray(wire)
    if kind == "random" or not buf:
        return data.draw(st.binary(min_size=1, max_size=64), label="random bytes")
    where = data.draw(st.integers(0, len(buf) - 1), label="offset")
    if kind == "truncate":
        return bytes(buf[:where])
    if kind == "flip":
        buf[where] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    elif kind == "insert":
        buf[where:where] = data.draw(st.binary(min_size=1, max_size=8), label="inserted")
    else:
        del buf[where : where + data.draw(st.integers(1, 8), label="deleted")]
    return bytes(buf)


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
@settings(deadline=timedelta(seconds=5))
@given(data=st.data())
def test_corrupted_input_matches_upb(cls: type[betterproto2.Message], data: st.DataObject) -> None:
    wire = _corrupt(data, bytes(data.draw(messages(cls, allow_nan=True), label="message")))
    try:
        upb = oracle.upb_class(cls).FromString(wire)
    except UpbDecodeError:
        upb = None
    try:
        ours = cls.parse(wire)
    except DecodeError as exc:
        error: DecodeError | None = exc
    else:
        error = None
    if error is not None:
        assert error.message_type is cls
        if upb is not None and (_upb_field_zero_quirk(error) or _go_overflow_rule(error)):
            return
        assert upb is None, f"upb accepts what we reject ({error})"
    elif upb is None:
        assert _may_hold_redundant_varint(wire), "we accept what upb rejects"
    else:
        assert oracle.canonical(ours) == oracle.canonical(oracle.to_ours(upb))


def _go_overflow_rule(exc: DecodeError) -> bool:
    """Go's rule, not upb's: a 10th varint byte above 1 overflows 64 bits (upb drops the
    bits). ``tests/test_wire_rules.py`` checks our rules against Go's runtime."""
    return "overflows 64 bits" in exc.reason


def _may_hold_redundant_varint(wire: bytes) -> bool:
    """Whether ``wire`` may hold a key or length with redundant varint bytes (Go accepts them,
    upb does not): such a varint ends in a zero byte after a continuation byte."""
    return any(a >= 0x80 and b == 0 for a, b in itertools.pairwise(wire))


def _upb_field_zero_quirk(exc: DecodeError) -> bool:
    """The one place we knowingly differ from upb: field number 0 is invalid, but upb skips it
    unchecked where it skips unknown data wholesale (messages without fields, the inside of
    unknown groups). Go's protowire -- Centrifugo's runtime -- rejects it everywhere, as upb
    does in every other position, and so do we."""
    return "field number 0" in exc.reason


def _nested_filter(depth: int) -> bytes:
    wire = b""
    for _ in range(depth):
        wire = (
            b"\x32" + bytes([len(wire)]) + wire
            if len(wire) < 128
            else (b"\x32" + _varint(len(wire)) + wire)
        )
    return wire


def test_recursion_depth_is_bounded_like_upb() -> None:
    upb_cls = oracle.upb_class(FilterNode)
    for depth in (50, 99, 100, 101, 150, 5000):
        wire = _nested_filter(depth)
        try:
            upb_cls.FromString(wire)
            upb_ok = True
        except UpbDecodeError:
            upb_ok = False
        try:
            FilterNode.parse(wire)
            ours_ok = True
        except DecodeError:
            ours_ok = False
        assert ours_ok == upb_ok, depth
    with pytest.raises(DecodeError, match="nested too deeply"):
        FilterNode.parse(_nested_filter(5000))
    # The limit applies below a message that holds a FilterNode, too.
    with pytest.raises(DecodeError):
        SubscribeResult.parse(b"\x42" + _varint(len(w := _nested_filter(200))) + w)


def test_huge_length_prefix_fails_fast_without_allocating() -> None:
    wire = b"\x0a" + _varint(2**62) + b"abc"
    start = time.perf_counter()
    with pytest.raises(DecodeError, match="past the end"):
        ConnectRequest.parse(wire)
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x0a\x05ab", "past the end"),
        (b"\x0a", "truncated"),
        (b"\x0a\x02\xff\xfe", "invalid UTF-8"),
        (b"\x80" * 3, "truncated"),
        (b"\x80" * 11, "longer than 10 bytes"),
        (b"\x08" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (b"\x00", "field number 0"),
        (b"\x0f", "invalid wire type 7"),
        (b"\x0c", "invalid wire type 4"),
        (b"\x0b\x08\x01", "unterminated group"),
    ],
)
def test_decode_errors_say_what_is_wrong(wire: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as info:
        ConnectRequest.parse(wire)
    assert info.value.message_type is ConnectRequest
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("cannot decode ConnectRequest: ")


def test_accepts_bytearray_and_memoryview() -> None:
    wire = bytes(ConnectRequest(client="c", data=b"{}", channels=["a"]))
    for view in (bytearray(wire), memoryview(wire)):
        assert ConnectRequest.parse(view) == ConnectRequest(client="c", data=b"{}", channels=["a"])
    assert ConnectRequest.FromString(wire).client == "c"
