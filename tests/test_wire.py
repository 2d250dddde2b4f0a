"""Wire compatibility of every message type, proven against google.protobuf (upb).

For each of the 210 message classes, hypothesis draws messages over the full value range of
every field and checks, on the same example:

- round trip: ``parse(bytes(m)) == m``;
- ours -> upb: upb parses our bytes to the same field values;
- upb -> ours: we parse upb's bytes (of the same values, built field by field) to ``m``;
- unknown fields: a newer Centrifugo's extra fields are skipped, kept, and written back.
"""

from __future__ import annotations

import struct

import betterproto2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrifugo_types.testing import message_types, messages

from . import oracle

ALL_TYPES = message_types()


def _id(cls: type[betterproto2.Message]) -> str:
    return f"{cls.__module__.rsplit('.', 1)[1]}.{cls.__name__}"


def test_oracle_is_upb() -> None:
    assert oracle.backend() == "upb"


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
@given(data=st.data())
def test_round_trip_and_upb_agree(cls: type[betterproto2.Message], data: st.DataObject) -> None:
    message = data.draw(messages(cls, allow_nan=True), label="message")
    ours = bytes(message)
    expected = oracle.canonical(message)

    assert oracle.canonical(cls.parse(ours)) == expected

    upb_cls = oracle.upb_class(cls)
    from_ours = upb_cls.FromString(ours)
    assert oracle.canonical(oracle.to_ours(from_ours)) == expected

    upb_bytes = oracle.to_upb(message).SerializeToString()
    assert oracle.canonical(cls.parse(upb_bytes)) == expected
    # Both runtimes write fields in number order, so without maps (whose order is free)
    # the bytes themselves agree.
    if not _has_maps(message):
        assert ours == upb_bytes


def _has_maps(message: betterproto2.Message) -> bool:
    for name, meta in oracle.field_meta(type(message)).items():
        value = getattr(message, name)
        if meta.map_meta is not None and value:
            return True
        if isinstance(value, betterproto2.Message) and _has_maps(value):
            return True
        if isinstance(value, list) and any(
            isinstance(v, betterproto2.Message) and _has_maps(v) for v in value
        ):
            return True
    return False


def _unknown_field(number: int, wire_type: int, payload: bytes, varint: int) -> bytes:
    key = _varint(number << 3 | wire_type)
    if wire_type == 0:
        return key + _varint(varint)
    if wire_type == 1:
        return key + struct.pack("<Q", varint & (2**64 - 1))
    if wire_type == 5:
        return key + struct.pack("<I", varint & (2**32 - 1))
    return key + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
@given(data=st.data())
def test_unknown_fields_are_kept(cls: type[betterproto2.Message], data: st.DataObject) -> None:
    message = data.draw(messages(cls), label="message")
    known = {m.number for m in oracle.field_meta(cls).values()}
    extra = data.draw(
        st.lists(
            st.builds(
                _unknown_field,
                st.integers(1, 2**29 - 1).filter(lambda n: n not in known),
                st.sampled_from([0, 1, 2, 5]),
                st.binary(max_size=20),
                st.integers(0, 2**64 - 1),
            ),
            min_size=1,
            max_size=4,
        ),
        label="unknown fields",
    )
    wire = bytes(message) + b"".join(extra)

    decoded = cls.parse(wire)
    assert oracle.canonical(decoded) == oracle.canonical(message)
    # Unknown fields survive a re-encode, as upb keeps them too.
    again = bytes(decoded)
    assert again.endswith(b"".join(extra))
    upb = oracle.upb_class(cls).FromString(wire)
    assert oracle.canonical(oracle.to_ours(upb)) == oracle.canonical(cls.parse(again))
