"""The bases of the typed proxy calls (:mod:`centrifugo_types.calls`).

The classes of the events (``ConnectCall``, ``RpcCall``, ...) are generated from proxy.proto
(``_generated/proxy_calls.py``) on the bases defined here, so they exist exactly for the events
of the schema. A call wraps the generated request message (``call.message``), exposes its
fields as read-only properties (``call.user``, ``call.channel``, ...), the call's metadata
(static metadata and allow-listed headers Centrifugo forwards) and owns the reply: exactly one
of ``respond(result)``, ``error(code, message)`` or ``disconnect(code, reason)``, where the
response has those fields. A second reply raises :class:`AlreadyRepliedError`.

Payloads read the same in both of Centrifugo's encodings: ``call.data`` is ``data`` or, when
the proxy uses ``binary_encoding``, ``b64data`` decoded. Replies to a binary request carry their
payloads in the ``b64*`` twins, so a handler writes ``RpcResult(data=...)`` in both cases.

Calls know nothing of transports: the gRPC server, the HTTP app and a test build them from a
message and a metadata mapping, and hand them to a :class:`~centrifugo_types.router.Router`.
"""

from __future__ import annotations

import asyncio
import json as _json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeAlias, TypeVar

import betterproto2
from multidict import CIMultiDict, CIMultiDictProxy

from . import proxy
from ._generated.proxy_events import Event
from .errors import AlreadyRepliedError, Code, check_code

__all__ = [
    "AnyCall",
    "BidirectionalStreamCall",
    "DisconnectableCall",
    "JsonPayload",
    "Metadata",
    "MetadataLike",
    "ProxyCall",
    "RejectableCall",
    "StreamCall",
    "StreamSend",
    "UnidirectionalStreamCall",
    "internal_error_reply",
    "stream_call",
]

MessageT = TypeVar("MessageT", bound=betterproto2.Message)
ResponseT = TypeVar("ResponseT", bound=betterproto2.Message)
ResultT = TypeVar("ResultT", bound=betterproto2.Message)

Metadata: TypeAlias = CIMultiDictProxy[str]
"""Read-only, case-insensitive multi-mapping of the call's metadata (lower-case keys)."""

MetadataLike: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]

_NO_METADATA: Metadata = CIMultiDictProxy(CIMultiDict())


def internal_error_reply(event: Event[ResponseT, Any]) -> ResponseT:
    """The reply to a request of ``event`` that could not be handled (it did not decode, its
    reply could not be encoded): Centrifugo's ``error`` 100 "internal server error",
    temporary, or a response without a result where the response has no ``error`` field.

    What the router replies when a handler fails, for transports to use before or after it.
    """
    if event.with_error is None:
        return event.with_result(None)
    error = proxy.Error(code=int(Code.INTERNAL), message=Code.INTERNAL.message, temporary=True)
    return event.with_error(error)


def _metadata(metadata: MetadataLike | None) -> Metadata:
    if not metadata:  # None, or an empty mapping or list (read-only: one shared instance)
        return _NO_METADATA
    items: Iterable[tuple[str, str]]
    if type(metadata) is list:  # what the gRPC transport passes: skip the ABC check
        items = metadata
    elif isinstance(metadata, Mapping):
        items = metadata.items()
    else:
        items = metadata
    return CIMultiDictProxy(CIMultiDict([(k.lower(), v) for k, v in items]))


