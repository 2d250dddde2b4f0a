"""Goridge v3 frames: what RoadRunner and its workers exchange over pipes and its RPC socket.

A frame is a 12-byte header, up to ten 32-bit options and a payload, little-endian::

    byte 0      0x10 | HL     version 1, header length in 32-bit words (3 + options)
    byte 1      flags         CONTROL, RAW, JSON, MSGPACK, GOB, ERROR, PROTO
    bytes 2-5   payload length
    bytes 6-9   CRC32 (IEEE) of bytes 0-5
    byte 10     stream flags  STREAM, STOP, PING, PONG
    byte 11     reserved (0)
    then the options, then the payload

:func:`encode` makes one; :func:`read_frame` reads one from an :class:`asyncio.StreamReader`
and raises a :class:`FrameError` for bytes that are not a frame (after which the stream is
out of step and must be closed).
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from dataclasses import dataclass
from enum import IntFlag

from .errors import CentrifugoTypesError

__all__ = [
    "HEADER_SIZE",
    "MAX_OPTIONS",
    "MAX_PAYLOAD",
    "CRCMismatchError",
    "Flag",
    "Frame",
    "FrameError",
    "StreamFlag",
    "TruncatedFrameError",
    "decode_header",
    "encode",
    "read_frame",
]

HEADER_SIZE = 12
VERSION = 1
MAX_OPTIONS = 10
"""Goridge allows at most ten options (40 bytes)."""
MAX_PAYLOAD = 0xFFFF_FFFF
"""The payload length is a uint32."""

_HEAD = struct.Struct("<BBI")  # version|HL, flags, payload length: what the CRC covers
_CRC = struct.Struct("<I")


class Flag(IntFlag):
    """Byte 1 of the header: what the payload is."""

    CONTROL = 0x01
    RAW = 0x04
    JSON = 0x08
    MSGPACK = 0x10
    GOB = 0x20
    ERROR = 0x40
    PROTO = 0x80


class StreamFlag(IntFlag):
    """Byte 10 of the header."""

    STREAM = 0x01
    STOP = 0x02
    PING = 0x04
    PONG = 0x08


class FrameError(CentrifugoTypesError, ValueError):
    """Bytes that are not a goridge frame: a wrong version, too many options, a bad CRC, a
    stream cut inside a frame. The stream is out of step afterwards: close it."""


class CRCMismatchError(FrameError):
    """The header's CRC32 does not match its first six bytes."""


class TruncatedFrameError(FrameError):
    """The stream ended inside a frame."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: ``flags`` (:class:`Flag` bits), ``options``, ``payload``."""

    flags: int
    payload: bytes = b""
    options: tuple[int, ...] = ()
    stream_flags: int = 0

    @property
    def is_control(self) -> bool:
        return bool(self.flags & Flag.CONTROL)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & Flag.ERROR)


def encode(
    flags: int, payload: bytes, options: tuple[int, ...] | list[int] = (), stream_flags: int = 0
) -> bytes:
    """The bytes of a frame."""
    if len(options) > MAX_OPTIONS:
        raise ValueError(f"a frame has at most {MAX_OPTIONS} options, got {len(options)}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a frame's payload is at most {MAX_PAYLOAD} bytes")
    head = _HEAD.pack(VERSION << 4 | (3 + len(options)), flags, len(payload))
    crc = _CRC.pack(zlib.crc32(head))
    opts = struct.pack(f"<{len(options)}I", *options) if options else b""
    return b"".join((head, crc, bytes((stream_flags, 0)), opts, payload))


def decode_header(header: bytes) -> tuple[int, int, int, int]:
    """Check a 12-byte header; return ``(options count, flags, payload length, stream
    flags)``. Raises :class:`FrameError`."""
    if len(header) != HEADER_SIZE:
        raise FrameError(f"a frame header is {HEADER_SIZE} bytes, got {len(header)}")
    first, flags, length = _HEAD.unpack_from(header)
    version, words = first >> 4, first & 0x0F
    if version != VERSION:
        raise FrameError(f"goridge frame version {version}, expected {VERSION}")
    if not 3 <= words <= 3 + MAX_OPTIONS:
        raise FrameError(f"header length of {words} words (3 to {3 + MAX_OPTIONS} allowed)")
    (crc,) = _CRC.unpack_from(header, 6)
    expected = zlib.crc32(header[:6])
    if crc != expected:
        raise CRCMismatchError(f"header CRC32 is {crc:#010x}, its bytes give {expected:#010x}")
    return words - 3, flags, length, header[10]


async def read_frame(
    reader: asyncio.StreamReader, *, max_payload: int = MAX_PAYLOAD
) -> Frame | None:
    """The next frame, or ``None`` if the stream ended cleanly between frames.

    Raises :class:`FrameError` (:class:`TruncatedFrameError` when it ended inside one, or
    the payload is longer than ``max_payload``).
    """
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise TruncatedFrameError(
            f"the stream ended after {len(exc.partial)} bytes of a frame header"
        ) from None
    count, flags, length, stream_flags = decode_header(header)
    if length > max_payload:
        raise FrameError(f"a payload of {length} bytes (at most {max_payload} accepted)")
    try:
        body = await reader.readexactly(4 * count + length)
    except asyncio.IncompleteReadError as exc:
        raise TruncatedFrameError(
            f"the stream ended {4 * count + length - len(exc.partial)} bytes before the end "
            "of a frame"
        ) from None
    options = struct.unpack_from(f"<{count}I", body) if count else ()
    payload = body[4 * count :] if count else body
    return Frame(flags, payload, options, stream_flags)
