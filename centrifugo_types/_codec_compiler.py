"""Compile the straight-line protobuf codec of a generated message the first time it is used.

The generated modules (``_generated/proxy.py``, ``api.py``) carry, per message, a table of its
fields (:data:`Table`, one row per field: name, number, type as written in the .proto file).
From that table this module writes the same straight-line Python source a code generator
would commit, compiles it with :func:`compile` and runs it, as :mod:`dataclasses` and attrs do
for ``__init__``: per message class, the first time one of its codec functions is called.
The source is registered with :mod:`linecache`, so tracebacks and debuggers show its lines.

For each message ``M`` the module's namespace gets

- ``_enc_M(m, out)``: appends the encoding of ``m`` to ``out``, one ``if`` per field in
  field-number order, no reflection; ``_bytes_M(m)`` the same into a buffer of its own,
  returned as bytes (the class's ``__bytes__``);
- ``_dec_M(cls, data, pos, end, depth) -> M``: one loop over the keys testing them in
  field-number order, decoding into a copy of a dict of zero values and building the instance
  in one step at the end;

and the class's ``__bytes__``/``parse`` (generated) call them.

Until it is compiled, ``_enc_M`` is a stub that compiles the codec of ``M`` and then takes
the compiled code as its own (``__code__``), so that every reference to it -- module globals,
other codecs, tables elsewhere -- calls the compiled code directly from then on.

Semantics follow protobuf's (and upb's / Go's) rules: proto3 implicit presence (zero values
are not written, ``-0.0`` is), packed and unpacked repeated scalars both accepted, last value
wins for scalars and singular messages merge, unknown fields (and known fields with an
unexpected wire type) are kept and written back, map entries with a missing key or value get
the zero value, invalid UTF-8 and every kind of truncation are errors.

Backends: when the optional C extension :mod:`centrifugo_types._speedups` is built (it is when
the package is installed where a C compiler exists), the functions the generated modules call
are its per-message ``encode``/``decode``, described from the same model; they take the
common path (exact types, well-formed input) and start the call over in the compiled Python
functions above for anything else, so results and errors are those of the Python codec.
:data:`BACKEND` says which one is active; ``CENTRIFUGO_TYPES_PURE_PYTHON=1`` in the
environment (read at import) forces the pure-Python codec.
"""

from __future__ import annotations

import enum
import functools
import linecache
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FunctionType
from typing import Any, Protocol, TypeVar

from . import _runtime

_M = TypeVar("_M")


