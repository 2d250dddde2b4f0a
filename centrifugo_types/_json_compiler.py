"""Compile Centrifugo's JSON dialect codec of a generated message the first time it is used.

Like :mod:`._codec_compiler` for protobuf, from the same field tables (``FIELDS`` of
``_generated/proxy.py`` and ``api.py``), plus the one dialect fact the tables do not hold:
which fields Centrifugo writes even at their zero value (``ALWAYS_PRESENT`` of the generated
``*_json`` modules, from ``codegen/json_codec.py``).

Centrifugo does not speak protojson on its HTTP proxy and HTTP server API: it marshals the Go
structs that protoc generates from these .proto files with Go's ``encoding/json``. Field names
are the keys, int64 are JSON numbers, zero values are left out, and every ``bytes`` field holds
raw JSON, embedded as is (see ``codegen/json_codec.py`` for the sources of these facts).

For each message ``M`` the namespace gets

- ``_je_M(m) -> str``: the JSON text, one ``if`` per field in field-number order;
- ``_jt_M(cls, s, pos, depth) -> (M, end)``: decodes the object at ``s[pos]`` by walking the
  text (keys by regex, leaf values by the standard library's C scanner), so that raw JSON
  fields get the exact bytes of their value; the authoritative decoder;
- ``_jd_M(cls, d, depth) -> M``: decodes an object that orjson has parsed (the fast path, see
  ``_json_runtime``); it may raise anything on bad input, the text decoder then decides;

and :func:`codecs` returns the tables ``ENCODERS`` / ``DECODERS`` that
``centrifugo_types.json`` dispatches on. A second namespace, made on the first document that
needs it, holds the same functions with raw values Go-escaped (``raw_dumps`` is
``_json_runtime.go_raw_dumps`` there): its ``_jd_M`` decodes the documents Centrifugo writes
with Go's HTML escaping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from . import _json_runtime
from ._codec_compiler import (
    INT_RANGES,
    Field,
    LazyCodecs,
    Lines,
    Message,
    Table,
    Type,
    default,
)

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

_SCALAR_CHECKS = {"string": "_jr_check_str", "bool": "_jr_check_bool", "double": "_jr_check_float"}
_SCALAR_ENCODERS = {"string": "_jr_esc", "bool": "_jr_enc_bool", "double": "_jr_enc_float"}

BUCKET = 8
"""Field numbers per bucket of the decoders' dispatch (see ``_JsonEmitter._dispatch``)."""

Encoders = dict[type[Any], Callable[[Any], str]]
Decoders = dict[type[Any], tuple[Any, Any, Any]]


def _int_name(kind: str) -> str:
    return f"_I_{kind}"


def is_raw(field: Field) -> bool:
    """Whether a field holds a raw JSON value: every ``bytes`` field does."""
    return field.type.kind == "bytes"


class JsonCodecs(LazyCodecs):
    """The JSON dialect codec of every message of one generated module."""

    kind = "json codec"

    def __init__(
        self,
        module: str,
        classes: Mapping[str, Any],
        table: Table,
        always_present: Mapping[str, tuple[str, ...]],
        raw_dumps: Callable[[Any], bytes] | None = None,
    ) -> None:
        prelude: dict[str, Any] = {f"_jr_{n}": getattr(_json_runtime, n) for n in RUNTIME_NAMES}
        if raw_dumps is not None:
            prelude["_jr_raw_dumps"] = raw_dumps
        for kind, (low, high) in INT_RANGES.items():
            prelude[f"{_int_name(kind)}_check"] = _json_runtime.int_check(kind, low, high)
            prelude[f"{_int_name(kind)}_enc"] = _json_runtime.enc_int(kind, low, high)
        prelude["_new"] = object.__new__
        super().__init__(module, classes, table, prelude)
        self.always_present = always_present

    def functions(self, message: str) -> tuple[str, ...]:
        return f"_je_{message}", f"_jt_{message}", f"_jd_{message}"

    def emit(self, message: Message, out: Lines) -> None:
        always = frozenset(self.always_present.get(message.py_name, ()))
        _JsonEmitter(self, out).message(message, always)