class ProxyCall(Generic[MessageT, ResponseT, ResultT]):
    """Base of the typed requests: the message, the metadata and the ``respond`` reply.

    ``state`` is a free dict for interceptors and handlers to share per-request values (for
    example, the authenticated account an interceptor looked up).
    """

    event: ClassVar[Event[Any, Any]]
    """The proxy event this request class serves (its name routes it)."""

    __slots__ = ("_reply", "message", "metadata", "state")

    message: MessageT
    """The generated request message, as received."""
    metadata: Metadata
    """The call's metadata: ``grpc.static_metadata``, allow-listed ``http_headers``, ..."""

    def __init__(self, message: MessageT, metadata: MetadataLike | None = None) -> None:
        if not isinstance(message, self.event.request_type):
            raise TypeError(
                f"{type(self).__name__} wraps a proxy.{self.event.request_type.__name__}, "
                f"got {type(message).__name__}"
            )
        self.message = message
        self.metadata = _metadata(metadata)
        self.state: dict[str, Any] = {}
        self._reply: ResponseT | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    @property
    def replied(self) -> bool:
        """Whether the request has its reply."""
        return self._reply is not None

    @property
    def reply(self) -> ResponseT | None:
        """The response message of the reply, ``None`` until one is made."""
        return self._reply

    @property
    def binary(self) -> bool:
        """Whether Centrifugo sent this request in binary mode (``encoding: binary``)."""
        return getattr(self.message, "encoding", "") == "binary"

    def respond(self, result: ResultT | None = None) -> None:
        """Reply with ``result`` (the event's ``*Result`` message; ``None``: an empty one).

        In binary mode, payloads set in raw fields (``data``, ``info``, ...) are sent in their
        base64 twins (``b64data``, ``b64info``), as Centrifugo expects for non-JSON payloads.
        """
        event = self.event
        if result is None:
            result = event.result_type()
        elif not isinstance(result, event.result_type):
            raise TypeError(
                f"{type(self).__name__}.respond takes a proxy.{event.result_type.__name__}, "
                f"got {type(result).__name__}"
            )
        if self.binary:
            result = event.to_binary(result)
        self._set_reply(event.with_result(result))

    def _set_reply(self, response: ResponseT) -> None:
        if self._reply is not None:
            raise AlreadyRepliedError(
                f"{type(self).__name__} was already replied to with {self._reply!r}"
            )
        self._reply = response

    def _fail(self, code: int, message: str, *, temporary: bool = False) -> None:
        """The failure reply: ``error`` where the response has it, else no result."""
        event = self.event
        if event.with_error is not None:
            error = proxy.Error(code=int(code), message=message, temporary=temporary)
            self._set_reply(event.with_error(error))
        else:
            self._set_reply(event.with_result(None))

    def _fail_internal(self) -> None:
        """Centrifugo's own ``ErrorInternal``: 100 "internal server error", temporary."""
        self._fail(Code.INTERNAL, Code.INTERNAL.message, temporary=True)

    def _disconnect_or_fail(self, code: int, reason: str) -> bool:
        """Reply ``disconnect`` if the response has it; ``False`` (no reply) otherwise."""
        if self.event.with_disconnect is None:
            return False
        self._set_reply(self.event.with_disconnect(proxy.Disconnect(code=code, reason=reason)))
        return True


AnyCall: TypeAlias = ProxyCall[Any, Any, Any]
"""Any typed request (what a ``*`` interceptor receives)."""


class RejectableCall(ProxyCall[MessageT, ResponseT, ResultT]):
    """A request whose response has an ``error`` field."""

    __slots__ = ()

    def error(self, code: int, message: str, temporary: bool = False) -> None:
        """Reply with Centrifugo's ``error``: the client gets ``code`` and ``message``."""
        with_error = self.event.with_error
        assert with_error is not None, f"{self.event} has no error reply"
        error = proxy.Error(code=check_code(code), message=message, temporary=temporary)
        self._set_reply(with_error(error))


class DisconnectableCall(RejectableCall[MessageT, ResponseT, ResultT]):
    """A request whose response has ``error`` and ``disconnect`` fields."""

    __slots__ = ()

    def disconnect(self, code: int, reason: str) -> None:
        """Reply with Centrifugo's ``disconnect``: the client is disconnected with ``code``."""
        with_disconnect = self.event.with_disconnect
        assert with_disconnect is not None, f"{self.event} has no disconnect reply"
        self._set_reply(with_disconnect(proxy.Disconnect(code=check_code(code), reason=reason)))


class _HasData(Protocol):
    @property
    def data(self) -> bytes: ...


class JsonPayload:
    """``json()`` for the calls whose request has a ``data`` payload."""

    __slots__ = ()

    def json(self: _HasData) -> Any:
        """The payload parsed as JSON; ``None`` when the client sent none."""
        data = self.data
        return _json.loads(data) if data else None


