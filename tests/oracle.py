"""google.protobuf (upb) as an independent oracle for our generated codecs.

The upb classes are compiled from the same vendored .proto files with grpcio-tools'
protoc into a temporary directory once per test session; they are never committed.
Conversions between upb messages and ours walk upb's descriptors and betterproto2's field
metadata (matched by field number), never our codegen's schema, so the oracle shares no
code with what it checks.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import struct
import sys
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import betterproto2
from google.protobuf import descriptor as d
from google.protobuf.internal import api_implementation
from google.protobuf.message import Message as UpbMessage
from grpc_tools import protoc

from centrifugo_types._generated._message_pool import default_message_pool

PROTOS = Path(__file__).resolve().parent.parent / "protos"
_TMP = tempfile.TemporaryDirectory(prefix="centrifugo-types-upb-")


@cache
def upb_modules() -> dict[str, ModuleType]:
    """``{"proxy": proxy_pb2, "api": api_pb2}`` compiled from protos/ for this session."""
    out = Path(_TMP.name)
    args = ["protoc", f"-I{PROTOS}", f"--python_out={out}", "proxy.proto", "api.proto"]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc --python_out failed with status {status}")
    sys.path.insert(0, str(out))
    try:
        return {name: importlib.import_module(f"{name}_pb2") for name in ("proxy", "api")}
    finally:
        sys.path.remove(str(out))


def backend() -> str:
    return str(api_implementation.Type())


def upb_class(ours: type[betterproto2.Message]) -> type[UpbMessage]:
    """The upb class of the same proto message as our class ``ours``."""
    url = default_message_pool.type_to_url[ours]
    full_name = url.rsplit("/", 1)[1]
    package, name = full_name.rsplit(".", 1)
    module = upb_modules()["proxy" if package.endswith(".proxy") else "api"]
    cls: type[UpbMessage] = getattr(module, name)
    assert cls.DESCRIPTOR.full_name == full_name
    return cls


def our_class(descriptor: Any) -> type[betterproto2.Message]:
    return default_message_pool.url_to_type[f"type.googleapis.com/{descriptor.full_name}"]


def field_meta(cls: type[betterproto2.Message]) -> dict[str, betterproto2.FieldMetadata]:
    """betterproto2's own field table of a message class: attribute name -> metadata."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # betterproto2 classes are dataclasses
    return {f.name: betterproto2.FieldMetadata.get(f) for f in fields}


def _fields_by_number(cls: type[betterproto2.Message]) -> dict[int, str]:
    return {m.number: name for name, m in field_meta(cls).items()}


def _is_map(field: Any) -> bool:
    return bool(
        field.type == d.FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
    )


def _is_repeated(field: Any) -> bool:
    return bool(field.is_repeated)


def to_ours(upb: UpbMessage) -> betterproto2.Message:
    """Build our message with the same field values as a upb message."""
    cls = our_class(upb.DESCRIPTOR)
    names = _fields_by_number(cls)
    kwargs: dict[str, Any] = {}
    fields: Any = upb.DESCRIPTOR.fields
    for field in fields:
        value = getattr(upb, field.name)
        name = names[field.number]
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == d.FieldDescriptor.TYPE_MESSAGE:
                kwargs[name] = {k: to_ours(v) for k, v in value.items()}
            else:
                kwargs[name] = dict(value.items())
        elif _is_repeated(field):
            if field.type == d.FieldDescriptor.TYPE_MESSAGE:
                kwargs[name] = [to_ours(v) for v in value]
            else:
                kwargs[name] = list(value)
        elif field.type == d.FieldDescriptor.TYPE_MESSAGE:
            kwargs[name] = to_ours(value) if upb.HasField(field.name) else None
        else:
            kwargs[name] = value
    return cls(**kwargs)


def to_upb(ours: betterproto2.Message) -> UpbMessage:
    """Build the upb message with the same field values as ours (without serializing)."""
    upb = upb_class(type(ours))()
    names = _fields_by_number(type(ours))
    fields: Any = upb.DESCRIPTOR.fields
    for field in fields:
        value = getattr(ours, names[field.number])
        if _is_map(field):
            target = getattr(upb, field.name)
            value_field = field.message_type.fields_by_name["value"]
            for k, v in value.items():
                if value_field.type == d.FieldDescriptor.TYPE_MESSAGE:
                    target[k].CopyFrom(to_upb(v))
                else:
                    target[k] = v
        elif _is_repeated(field):
            target = getattr(upb, field.name)
            for v in value:
                if field.type == d.FieldDescriptor.TYPE_MESSAGE:
                    target.add().CopyFrom(to_upb(v))
                else:
                    target.append(v)
        elif field.type == d.FieldDescriptor.TYPE_MESSAGE:
            if value is not None:
                getattr(upb, field.name).CopyFrom(to_upb(value))
        else:
            setattr(upb, field.name, value)
    return upb


def canonical(value: Any) -> Any:
    """A comparable form of a message: floats by bit pattern (so NaN == NaN and
    -0.0 != 0.0), messages as their class and fields, unknown fields left out."""
    if isinstance(value, betterproto2.Message):
        names = sorted(field_meta(type(value)))
        return (type(value).__qualname__, tuple((n, canonical(getattr(value, n))) for n in names))
    if isinstance(value, float):
        return ("nan",) if math.isnan(value) else ("double", struct.pack("<d", value))
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return sorted((k, canonical(v)) for k, v in value.items())
    return value
