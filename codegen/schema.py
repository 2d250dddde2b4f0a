"""The schema the generators read: protoc's descriptors, reduced to what the wire needs.

protoc parses the .proto files (through grpcio-tools); this module turns the resulting
``FileDescriptorSet`` into a small, explicit model. Every generator (codecs, strategies, the
JSON dialect) reads this model, so a fact about a field lives in one place: the .proto file.

Enums (top-level and nested in a message, as Centrifugo v5's ``Command.MethodType``) are open
proto3 enums: int32 on the wire, unknown values kept. Features the generators do not implement
(oneofs, proto3 ``optional``, groups, extensions, nested messages other than map entries,
imports) are rejected here with a :class:`SchemaError` naming the file and the element, so
that an upgrade of Centrifugo that starts using one fails loudly at generation time instead of
producing a silently wrong codec.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from betterproto2_compiler.compile.naming import (
    pythonize_class_name,
    pythonize_field_name,
    pythonize_method_name,
)
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

FDP = descriptor_pb2.FieldDescriptorProto

#: Scalar proto types by descriptor type number, named as in .proto files.
SCALARS: dict[int, str] = {
    FDP.TYPE_DOUBLE: "double",
    FDP.TYPE_FLOAT: "float",
    FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64",
    FDP.TYPE_INT32: "int32",
    FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32",
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_UINT32: "uint32",
    FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64",
    FDP.TYPE_SINT32: "sint32",
    FDP.TYPE_SINT64: "sint64",
}

#: Wire type of every scalar (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
WIRE_TYPES: dict[str, int] = {
    "double": 1,
    "float": 5,
    "int64": 0,
    "uint64": 0,
    "int32": 0,
    "fixed64": 1,
    "fixed32": 5,
    "bool": 0,
    "string": 2,
    "bytes": 2,
    "uint32": 0,
    "sfixed32": 5,
    "sfixed64": 1,
    "sint32": 0,
    "sint64": 0,
    "enum": 0,
    "message": 2,
}


#: The value range of every integer type, inclusive.
INT_RANGES: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "sint32": (-(2**31), 2**31 - 1),
    "sfixed32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "fixed32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "sint64": (-(2**63), 2**63 - 1),
    "sfixed64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "fixed64": (0, 2**64 - 1),
}


class SchemaError(Exception):
    """The .proto files use something the generators do not support."""


@dataclass(frozen=True)
class Type:
    """The type of a value: a scalar name, or ``"message"`` / ``"enum"`` with the full name of
    the message or enum."""

    kind: str
    message: str = ""
    py_name: str = ""
    """For enums: the class name betterproto2 gives the enum."""

    @property
    def wire_type(self) -> int:
        return WIRE_TYPES[self.kind]

    @property
    def packable(self) -> bool:
        """Repeated fields of this type are packed by default in proto3."""
        return self.wire_type in (0, 1, 5)


@dataclass(frozen=True)
class Field:
    """One field of a message."""

    name: str
    """The name in the .proto file (snake_case), also the JSON key of Centrifugo's dialect."""
    py_name: str
    """The attribute name betterproto2 gives it."""
    number: int
    type: Type
    """The element type for repeated fields, the value type for maps."""
    repeated: bool = False
    map_key: Type | None = None
    """Set for map fields: the key type (``type`` is then the value type)."""

    @property
    def is_map(self) -> bool:
        return self.map_key is not None

    @property
    def is_message(self) -> bool:
        return self.type.kind == "message"

    def tag(self, wire_type: int | None = None) -> int:
        """The key of this field on the wire: ``number << 3 | wire_type``."""
        if wire_type is None:
            wire_type = (
                2
                if (self.is_map or (self.repeated and self.type.packable))
                else (self.type.wire_type)
            )
        return self.number << 3 | wire_type


@dataclass(frozen=True)
class Message:
    """One message type."""

    full_name: str
    """``package.Name``, as protoc names it (without the leading dot)."""
    name: str
    py_name: str
    """The class name betterproto2 gives it."""
    package: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Enum:
    """One enum type (open, as every proto3 enum: values outside ``values`` are kept)."""

    full_name: str
    py_name: str
    """The class name betterproto2 gives it (``Command.MethodType`` -> ``CommandMethodType``)."""
    values: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Method:
    """One rpc of a service."""

    name: str
    py_name: str
    input: str
    output: str
    client_streaming: bool
    server_streaming: bool


@dataclass(frozen=True)
class Service:
    name: str
    py_name: str
    methods: tuple[Method, ...]


@dataclass(frozen=True)
class ProtoFile:
    """One .proto file: one package, its messages and services."""

    name: str
    package: str
    module: str
    """The module name under ``centrifugo_types._generated`` (``proxy``, ``api``)."""
    messages: tuple[Message, ...]
    services: tuple[Service, ...]
    enums: tuple[Enum, ...] = ()


@dataclass(frozen=True)
class Schema:
    files: tuple[ProtoFile, ...]

    def message(self, full_name: str) -> Message:
        for file in self.files:
            for message in file.messages:
                if message.full_name == full_name:
                    return message
        raise KeyError(full_name)

    def enum(self, full_name: str) -> Enum:
        for file in self.files:
            for enum in file.enums:
                if enum.full_name == full_name:
                    return enum
        raise KeyError(full_name)

    def recursive_messages(self) -> frozenset[str]:
        """Full names of messages that can contain themselves (directly or not)."""
        edges = {
            m.full_name: {f.type.message for f in m.fields if f.is_message}
            for file in self.files
            for m in file.messages
        }

        def reaches(start: str, goal: str) -> bool:
            seen: set[str] = set()
            stack = list(edges[start])
            while stack:
                node = stack.pop()
                if node == goal:
                    return True
                if node not in seen:
                    seen.add(node)
                    stack.extend(edges[node])
            return False

        return frozenset(name for name in edges if reaches(name, name))