def codecs(
    module: str,
    classes: Mapping[str, Any],
    table: Table,
    always_present: Mapping[str, tuple[str, ...]],
) -> tuple[Encoders, Decoders]:
    """The JSON encoder and the text, dict and Go-escaped dict decoders of every message of
    ``table``, each compiled on its first call; ``classes`` are the generated module's names."""
    lazy = JsonCodecs(module, classes, table, always_present)
    go: list[JsonCodecs] = []
    go_lock = threading.Lock()

    def go_decoder(function: str) -> Callable[[type[Any], dict[str, Any], int], Any]:
        def decode(cls: type[Any], d: dict[str, Any], depth: int) -> Any:
            if not go:
                with go_lock:
                    if not go:
                        raw = _json_runtime.go_raw_dumps
                        go.append(JsonCodecs(module, classes, table, always_present, raw))
            return go[0].function(function)(cls, d, depth)

        return decode

    encoders: Encoders = {}
    decoders: Decoders = {}
    for name in table:
        cls = classes[name]
        je, jt, jd = lazy.functions(name)
        encoders[cls] = lazy.function(je)
        decoders[cls] = (lazy.function(jt), lazy.function(jd), go_decoder(jd))
    return encoders, decoders


class _JsonEmitter:
    def __init__(self, codecs: JsonCodecs, out: Lines) -> None:
        self.codecs = codecs
        self.out = out

    def message(self, message: Message, always: frozenset[str]) -> None:
        w = self.out
        #: Field number by JSON key (exact, and as folded by ``_jr_fold``).
        w(0, f"_K_{message.py_name} = {{")
        for f in message.fields:
            w(1, f'"{f.name}": {f.number},')
        w(0, "}")
        self._encoder(message, always)
        self._text_decoder(message)
        self._dict_decoder(message)

    # -- encoders ---------------------------------------------------------------------------

    def _encoder(self, message: Message, always: frozenset[str]) -> None:
        w = self.out
        name = message.py_name
        w(0, f"def _je_{name}(m):")
        if not message.fields:
            w(1, 'return "{}"')
            return
        w(1, "p = []")
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
                cls = t.message
                expr = f"_jr_enc_message_map({v}, _je_{cls}, {cls})"
            elif t.kind == "string":
                expr = f"_jr_enc_str_map({v})"
            else:
                expr = f"_jr_enc_map({v}, {self._scalar_encoder(t)})"
        elif field.repeated:
            if t.kind == "message":
                cls = t.message
                expr = f"_jr_enc_messages({v}, _je_{cls}, {cls})"
            elif t.kind == "string":
                expr = f"_jr_enc_strs({v})"
            else:
                expr = f"_jr_enc_values({v}, {self._scalar_encoder(t)})"
        elif t.kind == "message":
            cls = t.message
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
                w(indent, f"{var} = {{}}")
            elif field.repeated:
                w(indent, f"{var} = []")
            else:
                w(indent, f"{var} = {default(field.type)}")

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
        :data:`BUCKET` numbers, then by equality inside the bucket, so that a key costs a few
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

    def _depth_check(self, message: Message) -> None:
        if self.codecs.is_recursive(message):
            self.out(1, "if depth < 0:")
            self.out(2, 'raise _jr_Fail("messages nested too deeply")')

    def _text_decoder(self, message: Message) -> None:
        w = self.out
        name = message.py_name
        w(0, f"def _jt_{name}(cls, s, pos, depth):")
        self._depth_check(message)
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
            cls = t.message
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
            cls = t.message
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
        w(0, f"def _jd_{name}(cls, d, depth):")
        self._depth_check(message)
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
            cls = t.message
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
