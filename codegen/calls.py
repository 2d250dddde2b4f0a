"""Emit ``proxy_calls.py``: the typed call class and the router decorator of every proxy event.

A backend handles exactly the events its Centrifugo's ``proxy.proto`` has, so both follow from
the schema, one per rpc of ``CentrifugoProxy``:

- ``<Event>Call``: the typed call of the event, on the hand-written bases of
  :mod:`centrifugo_types.calls` chosen from the schema: the rpc's cardinality (a unary call, a
  unidirectional or a bidirectional stream) and which replies its response can carry
  (``error``, ``disconnect``); with the request's read-only field view (``proxy_events``) and
  ``json()`` where the request has a ``data`` payload;
- ``Routes``: the base of :class:`~centrifugo_types.Router` with one registration decorator per
  event (``router.connect``, ``router.sub_refresh``, ...), typed with the event's call and
  result, so that mypy knows which events a schema has.

What the schema cannot say lives in the two small tables below: the prose of the events
Centrifugo documents, and the events whose calls are routed further by a request field
(``rpc`` by ``method``). An event missing from them is generated all the same, with plain
words; an entry whose event is missing from the schema is simply unused.
"""

from __future__ import annotations

from collections.abc import Sequence

from .events import EventEmitter, _upper
from .schema import Message, Method, ProtoFile, Schema

#: The prose of each event's call class (what Centrifugo does with its replies), by event name.
CALL_DOCS: dict[str, str] = {
    "connect": (
        "A client connects: authenticate it (return ``ConnectResult(user=...)``) or refuse.\n\n"
        "Centrifugo disconnects the client when the reply has neither an error nor a result."
    ),
    "refresh": (
        "A connection's ``expire_at`` is reached: extend it or let it expire.\n\n"
        "Centrifugo v6.9.1 reads only ``result`` here: an ``error`` or ``disconnect`` reply (and "
        "so a\nhandler that fails) expires the connection, like ``RefreshResult(expired=True)``."
    ),
    "subscribe": "A client subscribes to a channel: allow (``respond()``) or refuse.",
    "publish": (
        "A client publishes: allow (``respond()``), rewrite (``PublishResult(data=...)``), refuse."
    ),
    "rpc": "A client calls ``method``: answer with ``RpcResult(data=...)`` or an error.",
    "sub_refresh": (
        "A subscription's ``expire_at`` is reached: extend it or let it expire.\n\n"
        "As for :class:`RefreshCall`, Centrifugo v6.9.1 reads only ``result``: an ``error`` or\n"
        "``disconnect`` reply unsubscribes the client from the channel."
    ),
    "subscribe_unidirectional": (
        "A subscription served by a stream of publications (``subscribe_stream_proxy``).\n\n"
        "The handler is an async generator: it replies (``respond()`` to accept, ``error()`` or\n"
        "``disconnect()`` to refuse), then yields :class:`~centrifugo_types.proxy.Publication`\n"
        "messages for the subscriber. When it returns, Centrifugo unsubscribes the client."
    ),
    "subscribe_bidirectional": (
        "A subscription over a bidirectional stream "
        "(``subscribe_stream_proxy_bidirectional``).\n\n"
        "The handler replies, then sends publications with ``await call.send(...)`` and "
        "receives\nwhat the client publishes with ``async for publication in call`` (or "
        "``receive()``).\nWhen it returns, Centrifugo unsubscribes the client."
    ),
    "notify_cache_empty": (
        "A cached channel is empty (Centrifugo PRO): load it and say whether it is populated.\n\n"
        "The response has only ``result``; a failing handler replies without a result, which\n"
        'Centrifugo reads as "not populated".'
    ),
    "notify_channel_state": (
        "Channels became occupied or vacated (Centrifugo PRO). The response has no disconnect."
    ),
    "map_publish": (
        "A client publishes to a key of a map channel: allow, rewrite (key, data) or refuse."
    ),
    "map_remove": "A client removes a key of a map channel: allow or refuse.",
    "shared_poll_refresh": (
        "Centrifugo polls the current versions of tracked keys. The response has no "
        "disconnect.\n\nCentrifugo logs an ``error`` reply and polls again at the next interval."
    ),
}

