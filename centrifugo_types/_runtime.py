"""Runtime support of the generated codecs: errors and the few helpers too big to inline.

Hand-written and type-checked like the rest of the package; the codecs that
:mod:`._codec_compiler` compiles find the names of its ``RUNTIME_NAMES`` as ``_rt_<name>``, and
the generated classes a few more (``codegen.codec.RUNTIME_NAMES``). Besides the standard
library it imports only :mod:`centrifugo_types.errors`, where its exceptions live with every
other of the package.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from .errors import DecodeError, EncodeError

__all__ = ["DecodeError", "EncodeError"]  # re-exported: generated modules import them from here

MAX_DEPTH = 100
"""How deeply recursive messages may nest on the wire (upb's default limit)."""

GROUP_DEPTH = 10_000
"""How deeply groups may nest within one unknown field: Go's ``protowire.DefaultRecursionLimit``
(its ``ConsumeFieldValue`` starts every unknown field with this budget, whatever the depth of
the message it is in)."""

_U64 = 0xFFFF_FFFF_FFFF_FFFF


#: Exceptions that malformed input can raise inside a generated decoder.
DECODE_FAILURES = (DecodeError, IndexError, ValueError, struct.error, RecursionError)

#: Exceptions that bad field values can raise inside a generated encoder.
ENCODE_FAILURES = (EncodeError, TypeError, ValueError, AttributeError, OverflowError, struct.error)


def decode_failed(message_type: type[Any], exc: BaseException) -> DecodeError:
    """The error a generated ``parse`` raises for any failure of its decoder."""
    if isinstance(exc, DecodeError):
        reason = exc.reason
    elif isinstance(exc, IndexError):
        reason = "truncated input"
    elif isinstance(exc, UnicodeDecodeError):
        reason = "invalid UTF-8 in a string field"
    elif isinstance(exc, RecursionError):
        reason = "messages nested too deeply"
    else:
        reason = str(exc)
    return DecodeError(reason, message_type)


def encode_failed(message_type: type[Any], exc: BaseException) -> EncodeError:
    """The error a generated ``__bytes__`` raises for any failure of its encoder."""
    reason = exc.reason if isinstance(exc, EncodeError) else f"{type(exc).__name__}: {exc}"
    return EncodeError(reason, message_type)


# -- decoding ------------------------------------------------------------------------------


def read_varint(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """Finish a varint whose first byte (``first`` >= 0x80) was read before ``pos``.

    Go's rules (``protowire.ConsumeVarint``, what Centrifugo runs): up to 10 bytes, however
    many of them are redundant, and the 10th may only be 0 or 1 (the value must fit in 64
    bits). Returns the value and the new position.
    """
    result = first & 0x7F
    shift = 7
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if shift == 63 and byte > 1:
                raise DecodeError("varint overflows 64 bits")
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def read_tag(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """Finish a multi-byte field key; rejects keys beyond 32 bits."""
    tag, pos = read_varint(data, pos, first)
    if tag > 0xFFFF_FFFF:
        raise DecodeError(f"field key {tag} out of range")
    return tag, pos


def read_length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read the length prefix at ``pos``; returns (start, stop) of the payload within ``end``."""
    n = data[pos]
    pos += 1
    if n >= 0x80:
        n, pos = read_varint(data, pos, n)
    stop = pos + n
    if stop > end:
        raise DecodeError("length-delimited field runs past the end of its message")
    return pos, stop


def skip_field(data: bytes, pos: int, end: int, tag: int) -> int:
    """Skip the value of an unknown field (or a known one with an unexpected wire type)."""
    if tag >> 3 == 0:
        raise DecodeError("field number 0 is invalid")
    wire_type = tag & 7
    if wire_type == 0:
        byte = data[pos]
        pos += 1
        if byte >= 0x80:
            _, pos = read_varint(data, pos, byte)
    elif wire_type == 2:
        pos = read_length(data, pos, end)[1]
    elif wire_type == 1:
        pos += 8
    elif wire_type == 5:
        pos += 4
    elif wire_type == 3:
        return _skip_group(data, pos, end, tag >> 3, GROUP_DEPTH)
    else:
        raise DecodeError(f"invalid wire type {wire_type}")
    if pos > end:
        raise DecodeError("field runs past the end of its message")
    return pos


def _skip_group(data: bytes, pos: int, end: int, number: int, depth: int) -> int:
    """Skip a group's fields up to its end marker (``pos`` is just after its start key).

    As Go's ``protowire.ConsumeFieldValue`` (what Centrifugo's runtime calls for an unknown
    field): iterative, groups nested up to ``depth`` + 1 deep within this one field, keys
    inside groups with field numbers 1 to 2**31 - 1.
    """
    open_groups = [number]
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = read_varint(data, pos, tag)
        if tag >> 3 == 0:
            raise DecodeError("field number 0 is invalid")
        if tag >> 3 > 0x7FFF_FFFF:
            raise DecodeError(f"field key {tag} out of range")
        wire_type = tag & 7
        if wire_type == 4:
            if tag >> 3 != open_groups.pop():
                raise DecodeError("mismatched end-group marker")
            if not open_groups:
                return pos
        elif wire_type == 3:
            if len(open_groups) > depth:
                raise DecodeError("groups nested too deeply")
            open_groups.append(tag >> 3)
        else:
            pos = skip_field(data, pos, end, tag)
    raise DecodeError("unterminated group")


def int32(value: int) -> int:
    """A decoded varint read as int32 (low 32 bits, two's complement)."""
    value &= 0xFFFF_FFFF
    return value - 0x1_0000_0000 if value >= 0x8000_0000 else value


def int64(value: int) -> int:
    """A decoded varint read as int64 (two's complement)."""
    return value - 0x1_0000_0000_0000_0000 if value >= 0x8000_0000_0000_0000 else value


def zigzag(value: int) -> int:
    """Undo zig-zag encoding (sint32, sint64)."""
    return (value >> 1) ^ -(value & 1)


def utf8(data: bytes, start: int, stop: int) -> str:
    """Decode a string field, rejecting invalid UTF-8 as protobuf runtimes do."""
    return data[start:stop].decode()


unpack_double = struct.Struct("<d").unpack_from
unpack_float = struct.Struct("<f").unpack_from
unpack_fixed64 = struct.Struct("<Q").unpack_from
unpack_fixed32 = struct.Struct("<I").unpack_from
unpack_sfixed64 = struct.Struct("<q").unpack_from
unpack_sfixed32 = struct.Struct("<i").unpack_from


# -- encoding ------------------------------------------------------------------------------

SMALL = tuple(bytes((i,)) for i in range(128))


def varint(value: int) -> bytes:
    """Encode a non-negative integer below 2**64 as a varint."""
    if value < 0x80:
        return SMALL[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x8_0000_0000:  # 3 to 5 bytes (unix timestamps take 5), unrolled
        if value < 0x20_0000:
            return bytes((value & 0x7F | 0x80, (value >> 7) & 0x7F | 0x80, value >> 14))
        if value < 0x1000_0000:
            return bytes(
                (
                    value & 0x7F | 0x80,
                    (value >> 7) & 0x7F | 0x80,
                    (value >> 14) & 0x7F | 0x80,
                    value >> 21,
                )
            )
        return bytes(
            (
                value & 0x7F | 0x80,
                (value >> 7) & 0x7F | 0x80,
                (value >> 14) & 0x7F | 0x80,
                (value >> 21) & 0x7F | 0x80,
                value >> 28,
            )
        )
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _range(kind: str, value: int) -> EncodeError:
    return EncodeError(f"{value!r} is out of range for {kind}")


# Generated code writes values below 16384 inline and calls these for the rest (and for
# every sint, packed element and bool).


def enc_int32(value: int) -> bytes:
    if not -0x8000_0000 <= value <= 0x7FFF_FFFF:
        raise _range("int32", value)
    return varint(value & _U64)


def enc_int64(value: int) -> bytes:
    if not -0x8000_0000_0000_0000 <= value <= 0x7FFF_FFFF_FFFF_FFFF:
        raise _range("int64", value)
    return varint(value & _U64)


def enc_uint32(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF_FFFF:
        raise _range("uint32", value)
    return varint(value)


def enc_uint64(value: int) -> bytes:
    if not 0 <= value <= _U64:
        raise _range("uint64", value)
    return varint(value)


def enc_sint32(value: int) -> bytes:
    if not -0x8000_0000 <= value <= 0x7FFF_FFFF:
        raise _range("sint32", value)
    return varint(((value << 1) ^ (value >> 31)) & 0xFFFF_FFFF)


def enc_sint64(value: int) -> bytes:
    if not -0x8000_0000_0000_0000 <= value <= 0x7FFF_FFFF_FFFF_FFFF:
        raise _range("sint64", value)
    return varint(((value << 1) ^ (value >> 63)) & _U64)


copysign = math.copysign


def enc_bool(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


pack_double = struct.Struct("<d").pack
pack_float = struct.Struct("<f").pack
pack_fixed64 = struct.Struct("<Q").pack
pack_fixed32 = struct.Struct("<I").pack
pack_sfixed64 = struct.Struct("<q").pack
pack_sfixed32 = struct.Struct("<i").pack


def wrong_type(expected: type[Any], value: object) -> EncodeError:
    return EncodeError(f"expected {expected.__qualname__}, got {type(value).__qualname__}")