def descriptor_set(proto_dir: Path, names: Sequence[str]) -> descriptor_pb2.FileDescriptorSet:
    """Run protoc (from grpcio-tools) and return the parsed descriptors of ``names``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        status = protoc.main(["protoc", f"-I{proto_dir}", f"--descriptor_set_out={out}", *names])
        if status != 0:
            raise SchemaError(f"protoc failed with status {status} on {', '.join(names)}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def load(proto_dir: Path, modules: dict[str, str]) -> Schema:
    """Load the schema of the .proto files in ``proto_dir``.

    ``modules`` maps a .proto file name to the module its code is generated into.
    """
    fds = descriptor_set(proto_dir, sorted(modules))
    return Schema(tuple(_file(f, modules[f.name]) for f in fds.file))


def _file(file: descriptor_pb2.FileDescriptorProto, module: str) -> ProtoFile:
    where = file.name
    if file.syntax != "proto3":
        raise SchemaError(f"{where}: only proto3 is supported, got {file.syntax or 'proto2'}")
    if file.dependency:
        raise SchemaError(f"{where}: imports are not supported: {', '.join(file.dependency)}")
    if file.extension:
        raise SchemaError(f"{where}: extension {file.extension[0].name} is not supported")
    enums = [_enum(file.package, (), e) for e in file.enum_type]
    for msg in file.message_type:
        enums += [_enum(file.package, (msg.name,), e) for e in msg.enum_type]
    by_name = {e.full_name: e for e in enums}
    messages = tuple(_message(file.package, m, where, by_name) for m in file.message_type)
    services = tuple(_service(s) for s in file.service)
    return ProtoFile(file.name, file.package, module, messages, services, tuple(enums))


def _enum(package: str, outer: tuple[str, ...], enum: descriptor_pb2.EnumDescriptorProto) -> Enum:
    path = (*outer, enum.name)
    return Enum(
        full_name=".".join((package, *path)),
        py_name=pythonize_class_name("".join(path)),
        values=tuple((v.name, v.number) for v in enum.value),
    )


def _message(
    package: str, msg: descriptor_pb2.DescriptorProto, where: str, enums: dict[str, Enum]
) -> Message:
    where = f"{where}: message {msg.name}"
    if msg.extension or msg.extension_range:
        raise SchemaError(f"{where}: extensions are not supported")
    if msg.oneof_decl:
        raise SchemaError(
            f"{where}: oneof {msg.oneof_decl[0].name} (or a proto3 optional field) is not supported"
        )
    entries = {f".{package}.{msg.name}.{n.name}": n for n in msg.nested_type}
    for nested in msg.nested_type:
        if not nested.options.map_entry:
            raise SchemaError(f"{where}: nested message {nested.name} is not supported")
    fields = tuple(
        _field(f, entries, f"{where}.{f.name}", enums)
        for f in sorted(msg.field, key=lambda f: f.number)
    )
    return Message(
        full_name=f"{package}.{msg.name}",
        name=msg.name,
        py_name=pythonize_class_name(msg.name),
        package=package,
        fields=fields,
    )


_TYPE_NAMES = {v: k.removeprefix("TYPE_").lower() for k, v in FDP.Type.items()}


def _type(field: descriptor_pb2.FieldDescriptorProto, where: str, enums: dict[str, Enum]) -> Type:
    if field.type == FDP.TYPE_MESSAGE:
        return Type("message", field.type_name.lstrip("."))
    if field.type == FDP.TYPE_ENUM:
        enum = enums.get(field.type_name.lstrip("."))
        if enum is None:
            raise SchemaError(f"{where}: enum {field.type_name.lstrip('.')} is not supported")
        return Type("enum", enum.full_name, enum.py_name)
    if field.type in SCALARS:
        return Type(SCALARS[field.type])
    name = _TYPE_NAMES.get(field.type, str(field.type))
    raise SchemaError(f"{where}: fields of type {name} are not supported")


def _field(
    field: descriptor_pb2.FieldDescriptorProto,
    map_entries: dict[str, descriptor_pb2.DescriptorProto],
    where: str,
    enums: dict[str, Enum],
) -> Field:
    if field.HasField("oneof_index") or field.proto3_optional:
        raise SchemaError(f"{where}: oneof and optional fields are not supported")
    if field.options.HasField("packed") and not field.options.packed:
        raise SchemaError(f"{where}: [packed = false] is not supported")
    repeated = field.label == FDP.LABEL_REPEATED
    entry = map_entries.get(field.type_name) if field.type == FDP.TYPE_MESSAGE else None
    if entry is not None:
        key, value = sorted(entry.field, key=lambda f: f.number)
        return Field(
            name=field.name,
            py_name=pythonize_field_name(field.name),
            number=field.number,
            type=_type(value, where, enums),
            map_key=_type(key, where, enums),
        )
    return Field(
        name=field.name,
        py_name=pythonize_field_name(field.name),
        number=field.number,
        type=_type(field, where, enums),
        repeated=repeated,
    )


def _service(service: descriptor_pb2.ServiceDescriptorProto) -> Service:
    return Service(
        name=service.name,
        py_name=pythonize_class_name(service.name),
        methods=tuple(
            Method(
                name=m.name,
                py_name=pythonize_method_name(m.name),
                input=m.input_type.lstrip("."),
                output=m.output_type.lstrip("."),
                client_streaming=m.client_streaming,
                server_streaming=m.server_streaming,
            )
            for m in service.method
        ),
    )


def walk(schema: Schema) -> Iterator[tuple[ProtoFile, Message]]:
    """Every message of every file, in file then declaration order."""
    for file in schema.files:
        for message in file.messages:
            yield file, message
