"""Emit ``proxy_events.py``: the proxy events of the ``CentrifugoProxy`` service.

Everything the hand-written request layer, the router and the transports need to know about an
event follows from ``proxy.proto`` and is generated here rather than copied by hand:

- one :class:`Event` per rpc: its name (the rpc's Python name: ``connect``, ``sub_refresh``), its
  gRPC path and cardinality, the wire input/output types, the reply shape (the ``*Response``
  message, found inside ``StreamSubscribeResponse`` for the streaming rpcs), the result type,
  and typed constructors for the replies the response can carry (``error`` and ``disconnect``
  exist only where the response has those fields);
- a read-only field view per request message (``ConnectRequestFields``) that the typed calls
  inherit, where a payload with a base64 twin (``data`` / ``b64data``) reads the same bytes in
  both encodings;
- per result type, the binary-mode rewrite that moves payload bytes into their ``b64*`` twins
  (recursively, e.g. into ``ConnectResult.subs``).
"""

from __future__ import annotations

from .schema import Field, Message, Method, ProtoFile, Schema, SchemaError, Type

_PY_SCALARS = {
    "string": "str",
    "bytes": "bytes",
    "bool": "bool",
    "double": "float",
    "float": "float",
}

_CARDINALITY = {
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, True): "stream_stream",
}


def _upper(name: str) -> str:
    return name.upper()


