"""Emit the method table and the typed method surface of Centrifugo's server API.

From the ``CentrifugoApi`` service of api.proto:

- an ``ApiMethod`` record per rpc (request, response and result types, HTTP API path, gRPC
  path, the attribute of ``Command``/``Reply`` in a batch): what transports need;
- ``ApiMethods`` (async) and ``SyncApiMethods``: one method per rpc whose keyword arguments are
  the request's fields, with the schema's types and defaults, returning the typed result;
  ``call(request)`` overloaded per request type; ``batch(requests)`` with typed results.

The clients (``centrifugo_types.client``) subclass them and implement ``_call`` once. What is
not read from the schema is the table of conveniences below, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from betterproto2_compiler.compile.naming import pythonize_method_name

from .schema import INT_RANGES, Field, Message, Method, ProtoFile, Schema, SchemaError, Type

SERVICE = "CentrifugoApi"
BATCH_COMMAND = "centrifugal.centrifugo.api.Command"
"""The message whose fields name the HTTP API path of each rpc (Centrifugo's api/handler.go
routes ``/<name>`` for the rpc whose request is ``Command.<name>``)."""
BATCH_REPLY = "centrifugal.centrifugo.api.Reply"

# -- the hand-decided conveniences ---------------------------------------------------------------

PAYLOAD_KINDS = frozenset({"bytes"})
"""Request fields of these types (not repeated) carry application data as JSON: Centrifugo's
JSON API embeds every ``bytes`` field of a request as a raw JSON value. The methods take any
JSON-serialisable value there (serialised compactly, UTF-8), or bytes taken as they are (JSON
already, or any bytes for binary clients over gRPC)."""

CALL_OPTIONS = ("timeout",)
"""Keyword arguments every method takes besides the request's fields."""

SCALAR_TYPES = {
    "double": ("float", "0.0"),
    "float": ("float", "0.0"),
    "bool": ("bool", "False"),
    "string": ("str", '""'),
    "bytes": ("bytes", 'b""'),
}
"""Python type and proto3 default of the non-integer scalars (every integer: ``int``, 0)."""


@dataclass(frozen=True)
class Argument:
    """One keyword argument of a method: a field of the request."""

    name: str
    annotation: str
    default: str
    value: str
    """The expression that turns the argument into the field's value."""


