"""Fields in any order, repeated or interleaved decode exactly as upb decodes them.

Encoders write fields in number order and our decoders test keys in that order first, so
this checks the other paths on valid input: every message type's encoding is cut into its
top-level fields, shuffled, some fields repeated (last value wins for scalars, messages
merge, repeated fields append), and the result is compared with google.protobuf (upb).
"""

from __future__ import annotations

import betterproto2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrifugo_types.testing import message_types, messages

from . import oracle
from .test_wire import _id

ALL_TYPES = message_types()


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(wire: bytes) -> list[bytes]:
    """The top-level fields of a valid encoding, each as its raw bytes (key and value)."""
    out, pos = [], 0
    while pos < len(wire):
        start = pos
        key, pos = _varint(wire, pos)
        kind = key & 7
        if kind == 0:
            _, pos = _varint(wire, pos)
        elif kind == 1:
            pos += 8
        elif kind == 5:
            pos += 4
        else:
            assert kind == 2, kind
            length, pos = _varint(wire, pos)
            pos += length
        out.append(wire[start:pos])
    return out


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
@given(data=st.data())
def test_fields_in_any_order_decode_like_upb(
    cls: type[betterproto2.Message], data: st.DataObject
) -> None:
    fields = _fields(bytes(data.draw(messages(cls, allow_nan=True), label="message")))
    shuffled = data.draw(st.permutations(fields), label="order")
    again = (
        data.draw(st.lists(st.sampled_from(fields), max_size=3), label="repeated") if fields else []
    )
    wire = b"".join(shuffled + again)

    ours = cls.parse(wire)
    upb = oracle.upb_class(cls).FromString(wire)
    assert oracle.canonical(ours) == oracle.canonical(oracle.to_ours(upb))
