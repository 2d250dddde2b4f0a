"""Emit Centrifugo's JSON dialect codec for every message of a .proto file.

Centrifugo does not speak protojson on its HTTP proxy and HTTP server API: it marshals the Go
structs that protoc generates from these .proto files with Go's ``encoding/json``. Most of
that dialect follows from the .proto files (field names as keys, int64 as JSON numbers, zero
values left out); the facts that do not are in :data:`ALWAYS_PRESENT` and :func:`is_raw`
below, and nowhere else.

The generated ``*_json`` module holds :data:`ALWAYS_PRESENT`'s entries for its messages and
the tables ``ENCODERS`` / ``DECODERS`` that ``centrifugo_types.json`` dispatches on; the
straight-line encoder and decoders of a message are compiled from its row of the protobuf
module's field table the first time they are used, by ``centrifugo_types/_json_compiler.py``
(whose :func:`is_raw` must agree with the one here).
"""

from __future__ import annotations

from .schema import Field, ProtoFile, Schema, SchemaError

# -- The dialect facts that are not in the .proto files -----------------------------------------

#: Fields that Centrifugo writes even when they hold the zero value: their Go struct tags lack
#: ``omitempty`` (every other field has it). Source: Centrifugo v6.9.1
#: ``internal/proxyproto/generate_tags.sh`` and ``internal/apiproto/generate_tags.sh``
#: (``gomodifytags -remove-options json=omitempty``), visible as ``json:"name"`` tags without
#: ``omitempty`` in ``internal/proxyproto/proxy.pb.go`` and ``internal/apiproto/api.pb.go``.
#: tests/test_json_dialect.py checks this table against those Go files when they are on the
#: machine.
ALWAYS_PRESENT: dict[str, frozenset[str]] = {
    "centrifugal.centrifugo.proxy.RefreshRequest": frozenset({"user"}),
    "centrifugal.centrifugo.proxy.SubscribeRequest": frozenset({"user"}),
    "centrifugal.centrifugo.proxy.PublishRequest": frozenset({"user"}),
    "centrifugal.centrifugo.proxy.RPCRequest": frozenset({"user"}),
    "centrifugal.centrifugo.proxy.SubRefreshRequest": frozenset({"user"}),
    "centrifugal.centrifugo.api.ClientInfo": frozenset({"user", "client"}),
    "centrifugal.centrifugo.api.PresenceResult": frozenset({"presence"}),
    "centrifugal.centrifugo.api.PresenceStatsResult": frozenset({"num_clients", "num_users"}),
    "centrifugal.centrifugo.api.HistoryResult": frozenset({"publications", "epoch", "offset"}),
    "centrifugal.centrifugo.api.NodeResult": frozenset(
        {"uid", "name", "version", "num_clients", "num_users", "num_channels", "num_subs"}
    ),
    "centrifugal.centrifugo.api.ChannelsResult": frozenset({"channels"}),
    "centrifugal.centrifugo.api.ConnectionsResult": frozenset({"connections"}),
    "centrifugal.centrifugo.api.GetUserStatusResult": frozenset({"statuses"}),
    "centrifugal.centrifugo.api.DeviceListResult": frozenset({"items"}),
    "centrifugal.centrifugo.api.DeviceTopicListResult": frozenset({"items"}),
    "centrifugal.centrifugo.api.UserTopicListResult": frozenset({"items"}),
}


def is_raw(field: Field) -> bool:
    """Whether a field holds a raw JSON value, embedded as is rather than base64.

    Every ``bytes`` field is: Centrifugo's generate.sh runs ``gomodifytype -all -from []byte -to
    Raw`` on both generated Go files, and ``Raw`` (internal/proxyproto/raw.go,
    internal/apiproto/raw.go) marshals its bytes verbatim (``null`` when nil) and unmarshals the
    exact bytes of the JSON value, ``null`` included. Binary payloads travel in the separate
    ``b64*`` string fields.
    """
    return field.type.kind == "bytes"


class JsonEmitter:
    """Writes the JSON codec module of one .proto file."""

    def __init__(self, schema: Schema, file: ProtoFile) -> None:
        self.schema = schema
        self.file = file
        self._check_facts()

    def _check_facts(self) -> None:
        """Fail loudly when ALWAYS_PRESENT names something the .proto files lack, or when a
        field uses a shape the dialect codec does not implement."""
        known = {m.full_name: m for f in self.schema.files for m in f.messages}
        for full_name, names in ALWAYS_PRESENT.items():
            if full_name not in known:
                raise SchemaError(f"json_codec.ALWAYS_PRESENT names unknown message {full_name}")
            missing = names - {f.name for f in known[full_name].fields}
            if missing:
                raise SchemaError(f"json_codec.ALWAYS_PRESENT: {full_name} has no {missing}")
        for message in self.file.messages:
            folded = [f.name.lower() for f in message.fields]
            if len(set(folded)) != len(folded) or any(
                n != f.name for n, f in zip(folded, message.fields, strict=True)
            ):
                raise SchemaError(
                    f"{message.full_name}: JSON keys must be distinct lowercase field names"
                )
            for field in message.fields:
                where = f"{message.full_name}.{field.name}"
                if field.type.kind == "float":
                    raise SchemaError(f"{where}: float fields are not supported by the JSON codec")
                if field.map_key is not None and field.map_key.kind != "string":
                    raise SchemaError(f"{where}: only string map keys are supported in JSON")
                if (field.repeated or field.is_map) and field.type.kind == "enum":
                    raise SchemaError(f"{where}: repeated/map enum fields are not supported")
                if (field.repeated or field.is_map) and is_raw(field):
                    raise SchemaError(f"{where}: repeated/map raw JSON fields are not supported")

    # -- module -----------------------------------------------------------------------------

    def module(self, header: str) -> str:
        """The module: the dialect facts of this file's messages, and the codec tables
        ``centrifugo_types.json`` dispatches on (compiled on first use from the field tables
        of the protobuf module by ``centrifugo_types._json_compiler``)."""
        module = self.file.module
        lines = [
            header.rstrip("\n"),
            f'"""Centrifugo\'s JSON dialect for every message of {self.file.name}.',
            "",
            "Generated by centrifugo-types' codegen (codegen/json_codec.py); use it through",
            '``centrifugo_types.json`` (``dumps`` / ``loads``)."""',
            "",
            "from .. import _json_compiler",
            f"from . import {module}",
            "",
            "#: Fields Centrifugo writes even at their zero value (codegen/json_codec.py).",
            "ALWAYS_PRESENT: dict[str, tuple[str, ...]] = {",
        ]
        for message in self.file.messages:
            names = ALWAYS_PRESENT.get(message.full_name)
            if names:
                present = [f.name for f in message.fields if f.name in names]
                items = "".join(f'"{n}", ' for n in present)
                lines.append(f'    "{message.py_name}": ({items}),')
        lines += [
            "}",
            "",
            "#: The JSON encoder, and the text and dict decoders, of every message class.",
            "ENCODERS, DECODERS = _json_compiler.codecs(",
            f"    __name__, vars({module}), {module}.FIELDS, ALWAYS_PRESENT",
            ")",
        ]
        return "\n".join(lines) + "\n"