StreamSend: TypeAlias = Callable[[betterproto2.Message], Awaitable[None]]
"""The transport's sink of a stream: the reply first, then the stream's items."""


class StreamCall(DisconnectableCall[MessageT, ResponseT, ResultT]):
    """A call answered by a stream: the reply first, then ``send`` items (publications)."""

    __slots__ = ("_flushed", "_lock", "_replied", "_send")

    def __init__(self, message: MessageT, metadata: MetadataLike | None = None) -> None:
        super().__init__(message, metadata)
        self._send: StreamSend | None = None
        self._replied = asyncio.Event()
        self._lock = asyncio.Lock()
        self._flushed = False

    @property
    def accepted(self) -> bool:
        """Whether the subscription was accepted (replied with a result)."""
        reply: Any = self._reply
        return reply is not None and reply.result is not None

    def _set_reply(self, response: ResponseT) -> None:
        super()._set_reply(response)
        self._replied.set()

    def _bind(self, send: StreamSend) -> None:
        """Attach the transport's sink (done by the router before the handler runs)."""
        self._send = send

    async def _flush(self) -> None:
        """Send the reply if it was not sent yet (the lock is held)."""
        if not self._flushed and self._reply is not None:
            self._flushed = True
            assert self._send is not None
            await self._send(self._reply)

    async def send(self, item: betterproto2.Message) -> None:
        """Send an item (a :class:`~centrifugo_types.proxy.Publication`) to the subscriber,
        after an accepting reply."""
        if not self.accepted:
            raise RuntimeError(
                "send() needs an accepted subscription: call respond() first"
                if self._reply is None
                else "send() after a rejecting reply"
            )
        item_type = self.event.item_type
        if item_type is None or not isinstance(item, item_type):
            expected = "nothing" if item_type is None else f"a proxy.{item_type.__name__}"
            raise TypeError(f"send() takes {expected}, got {type(item).__name__}")
        async with self._lock:
            await self._flush()
            assert self._send is not None
            await self._send(item)


class UnidirectionalStreamCall(StreamCall[MessageT, ResponseT, ResultT]):
    """A call whose handler is an async generator of items sent to the subscriber."""

    __slots__ = ()


class BidirectionalStreamCall(StreamCall[MessageT, ResponseT, ResultT]):
    """A call over a bidirectional stream: ``send`` items and receive the client's with
    ``async for item in call`` (or ``receive()``)."""

    __slots__ = ("_incoming",)

    def __init__(
        self,
        message: MessageT,
        metadata: MetadataLike | None = None,
        *,
        incoming: AsyncIterator[Any] | None = None,
    ) -> None:
        super().__init__(message, metadata)
        self._incoming = incoming

    async def receive(self) -> Any:
        """The next item from the client; ``None`` once Centrifugo closed its side."""
        if self._incoming is None:
            return None
        try:
            return await anext(self._incoming)
        except StopAsyncIteration:
            self._incoming = None
            return None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while (item := await self.receive()) is not None:
            yield item


def stream_call(
    call_class: type[Any],
    event: Event[Any, Any],
    message: betterproto2.Message,
    metadata: MetadataLike | None,
    later: AsyncIterator[Any] | None = None,
) -> StreamCall[Any, Any, Any]:
    """The call of a subscribe stream whose first message carried ``message``. For a stream
    of requests, the items the ``later`` messages carry become the call's incoming items (a
    later "message" that is an exception, one that could not be read, is raised there)."""
    unwrap = event.unwrap_input
    if unwrap is None or later is None:
        call = call_class(message, metadata)
    else:

        async def incoming() -> AsyncIterator[Any]:
            async for received in later:
                if isinstance(received, BaseException):
                    raise received
                item = unwrap(received)[1]
                if item is not None:
                    yield item

        assert issubclass(call_class, BidirectionalStreamCall)
        call = call_class(message, metadata, incoming=incoming())
    assert isinstance(call, StreamCall)
    return call