class EventEmitter:
    """Builds the ``proxy_events`` module for the (single) service of ``file``."""

    def __init__(self, schema: Schema, file: ProtoFile) -> None:
        if len(file.services) != 1:
            raise SchemaError(f"{file.name}: expected exactly one service")
        self.schema = schema
        self.file = file
        self.service = file.services[0]
        self.by_name = {m.full_name: m for m in file.messages}

    # -- facts read from the schema ---------------------------------------------------------

    def _field(self, message: Message, name: str) -> Field | None:
        return next((f for f in message.fields if f.name == name), None)

    def _is_response(self, message: Message) -> bool:
        result = self._field(message, "result")
        return result is not None and result.is_message

    def response_of(self, method: Method) -> Message:
        """The reply shape of an rpc: its output, or the response inside a stream's output."""
        output = self.by_name[method.output]
        if self._is_response(output):
            return output
        inner = [
            self.by_name[f.type.message]
            for f in output.fields
            if f.is_message and self._is_response(self.by_name[f.type.message])
        ]
        if len(inner) != 1:
            raise SchemaError(f"rpc {method.name}: cannot find the response in {output.name}")
        return inner[0]

    def request_of(self, method: Method) -> Message:
        """The request message a handler sees (for a stream of requests: the one inside)."""
        input_ = self.by_name[method.input]
        if not method.client_streaming:
            return input_
        unary_inputs = {m.input for m in self.service.methods if not m.client_streaming}
        inner = [
            self.by_name[f.type.message]
            for f in input_.fields
            if f.is_message and f.type.message in unary_inputs
        ]
        if len(inner) != 1:
            raise SchemaError(f"rpc {method.name}: cannot find the request in {input_.name}")
        return inner[0]

    def result_of(self, response: Message) -> Message:
        field = self._field(response, "result")
        assert field is not None
        return self.by_name[field.type.message]

    def twins(self, message: Message) -> list[tuple[Field, Field]]:
        """``(bytes field, its base64 string twin)`` pairs, e.g. ``(data, b64data)``."""
        out = []
        for field in message.fields:
            twin = self._field(message, "b64" + field.name)
            if (
                field.type.kind == "bytes"
                and not field.repeated
                and not field.is_map
                and twin is not None
                and twin.type.kind == "string"
                and not twin.repeated
            ):
                out.append((field, twin))
        return out

    def has_payloads(self, message: Message, seen: frozenset[str] = frozenset()) -> bool:
        """Whether ``message`` or a message inside it has a payload with a base64 twin."""
        if self.twins(message):
            return True
        seen = seen | {message.full_name}
        return any(
            self.has_payloads(self.by_name[f.type.message], seen)
            for f in message.fields
            if f.is_message and f.type.message not in seen
        )

    def _py_type(self, t: Type) -> str:
        if t.kind == "message":
            return "_m." + self.schema.message(t.message).py_name
        return _PY_SCALARS.get(t.kind, "int")

    def _annotation(self, field: Field) -> str:
        value = self._py_type(field.type)
        if field.map_key is not None:
            return f"Mapping[{self._py_type(field.map_key)}, {value}]"
        if field.repeated:
            return f"Sequence[{value}]"
        if field.is_message:
            return f"{value} | None"
        return value

    # -- emitters ---------------------------------------------------------------------------

    def module(self, header: str) -> str:
        methods = self.service.methods
        out = [header, MODULE_PROLOGUE.format(service=f"{self.file.package}.{self.service.name}")]
        responses: dict[str, Message] = {}
        for method in methods:
            response = self.response_of(method)
            responses[response.full_name] = response
        for response in responses.values():
            out.append(self._reply_constructors(response))
        binary = self._binary_functions([self.result_of(r) for r in responses.values()])
        out.extend(binary)
        wrappers: set[str] = set()
        for method in methods:
            for part in self._stream_functions(method):
                if part not in wrappers:
                    wrappers.add(part)
                    out.append(part)
        for method in methods:
            out.append(self._event(method))
        names = [_upper(m.py_name) for m in methods]
        out.append(
            "EVENTS: Mapping[str, Event[Any, Any]] = {\n"
            + "".join(f"    {n}.name: {n},\n" for n in names)
            + "}\n"
            '"""Every event by name, in the order of the service\'s rpcs."""\n\n'
            "BY_PATH: Mapping[str, Event[Any, Any]] = {e.path: e for e in EVENTS.values()}\n"
            '"""Every event by gRPC path (``/package.Service/Method``)."""\n'
        )
        seen: set[str] = set()
        for method in methods:
            request = self.request_of(method)
            if request.full_name not in seen:
                seen.add(request.full_name)
                out.append(self._fields_view(request))
        return "\n\n".join(part.rstrip("\n") for part in out) + "\n"

    def _reply_constructors(self, response: Message) -> str:
        cls = f"_m.{response.py_name}"
        result = self.result_of(response)
        name = response.py_name
        lines = [
            f"def _{name}_result(result: _m.{result.py_name} | None) -> {cls}:",
            f"    return {cls}(result=result)",
        ]
        for reply, type_name in (("error", "Error"), ("disconnect", "Disconnect")):
            field = self._field(response, reply)
            if field is not None:
                if field.type.message != f"{self.file.package}.{type_name}":
                    raise SchemaError(f"{response.name}.{reply} is not a {type_name}")
                lines += [
                    "",
                    "",
                    f"def _{name}_{reply}({reply}: _m.{type_name}) -> {cls}:",
                    f"    return {cls}({reply}={reply})",
                ]
        return "\n".join(lines) + "\n"

    def _binary_functions(self, roots: list[Message]) -> list[str]:
        """``_binary_<Msg>`` for every message reachable from ``roots`` that has payloads."""
        order: list[Message] = []
        seen: set[str] = set()

        def visit(message: Message) -> None:
            if message.full_name in seen or not self.has_payloads(message):
                return
            seen.add(message.full_name)
            for f in message.fields:
                if f.is_message:
                    visit(self.by_name[f.type.message])
            order.append(message)

        for root in roots:
            visit(root)
        out = []
        for message in order:
            cls = f"_m.{message.py_name}"
            lines = [
                f"def _binary_{message.py_name}(m: {cls}) -> {cls}:",
                '    """A copy of ``m`` with its payloads in their base64 twins."""',
                "    m = copy.copy(m)",
            ]
            for raw, twin in self.twins(message):
                lines += [
                    f"    if m.{raw.py_name} and not m.{twin.py_name}:",
                    f"        m.{twin.py_name} = _b64encode(m.{raw.py_name})",
                    f'        m.{raw.py_name} = b""',
                ]
            for f in message.fields:
                if not f.is_message or not self.has_payloads(self.by_name[f.type.message]):
                    continue
                inner = f"_binary_{self.schema.message(f.type.message).py_name}"
                attr = f"m.{f.py_name}"
                if f.is_map:
                    lines.append(f"    {attr} = {{k: {inner}(v) for k, v in {attr}.items()}}")
                elif f.repeated:
                    lines.append(f"    {attr} = [{inner}(v) for v in {attr}]")
                else:
                    lines += [f"    if {attr} is not None:", f"        {attr} = {inner}({attr})"]
            lines.append("    return m")
            out.append("\n".join(lines) + "\n")
        return out

    def _item_field(self, message: Message, exclude: str) -> Field | None:
        """The one singular message field of a stream's wrapper that is not ``exclude``."""
        fields = [
            f
            for f in message.fields
            if f.is_message and not f.repeated and f.type.message != exclude
        ]
        return fields[0] if len(fields) == 1 else None

    def _stream_item(self, method: Method) -> Field | None:
        if not method.server_streaming:
            return None
        output = self.by_name[method.output]
        return self._item_field(output, self.response_of(method).full_name)

    def _stream_functions(self, method: Method) -> list[str]:
        """``_wrap_<Output>`` and ``_unwrap_<Input>`` of a streaming rpc."""
        out = []
        item = self._stream_item(method)
        if method.server_streaming:
            output = self.by_name[method.output]
            response = self.response_of(method)
            reply = next(f for f in output.fields if f.type.message == response.full_name)
            lines = [
                f"def _wrap_{output.py_name}(x: betterproto2.Message) -> _m.{output.py_name}:",
            ]
            if item is not None:
                item_cls = "_m." + self.schema.message(item.type.message).py_name
                lines += [
                    f"    if isinstance(x, {item_cls}):",
                    f"        return _m.{output.py_name}({item.py_name}=x)",
                ]
            lines += [
                f"    assert isinstance(x, _m.{response.py_name})",
                f"    return _m.{output.py_name}({reply.py_name}=x)",
            ]
            out.append("\n".join(lines) + "\n")
        if method.client_streaming:
            input_ = self.by_name[method.input]
            request = self.request_of(method)
            carried = next(f for f in input_.fields if f.type.message == request.full_name)
            in_item = self._item_field(input_, request.full_name)
            item_value = f"m.{in_item.py_name}" if in_item is not None else "None"
            out.append(
                f"def _unwrap_{input_.py_name}(m: betterproto2.Message) -> tuple[Any, Any]:\n"
                f"    assert isinstance(m, _m.{input_.py_name})\n"
                f"    return m.{carried.py_name}, {item_value}\n"
            )
        return out

    def _event(self, method: Method) -> str:
        response = self.response_of(method)
        result = self.result_of(response)
        key = (method.client_streaming, method.server_streaming)
        if key not in _CARDINALITY:
            raise SchemaError(f"rpc {method.name}: client streaming alone is not supported")
        name = response.py_name
        has_error = self._field(response, "error") is not None
        has_disconnect = self._field(response, "disconnect") is not None
        to_binary = f"_binary_{result.py_name}" if self.has_payloads(result) else "_same"
        path = f"/{self.file.package}.{self.service.name}/{method.name}"
        return (
            f"{_upper(method.py_name)}: Event[_m.{name}, _m.{result.py_name}] = Event(\n"
            f'    name="{method.py_name}",\n'
            f'    rpc="{method.name}",\n'
            f'    path="{path}",\n'
            f'    cardinality="{_CARDINALITY[key]}",\n'
            f"    input_type=_m.{self.by_name[method.input].py_name},\n"
            f"    output_type=_m.{self.by_name[method.output].py_name},\n"
            f"    request_type=_m.{self.request_of(method).py_name},\n"
            f"    response_type=_m.{name},\n"
            f"    result_type=_m.{result.py_name},\n"
            f"    with_result=_{name}_result,\n"
            f"    with_error={f'_{name}_error' if has_error else 'None'},\n"
            f"    with_disconnect={f'_{name}_disconnect' if has_disconnect else 'None'},\n"
            f"    to_binary={to_binary},\n" + self._stream_fields(method) + ")\n"
        )

    def _stream_fields(self, method: Method) -> str:
        if not method.server_streaming:
            return ""
        item = self._stream_item(method)
        item_type = (
            "_m." + self.schema.message(item.type.message).py_name if item is not None else "None"
        )
        lines = [
            f"    item_type={item_type},\n",
            f"    wrap_output=_wrap_{self.by_name[method.output].py_name},\n",
        ]
        if method.client_streaming:
            lines.append(f"    unwrap_input=_unwrap_{self.by_name[method.input].py_name},\n")
        return "".join(lines)

    def _fields_view(self, message: Message) -> str:
        twins = {twin.name for _, twin in self.twins(message)}
        payloads = {raw.name: twin for raw, twin in self.twins(message)}
        lines = [
            f"class {message.py_name}Fields:",
            f'    """Read-only access to the fields of a :class:`~centrifugo_types.proxy.'
            f'{message.py_name}`."""',
            "",
            "    __slots__ = ()",
            f"    message: _m.{message.py_name}",
        ]
        for field in message.fields:
            if field.name in twins:
                continue
            if field.name in payloads:
                twin = payloads[field.name]
                lines += [
                    "",
                    "    @property",
                    f"    def {field.py_name}(self) -> bytes:",
                    f'        """``{field.name}``, or ``{twin.name}`` decoded when Centrifugo '
                    f'sent it base64-encoded."""',
                    f"        return _payload(self.message.{field.py_name}, "
                    f"self.message.{twin.py_name})",
                ]
                continue
            # One line per field: a property made of C parts (see _field in the prologue).
            lines.append(
                f"    {field.py_name}: _Field[{self._annotation(field)}] = "
                f'_field("{field.py_name}")'
            )
        return "\n".join(lines) + "\n"


