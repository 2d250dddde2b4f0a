"""Runtime support of the generated JSON dialect codecs (Centrifugo's encoding/json dialect).

Hand-written and type-checked like the rest of the package; the codecs that
:mod:`._json_compiler` compiles find the names of its ``RUNTIME_NAMES`` as ``_jr_<name>``.
It uses the standard library, plus ``orjson`` when it is installed.

Decoding has two paths that give the same results:

- the text path (always available, authoritative): walks the JSON text itself, so that every
  raw JSON field (``bytes`` in the .proto files, ``Raw`` in Centrifugo) gets the exact bytes of
  its value, as Go's ``json.RawMessage``-like ``Raw`` does. Leaf values are parsed by the
  standard library's C scanner.
- the ``orjson`` path (when installed): parses the document with orjson, and is taken only when
  the input is exactly orjson's own serialisation of what it parsed (compact, no duplicate
  keys, canonical numbers and escapes). Then every raw value's text is ``orjson.dumps`` of its
  parsed value, byte for byte. It is also taken when the input is that serialisation with
  Go's HTML escaping (``<``, ``>``, ``&``, U+2028 and U+2029 written ``\\u003c`` ...), which
  is how Centrifugo's ``encoding/json`` writes every payload holding one of them: then every
  raw value's text is the same escaping of ``orjson.dumps`` of its value (the decoders compiled
  with :func:`go_raw_dumps`). Any other input, and any input the walk rejects, goes through
  the text path, which decides.
"""

from __future__ import annotations

import json
import json.decoder
import json.encoder
import json.scanner
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ._runtime import MAX_DEPTH
from .errors import JSONDecodeError, JSONEncodeError

try:  # the optional fast path
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by installs without the extra
    _orjson = None  # type: ignore[assignment]

ORJSON: Any = _orjson
"""The orjson module while the fast path is on; ``None`` without orjson (or when switched off
with :func:`use_orjson`)."""

T = TypeVar("T")


def use_orjson(enabled: bool) -> bool:
    """Switch the orjson fast path on or off; returns whether it is now on."""
    global ORJSON
    ORJSON = _orjson if enabled else None
    return ORJSON is not None


# -- errors ----------------------------------------------------------------------------------


class Fail(Exception):
    """A failure on its way up through the generated functions, which add the path."""

    def __init__(self, reason: str, position: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position
        self.path: list[str] = []
        """Path elements, innermost first."""


#: Exceptions that bad input can raise inside generated decoders and encoders.
FAILURES = (
    Fail,
    ValueError,  # json.JSONDecodeError, UnicodeError, NaN/Infinity, huge ints
    IndexError,  # input ends in the middle of a value
    StopIteration,  # the scanner found no JSON value where one must start
    RecursionError,
    TypeError,
    OverflowError,
    AttributeError,
)


def _as_fail(exc: BaseException) -> Fail:
    if isinstance(exc, Fail):
        return exc
    if isinstance(exc, json.JSONDecodeError):
        return Fail(f"invalid JSON: {exc.msg}", exc.pos)
    if isinstance(exc, StopIteration):
        return Fail("invalid JSON: expected a value", exc.value)
    if isinstance(exc, IndexError):
        return Fail("invalid JSON: unexpected end of input")
    if isinstance(exc, RecursionError):
        return Fail("nested too deeply")
    if isinstance(exc, UnicodeEncodeError):
        return Fail(f"text holds a lone surrogate (U+{ord(exc.object[exc.start]):04X})")
    if isinstance(exc, UnicodeDecodeError):
        return Fail("raw JSON value is not valid UTF-8")
    return Fail(f"{type(exc).__name__}: {exc}")


def at(exc: BaseException, element: str) -> Fail:
    """``exc`` as a :class:`Fail` whose path gains ``element`` (a field name, ``[3]`` or
    ``["key"]``) as its next outer element."""
    fail = _as_fail(exc)
    if element:
        fail.path.append(element)
    return fail


def _path(fail: Fail) -> str:
    out = ""
    for element in reversed(fail.path):
        out += element if (element.startswith("[") or not out) else "." + element
    return out


def decode_error(message_type: type[Any], exc: BaseException) -> JSONDecodeError:
    fail = _as_fail(exc)
    return JSONDecodeError(fail.reason, message_type, _path(fail), fail.position)


def encode_error(message_type: type[Any], exc: BaseException) -> JSONEncodeError:
    fail = _as_fail(exc)
    return JSONEncodeError(fail.reason, message_type, _path(fail))


def _describe(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, float) and not math.isfinite(value):
        return "a number out of range"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return type(value).__name__


def wrong(value: Any, expected: str) -> Fail:
    """A JSON value of the wrong type for its field."""
    return Fail(f"expected {expected}, got {_describe(value)}")


def bad_int(value: Any, kind: str, low: int, high: int) -> Fail:
    if value.__class__ is int:
        return Fail(f"{value} is out of range for {kind} ({low}..{high})")
    return wrong(value, f"an integer ({kind})")


# -- decoding: the text path -------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON: {name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, strict=True)

#: ``scan(text, pos) -> (value, end)``: the standard library's scanner (C when available) for
#: one JSON value starting exactly at ``pos``.
# typeshed types the scanner's context as the C scanner class itself (a duck type in truth).
scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]
#: ``scanstring(text, pos_after_quote, strict) -> (string, end)`` (C when available; typeshed
#: does not list it).
scanstring: Callable[[str, int, bool], tuple[str, int]] = getattr(json.decoder, "scanstring")  # noqa: B009

