"""Emit Centrifugo's JSON dialect codec for every message of a .proto file.

Centrifugo does not speak protojson on its HTTP proxy and HTTP server API: it marshals the Go
structs that protoc generates from these .proto files with Go's ``encoding/json``. Most of
that dialect follows from the .proto files (field names as keys, int64 as JSON numbers, zero
values left out); the facts that do not are in :data:`ALWAYS_PRESENT` and :func:`is_raw`
below, and nowhere else.

For each message ``M`` the generated module gets

- ``_je_M(m) -> str``: the JSON text, one ``if`` per field in field-number order;
- ``_jt_M(cls, s, pos, depth) -> (M, end)``: decodes the object at ``s[pos]`` by walking the
  text (keys by regex, leaf values by the standard library's C scanner), so that raw JSON
  fields get the exact bytes of their value; the authoritative decoder;
- ``_jd_M(cls, d, depth) -> M``: decodes an object that orjson has parsed (the fast path, see
  ``json_runtime``); it may raise anything on bad input, the text decoder then decides;

and the tables ``ENCODERS`` / ``DECODERS`` that ``centrifugo_types.json`` dispatches on.
"""

from __future__ import annotations

from collections.abc import Callable

from .codec import default, py_type
from .schema import INT_RANGES, Field, Message, ProtoFile, Schema, SchemaError, Type

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


# -- JSON value types ---------------------------------------------------------------------------


_SCALAR_CHECKS = {"string": "_jr_check_str", "bool": "_jr_check_bool", "double": "_jr_check_float"}
_SCALAR_ENCODERS = {"string": "_jr_esc", "bool": "_jr_enc_bool", "double": "_jr_enc_float"}

RUNTIME_NAMES = (
    "FAILURES",
    "Fail",
    "AFTER",
    "FIRST",
    "STRING_AFTER",
    "array",
    "at",
    "bad_int",
    "check",
    "check_bool",
    "check_float",
    "check_str",
    "dict_array",
    "dict_obj",
    "enc_bool",
    "enc_float",
    "enc_map",
    "enc_message_map",
    "enc_messages",
    "enc_str_map",
    "enc_strs",
    "enc_values",
    "esc",
    "fold",
    "int_repr",
    "member",
    "mapping",
    "obj",
    "out_of_range",
    "raw",
    "raw_dumps",
    "str_map",
    "strs",
    "scan",
    "text",
    "values",
    "wrong",
)


BUCKET = 8
"""Field numbers per bucket of the decoders' dispatch (see ``JsonEmitter._dispatch``)."""


def _int_name(kind: str) -> str:
    return f"_I_{kind}"


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)