MODULE_PROLOGUE = '''"""The proxy events of ``{service}``, one per rpc.

Generated from proxy.proto: the hand-written :mod:`centrifugo_types.calls`, the router and
the transports read these facts instead of repeating them.
"""

from __future__ import annotations

import base64
import copy
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, overload

import betterproto2

from . import proxy as _m

SERVICE = "{service}"
"""The full name of the gRPC service."""

Cardinality = Literal["unary_unary", "unary_stream", "stream_stream"]

_Response = TypeVar("_Response", bound=betterproto2.Message)
_Result = TypeVar("_Result", bound=betterproto2.Message)
_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class _Field(Protocol[_T_co]):
    """The type of a request's field view: reads as the field's value."""

    @overload
    def __get__(self, obj: None, owner: Any, /) -> property: ...
    @overload
    def __get__(self, obj: object, owner: Any, /) -> _T_co: ...


def _field(name: str) -> Any:
    """The read-only view of the request's field ``name``: a property, as fast as a written
    ``return self.message.name`` (its getter is :func:`operator.attrgetter`)."""
    return property(operator.attrgetter("message." + name), doc=f"The request's ``{{name}}``.")


@dataclass(frozen=True, eq=False)
class Event(Generic[_Response, _Result]):
    """One rpc of the service, seen as a proxy event."""

    name: str
    """The event's name: the rpc's Python name (``connect``, ``sub_refresh``, ...)."""
    rpc: str
    """The rpc's name in proxy.proto (``Connect``, ``SubRefresh``, ...)."""
    path: str
    """The gRPC path, ``/package.Service/Rpc``."""
    cardinality: Cardinality
    input_type: type[betterproto2.Message]
    """What the rpc receives on the wire (a stream of it for ``stream_stream``)."""
    output_type: type[betterproto2.Message]
    """What the rpc sends on the wire (a stream of it for ``*_stream``)."""
    request_type: type[betterproto2.Message]
    """The request message a handler sees (inside ``input_type`` for a stream of requests)."""
    response_type: type[_Response]
    """The reply shape (inside ``output_type`` for a stream of replies)."""
    result_type: type[_Result]
    with_result: Callable[[_Result | None], _Response]
    """A response carrying ``result`` (``None``: a response without a result)."""
    with_error: Callable[[_m.Error], _Response] | None
    """A response carrying ``error``; ``None`` when the response has no such field."""
    with_disconnect: Callable[[_m.Disconnect], _Response] | None
    """A response carrying ``disconnect``; ``None`` when the response has no such field."""
    to_binary: Callable[[_Result], _Result]
    """A copy of a result with its payloads moved into their ``b64*`` twins (binary mode)."""
    item_type: type[betterproto2.Message] | None = None
    """What a stream carries after the reply (``Publication``); ``None`` for unary rpcs."""
    wrap_output: Callable[[betterproto2.Message], betterproto2.Message] | None = None
    """A stream's reply or item wrapped in ``output_type``; ``None`` for unary rpcs."""
    unwrap_input: (
        Callable[[betterproto2.Message], tuple[Any, Any]] | None
    ) = None
    """``(request, item)`` carried by one ``input_type`` message of a stream of requests (either
    may be ``None``); ``None`` when the rpc receives a single request."""

    def __repr__(self) -> str:
        return f"<Event {{self.name}}>"


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _payload(raw: bytes, b64: str) -> bytes:
    """A payload in either encoding: the base64 twin when set, else the raw bytes."""
    return base64.b64decode(b64, validate=True) if b64 else raw


def _same(result: _T) -> _T:
    return result
'''