_WS = "[ \\t\\n\\r]*"
_WS_CHARS = " \t\n\r"
_KEY = r'"([^"\\\x00-\x1f]*)"' + _WS + ":" + _WS
WS = re.compile(_WS).match
#: At ``{``: the brace and the first key (group 1, without escapes) with its colon, or the
#: closing brace of an empty object (group 1 is None). No match: see :func:`member`.
FIRST = re.compile(r"\{" + _WS + "(?:" + _KEY + r"|\})").match
#: After a member's value: the comma and the next key (group 1), or the closing brace.
AFTER = re.compile(_WS + "(?:," + _WS + _KEY + r"|\})").match
#: At a string value without escapes: the string (group 1), then what ``AFTER`` matches (the
#: next key in group 2). The common case of a string field in one match.
STRING_AFTER = re.compile(r'"([^"\\\x00-\x1f]*)"' + _WS + "(?:," + _WS + _KEY + r"|\})").match
#: At ``[``: the bracket and whitespace; group 1 is ``]`` for an empty array.
OPEN_ARRAY = re.compile(r"\[" + _WS + r"(\])?").match
#: After an element: ``,`` (group 1) and whitespace, or ``]``.
NEXT_ARRAY = re.compile(_WS + "(?:(,)" + _WS + r"|\])").match
_COLON = re.compile(_WS + ":" + _WS).match
_SURROGATE = re.compile("[\ud800-\udfff]")


def skip_ws(s: str, pos: int) -> int:
    """The position of the first non-whitespace character at or after ``pos``."""
    m = WS(s, pos)
    return pos if m is None else m.end()


def member(s: str, pos: int, first: bool) -> tuple[str | None, int]:
    """The slow path of ``FIRST`` (``first``: at ``{``) and ``AFTER``: the next key (escapes
    decoded) and the position after its colon, or None and the position after ``}``."""
    if first:
        pos = skip_ws(s, pos + 1)
        if s.startswith("}", pos):
            return None, pos + 1
    else:
        pos = skip_ws(s, pos)
        if s.startswith("}", pos):
            return None, pos + 1
        if not s.startswith(",", pos):
            raise Fail("invalid JSON: expected ',' or '}'", pos)
        pos = skip_ws(s, pos + 1)
    if not s.startswith('"', pos):
        raise Fail("invalid JSON: expected a string key" + (" or '}'" if first else ""), pos)
    name, end = scanstring(s, pos + 1, True)
    m = _COLON(s, end)
    if m is None:
        raise Fail("invalid JSON: expected ':' after an object key", end)
    return name, m.end()


def fold(name: str) -> str:
    """An object key as Go's encoding/json compares it with field names: case-insensitively
    with Unicode simple folding, where only U+212A (Kelvin sign) and U+017F (long s) fold to
    ASCII letters (k and s)."""
    folded = name.lower()
    return folded if folded.isascii() else folded.replace("\u017f", "s")


def text(value: str) -> str:
    """A decoded string as Go keeps it: lone surrogates (from ``\\ud800`` escapes) become
    U+FFFD. Call only for non-ASCII strings."""
    return _SURROGATE.sub("\ufffd", value)