class JsonEmitter:
    """Writes the JSON codec module of one .proto file."""

    def __init__(self, schema: Schema, file: ProtoFile) -> None:
        self.schema = schema
        self.file = file
        self.recursive = schema.recursive_messages()
        self.out = _Lines()
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
        w = self.out
        names = [m.py_name for m in self.file.messages]
        w(0, header.rstrip("\n"))
        w(0, f'"""Centrifugo\'s JSON dialect for every message of {self.file.name}.')
        w(0, "")
        w(0, "Generated by centrifugo-types' codegen (codegen/json_codec.py); use it through")
        w(0, '``centrifugo_types.json`` (``dumps`` / ``loads``)."""')
        w(0, "")
        w(0, "from collections.abc import Callable")
        w(0, "from typing import Any, TypeVar")
        w(0, "")
        w(0, "import betterproto2")
        w(0, "")
        w(0, "from .. import _json_runtime")
        enums = {f.type.py_name for m in self.file.messages for f in m.fields if f.type.py_name}
        w(0, f"from .{self.file.module} import (")
        for name in sorted([*names, *enums]):
            w(1, f"{name},")
        w(0, ")")
        w(0, "")
        for name in RUNTIME_NAMES:
            w(0, f"_jr_{name} = _json_runtime.{name}")
        kinds = sorted(
            {
                f.type.kind
                for m in self.file.messages
                for f in m.fields
                if f.type.kind in INT_RANGES and (f.repeated or f.is_map)
            }
        )
        for kind in kinds:
            low, high = INT_RANGES[kind]
            w(0, f'{_int_name(kind)}_check = _json_runtime.int_check("{kind}", {low}, {high})')
            w(0, f'{_int_name(kind)}_enc = _json_runtime.enc_int("{kind}", {low}, {high})')
        w(0, '_M = TypeVar("_M", bound=betterproto2.Message)')
        w(0, "_new = object.__new__")
        for message in self.file.messages:
            w(0, "")
            w(0, "#: Field number by JSON key (exact, and as folded by ``_jr_fold``).")
            if not message.fields:
                w(0, f"_K_{message.py_name}: dict[str, int] = {{}}")
                continue
            w(0, f"_K_{message.py_name}: dict[str, int] = {{")  # one line per field
            for f in message.fields:
                w(1, f'"{f.name}": {f.number},')
            w(0, "}")
        for message in self.file.messages:
            self._encoder(message)
            self._text_decoder(message)
            self._dict_decoder(message)
        w(0, "")
        w(0, "")
        w(0, "#: The JSON encoder of every message class of this module.")
        w(0, "ENCODERS: dict[type[Any], Callable[[Any], str]] = {")
        for name in names:
            w(1, f"{name}: _je_{name},")
        w(0, "}")
        w(0, "")
        w(0, "#: The text and dict decoders of every message class of this module.")
        w(0, "DECODERS: dict[type[Any], tuple[Any, Any]] = {")
        for name in names:
            w(1, f"{name}: (_jt_{name}, _jd_{name}),")
        w(0, "}")
        return "\n".join(w.lines) + "\n"

    def _cls(self, t: Type) -> str:
        return self.schema.message(t.message).py_name

    # -- encoders ---------------------------------------------------------------------------

    def _encoder(self, message: Message) -> None:
        w = self.out
        name = message.py_name
        always = ALWAYS_PRESENT.get(message.full_name, frozenset())
        w(0, "")
        w(0, "")
        w(0, f"def _je_{name}(m: {name}) -> str:")
        if not message.fields:
            w(1, 'return "{}"')
            return
        w(1, "p: list[str] = []")
        w(1, 'field = ""')
        w(1, "try:")
        for field in message.fields:
            w(2, f'field = "{field.name}"')
            self._encode_field(2, field, field.name in always)
        w(1, "except _jr_FAILURES as exc:")
        w(2, "raise _jr_at(exc, field) from None")
        w(1, 'return "{" + ",".join(p) + "}"')

    def _encode_field(self, indent: int, field: Field, always: bool) -> None:
        w = self.out
        t = field.type
        v = f"v_{field.py_name}"
        key = f'"\\"{field.name}\\":"'
        w(indent, f"{v} = m.{field.py_name}")
        if field.map_key is not None:
            if t.kind == "message":
                cls = self._cls(t)
                expr = f"_jr_enc_message_map({v}, _je_{cls}, {cls})"
            elif t.kind == "string":
                expr = f"_jr_enc_str_map({v})"
            else:
                expr = f"_jr_enc_map({v}, {self._scalar_encoder(t)})"
        elif field.repeated:
            if t.kind == "message":
                cls = self._cls(t)
                expr = f"_jr_enc_messages({v}, _je_{cls}, {cls})"
            elif t.kind == "string":
                expr = f"_jr_enc_strs({v})"
            else:
                expr = f"_jr_enc_values({v}, {self._scalar_encoder(t)})"
        elif t.kind == "message":
            cls = self._cls(t)
            w(indent, f"if {v} is not None:")
            w(indent + 1, f"if {v}.__class__ is not {cls}:")
            w(indent + 2, f"{v} = _jr_check({v}, {cls})")
            w(indent + 1, f"p.append({key} + _je_{cls}({v}))")
            if always:
                w(indent, "else:")
                w(indent + 1, f'p.append({key} + "null")')
            return
        elif is_raw(field):
            if always:
                w(indent, f'p.append({key} + (_jr_raw({v}) if {v} else "null"))')
            else:
                w(indent, f"if {v}:")
                w(indent + 1, f"p.append({key} + _jr_raw({v}))")
            return
        elif t.kind == "string":
            expr = f"_jr_esc({v})"
        elif t.kind == "bool":
            if always:
                w(indent, f'p.append({key} + ("true" if {v} else "false"))')
            else:
                w(indent, f"if {v}:")
                w(indent + 1, f"p.append('\"{field.name}\":true')")
            return
        elif t.kind == "double":
            expr = f"_jr_enc_float({v})"
        else:
            # Integers; enums too: Go's encoding/json writes an enum as its int32 number.
            low, high = INT_RANGES["int32" if t.kind == "enum" else t.kind]
            inner = indent
            if not always:
                w(indent, f"if {v}:")
                inner += 1
            w(inner, f"if not {low} <= {v} <= {high}:")
            w(inner + 1, f'raise _jr_out_of_range({v}, "{t.kind}", {low}, {high})')
            w(inner, f"p.append({key} + _jr_int_repr({v}))")
            return
        if always:
            w(indent, f"p.append({key} + {expr})")
        else:
            w(indent, f"if {v}:")
            w(indent + 1, f"p.append({key} + {expr})")

    def _scalar_encoder(self, t: Type) -> str:
        if t.kind in _SCALAR_ENCODERS:
            return _SCALAR_ENCODERS[t.kind]
        return f"{_int_name(t.kind)}_enc"

    def _scalar_check(self, t: Type) -> str:
        if t.kind in _SCALAR_CHECKS:
            return _SCALAR_CHECKS[t.kind]
        return f"{_int_name(t.kind)}_check"

    # -- decoders: shared pieces -------------------------------------------------------------

    def _locals(self, indent: int, message: Message) -> None:
        w = self.out
        for field in message.fields:
            var = f"f_{field.py_name}"
            if field.map_key is not None:
                key_t = py_type(field.map_key, self.schema)
                w(indent, f"{var}: dict[{key_t}, {py_type(field.type, self.schema)}] = {{}}")
            elif field.repeated:
                w(indent, f"{var}: list[{py_type(field.type, self.schema)}] = []")
            elif field.is_message:
                w(indent, f"{var}: {py_type(field.type, self.schema)} | None = None")
            else:
                w(indent, f"{var}: {py_type(field.type, self.schema)} = {default(field.type)}")

    def _build(self, indent: int, message: Message) -> None:
        w = self.out
        w(indent, "obj = _new(cls)")
        w(indent, "obj.__dict__ = {")
        for field in message.fields:
            w(indent + 1, f'"{field.py_name}": f_{field.py_name},')
        w(indent + 1, '"_unknown_fields": b"",')
        w(indent, "}")

    def _scalar_value(self, indent: int, field: Field) -> None:
        """Check the parsed JSON value ``v`` for scalar (or scalar collection) ``field`` and
        store it; JSON null leaves the field as it is (Go: null into a non-pointer is a no-op,
        into a slice or map it makes them nil)."""
        w = self.out
        t = field.type
        var = f"f_{field.py_name}"
        if field.map_key is not None:
            w(indent, "if v.__class__ is dict:")
            if t.kind == "string":
                w(indent + 1, f"{var} = _jr_str_map(v)")
            else:
                w(indent + 1, f"{var} = _jr_mapping(v, {self._scalar_check(t)})")
            w(indent, "elif v is None:")
            w(indent + 1, f"{var} = {{}}")
            w(indent, "else:")
            w(indent + 1, 'raise _jr_wrong(v, "an object")')
        elif field.repeated:
            w(indent, "if v.__class__ is list:")
            if t.kind == "string":
                w(indent + 1, f"{var} = _jr_strs(v)")
            else:
                w(indent + 1, f"{var} = _jr_values(v, {self._scalar_check(t)})")
            w(indent, "elif v is None:")
            w(indent + 1, f"{var} = []")
            w(indent, "else:")
            w(indent + 1, 'raise _jr_wrong(v, "an array")')
        elif t.kind == "string":
            w(indent, "if v.__class__ is str:")
            w(indent + 1, f"{var} = v if v.isascii() else _jr_text(v)")
            w(indent, "elif v is not None:")
            w(indent + 1, 'raise _jr_wrong(v, "a string")')
        elif t.kind == "bool":
            w(indent, "if v is True or v is False:")
            w(indent + 1, f"{var} = v")
            w(indent, "elif v is not None:")
            w(indent + 1, 'raise _jr_wrong(v, "true or false")')
        elif t.kind == "double":
            w(indent, "if v is not None:")
            w(indent + 1, f"{var} = _jr_check_float(v)")
        elif t.kind == "enum":
            low, high = INT_RANGES["int32"]
            w(indent, f"if v.__class__ is int and {low} <= v <= {high}:")
            w(indent + 1, f"{var} = {t.py_name}(v)")
            w(indent, "elif v is not None:")
            w(indent + 1, f'raise _jr_bad_int(v, "int32", {low}, {high})')
        else:
            low, high = INT_RANGES[t.kind]
            w(indent, f"if v.__class__ is int and {low} <= v <= {high}:")
            w(indent + 1, f"{var} = v")
            w(indent, "elif v is not None:")
            w(indent + 1, f'raise _jr_bad_int(v, "{t.kind}", {low}, {high})')

    # -- decoders: text path -----------------------------------------------------------------

    def _dispatch(
        self,
        indent: int,
        fields: tuple[Field, ...],
        emit: Callable[[int, Field], None],
    ) -> None:
        """Branch on the field number ``i`` (of a field of ``fields``): first on its bucket of
        :data:`BUCKET` numbers, then by equality inside the bucket. The shape depends on each
        field's own number only, so that adding a field adds the lines of that field (and, for
        a new bucket, one line more) and changes none of the others'; a key costs a few
        integer comparisons even in messages with dozens of fields."""
        w = self.out
        buckets: dict[int, list[Field]] = {}
        for field in fields:
            buckets.setdefault(field.number // BUCKET, []).append(field)
        for b, (bucket, members) in enumerate(sorted(buckets.items())):
            w(indent, f"{'if' if b == 0 else 'elif'} i < {(bucket + 1) * BUCKET}:")
            for j, field in enumerate(members):
                w(indent + 1, f"{'if' if j == 0 else 'elif'} i == {field.number}:")
                emit(indent + 2, field)

    def _text_decoder(self, message: Message) -> None:
        w = self.out
        name = message.py_name
        w(0, "")
        w(0, "")
        w(0, f"def _jt_{name}(cls: type[_M], s: str, pos: int, depth: int) -> tuple[_M, int]:")
        if message.full_name in self.recursive:
            w(1, "if depth < 0:")
            w(2, 'raise _jr_Fail("messages nested too deeply")')
        self._locals(1, message)
        w(1, 'field = ""')
        w(1, "try:")
        w(2, "m = _jr_FIRST(s, pos)")
        w(2, "if m is None:")
        w(3, "k, pos = _jr_member(s, pos, True)")
        w(2, "else:")
        w(3, "k, pos = m[1], m.end()")
        w(2, "while k is not None:")
        if message.fields:
            w(3, f"i = _K_{name}.get(k)")
            w(3, "if i is None:")
            w(4, f"i = _K_{name}.get(_jr_fold(k), -1)")
            w(3, "if i < 0:")
            w(4, 'field = ""')
            w(4, "pos = _jr_scan(s, pos)[1]")
            w(3, "else:")

            def emit(indent: int, field: Field) -> None:
                w(indent, f'field = "{field.name}"')
                self._text_field(indent, field)

            self._dispatch(4, message.fields, emit)
            w(4, 'field = ""')
        else:
            w(3, "pos = _jr_scan(s, pos)[1]")
        w(3, "m = _jr_AFTER(s, pos)")
        w(3, "if m is None:")
        w(4, "k, pos = _jr_member(s, pos, False)")
        w(3, "else:")
        w(4, "k, pos = m[1], m.end()")
        w(1, "except _jr_FAILURES as exc:")
        w(2, "raise _jr_at(exc, field) from None")
        self._build(1, message)
        w(1, "return obj, pos")

    def _text_field(self, indent: int, field: Field) -> None:
        w = self.out
        t = field.type
        var = f"f_{field.py_name}"
        if t.kind == "message" and (field.repeated or field.is_map):
            cls = self._cls(t)
            opener, helper, empty = ("[", "array", "[]") if field.repeated else ("{", "obj", "{}")
            w(indent, f'if s[pos] == "{opener}":')
            w(indent + 1, f"{var}, pos = _jr_{helper}(s, pos, _jt_{cls}, {cls}, depth - 1)")
            w(indent, "else:")
            w(indent + 1, "v, pos = _jr_scan(s, pos)")
            w(indent + 1, "if v is not None:")
            kind = "an array" if field.repeated else "an object"
            w(indent + 2, f'raise _jr_wrong(v, "{kind}")')
            w(indent + 1, f"{var} = {empty}")
        elif t.kind == "message":
            cls = self._cls(t)
            w(indent, 'if s[pos] == "{":')
            w(indent + 1, f"{var}, pos = _jt_{cls}({cls}, s, pos, depth - 1)")
            w(indent, "else:")
            w(indent + 1, "v, pos = _jr_scan(s, pos)")
            w(indent + 1, "if v is not None:")
            w(indent + 2, 'raise _jr_wrong(v, "an object")')
            w(indent + 1, f"{var} = None")
        elif is_raw(field):
            w(indent, "start = pos")
            w(indent, "pos = _jr_scan(s, pos)[1]")
            w(indent, f"{var} = s[start:pos].encode()")
        elif t.kind == "string" and not field.repeated and not field.is_map:
            # The common case in one regex: a string without escapes, then the next key.
            w(indent, "m = _jr_STRING_AFTER(s, pos)")
            w(indent, "if m is not None:")
            w(indent + 1, "v = m[1]")
            w(indent + 1, f"{var} = v if v.isascii() else _jr_text(v)")
            w(indent + 1, "k, pos = m[2], m.end()")
            w(indent + 1, "continue")
            w(indent, "v, pos = _jr_scan(s, pos)")
            self._scalar_value(indent, field)
        else:
            w(indent, "v, pos = _jr_scan(s, pos)")
            self._scalar_value(indent, field)

    # -- decoders: dict path (orjson) --------------------------------------------------------

    def _dict_decoder(self, message: Message) -> None:
        w = self.out
        name = message.py_name
        w(0, "")
        w(0, "")
        w(0, f"def _jd_{name}(cls: type[_M], d: dict[str, Any], depth: int) -> _M:")
        if message.full_name in self.recursive:
            w(1, "if depth < 0:")
            w(2, 'raise _jr_Fail("messages nested too deeply")')
        self._locals(1, message)
        if message.fields:
            w(1, "for k, v in d.items():")
            w(2, f"i = _K_{name}.get(k)")
            w(2, "if i is None:")
            w(3, f"i = _K_{name}.get(_jr_fold(k), -1)")
            w(2, "if i >= 0:")
            self._dispatch(3, message.fields, self._dict_field)
        self._build(1, message)
        w(1, "return obj")

    def _dict_field(self, indent: int, field: Field) -> None:
        w = self.out
        t = field.type
        var = f"f_{field.py_name}"
        if t.kind == "message":
            cls = self._cls(t)
            if field.repeated:
                check, call, empty = "list", f"_jr_dict_array(v, _jd_{cls}, {cls}, depth - 1)", "[]"
            elif field.is_map:
                check, call, empty = "dict", f"_jr_dict_obj(v, _jd_{cls}, {cls}, depth - 1)", "{}"
            else:
                check, call, empty = "dict", f"_jd_{cls}({cls}, v, depth - 1)", "None"
            w(indent, f"if v.__class__ is {check}:")
            w(indent + 1, f"{var} = {call}")
            w(indent, "elif v is None:")
            w(indent + 1, f"{var} = {empty}")
            w(indent, "else:")
            w(indent + 1, 'raise _jr_Fail("wrong type")')
        elif is_raw(field):
            w(indent, f"{var} = _jr_raw_dumps(v)")
        else:
            self._scalar_value(indent, field)