#: Events whose handlers can be registered per value of a request field, by event name:
#: ``@router.rpc("method")``.
ROUTED_BY: dict[str, str] = {"rpc": "method"}


def call_class_name(method: Method) -> str:
    """``ConnectCall``, ``SubRefreshCall``, ``RpcCall``: the event name in CamelCase."""
    return "".join(part.capitalize() for part in method.py_name.split("_")) + "Call"


class CallEmitter:
    """Builds the ``proxy_calls`` module for the (single) service of ``file``."""

    def __init__(self, schema: Schema, file: ProtoFile) -> None:
        self.events = EventEmitter(schema, file)
        self.service = self.events.service

    def _field_names(self, message: Message) -> set[str]:
        return {f.name for f in message.fields}

    def _base(self, method: Method) -> str:
        """The hand-written base class of the event's call, with its type arguments."""
        ev = self.events
        response = ev.response_of(method)
        names = self._field_names(response)
        args = (
            f"_m.{ev.request_of(method).py_name}, _m.{response.py_name}, "
            f"_m.{ev.result_of(response).py_name}"
        )
        if method.client_streaming:
            return f"BidirectionalStreamCall[{args}]"
        if method.server_streaming:
            return f"UnidirectionalStreamCall[{args}]"
        if "disconnect" in names and "error" in names:
            return f"DisconnectableCall[{args}]"
        if "error" in names:
            return f"RejectableCall[{args}]"
        return f"ProxyCall[{args}]"

    def _stream_item(self, method: Method) -> str:
        """What a unidirectional stream handler yields: the output's non-response message."""
        ev = self.events
        output = ev.by_name[method.output]
        response = ev.response_of(method)
        items = [
            f
            for f in output.fields
            if f.is_message and f.type.message != response.full_name and not f.repeated
        ]
        if len(items) != 1:
            return "Any"
        return "_m." + ev.schema.message(items[0].type.message).py_name

    def _doc(self, method: Method) -> str:
        return CALL_DOCS.get(
            method.py_name, f"The ``{method.py_name}`` proxy event (rpc ``{method.name}``)."
        )

    def module(self, header: str) -> str:
        methods = self.service.methods
        out = [header, PROLOGUE]
        for method in methods:
            out.append(self._call_class(method))
        out.append(
            "CALL_CLASSES: Mapping[str, type[AnyCall]] = {\n"
            + "".join(
                f"    {call_class_name(m)}.event.name: {call_class_name(m)},\n" for m in methods
            )
            + "}\n"
            '"""The typed call class of every event, by event name."""\n'
        )
        routed = {
            m.py_name: ROUTED_BY[m.py_name]
            for m in methods
            if ROUTED_BY.get(m.py_name) in self._field_names(self.events.request_of(m))
        }
        out.append(
            "ROUTE_FIELDS: Mapping[str, str] = {\n"
            + "".join(f'    "{event}": "{field}",\n' for event, field in routed.items())
            + "}\n"
            '"""Events whose handlers may be registered per value of a request field."""\n'
        )
        out.append(self._handler_types(methods))
        out.append(self._routes(methods))
        names = sorted(map(call_class_name, methods))  # the API; the tables are internal
        out.append("__all__ = [\n" + "".join(f'    "{n}",\n' for n in names) + "]\n")
        return "\n\n".join(part.rstrip("\n") for part in out) + "\n"

    def _call_class(self, method: Method) -> str:
        ev = self.events
        request = ev.request_of(method)
        bases = [f"_e.{request.py_name}Fields"]
        if "data" in self._field_names(request):
            bases.append("JsonPayload")
        bases.append(self._base(method))
        doc = self._doc(method).replace("\n", "\n    ")
        return (
            f"class {call_class_name(method)}({', '.join(bases)}):\n"
            f'    """{doc}\n    """\n\n'
            f"    event = _e.{_upper(method.py_name)}\n"
            "    __slots__ = ()\n"
        )

    def _result(self, method: Method) -> str:
        ev = self.events
        return f"_m.{ev.result_of(ev.response_of(method)).py_name}"

    def _handler_types(self, methods: Sequence[Method]) -> str:
        lines = []
        for method in methods:
            call = call_class_name(method)
            if method.server_streaming and not method.client_streaming:
                bound = f"Callable[[{call}], AsyncIterator[{self._stream_item(method)}]]"
            else:
                bound = f"Callable[[{call}], Awaitable[{self._result(method)} | None]]"
            lines.append(f'_{call}Handler = TypeVar("_{call}Handler", bound={bound})')
        return "\n".join(lines) + "\n"

    def _routes(self, methods: Sequence[Method]) -> str:
        lines = [
            "class Routes:",
            '    """The registration decorator of every event of the schema (the base of',
            "    :class:`~centrifugo_types.Router`): ``@router.connect``, ``@router.sub_refresh``,",
            '    ...; each returns the handler unchanged."""',
            "",
            "    def add_handler(",
            "        self, event: str, handler: Callable[..., Any], *, key: str | None = None",
            "    ) -> None:",
            '        """Register ``handler`` for ``event`` (implemented by the router)."""',
            "        raise NotImplementedError",
        ]
        for method in methods:
            call = call_class_name(method)
            handler = f"_{call}Handler"
            name = method.py_name
            field = ROUTED_BY.get(name)
            if field is not None and field in self._field_names(self.events.request_of(method)):
                lines += [
                    "",
                    "    @overload",
                    f"    def {name}(self, handler: {handler}, /) -> {handler}: ...",
                    "    @overload",
                    f"    def {name}(",
                    f"        self, {field}: str, /",
                    f"    ) -> Callable[[{handler}], {handler}]: ...",
                    f"    def {name}(",
                    f"        self, handler_or_{field}: {handler} | str, /",
                    f"    ) -> {handler} | Callable[[{handler}], {handler}]:",
                    f'        """Register a ``{name}`` handler: ``@router.{name}`` for every '
                    f"``{field}``, or",
                    f'        ``@router.{name}("{field}")`` for one. A ``{field}`` without a '
                    "handler of its own goes",
                    '        to the catch-all handler, or gets error 104 "method not found"."""',
                    f"        if isinstance(handler_or_{field}, str):",
                    f"            key = handler_or_{field}",
                    "",
                    f"            def register(handler: {handler}) -> {handler}:",
                    f'                self.add_handler("{name}", handler, key=key)',
                    "                return handler",
                    "",
                    "            return register",
                    f'        self.add_handler("{name}", handler_or_{field})',
                    f"        return handler_or_{field}",
                ]
                continue
            lines += [
                "",
                f"    def {name}(self, handler: {handler}, /) -> {handler}:",
                f'        """Register the ``{name}`` handler (usable as a decorator)."""',
                f'        self.add_handler("{name}", handler)',
                "        return handler",
            ]
        return "\n".join(lines) + "\n"


PROLOGUE = '''"""The typed call of every proxy event, and the router's decorator of each.

Generated from proxy.proto by ``codegen/calls.py``: the classes exist exactly for the events of
the schema. Import them from :mod:`centrifugo_types` (or :mod:`centrifugo_types.calls`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar, overload

from .._call import (
    AnyCall,
    BidirectionalStreamCall,
    DisconnectableCall,
    JsonPayload,
    ProxyCall,
    RejectableCall,
    UnidirectionalStreamCall,
)
from . import proxy as _m
from . import proxy_events as _e
'''