class ApiMethodsEmitter:
    def __init__(self, schema: Schema, file: ProtoFile) -> None:
        self.schema = schema
        self.file = file
        services = [s for s in file.services if s.name == SERVICE]
        if len(services) != 1:
            raise SchemaError(f"{file.name}: expected one service {SERVICE}")
        self.service = services[0]
        command = schema.message(BATCH_COMMAND)
        self.paths = {f.type.message: f.name for f in command.fields if f.is_message}
        self.commands = {f.type.message: f.py_name for f in command.fields if f.is_message}
        reply = {f.name: f for f in schema.message(BATCH_REPLY).fields}
        for name, attr in zip(self.paths.values(), self.commands.values(), strict=True):
            if name not in reply or reply[name].py_name != attr:
                raise SchemaError(f"{BATCH_REPLY} has no field {name} matching {BATCH_COMMAND}")
        batches = [m for m in self.service.methods if self._is_batch(m)]
        if len(batches) > 1:
            raise SchemaError(f"{SERVICE}: more than one rpc takes a list of Command")
        self.batch = batches[0] if batches else None

    # -- reading the schema ----------------------------------------------------------------

    def _msg(self, full_name: str) -> Message:
        return self.schema.message(full_name)

    def _is_batch(self, method: Method) -> bool:
        """The rpc whose request holds a list of ``Command`` (Batch)."""
        return any(
            f.repeated and f.type.message == BATCH_COMMAND for f in self._msg(method.input).fields
        )

    def _path(self, method: Method) -> str:
        if method.client_streaming or method.server_streaming:
            raise SchemaError(f"{SERVICE}.{method.name}: streaming rpcs are not supported")
        return self.paths.get(method.input, pythonize_method_name(method.name))

    def _result(self, method: Method) -> Message | None:
        """The message in the response's ``result`` field; None for responses without one."""
        response = self._msg(method.output)
        fields = {f.name: f for f in response.fields}
        if set(fields) == {"error", "result"}:
            return self._msg(fields["result"].type.message)
        if "error" in fields or "result" in fields:
            raise SchemaError(f"{response.full_name}: unexpected shape of a response")
        return None

    def _returns(self, method: Method) -> str:
        result = self._result(method)
        return (result or self._msg(method.output)).py_name

    def _const(self, method: Method) -> str:
        return "_" + pythonize_method_name(method.name).upper()

    def _element(self, type_: Type) -> tuple[str, str]:
        """Python type and default of one value of a field."""
        if type_.kind == "message":
            return self._msg(type_.message).py_name, "None"
        if type_.kind in SCALAR_TYPES:
            return SCALAR_TYPES[type_.kind]
        if type_.kind in INT_RANGES:
            return "int", "0"
        # Anything newer (an enum, when the schema model reads them): the message's own
        # field type is what mypy checks; its zero value is 0 on the wire.
        return "Any", "0"

    def _argument(self, field: Field) -> Argument:
        name = field.py_name
        if name in CALL_OPTIONS:
            raise SchemaError(f"a request field is named {name!r}, a call option of the client")
        python, default = self._element(field.type)
        if field.map_key is not None:
            key, _ = self._element(field.map_key)
            return Argument(
                name,
                f"Mapping[{key}, {python}] | None",
                "None",
                f"{{}} if {name} is None else dict({name})",
            )
        if field.repeated:
            return Argument(name, f"Sequence[{python}]", "()", f"list({name})")
        if field.is_message:
            return Argument(name, f"{python} | None", "None", name)
        if field.type.kind in PAYLOAD_KINDS:
            return Argument(name, "Any", default, f"payload({name})")
        return Argument(name, python, default, name)

    # -- emitting --------------------------------------------------------------------------

    def _method(self, method: Method, sync: bool) -> list[str]:
        request = self._msg(method.input)
        returns = self._returns(method)
        name = pythonize_method_name(method.name)
        arguments = [self._argument(f) for f in request.fields]
        prefix, wait = ("", "") if sync else ("async ", "await ")
        lines = [f"    {prefix}def {name}(", "        self,", "        *,"]
        lines += [f"        {a.name}: {a.annotation} = {a.default}," for a in arguments]
        lines += [
            "        timeout: float | None = None,",
            f"    ) -> {returns}:",
            f'        """``{method.name}`` ({request.py_name} -> {returns}). The keyword arguments',
            "        are the request's fields; ``timeout`` (seconds) overrides the client's",
            '        default for this call."""',
            f"        request = {request.py_name}(",
            *[f"            {a.name}={a.value}," for a in arguments],
            "        )",
            f"        result: {returns} = {wait}self._call(",
            f"            {self._const(method)}, request, timeout",
            "        )",
            "        return result",
            "",
        ]
        return lines

    def _batch_method(self, method: Method, sync: bool) -> list[str]:
        request = self._msg(method.input)
        name = pythonize_method_name(method.name)
        commands = next(f for f in request.fields if f.type.message == BATCH_COMMAND)
        others = [self._argument(f) for f in request.fields if f is not commands]
        prefix, wait = ("", "") if sync else ("async ", "await ")
        return [
            f"    {prefix}def {name}(",
            "        self,",
            "        requests: Iterable[BatchableRequest],",
            "        /,",
            "        *,",
            *[f"        {a.name}: {a.annotation} = {a.default}," for a in others],
            "        timeout: float | None = None,",
            "    ) -> list[BatchResult]:",
            f'        """``{method.name}``: send ``requests`` (request messages of other methods)',
            "        in one call. Returns, in order, each request's result or its ``ApiError``",
            '        (returned, not raised: the other commands still ran)."""',
            "        methods, commands = _commands(requests)",
            f"        request = {request.py_name}(",
            f"            {commands.py_name}=commands,",
            *[f"            {a.name}={a.value}," for a in others],
            "        )",
            f"        response: {self._msg(method.output).py_name} = {wait}self._call(",
            f"            {self._const(method)}, request, timeout",
            "        )",
            "        return _results(methods, response)",
            "",
        ]

    def _call_overloads(self, sync: bool) -> list[str]:
        prefix, wait = ("", "") if sync else ("async ", "await ")
        lines = []
        for method in self.service.methods:
            request = self._msg(method.input).py_name
            lines += [
                "    @overload",
                f"    {prefix}def call(",
                f"        self, request: {request}, /, *, timeout: float | None = None",
                f"    ) -> {self._returns(method)}: ...",
            ]
        lines += [
            f"    {prefix}def call(",
            "        self, request: betterproto2.Message, /, *, timeout: float | None = None",
            "    ) -> betterproto2.Message:",
            '        """Send ``request`` (any request message of api.proto), return its result;',
            '        ``timeout`` in seconds overrides the client\'s default for this call."""',
            "        method = BY_REQUEST.get(type(request)) or _method_of(request)",
            f"        result: betterproto2.Message = {wait}self._call(method, request, timeout)",
            "        return result",
            "",
        ]
        return lines

    def _surface(self, sync: bool) -> list[str]:
        cls = "SyncApiMethods" if sync else "ApiMethods"
        kind = "synchronous" if sync else "asynchronous"
        lines = [
            "",
            f"class {cls}:",
            f'    """The {kind} method surface of the server API: one method per rpc of',
            f"    {self.file.name}, ``call(request)`` for any request message and ``batch()``.",
            '    A client implements :meth:`_call` for its transports."""',
            "",
            "    __slots__ = ()",
            "",
            f"    {'' if sync else 'async '}def _call(",
            "        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None",
            "    ) -> Any:",
            '        """Send ``request`` with ``method`` within ``timeout`` seconds (``None``: the',
            "        client's default); return the response's ``result`` (the response itself for",
            '        a batch), raise ``ApiError`` for its ``error``."""',
            "        raise NotImplementedError",
            "",
        ]
        lines += self._call_overloads(sync)
        for method in self.service.methods:
            if method is self.batch:
                lines += self._batch_method(method, sync)
            else:
                lines += self._method(method, sync)
        return lines

    def module(self, header: str) -> str:
        methods = self.service.methods
        names: set[str] = set()
        for method in methods:
            names.add(self._msg(method.input).py_name)
            names.add(self._msg(method.output).py_name)
            result = self._result(method)
            if result is not None:
                names.add(result.py_name)
            for field in self._msg(method.input).fields:
                if field.is_message:
                    names.add(self._msg(field.type.message).py_name)
        names.add(self._msg(BATCH_COMMAND).py_name)
        names.add(self._msg(BATCH_REPLY).py_name)
        for field in self._msg(BATCH_REPLY).fields:
            if field.name == "error":
                names.add(self._msg(field.type.message).py_name)
        batchable = [m for m in methods if m.input in self.commands]
        results = sorted({self._returns(m) for m in batchable})
        lines = [
            header.rstrip("\n"),
            f'"""The methods of Centrifugo\'s server API: service {SERVICE} of {self.file.name}.',
            "",
            "Generated by centrifugo-types' codegen (codegen/api_methods.py); the API clients in",
            '``centrifugo_types.client`` are built on it."""',
            "",
            "import json",
            "from collections.abc import Iterable, Mapping, Sequence",
            "from dataclasses import dataclass",
            "from typing import Any, Generic, TypeAlias, TypeVar, overload",
            "",
            "import betterproto2",
            "",
            "from ..errors import ApiError, TransportError",
            f"from .{self.file.module} import (",
            *[f"    {name}," for name in sorted(names)],
            ")",
            "",
            '_Req = TypeVar("_Req", bound=betterproto2.Message)',
            '_Resp = TypeVar("_Resp", bound=betterproto2.Message)',
            '_Res = TypeVar("_Res", bound=betterproto2.Message)',
            "",
            "",
            "@dataclass(frozen=True, slots=True)",
            "class ApiMethod(Generic[_Req, _Resp, _Res]):",
            '    """One rpc of the server API: what a transport needs to send it."""',
            "",
            "    name: str",
            '    """The rpc name in api.proto (``"PresenceStats"``)."""',
            "    path: str",
            '    """Its name in the HTTP API (``POST /api/presence_stats``) and in ``Command`` and',
            '    ``Reply`` of a batch."""',
            "    grpc_path: str",
            '    """The gRPC method path."""',
            "    request: type[_Req]",
            "    response: type[_Resp]",
            "    result: type[_Res] | None",
            '    """The type of the response\'s ``result`` (``None`` for Batch, whose response',
            '    holds one reply per command)."""',
            "    command: str",
            '    """The attribute of ``Command`` and ``Reply`` for this rpc in a batch (``""`` for',
            '    Batch itself)."""',
            "    py_name: str",
            '    """The name of its method on the clients (``presence_stats``)."""',
            "",
            "",
        ]
        package = self.file.package
        for method in methods:
            request = self._msg(method.input).py_name
            response = self._msg(method.output).py_name
            result = self._result(method)
            generic = f"{request}, {response}, {result.py_name if result else response}"
            lines += [
                f"{self._const(method)}: ApiMethod[{generic}] = ApiMethod(",
                f'    "{method.name}",',
                f'    "{self._path(method)}",',
                f'    "/{package}.{SERVICE}/{method.name}",',
                f"    {request},",
                f"    {response},",
                f"    {result.py_name if result else None},",
                f'    "{self.commands.get(method.input, "")}",',
                f'    "{pythonize_method_name(method.name)}",',
                ")",
            ]
        lines += [
            "",
            "#: Every rpc of the server API, in api.proto's order.",
            "METHODS: tuple[ApiMethod[Any, Any, Any], ...] = (",
            *[f"    {self._const(m)}," for m in methods],
            ")",
            "",
            "#: The method of each request type.",
            "BY_REQUEST: dict[type[Any], ApiMethod[Any, Any, Any]] = {",
            "    m.request: m for m in METHODS",
            "}",
            "",
            "#: The method of each HTTP API path.",
            "BY_PATH: dict[str, ApiMethod[Any, Any, Any]] = {m.path: m for m in METHODS}",
            "",
            "#: A request that can be a command of a batch.",
            "BatchableRequest: TypeAlias = "
            + " | ".join(sorted(self._msg(m.input).py_name for m in batchable)),
            "",
            "#: One command's outcome in a batch: its typed result, or its error.",
            "BatchResult: TypeAlias = " + " | ".join([*results, "ApiError"]),
            "",
            "",
            "def payload(value: Any) -> bytes:",
            '    """Application data as JSON bytes: bytes-like values are taken as they are,',
            '    anything else is serialised (compact, UTF-8)."""',
            "    if isinstance(value, bytes | bytearray | memoryview):",
            "        return bytes(value)",
            "    return json.dumps(",
            '        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False',
            "    ).encode()",
            "",
            "",
            "def _method_of(request: Any) -> ApiMethod[Any, Any, Any]:",
            "    for base in type(request).__mro__:",
            "        if base in BY_REQUEST:",
            "            return BY_REQUEST[base]",
            "    name = type(request).__qualname__",
            '    raise TypeError(f"{name} is not a request of the server API")',
            "",
        ]
        command, reply = self._msg(BATCH_COMMAND).py_name, self._msg(BATCH_REPLY).py_name
        lines += [
            "",
            "def _commands(",
            "    requests: Iterable[Any],",
            f") -> tuple[list[ApiMethod[Any, Any, Any]], list[{command}]]:",
            "    methods, commands = [], []",
            "    for request in requests:",
            "        method = BY_REQUEST.get(type(request)) or _method_of(request)",
            "        if not method.command:",
            "            name = type(request).__qualname__",
            '            raise TypeError(f"{name} cannot be sent in a batch")',
            "        methods.append(method)",
            f"        commands.append({command}(**{{method.command: request}}))",
            "    return methods, commands",
            "",
            "",
            "def _results(methods: list[ApiMethod[Any, Any, Any]], response: Any) -> list[Any]:",
            f"    replies: list[{reply}] = response.replies",
            "    if len(replies) != len(methods):",
            '        counts = f"{len(replies)} replies to {len(methods)} commands"',
            '        raise TransportError(f"batch: {counts}")',
            "    out: list[Any] = []",
            "    for method, reply in zip(methods, replies, strict=True):",
            "        if reply.error is not None:",
            "            error = reply.error",
            "            out.append(ApiError.for_code(error.code, error.message, method.path))",
            "        else:",
            "            result = getattr(reply, method.command)",
            "            if result is None and method.result is not None:",
            "                result = method.result()",
            "            out.append(result)",
            "    return out",
            "",
        ]
        if self.batch is None:
            raise SchemaError(f"{SERVICE}: no rpc takes a list of Command (Batch)")
        batch_request = self._msg(self.batch.input)
        commands_field = next(f for f in batch_request.fields if f.type.message == BATCH_COMMAND)
        batch_response = self._msg(self.batch.output)
        replies_field = next(f for f in batch_response.fields if f.type.message == BATCH_REPLY)
        error = next(f for f in self._msg(BATCH_REPLY).fields if f.name == "error")
        error_type = self._msg(error.type.message).py_name
        lines += [
            "",
            "# -- for transports that answer in-process (MockTransport) ------------------------",
            "",
            "",
            f"def error_message(exc: ApiError) -> {error_type}:",
            '    """The ``error`` of a response for an ``ApiError``."""',
            f"    return {error_type}(code=exc.code, message=exc.message)",
            "",
            "",
            "def batch_commands(request: Any) -> list[tuple[ApiMethod[Any, Any, Any], Any]]:",
            '    """The method and request of each command of a batch request."""',
            "    out = []",
            f"    for command in request.{commands_field.py_name}:",
            "        for method in METHODS:",
            "            if method.command and getattr(command, method.command) is not None:",
            "                out.append((method, getattr(command, method.command)))",
            "                break",
            "        else:",
            '            raise ValueError("a batch command without a request")',
            "    return out",
            "",
            "",
            "def batch_response(",
            "    answers: list[tuple[ApiMethod[Any, Any, Any], Any]],",
            f") -> {batch_response.py_name}:",
            '    """The response to a batch from the response of each command."""',
            "    replies = []",
            "    for method, response in answers:",
            "        if response.error is not None:",
            f"            replies.append({reply}(error=response.error))",
            "        else:",
            f"            replies.append({reply}(**{{method.command: response.result}}))",
            f"    return {batch_response.py_name}({replies_field.py_name}=replies)",
            "",
        ]
        lines += self._surface(sync=False)
        lines += ["", *self._surface(sync=True)]
        return "\n".join(lines) + "\n"