def check_str(value: Any) -> str:
    if value.__class__ is str:
        return value if value.isascii() else text(value)
    if value is None:
        return ""
    raise wrong(value, "a string")


def check_bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    if value is None:
        return False
    raise wrong(value, "true or false")


def check_float(value: Any) -> float:
    if value.__class__ is float and value - value == 0.0:
        return value
    if value.__class__ is int:
        try:
            return float(value)
        except OverflowError:
            raise Fail(f"{_describe(value)} is out of range for double") from None
    if value is None:
        return 0.0
    raise wrong(value, "a number")


def int_check(kind: str, low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if value.__class__ is int and low <= value <= high:
            return value
        if value is None:
            return 0
        raise bad_int(value, kind, low, high)

    return check


def values(value: list[Any], check: Callable[[Any], T]) -> list[T]:
    """A JSON array of scalars (already parsed) as a repeated field; null elements are zero."""
    out = []
    for i, item in enumerate(value):
        try:
            out.append(check(item))
        except FAILURES as exc:
            raise at(exc, f"[{i}]") from None
    return out


def mapping(value: dict[str, Any], check: Callable[[Any], T]) -> dict[str, T]:
    """A JSON object of scalars (already parsed) as a map field; null values are zero."""
    out = {}
    for name, item in value.items():
        try:
            out[name if name.isascii() else text(name)] = check(item)
        except FAILURES as exc:
            raise at(exc, f"[{json.dumps(name)}]") from None
    return out


def strs(value: list[Any]) -> list[str]:
    """``values(value, check_str)``, quicker for the usual array of ASCII strings."""
    for item in value:
        if item.__class__ is not str or not item.isascii():
            return values(value, check_str)
    return value


def str_map(value: dict[str, Any]) -> dict[str, str]:
    """``mapping(value, check_str)``, quicker for the usual object of ASCII strings."""
    for name, item in value.items():
        if item.__class__ is not str or not (item.isascii() and name.isascii()):
            return mapping(value, check_str)
    return value


Decode = Callable[[type[T], str, int, int], tuple[T, int]]
DecodeDict = Callable[[type[T], dict[str, Any], int], T]


def array(s: str, pos: int, decode: Decode[T], cls: type[T], depth: int) -> tuple[list[T], int]:
    """The JSON array of objects at ``pos`` (``[``) as a repeated message field."""
    out: list[T] = []
    m = OPEN_ARRAY(s, pos)
    if m is None:  # pragma: no cover - the caller saw "["
        raise Fail("invalid JSON: expected '['", pos)
    pos = m.end()
    if m.group(1) is not None:
        return out, pos
    i = 0
    while True:
        try:
            if s[pos] == "{":
                item, pos = decode(cls, s, pos, depth)
            else:
                value, pos = scan(s, pos)
                if value is not None:
                    raise wrong(value, "an object")
                item = cls()  # Go leaves a nil element; the closest message is the empty one
        except FAILURES as exc:
            raise at(exc, f"[{i}]") from None
        out.append(item)
        i += 1
        m = NEXT_ARRAY(s, pos)
        if m is None:
            raise Fail("invalid JSON: expected ',' or ']'", pos)
        pos = m.end()
        if m.group(1) is None:
            return out, pos


def obj(s: str, pos: int, decode: Decode[T], cls: type[T], depth: int) -> tuple[dict[str, T], int]:
    """The JSON object at ``pos`` (``{``) as a map field with message values."""
    out: dict[str, T] = {}
    m = FIRST(s, pos)
    if m is None:
        name, pos = member(s, pos, True)
    else:
        name, pos = m[1], m.end()
    while name is not None:
        if not name.isascii():
            name = text(name)
        try:
            if s[pos] == "{":
                item, pos = decode(cls, s, pos, depth)
            else:
                value, pos = scan(s, pos)
                if value is not None:
                    raise wrong(value, "an object")
                item = cls()
        except FAILURES as exc:
            raise at(exc, f"[{json.dumps(name)}]") from None
        out[name] = item
        m = AFTER(s, pos)
        if m is None:
            name, pos = member(s, pos, False)
        else:
            name, pos = m[1], m.end()
    return out, pos


_BINARY = (bytes, bytearray, memoryview)


def loads(
    cls: type[T],
    data: str | bytes | bytearray | memoryview,
    decode_text: Decode[T],
    decode_dict: DecodeDict[T],
    decode_go_dict: DecodeDict[T] | None = None,
) -> T:
    """Decode a whole document; raises :class:`JSONDecodeError`. ``decode_go_dict``: the dict
    decoder whose raw values are Go-escaped (:func:`go_raw_dumps`), for documents written so."""
    orjson = ORJSON
    if orjson is not None:
        try:
            parsed = orjson.loads(data)
            if parsed.__class__ is dict:
                data_bytes = data.encode() if isinstance(data, str) else data
                canonical = orjson.dumps(parsed)
                if canonical == data_bytes:
                    return decode_dict(cls, parsed, MAX_DEPTH)
                if (
                    decode_go_dict is not None
                    and b"\\u" in data_bytes
                    and go_escape(canonical) == data_bytes
                ):
                    return decode_go_dict(cls, parsed, MAX_DEPTH)
        except Exception:  # the text path decides, and says what is wrong
            pass
    if isinstance(data, str):
        s = data
    elif isinstance(data, _BINARY):
        # Go's encoding/json turns invalid UTF-8 inside strings into U+FFFD; so do we.
        s = str(data, "utf-8", "replace")
    else:
        raise TypeError(f"expected bytes or str, got {type(data).__name__}")
    try:
        # The usual document starts with "{" and ends with "}": no whitespace to skip.
        pos = 0 if s.startswith("{") else skip_ws(s, 0)
        if s.startswith("{", pos):
            message, pos = decode_text(cls, s, pos, MAX_DEPTH)
        elif s.startswith("null", pos):
            # Go: unmarshalling null into a struct leaves it untouched.
            message, pos = cls(), pos + 4
        elif pos == len(s):
            raise Fail("invalid JSON: empty input", pos)
        else:
            value, _ = scan(s, pos)
            raise Fail(f"expected a JSON object, got {_describe(value)}", pos)
        if pos != len(s):
            end = skip_ws(s, pos)
            if end != len(s):
                raise Fail("invalid JSON: extra data after the object", end)
        return message
    except FAILURES as exc:
        raise decode_error(cls, exc) from None


# -- decoding: the orjson path -----------------------------------------------------------------


def _no_orjson(value: Any) -> bytes:  # pragma: no cover - the orjson path needs orjson
    raise RuntimeError("the orjson decoding path needs orjson")


#: ``raw_dumps(value) -> bytes``: the exact text of a raw JSON value on the orjson path (see
#: the module docstring): ``orjson.dumps`` itself, called directly by the generated decoders.
raw_dumps: Callable[[Any], bytes] = _no_orjson if _orjson is None else _orjson.dumps

#: What Go's ``encoding/json`` writes for these bytes of a string (its default HTML escaping).
#: In JSON text they can only stand inside strings, and orjson writes each as it is.
_GO_ESCAPES = (
    (b"&", b"\\u0026"),
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def go_escape(text: bytes) -> bytes:
    """``text`` (orjson's serialisation) as Go's ``encoding/json`` writes the same value:
    ``<``, ``>``, ``&``, U+2028 and U+2029 as ``\\u`` escapes."""
    for char, escaped in _GO_ESCAPES:
        text = text.replace(char, escaped)  # the same object when there is none
    return text


def go_raw_dumps(value: Any) -> bytes:
    """The exact text of a raw JSON value in a Go-escaped document on the orjson path: what
    Go's ``encoding/json`` writes for it (see :func:`go_escape`)."""
    return go_escape(raw_dumps(value))


def dict_array(value: list[Any], decode: DecodeDict[T], cls: type[T], depth: int) -> list[T]:
    return [cls() if item is None else decode(cls, item, depth) for item in value]


def dict_obj(
    value: dict[str, Any],
    decode: DecodeDict[T],
    cls: type[T],
    depth: int,
) -> dict[str, T]:
    return {
        name: cls() if item is None else decode(cls, item, depth) for name, item in value.items()
    }


# -- encoding ----------------------------------------------------------------------------------

#: A Python string as a JSON string (quotes included); non-ASCII is written as UTF-8.
esc: Callable[[str], str] = json.encoder.encode_basestring
int_repr = int.__repr__
float_repr = float.__repr__


def out_of_range(value: Any, kind: str, low: int, high: int) -> Fail:
    if isinstance(value, int):
        return Fail(f"{value} is out of range for {kind} ({low}..{high})")
    return Fail(f"expected int for {kind}, got {type(value).__qualname__}")


def enc_float(value: Any) -> str:
    if value.__class__ is not float:
        if value.__class__ is bool or not isinstance(value, int | float):
            raise Fail(f"expected float for double, got {type(value).__qualname__}")
        value = float(value)
    if value - value != 0.0:
        raise Fail(f"{value!r} cannot be written in JSON")
    return float_repr(value)


def enc_bool(value: Any) -> str:
    return "true" if value else "false"


def enc_int(kind: str, low: int, high: int) -> Callable[[Any], str]:
    def encode(value: Any) -> str:
        if value.__class__ is bool or not isinstance(value, int):
            raise Fail(f"expected int for {kind}, got {type(value).__qualname__}")
        if not low <= value <= high:
            raise out_of_range(value, kind, low, high)
        return int_repr(value)

    return encode


def raw(value: Any) -> str:
    """A raw JSON field's bytes as text to embed, after checking they hold one JSON value
    (Go's encoding/json checks the output of ``MarshalJSON`` the same way)."""
    if value.__class__ is bytes:
        data: bytes = value
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:
        raise Fail(f"expected bytes holding JSON, got {type(value).__qualname__}")
    orjson = ORJSON
    if orjson is not None:
        try:
            orjson.loads(data)
            return data.decode()
        except Exception:  # the standard library decides, and says why
            pass
    try:
        s = data.decode()
    except UnicodeDecodeError:
        raise Fail("raw JSON value is not valid UTF-8") from None
    try:
        # Whitespace around the value is rare: skip it only when there is some.
        pos = skip_ws(s, 0) if s[:1] in _WS_CHARS else 0  # "" too: it is empty
        if pos == len(s):
            raise Fail("raw JSON value is empty or only whitespace")
        end = scan(s, pos)[1]
        if end != len(s):
            end = skip_ws(s, end)
            if end != len(s):
                raise Fail("invalid JSON: extra data after the value", end)
    except FAILURES as exc:
        fail = _as_fail(exc)
        raise Fail(f"raw JSON value is not valid JSON: {fail.reason}") from None
    return s


def enc_values(value: Any, encode: Callable[[Any], str]) -> str:
    parts = []
    for i, item in enumerate(value):
        try:
            parts.append(encode(item))
        except FAILURES as exc:
            raise at(exc, f"[{i}]") from None
    return "[" + ",".join(parts) + "]"


def enc_strs(value: Any) -> str:
    try:
        return "[" + ",".join(map(esc, value)) + "]"
    except TypeError:
        return enc_values(value, esc)  # says which element


def enc_map(value: Any, encode: Callable[[Any], str]) -> str:
    parts = []
    for name, item in value.items():
        try:
            parts.append(esc(name) + ":" + encode(item))
        except FAILURES as exc:
            label = json.dumps(name) if isinstance(name, str) else repr(name)
            raise at(exc, f"[{label}]") from None
    return "{" + ",".join(parts) + "}"


def enc_str_map(value: Any) -> str:
    try:
        return "{" + ",".join([esc(k) + ":" + esc(v) for k, v in value.items()]) + "}"
    except TypeError:
        return enc_map(value, esc)  # says which entry


def check(value: Any, cls: type[T]) -> T:
    """``value`` if it is an instance of message class ``cls``."""
    if isinstance(value, cls):
        return value
    raise Fail(f"expected {cls.__qualname__}, got {type(value).__qualname__}")


def enc_messages(value: Any, encode: Callable[[Any], str], cls: type[Any]) -> str:
    parts = []
    for i, item in enumerate(value):
        try:
            parts.append(encode(item if item.__class__ is cls else check(item, cls)))
        except FAILURES as exc:
            raise at(exc, f"[{i}]") from None
    return "[" + ",".join(parts) + "]"


def enc_message_map(value: Any, encode: Callable[[Any], str], cls: type[Any]) -> str:
    return enc_map(value, lambda item: encode(item if item.__class__ is cls else check(item, cls)))


def dumps(message: Any, encode: Callable[[Any], str]) -> bytes:
    """Encode a whole message; raises :class:`JSONEncodeError`."""
    try:
        return encode(message).encode()
    except FAILURES as exc:
        raise encode_error(type(message), exc) from None
