"""Emit the field tables the protobuf codecs are compiled from, and wire them into the classes.

The straight-line encoder and decoder of every message are written, compiled and run at run
time, the first time the message is encoded or decoded, by the hand-written
``centrifugo_types/_codec_compiler.py`` (as :mod:`dataclasses` writes ``__init__``). What is
generated and committed is what they are compiled from: per message, a table of its fields, one
line per field (name, number, type as the .proto file writes it), so that adding a field to a
.proto file adds one line here. Each class gets ``__bytes__``/``SerializeToString``/``parse``/
``FromString`` that call its codec, so ``bytes(msg)``, ``Msg.parse(data)`` and the grpclib
codec all take the fast path.
"""

from __future__ import annotations

from .schema import Field, Message, ProtoFile, Schema, Type

#: The runtime names the generated class members use (``_rt_<name>``).
RUNTIME_NAMES = (
    "DECODE_FAILURES",
    "ENCODE_FAILURES",
    "MAX_DEPTH",
    "decode_failed",
    "encode_failed",
)


def type_spec(t: Type, schema: Schema) -> str:
    """A type as a table row spells it: the scalar's name, or the message's or enum's class."""
    if t.kind == "message":
        return schema.message(t.message).py_name
    if t.kind == "enum":
        return t.py_name
    return t.kind


def row(field: Field, schema: Schema) -> str:
    """The table row of ``field`` (see ``centrifugo_types._codec_compiler.Row``)."""
    spec = type_spec(field.type, schema)
    if field.map_key is not None:
        spec = f"map<{type_spec(field.map_key, schema)}, {spec}>"
    elif field.repeated:
        spec = f"repeated {spec}"
    extra = f", {field.py_name!r}" if field.py_name != field.name else ""
    return f'("{field.name}", {field.number}, "{spec}"{extra}),'


class CodecEmitter:
    """Writes the codec section of one generated module."""

    def __init__(self, schema: Schema, file: ProtoFile) -> None:
        self.schema = schema
        self.file = file

    def module_code(self) -> str:
        """The field table and the codec stubs, appended after betterproto2's classes."""
        lines = [
            "",
            "# -- codecs, compiled on first use from this table by _codec_compiler " + "-" * 20,
            "",
            "#: The fields of every message: name, number, type as in the .proto file.",
            "FIELDS: _codec_compiler.Table = {",
        ]
        for message in self.file.messages:
            if not message.fields:
                lines.append(f'    "{message.py_name}": [],')
                continue
            lines.append(f'    "{message.py_name}": [')
            lines += [f"        {row(field, self.schema)}" for field in message.fields]
            lines.append("    ],")
        lines.append("}")
        lines.append("_codecs = _codec_compiler.BinaryCodecs(__name__, globals(), FIELDS)")
        for message in self.file.messages:
            name = message.py_name
            lines.append(f"_enc_{name}, _dec_{name} = _codecs.binary({name})")
            lines.append(f"_bytes_{name} = _codecs.to_bytes({name})")
        return "\n".join(lines) + "\n"

    def class_members(self, message: Message) -> str:
        """Methods injected into the betterproto2 class of ``message``."""
        name = message.py_name
        return f'''
    def __bytes__(self) -> bytes:
        """The protobuf encoding of this message (compiled straight-line encoder)."""
        try:
            return _bytes_{name}(self)
        except _rt_ENCODE_FAILURES as exc:
            raise _rt_encode_failed(type(self), exc) from None

    SerializeToString = __bytes__

    @classmethod
    def parse(cls, data: "bytes | bytearray | memoryview") -> "Self":
        """Decode ``data``; raises :class:`DecodeError` if it is not a valid encoding."""
        if data.__class__ is not bytes:
            data = bytes(data)
        try:
            return _dec_{name}(cls, data, 0, len(data), _rt_MAX_DEPTH)
        except _rt_DECODE_FAILURES as exc:
            raise _rt_decode_failed(cls, exc) from None

    @classmethod
    def FromString(cls, s: bytes) -> "Self":
        """Alias of :meth:`parse` (the name grpclib and google.protobuf use)."""
        return cls.parse(s)
'''
