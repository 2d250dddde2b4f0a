"""The protobuf wire rules of our decoders are Go's, differentially against Go's runtime.

Centrifugo is built with google.golang.org/protobuf (the version in ``tests/go_wire/go.mod``,
Centrifugo v6.9.1's): whatever it accepts, we accept, and we reject what it rejects. Where
upb's rules differ (redundant varint bytes in keys and lengths, which upb refuses; a 10th
varint byte above 1, which upb truncates; group depth), Go's decide. ``tests/go_wire`` is a
small Go program that decodes each input with Go's runtime as a ``StringValue`` (field 1 a
string, everything else unknown); we decode the same bytes as a ``ConnectRequest``, whose
field 1 is the string ``client`` (the inputs number their other fields from 15: unknown to it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrifugo_types import DecodeError
from centrifugo_types.proxy import ConnectRequest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "go_wire"


@cache
def _go_wire() -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs the go command (scripts/install-centrifugo needs it too)")
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((SOURCE / name).read_bytes())
    binary = ROOT / ".cache" / "go-wire" / digest.hexdigest()[:16] / "go-wire"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
        subprocess.run(
            [go, "build", "-o", str(binary), "."], cwd=SOURCE, env=env, check=True, timeout=600
        )
    return binary


def go_decode(inputs: list[bytes]) -> list[tuple[bytes, bytes] | None]:
    """Go's decoding of each input: (field 1, unknown fields) or ``None`` for an error."""
    lines = "".join(data.hex() + "\n" for data in inputs)
    out = subprocess.run(
        [str(_go_wire())], input=lines, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert len(out) == len(inputs)
    results: list[tuple[bytes, bytes] | None] = []
    for line in out:
        if line == "error":
            results.append(None)
        else:
            _, value, unknown = (line + " ").split(" ")[:3]
            results.append((bytes.fromhex(value), bytes.fromhex(unknown)))
    return results


def ours(data: bytes) -> tuple[bytes, bytes] | None:
    try:
        message = ConnectRequest.parse(data)
    except DecodeError:
        return None
    return message.client.encode(), message._unknown_fields


# -- inputs: fields with redundant varint bytes, overflowing varints, groups ------------------


def varint(value: int, extra: int = 0, last: int | None = None) -> bytes:
    """``value`` as a varint with ``extra`` redundant bytes; ``last`` replaces a 10th byte."""
    out = bytearray()
    while True:
        out.append(value & 0x7F)
        value >>= 7
        if not value:
            break
    for i in range(len(out) - 1):
        out[i] |= 0x80
    if extra:
        out[-1] |= 0x80
        out += b"\x80" * (extra - 1) + b"\x00"
    if last is not None and len(out) == 10:
        out[-1] = last
    return bytes(out)


numbers = st.one_of(
    st.just(1),
    st.integers(15, 2**29 - 1),  # unknown to both sides (ConnectRequest ends at 14)
    st.sampled_from([0, 2**29, 2**31 - 1, 2**31, 2**32]),  # out of range somewhere
)
paddings = st.integers(0, 9) | st.just(0)


@st.composite
def keys(draw: st.DrawFn, number: int, wire_type: int) -> bytes:
    tag = number << 3 | wire_type
    return varint(tag, draw(paddings), draw(st.none() | st.integers(0, 0x7F)))


@st.composite
def fields(draw: st.DrawFn, depth: int = 0) -> bytes:
    number = draw(numbers)
    wire_type = draw(st.sampled_from([0, 1, 2, 5, 3] if depth < 3 else [0, 1, 2, 5]))
    key = draw(keys(number, wire_type))
    if wire_type == 0:
        value = draw(st.integers(0, 2**64 - 1))
        return key + varint(value, draw(paddings), draw(st.none() | st.integers(0, 0x7F)))
    if wire_type == 1:
        return key + draw(st.binary(min_size=8, max_size=8))
    if wire_type == 5:
        return key + draw(st.binary(min_size=4, max_size=4))
    if wire_type == 2:
        payload = draw(st.text(max_size=5).map(str.encode) | st.binary(max_size=5))
        return key + varint(len(payload), draw(paddings)) + payload
    inner = b"".join(draw(st.lists(fields(depth + 1), max_size=3)))
    end = number if draw(st.integers(0, 9)) else draw(numbers)
    return key + inner + draw(keys(end, 4))


messages = st.lists(fields(), max_size=4).map(b"".join)


@given(st.lists(messages, min_size=50, max_size=50), st.integers(0, 2**16))
def test_decoding_accepts_and_rejects_what_go_does(inputs: list[bytes], cut: int) -> None:
    inputs = inputs + [data[: cut % (len(data) + 1)] for data in inputs]  # and truncated
    for data, go in zip(inputs, go_decode(inputs), strict=True):
        mine = ours(data)
        assert (mine is None) == (go is None), (data.hex(), mine, go)
        if mine is None or go is None:
            continue
        assert mine[0] == go[0]
        # Unknown fields: Go writes their keys back in the shortest form, we keep the bytes
        # received (redundant key bytes included); both are the same fields to Go.
        [go_again] = go_decode([mine[1]])
        assert go_again == (b"", go[1])


def _nested_groups(depth: int) -> bytes:
    return varint(100 << 3 | 3) * depth + varint(100 << 3 | 4) * depth


@pytest.mark.parametrize("depth", [1, 100, 101, 10_000, 10_001, 10_002, 20_000])
def test_group_depth_is_gos(depth: int) -> None:
    """Groups in an unknown field nest as deep as Go lets them (its recursion limit, counted
    per unknown field), whatever the depth of the message around them."""
    data = _nested_groups(depth)
    [go] = go_decode([data])
    assert (ours(data) is None) == (go is None)
    assert (go is None) == (depth > 10_001)


@pytest.mark.parametrize(
    ("data", "accepted"),
    [
        (b"\x0a" + varint(1, extra=5) + b"a", True),  # a 7-byte length (upb rejects it)
        (varint(1 << 3 | 2, extra=8) + b"\x01a", True),  # a 10-byte key (upb rejects it)
        (b"\xa0\x06" + b"\xff" * 9 + b"\x01", True),  # a 10-byte value, 10th byte 1
        (b"\xa0\x06" + b"\xff" * 9 + b"\x02", False),  # ... 10th byte 2 (upb truncates it)
        (b"\x0a" + b"\x81" + b"\x80" * 9 + b"\x00a", False),  # 11 bytes
    ],
)
def test_varint_rules(data: bytes, accepted: bool) -> None:
    [go] = go_decode([data])
    assert (go is not None) == accepted
    assert (ours(data) is not None) == accepted