def _load_speedups() -> Any:
    if os.environ.get("CENTRIFUGO_TYPES_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups


_speedups = _load_speedups()

BACKEND: str = "python" if _speedups is None else "c"
"""The binary codec in use: ``"c"`` (the extension :mod:`centrifugo_types._speedups`) or
``"python"`` (not built, or ``CENTRIFUGO_TYPES_PURE_PYTHON=1`` set)."""

Row = tuple[str, int, str] | tuple[str, int, str, str]
"""One field: its name in the .proto file (also its JSON key), its number, its type as the
.proto file writes it (``string``, ``repeated ClientInfo``, ``map<string, int64>``; message and
enum types by their Python class name) and, when betterproto2 names the attribute otherwise,
the attribute name."""

Table = Mapping[str, Sequence[Row]]
"""The fields of every message of a module, by the message's class name."""


class Decoder(Protocol):
    """The type of a compiled ``_dec_M``."""

    def __call__(self, cls: type[_M], data: bytes, pos: int, end: int, depth: int, /) -> _M: ...


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


# -- the model a table describes ----------------------------------------------------------------


@dataclass(frozen=True)
class Type:
    """A scalar type, or ``"message"`` (``message`` is its class name) or ``"enum"``
    (``py_name`` is its class name)."""

    kind: str
    message: str = ""
    py_name: str = ""

    @property
    def wire_type(self) -> int:
        return WIRE_TYPES[self.kind]

    @property
    def packable(self) -> bool:
        """Repeated fields of this type are packed by default in proto3."""
        return self.wire_type in (0, 1, 5)


@dataclass(frozen=True)
class Field:
    name: str
    py_name: str
    number: int
    type: Type
    """The element type for repeated fields, the value type for maps."""
    repeated: bool = False
    map_key: Type | None = None

    @property
    def is_map(self) -> bool:
        return self.map_key is not None

    @property
    def is_message(self) -> bool:
        return self.type.kind == "message"

    def tag(self, wire_type: int | None = None) -> int:
        """The key of this field on the wire: ``number << 3 | wire_type``."""
        if wire_type is None:
            packed = self.repeated and self.type.packable
            wire_type = 2 if (self.is_map or packed) else self.type.wire_type
        return self.number << 3 | wire_type


@dataclass(frozen=True)
class Message:
    py_name: str
    fields: tuple[Field, ...]


def _type(spec: str, names: Mapping[str, Any]) -> Type:
    if spec in WIRE_TYPES:
        return Type(spec)
    target = names[spec]
    if isinstance(target, type) and issubclass(target, enum.Enum):
        return Type("enum", py_name=spec)
    return Type("message", message=spec)


def parse_row(row: Row, names: Mapping[str, Any]) -> Field:
    """The field a table row describes; ``names`` resolves message and enum class names."""
    name, number, spec = row[0], row[1], row[2]
    py_name = row[3] if len(row) == 4 else name
    if spec.startswith("map<"):
        key, value = spec[4:-1].split(", ")
        return Field(name, py_name, number, _type(value, names), map_key=_type(key, names))
    if spec.startswith("repeated "):
        return Field(name, py_name, number, _type(spec[9:], names), repeated=True)
    return Field(name, py_name, number, _type(spec, names))


def recursive_messages(messages: Mapping[str, Message]) -> frozenset[str]:
    """Names of the messages that can contain themselves (directly or not)."""
    edges = {
        name: {f.type.message for f in m.fields if f.is_message} for name, m in messages.items()
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


# -- lazy compilation --------------------------------------------------------------------------


def _stub(*args: Any, _load: Callable[[], Callable[..., Any]]) -> Any:
    return _load()(*args)


class Lines:
    """Source text being written, one indented line at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


class LazyCodecs:
    """The codec functions of one generated module, each compiled on its first call.

    Subclasses write the source of a message's functions (:meth:`emit`). The functions live in
    a namespace of their own, where they find the module's classes, the runtime helpers
    (``prelude``) and each other by name.
    """

    kind = "codec"

    def __init__(
        self,
        module: str,
        classes: Mapping[str, Any],
        table: Table,
        prelude: Mapping[str, Any],
    ) -> None:
        self.module = module
        self.classes = classes
        self.table = table
        self.namespace: dict[str, Any] = dict(prelude)
        self._messages: dict[str, Message] | None = None
        self._recursive: frozenset[str] = frozenset()
        self._compiled: set[str] = set()
        self._lock = threading.RLock()
        for message in table:
            for function in self.functions(message):
                self._stub(function, message)

    def messages(self) -> dict[str, Message]:
        """The model of every message of the table (built on first use)."""
        if self._messages is None:
            names = self.classes
            self._messages = {
                name: Message(name, tuple(parse_row(row, names) for row in rows))
                for name, rows in self.table.items()
            }
            self._recursive = recursive_messages(self._messages)
            for name in {*self.table, *self._enum_names()}:
                self.namespace[name] = names[name]
        return self._messages

    def _enum_names(self) -> set[str]:
        assert self._messages is not None
        return {
            t.py_name
            for m in self._messages.values()
            for f in m.fields
            for t in (f.type, f.map_key)
            if t is not None and t.kind == "enum"
        }

    def is_recursive(self, message: Message) -> bool:
        return message.py_name in self._recursive

    def _stub(self, function: str, message: str) -> None:
        """Put in the namespace a function named ``function`` that compiles the codec of
        ``message`` when first called, then is that compiled function."""
        stub = FunctionType(_stub.__code__, self.namespace, function)
        stub.__kwdefaults__ = {"_load": functools.partial(self._load, function, message)}
        stub.__qualname__ = function
        self.namespace[function] = stub

    def function(self, name: str) -> Any:
        """The function ``name`` (until its first call, the stub that compiles it)."""
        return self.namespace[name]

    def functions(self, message: str) -> tuple[str, ...]:
        """The names of the stubbed functions of ``message``."""
        raise NotImplementedError

    def emit(self, message: Message, out: Lines) -> None:
        """Write the source of the functions of ``message`` (and whatever they need)."""
        raise NotImplementedError

    def _load(self, function: str, message: str) -> Callable[..., Any]:
        with self._lock:
            if message not in self._compiled:
                self.compile(message)
            fn: Callable[..., Any] = self.namespace[function]
            return fn

    def source(self, message: str) -> str:
        """The source text of the functions of ``message``."""
        out = Lines()
        self.emit(self.messages()[message], out)
        return out.source()

    def compile(self, message: str) -> None:
        """Compile the functions of ``message`` into their stubs."""
        source = self.source(message)
        filename = f"<centrifugo_types {self.kind} {self.module}.{message}>"
        code = compile(source, filename, "exec")
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        ns = self.namespace
        stubs = {name: ns[name] for name in self.functions(message) if name in ns}
        exec(code, ns)
        for name, stub in stubs.items():
            stub.__code__ = ns[name].__code__
            stub.__kwdefaults__ = None
            ns[name] = stub
        self._compiled.add(message)

    def compile_all(self) -> None:
        """Compile every message's functions now (tests, benchmarks, warm-up)."""
        for name in self.table:
            with self._lock:
                if name not in self._compiled:
                    self.compile(name)


# -- the binary codec --------------------------------------------------------------------------

_VARINT_DECODE = {
    "int32": "_rt_int32({v})",
    "int64": "_rt_int64({v})",
    "uint32": "({v} & 0xFFFFFFFF)",
    "uint64": "{v}",
    "sint32": "_rt_int32(_rt_zigzag({v}))",
    "sint64": "_rt_zigzag({v})",
    "bool": "({v} != 0)",
}
_VARINT_ENCODE = {
    "int32": "_rt_enc_int32",
    "int64": "_rt_enc_int64",
    "uint32": "_rt_enc_uint32",
    "uint64": "_rt_enc_uint64",
    "sint32": "_rt_enc_sint32",
    "sint64": "_rt_enc_sint64",
    "enum": "_rt_enc_int32",
}
_FIXED = {
    # kind: (size, pack, unpack)
    "double": (8, "_rt_pack_double", "_rt_unpack_double"),
    "float": (4, "_rt_pack_float", "_rt_unpack_float"),
    "fixed64": (8, "_rt_pack_fixed64", "_rt_unpack_fixed64"),
    "fixed32": (4, "_rt_pack_fixed32", "_rt_unpack_fixed32"),
    "sfixed64": (8, "_rt_pack_sfixed64", "_rt_unpack_sfixed64"),
    "sfixed32": (4, "_rt_pack_sfixed32", "_rt_unpack_sfixed32"),
}
#: The extension's codes of the kinds (``_speedups.c``: K_*, declared in the order of
#: :data:`WIRE_TYPES` without ``enum``, which stays on the Python codec) and of cardinalities.
_KINDS = {kind: code for code, kind in enumerate(k for k in WIRE_TYPES if k != "enum")}
_SINGLE, _REPEATED, _PACKED, _MAP = range(4)
#: The zero value of every scalar kind that is not an integer (integers: 0).
_ZEROS: dict[str, Any] = {"string": "", "bytes": b"", "bool": False, "double": 0.0, "float": 0.0}
_OVERRUN = "length-delimited field runs past the end of its message"
_DEFAULTS = {kind: repr(zero) for kind, zero in _ZEROS.items()}

RUNTIME_NAMES = (
    "copysign",
    "DecodeError",
    "enc_bool",
    "enc_int32",
    "enc_int64",
    "enc_sint32",
    "enc_sint64",
    "enc_uint32",
    "enc_uint64",
    "int32",
    "int64",
    "pack_double",
    "pack_fixed32",
    "pack_fixed64",
    "pack_float",
    "pack_sfixed32",
    "pack_sfixed64",
    "read_tag",
    "read_varint",
    "skip_field",
    "unpack_double",
    "unpack_fixed32",
    "unpack_fixed64",
    "unpack_float",
    "unpack_sfixed32",
    "unpack_sfixed64",
    "varint",
    "wrong_type",
    "zigzag",
)


def default(t: Type) -> str:
    """The Python expression of a type's zero value (messages: None)."""
    if t.kind == "message":
        return "None"
    if t.kind == "enum":
        return f"{t.py_name}(0)"
    return _DEFAULTS.get(t.kind, "0")


def _key_bytes(tag: int) -> str:
    """The field key as a bytes literal (a varint of ``tag``)."""
    out = bytearray()
    while tag > 0x7F:
        out.append((tag & 0x7F) | 0x80)
        tag >>= 7
    out.append(tag)
    return repr(bytes(out))


class BinaryCodecs(LazyCodecs):
    """The protobuf codec of every message of one generated module."""

    kind = "codec"

    def __init__(self, module: str, classes: Mapping[str, Any], table: Table) -> None:
        prelude = {f"_rt_{name}": getattr(_runtime, name) for name in RUNTIME_NAMES}
        prelude["_new"] = object.__new__
        super().__init__(module, classes, table, prelude)
        self._fast: dict[str, Any] = {}

    def binary(self, cls: type[_M]) -> tuple[Callable[[_M, bytearray], None], Decoder]:
        """The encoder and decoder of ``cls`` of the active :data:`BACKEND`: the C
        extension's (which falls back to :meth:`python_binary`'s), else the Python ones."""
        if _speedups is None:
            return self.python_binary(cls)
        fast = self._fast_message(cls.__name__, cls)
        return fast.encode, fast.decode

    def to_bytes(self, cls: type[_M]) -> Callable[[_M], bytes]:
        """The function that returns the encoding of a ``cls`` (``_bytes_M``) of the active
        :data:`BACKEND`."""
        if _speedups is None:
            fn: Callable[[_M], bytes] = self.function(f"_bytes_{cls.__name__}")
            return fn
        fast: Callable[[_M], bytes] = self._fast_message(cls.__name__, cls).to_bytes
        return fast

    def python_binary(self, cls: type[_M]) -> tuple[Callable[[_M, bytearray], None], Decoder]:
        """The compiled Python encoder and decoder of ``cls`` (``_enc_M``, ``_dec_M``)."""
        name = cls.__name__
        return self.function(f"_enc_{name}"), self.function(f"_dec_{name}")

    def _fast_message(self, name: str, cls: Any = None) -> Any:
        """The extension's codec object of message ``name``: described (every message of
        the table at once) on its first call."""
        fast = self._fast.get(name)
        if fast is None:
            fast = _speedups.Message(
                self.classes[name] if cls is None else cls,
                self.function(f"_enc_{name}"),
                self.function(f"_dec_{name}"),
                self.function(f"_bytes_{name}"),
                self._describe,
            )
            self._fast[name] = fast
        return fast

    def _describe(self) -> None:
        with self._lock:
            messages = self.messages()
            for name in messages:
                self._fast_message(name)
            for name, message in messages.items():
                self._fast[name].setup(*self._description(message))

    def _description(self, message: Message) -> tuple[Any, Any, bool, bool]:
        """The arguments of ``_speedups.Message.setup`` for ``message``: per field (name,
        number, kind, cardinality, the sub-message's codec object, the zero value), the zero
        instance dict and whether it can contain itself; ``(None, None, False)`` leaves the
        message to the Python codec (enums, maps with other keys than strings); the last
        item says that its instances' dicts hold their fields (no data descriptor)."""
        fields = []
        zero: dict[str, Any] = {}
        for field in message.fields:
            t = field.type
            if t.kind == "enum" or (field.map_key is not None and field.map_key.kind != "string"):
                return None, None, False, False
            if field.map_key is not None:
                card = _MAP
            elif field.repeated:
                card = _PACKED if t.packable else _REPEATED
            else:
                card = _SINGLE
            sub = self._fast_message(t.message) if t.kind == "message" else None
            value = None if t.kind == "message" else _ZEROS.get(t.kind, 0)
            fields.append((field.py_name, field.number, _KINDS[t.kind], card, sub, value))
            zero[field.py_name] = None if card != _SINGLE else value
        zero["_unknown_fields"] = b""
        plain = not any(_data_descriptor(self.classes[message.py_name], name) for name in zero)
        return tuple(fields), zero, self.is_recursive(message), plain

    def functions(self, message: str) -> tuple[str, ...]:
        return f"_enc_{message}", f"_dec_{message}", f"_bytes_{message}"

    def emit(self, message: Message, out: Lines) -> None:
        _BinaryEmitter(self, out).message(message)


def _data_descriptor(cls: type[Any], name: str) -> bool:
    """Whether ``name`` is a data descriptor of ``cls`` (it takes precedence over the
    instance dict)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            kind = type(vars(klass)[name])
            return hasattr(kind, "__set__") or hasattr(kind, "__delete__")
    return False


class _BinaryEmitter:
    def __init__(self, codecs: BinaryCodecs, out: Lines) -> None:
        self.codecs = codecs
        self.out = out
        self.entries: dict[tuple[Type, Type], str] = {}

    def message(self, message: Message) -> None:
        self._encoder(message)
        self._decoder(message)
        for (key, value), name in sorted(self.entries.items(), key=lambda kv: kv[1]):
            if name not in self.codecs.namespace:
                self._entry_decoder(name, key, value)

    # -- encoders -------------------------------------------------------------------------

    def _encoder(self, message: Message) -> None:
        w = self.out
        # Encoders append to the caller's buffer: a nested message is written in place and
        # its length prefix inserted in front of it afterwards (a move of the few bytes just
        # written), so no message gets a buffer of its own.
        for standalone in (False, True):
            # _bytes_M is _enc_M writing to a buffer of its own (one call less per message)
            if standalone:
                w(0, f"def _bytes_{message.py_name}(m):")
                w(1, "out = bytearray()")
            else:
                w(0, f"def _enc_{message.py_name}(m, out):")
            for field in message.fields:
                self._encode_field(field)
            w(1, "u = m._unknown_fields")
            w(1, "if u:")
            w(2, "out += u")
            if standalone:
                w(1, "return bytes(out)")

    def _write_len(self, indent: int, buf: str, length: str) -> None:
        w = self.out
        w(indent, f"if {length} < 128:")
        w(indent + 1, f"{buf}.append({length})")
        w(indent, f"elif {length} < 16384:")
        w(indent + 1, f"{buf}.append({length} & 0x7F | 0x80)")
        w(indent + 1, f"{buf}.append({length} >> 7)")
        w(indent, "else:")
        w(indent + 1, f"{buf} += _rt_varint({length})")

    def _insert_len(self, indent: int, start: str = "s") -> None:
        """Put the length of what was written to ``out`` since ``start`` in front of it."""
        w = self.out
        w(indent, f"n = len(out) - {start}")
        w(indent, "if n < 128:")
        w(indent + 1, f"out.insert({start}, n)")
        w(indent, "else:")
        w(indent + 1, f"out[{start}:{start}] = _rt_varint(n)")

    def _encode_value(self, indent: int, t: Type, key: str, v: str) -> None:
        """Append ``key`` then the encoding of value expression ``v`` of type ``t`` to out."""
        w = self.out
        if t.kind == "string":
            w(indent, f"b = {v}.encode()")
            w(indent, "n = len(b)")
            w(indent, f"out += {key}")
            self._write_len(indent, "out", "n")
            w(indent, "out += b")
        elif t.kind == "bytes":
            w(indent, f"n = len({v})")
            w(indent, f"out += {key}")
            self._write_len(indent, "out", "n")
            w(indent, f"out += {v}")
        elif t.kind == "message":
            cls = t.message
            w(indent, f"if {v}.__class__ is not {cls} and not isinstance({v}, {cls}):")
            w(indent + 1, f"raise _rt_wrong_type({cls}, {v})")
            w(indent, f"out += {key}")
            w(indent, "s = len(out)")
            w(indent, f"_enc_{cls}({v}, out)")
            self._insert_len(indent)
        elif t.kind == "bool":
            w(indent, f"out += {key}")
            w(indent, f"out += _rt_enc_bool({v})")
        elif t.kind in _FIXED:
            w(indent, f"out += {key}")
            w(indent, f"out += {_FIXED[t.kind][1]}({v})")
        else:
            w(indent, f"out += {key}")
            if t.kind in ("sint32", "sint64"):
                w(indent, f"out += {_VARINT_ENCODE[t.kind]}({v})")
            else:
                w(indent, f"if 0 <= {v} < 128:")
                w(indent + 1, f"out.append({v})")
                w(indent, f"elif 0 <= {v} < 16384:")  # in range for every varint type
                w(indent + 1, f"out.append({v} & 0x7F | 0x80)")
                w(indent + 1, f"out.append({v} >> 7)")
                w(indent, "else:")
                w(indent + 1, f"out += {_VARINT_ENCODE[t.kind]}({v})")

    def _packed_value(self, indent: int, t: Type, v: str) -> None:
        w = self.out
        if t.kind == "bool":
            w(indent, f"out += _rt_enc_bool({v})")
        elif t.kind in _FIXED:
            w(indent, f"out += {_FIXED[t.kind][1]}({v})")
        else:
            w(indent, f"out += {_VARINT_ENCODE[t.kind]}({v})")

    def _encode_field(self, field: Field) -> None:
        w = self.out
        t = field.type
        attr = f"m.{field.py_name}"
        v, x, k = f"v_{field.py_name}", f"x_{field.py_name}", f"k_{field.py_name}"
        if field.map_key is not None:
            w(1, f"{v} = {attr}")
            w(1, f"if {v}:")
            w(2, f"for {k}, {x} in {v}.items():")
            w(3, f"out += {_key_bytes(field.tag())}")
            w(3, "se = len(out)")  # not s: a message value uses s itself
            self._encode_value(3, field.map_key, repr(b"\n"), k)
            value_key = _key_bytes(2 << 3 | t.wire_type)
            self._encode_value(3, t, value_key, x)
            self._insert_len(3, "se")
        elif field.repeated and t.packable:
            w(1, f"{v} = {attr}")
            w(1, f"if {v}:")
            w(2, f"out += {_key_bytes(field.tag())}")
            w(2, "s = len(out)")
            w(2, f"for {x} in {v}:")
            self._packed_value(3, t, x)
            self._insert_len(2)
        elif field.repeated:
            w(1, f"for {x} in {attr}:")
            self._encode_value(2, t, _key_bytes(field.tag()), x)
        else:
            w(1, f"{v} = {attr}")
            if t.kind == "message":
                w(1, f"if {v} is not None:")
            elif t.kind in ("double", "float"):
                # proto3 writes every non-zero bit pattern: -0.0 and NaN included.
                w(1, f"if {v} or _rt_copysign(1.0, {v}) < 0:")
            else:
                w(1, f"if {v}:")
            self._encode_value(2, t, _key_bytes(field.tag()), v)

    # -- decoders -------------------------------------------------------------------------

    def _read_length(self, indent: int, end: str) -> None:
        """Read a length prefix at ``pos``: the payload is ``data[pos:e]`` (inline: a call
        per field would cost more than the rest of its decoding)."""
        w = self.out
        self._read_varint(indent, "n")
        w(indent, "e = pos + n")
        w(indent, f"if e > {end}:")
        w(indent + 1, f"raise _rt_DecodeError({_OVERRUN!r})")

    def _read_varint(self, indent: int, v: str) -> None:
        """Read the varint at ``pos`` into ``v``; one- and two-byte ones inline."""
        w = self.out
        w(indent, f"{v} = data[pos]")
        w(indent, "pos += 1")
        w(indent, f"if {v} >= 0x80:")
        w(indent + 1, "b2 = data[pos]")
        w(indent + 1, "if b2 < 0x80:")
        w(indent + 2, f"{v} = ({v} & 0x7F) | (b2 << 7)")
        w(indent + 2, "pos += 1")
        w(indent + 1, "else:")
        w(indent + 2, f"{v}, pos = _rt_read_varint(data, pos, {v})")

    def _decode_scalar(self, indent: int, t: Type, target: str, end: str) -> None:
        """Decode one value of scalar type ``t`` at ``pos`` into ``target`` (an assignment
        prefix like ``d["x"] = `` or a call prefix like ``f_x.append(``)."""
        w = self.out
        close = ")" if target.endswith("(") else ""
        if t.kind in ("string", "bytes"):
            self._read_length(indent, end)
            value = "data[pos:e].decode()" if t.kind == "string" else "data[pos:e]"
            w(indent, f"{target}{value}{close}")
            w(indent, "pos = e")
        elif t.kind in _FIXED:
            size, _, unpack = _FIXED[t.kind]
            w(indent, f"if pos + {size} > {end}:")
            w(indent + 1, 'raise _rt_DecodeError("fixed-size field runs past its message")')
            w(indent, f"{target}{unpack}(data, pos)[0]{close}")
            w(indent, f"pos += {size}")
        else:
            # An open enum keeps unknown values (betterproto2's Enum makes pseudo-members).
            conv = f"{t.py_name}(_rt_int32({{v}}))" if t.kind == "enum" else _VARINT_DECODE[t.kind]
            self._read_varint(indent, "v")
            if t.kind in ("int32", "int64", "sint32", "sint64", "uint32"):
                # Single-byte varints need no sign or width fix-up.
                w(indent + 1, f"v = {conv.format(v='v')}")
                w(indent, f"{target}v{close}")
            else:
                w(indent, f"{target}{conv.format(v='v')}{close}")

    def _message_call(self, t: Type, start: str, stop: str, buf: str = "data") -> str:
        return f"_dec_{t.message}({t.message}, {buf}, {start}, {stop}, depth - 1)"

    def _defaults(self, message: Message) -> None:
        """The instance dict of ``message`` with every field at its zero value: decoders start
        from a copy (one C-level copy instead of building a dict key by key) and overwrite
        the fields they meet. Lists and dicts are replaced by fresh ones in every copy."""
        w = self.out
        w(0, f"_zero_{message.py_name} = {{")
        for field in message.fields:
            if field.map_key is not None or field.repeated:
                w(1, f'"{field.py_name}": None,  # replaced by a fresh container')
            else:
                w(1, f'"{field.py_name}": {default(field.type)},')
        w(1, '"_unknown_fields": b"",')
        w(0, "}")

    def _decoder(self, message: Message) -> None:
        w = self.out
        name = message.py_name
        self._defaults(message)
        # ``depth`` counts down the nesting left, as upb does; only messages that can contain
        # themselves can run out of it.
        w(0, f"def _dec_{name}(cls, data, pos, end, depth):")
        if self.codecs.is_recursive(message):
            w(1, "if depth < 0:")
            w(2, 'raise _rt_DecodeError("messages nested too deeply")')
        w(1, f"d = _zero_{name}.copy()")
        for field in message.fields:
            if field.map_key is not None or field.repeated:
                w(1, f"f_{field.py_name} = {'{}' if field.map_key is not None else '[]'}")
                w(1, f'd["{field.py_name}"] = f_{field.py_name}')
        w(1, 'unknown = b""')
        if not message.fields:
            w(1, "while pos < end:")
            self._read_key(2)
            w(2, "pos = _rt_skip_field(data, pos, end, tag)")
            w(2, "unknown += data[start:pos]")
        else:
            self._dispatch(message)
        w(1, "if pos != end:")
        w(2, 'raise _rt_DecodeError("last field runs past the end of its message")')
        w(1, "if unknown:")
        w(2, 'd["_unknown_fields"] = unknown')
        w(1, "obj = _new(cls)")
        w(1, "obj.__dict__ = d")
        w(1, "return obj")

    def _read_key(self, indent: int) -> None:
        """Read the field key at ``pos`` into ``tag``; ``start`` keeps where it began."""
        w = self.out
        w(indent, "start = pos")
        w(indent, "tag = data[pos]")
        w(indent, "pos += 1")
        w(indent, "if tag >= 0x80:")
        w(indent + 1, "tag, pos = _rt_read_tag(data, pos, tag)")

    def _dispatch(self, message: Message) -> None:
        """The key loop, in "expected next field" form.

        Encoders write fields in number order, so the decoder tests the keys in that order, one
        ``if`` after the other, and each field, once decoded, reads the next key and falls
        through to the test of the next field: a field in order costs one comparison, not a
        walk down an ``elif`` chain. Repeated fields loop on their own key. A key that no test
        took is either a known field out of order (the loop starts over from the first test)
        or unknown (kept as is). The end of the message leaves the loop at once.
        """
        w = self.out
        blocks: list[tuple[int, Field, bool, bool]] = []  # key, field, loops, packed
        for field in message.fields:
            t = field.type
            repeated = field.repeated or field.map_key is not None
            blocks.append((field.tag(), field, repeated, field.repeated and t.packable))
            if field.repeated and t.packable:
                blocks.append((field.tag(t.wire_type), field, True, False))
        w(1, "if pos < end:")
        self._read_key(2)
        w(2, "while True:")
        for key, field, loops, packed in blocks:
            w(3, f"if tag == {key}:")
            if loops:
                w(4, "while True:")
                self._field_body(5, field, packed)
                w(5, "if pos >= end:")
                w(6, "tag = -1")
                w(6, "break")
                self._read_key(5)
                w(5, f"if tag != {key}:")
                w(6, "break")
                w(4, "if tag < 0:")
                w(5, "break")
            else:
                self._field_body(4, field, packed)
                w(4, "if pos >= end:")
                w(5, "break")
                self._read_key(4)
        known = ", ".join(str(key) for key, _, _, _ in blocks)
        w(3, f"if tag in {{{known}}}:")
        w(4, "continue  # a known field out of number order: test again from the first")
        w(3, "pos = _rt_skip_field(data, pos, end, tag)")
        w(3, "unknown += data[start:pos]")
        w(3, "if pos >= end:")
        w(4, "break")
        self._read_key(3)

    def _field_body(self, indent: int, field: Field, packed: bool) -> None:
        """Decode one occurrence of ``field`` at ``pos`` (its key already read)."""
        w = self.out
        var = f"f_{field.py_name}"
        slot = f'd["{field.py_name}"]'
        t = field.type
        if field.map_key is not None:
            entry = self._entry_name(field.map_key, t)
            self._read_length(indent, "end")
            item = f"i_{field.py_name}"
            w(indent, f"{item} = {entry}(data, pos, e, depth - 1)")
            # An entry with unknown fields stays unknown as a whole, as in upb.
            w(indent, f"if {item} is None:")
            w(indent + 1, "unknown += data[start:e]")
            w(indent, "else:")
            w(indent + 1, f"{var}[{item}[0]] = {item}[1]")
            w(indent, "pos = e")
        elif t.kind == "message":
            self._read_length(indent, "end")
            call = self._message_call(t, "pos", "e")
            if field.repeated:
                w(indent, f"{var}.append({call})")
            else:
                w(indent, f"{var} = {slot}")
                w(indent, f"if {var} is None:")
                w(indent + 1, f"{slot} = {call}")
                w(indent, "else:  # a repeated occurrence merges into the first")
                w(indent + 1, f"b = bytes({var}) + data[pos:e]")
                merge = self._message_call(t, "0", "len(b)", buf="b")
                w(indent + 1, f"{slot} = {merge}")
            w(indent, "pos = e")
        elif packed:
            self._read_length(indent, "end")
            w(indent, "p = e")
            w(indent, "while pos < p:")
            self._decode_scalar(indent + 1, t, f"{var}.append(", "p")
            w(indent, "if pos != p:")
            w(indent + 1, 'raise _rt_DecodeError("packed field overruns its length")')
        elif field.repeated:
            self._decode_scalar(indent, t, f"{var}.append(", "end")
        else:
            self._decode_scalar(indent, t, f"{slot} = ", "end")

    def _entry_name(self, key: Type, value: Type) -> str:
        if (key, value) not in self.entries:
            value_name = value.py_name or value.message or value.kind
            self.entries[(key, value)] = f"_dec_entry_{key.kind}_{value_name}"
        return self.entries[(key, value)]

    def _entry_decoder(self, name: str, key: Type, value: Type) -> None:
        """Decode a map entry; None when it holds anything but its key and value."""
        w = self.out
        w(0, f"def {name}(data, pos, end, depth):")
        w(1, f"k = {default(key)}")
        w(1, f"x = {default(value)}")
        w(1, "clean = True")
        w(1, "while pos < end:")
        w(2, "tag = data[pos]")
        w(2, "pos += 1")
        w(2, "if tag >= 0x80:")
        w(3, "tag, pos = _rt_read_tag(data, pos, tag)")
        w(2, f"if tag == {1 << 3 | key.wire_type}:")
        self._decode_scalar(3, key, "k = ", "end")
        w(2, f"elif tag == {2 << 3 | value.wire_type}:")
        if value.kind == "message":
            self._read_length(3, "end")
            w(3, f"x = {self._message_call(value, 'pos', 'e')}")
            w(3, "pos = e")
        else:
            self._decode_scalar(3, value, "x = ", "end")
        w(2, "else:")
        w(3, "pos = _rt_skip_field(data, pos, end, tag)")
        w(3, "clean = False")
        w(1, "if pos != end:")
        w(2, 'raise _rt_DecodeError("map entry runs past its length")')
        w(1, "if not clean:")
        w(2, "return None")
        if value.kind == "message":
            w(1, f"return k, {value.message}() if x is None else x")
        else:
            w(1, "return k, x")
