"""Typed proxy requests: one class per event of Centrifugo's proxy, transport-neutral.

A request wraps the generated request message (``request.message``), exposes its fields as
read-only properties (``request.user``, ``request.channel``, ...), the call's metadata (static
metadata and allow-listed headers Centrifugo forwards) and owns the reply: exactly one of
``respond(result)``, ``error(code, message)`` or ``disconnect(code, reason)``, where the
response has those fields. A second reply raises :class:`AlreadyRepliedError`. (A handler
may also return its result: the router passes it to ``respond``.)

Payloads read the same in both of Centrifugo's encodings: ``request.data`` is ``data`` or, when
the proxy uses ``binary_encoding``, ``b64data`` decoded. Replies to a binary request carry their
payloads in the ``b64*`` twins, so a handler writes ``RpcResult(data=...)`` in both cases.

Requests know nothing of transports: the gRPC server, the HTTP app and a test build them from a
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
from ._generated import proxy_events as events
from ._generated.proxy_events import Event
from .errors import AlreadyRepliedError, Code, check_code

__all__ = [
    "CALL_CLASSES",
    "AnyCall",
    "ConnectCall",
    "DisconnectableCall",
    "MapPublishCall",
    "MapRemoveCall",
    "Metadata",
    "NotifyCacheEmptyCall",
    "NotifyChannelStateCall",
    "ProxyCall",
    "PublishCall",
    "RefreshCall",
    "RejectableCall",
    "RpcCall",
    "SharedPollRefreshCall",
    "SubRefreshCall",
    "SubscribeBidirectionalCall",
    "SubscribeCall",
    "SubscribeStreamCall",
    "SubscribeUnidirectionalCall",
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


class _JsonPayload:
    __slots__ = ()

    def json(self: _HasData) -> Any:
        """The payload parsed as JSON; ``None`` when the client sent none."""
        data = self.data
        return _json.loads(data) if data else None


class ConnectCall(
    events.ConnectRequestFields,
    _JsonPayload,
    DisconnectableCall[proxy.ConnectRequest, proxy.ConnectResponse, proxy.ConnectResult],
):
    """A client connects: authenticate it (``respond(ConnectResult(user=...))``) or refuse.

    Centrifugo disconnects the client when the reply has neither an error nor a result.
    """

    event = events.CONNECT
    __slots__ = ()


class RefreshCall(
    events.RefreshRequestFields,
    DisconnectableCall[proxy.RefreshRequest, proxy.RefreshResponse, proxy.RefreshResult],
):
    """A connection's ``expire_at`` is reached: extend it or let it expire.

    Centrifugo v6.9.1 reads only ``result`` here: an ``error`` or ``disconnect`` reply (and so a
    handler that fails) expires the connection, like ``RefreshResult(expired=True)``.
    """

    event = events.REFRESH
    __slots__ = ()


class SubscribeCall(
    events.SubscribeRequestFields,
    _JsonPayload,
    DisconnectableCall[proxy.SubscribeRequest, proxy.SubscribeResponse, proxy.SubscribeResult],
):
    """A client subscribes to a channel: allow (``respond()``) or refuse."""

    event = events.SUBSCRIBE
    __slots__ = ()


class PublishCall(
    events.PublishRequestFields,
    _JsonPayload,
    DisconnectableCall[proxy.PublishRequest, proxy.PublishResponse, proxy.PublishResult],
):
    """A client publishes: allow (``respond()``), rewrite (``PublishResult(data=...)``), refuse."""

    event = events.PUBLISH
    __slots__ = ()


class RpcCall(
    events.RpcRequestFields,
    _JsonPayload,
    DisconnectableCall[proxy.RpcRequest, proxy.RpcResponse, proxy.RpcResult],
):
    """A client calls ``method``: answer with ``RpcResult(data=...)`` or an error."""

    event = events.RPC
    __slots__ = ()


class SubRefreshCall(
    events.SubRefreshRequestFields,
    DisconnectableCall[proxy.SubRefreshRequest, proxy.SubRefreshResponse, proxy.SubRefreshResult],
):
    """A subscription's ``expire_at`` is reached: extend it or let it expire.

    As for :class:`RefreshCall`, Centrifugo v6.9.1 reads only ``result``: an ``error`` or
    ``disconnect`` reply unsubscribes the client from the channel.
    """

    event = events.SUB_REFRESH
    __slots__ = ()


class NotifyCacheEmptyCall(
    events.NotifyCacheEmptyRequestFields,
    ProxyCall[
        proxy.NotifyCacheEmptyRequest,
        proxy.NotifyCacheEmptyResponse,
        proxy.NotifyCacheEmptyResult,
    ],
):
    """A cached channel is empty (Centrifugo PRO): load it and say whether it is populated.

    The response has only ``result``; a failing handler replies without a result, which
    Centrifugo reads as "not populated".
    """

    event = events.NOTIFY_CACHE_EMPTY
    __slots__ = ()


class NotifyChannelStateCall(
    events.NotifyChannelStateRequestFields,
    RejectableCall[
        proxy.NotifyChannelStateRequest,
        proxy.NotifyChannelStateResponse,
        proxy.NotifyChannelStateResult,
    ],
):
    """Channels became occupied or vacated (Centrifugo PRO). The response has no disconnect."""

    event = events.NOTIFY_CHANNEL_STATE
    __slots__ = ()


class MapPublishCall(
    events.MapPublishRequestFields,
    _JsonPayload,
    DisconnectableCall[proxy.MapPublishRequest, proxy.MapPublishResponse, proxy.MapPublishResult],
):
    """A client publishes to a key of a map channel: allow, rewrite (key, data) or refuse."""

    event = events.MAP_PUBLISH
    __slots__ = ()


class MapRemoveCall(
    events.MapRemoveRequestFields,
    DisconnectableCall[proxy.MapRemoveRequest, proxy.MapRemoveResponse, proxy.MapRemoveResult],
):
    """A client removes a key of a map channel: allow or refuse."""

    event = events.MAP_REMOVE
    __slots__ = ()


class SharedPollRefreshCall(
    events.SharedPollRefreshRequestFields,
    RejectableCall[
        proxy.SharedPollRefreshRequest,
        proxy.SharedPollRefreshResponse,
        proxy.SharedPollRefreshResult,
    ],
):
    """Centrifugo polls the current versions of tracked keys. The response has no disconnect.

    Centrifugo logs an ``error`` reply and polls again at the next interval.
    """

    event = events.SHARED_POLL_REFRESH
    __slots__ = ()


StreamItem: TypeAlias = proxy.SubscribeResponse | proxy.Publication
"""What a subscribe stream sends: its reply first, then publications."""
StreamSend: TypeAlias = Callable[[StreamItem], Awaitable[None]]


class SubscribeStreamCall(SubscribeCall):
    """A subscribe request opening a stream: reply first, then ``send`` publications."""

    __slots__ = ("_flushed", "_lock", "_replied", "_send")

    def __init__(
        self, message: proxy.SubscribeRequest, metadata: MetadataLike | None = None
    ) -> None:
        super().__init__(message, metadata)
        self._send: StreamSend | None = None
        self._replied = asyncio.Event()
        self._lock = asyncio.Lock()
        self._flushed = False

    @property
    def accepted(self) -> bool:
        """Whether the subscription was accepted (replied with a result)."""
        reply = self._reply
        return reply is not None and reply.result is not None

    def _set_reply(self, response: proxy.SubscribeResponse) -> None:
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

    async def send(self, publication: proxy.Publication) -> None:
        """Send a publication to the subscriber (after an accepting reply)."""
        if not self.accepted:
            raise RuntimeError(
                "send() needs an accepted subscription: call respond() first"
                if self._reply is None
                else "send() after a rejecting reply"
            )
        if not isinstance(publication, proxy.Publication):
            raise TypeError(f"send() takes a proxy.Publication, got {type(publication).__name__}")
        async with self._lock:
            await self._flush()
            assert self._send is not None
            await self._send(publication)


class SubscribeUnidirectionalCall(SubscribeStreamCall):
    """A subscription served by a stream of publications (``subscribe_stream_proxy``).

    The handler is an async generator: it replies (``respond()`` to accept, ``error()`` or
    ``disconnect()`` to refuse), then yields :class:`~centrifugo_types.proxy.Publication`
    messages for the subscriber. When it returns, Centrifugo unsubscribes the client.
    """

    event = events.SUBSCRIBE_UNIDIRECTIONAL
    __slots__ = ()


class SubscribeBidirectionalCall(SubscribeStreamCall):
    """A subscription over a bidirectional stream (``subscribe_stream_proxy_bidirectional``).

    The handler replies, then sends publications with ``await request.send(...)`` and receives
    what the client publishes with ``async for publication in request`` (or ``receive()``).
    When it returns, Centrifugo unsubscribes the client.
    """

    event = events.SUBSCRIBE_BIDIRECTIONAL
    __slots__ = ("_incoming",)

    def __init__(
        self,
        message: proxy.SubscribeRequest,
        metadata: MetadataLike | None = None,
        *,
        incoming: AsyncIterator[proxy.Publication] | None = None,
    ) -> None:
        super().__init__(message, metadata)
        self._incoming = incoming

    async def receive(self) -> proxy.Publication | None:
        """The next publication from the client; ``None`` once Centrifugo closed its side."""
        if self._incoming is None:
            return None
        try:
            return await anext(self._incoming)
        except StopAsyncIteration:
            self._incoming = None
            return None

    def __aiter__(self) -> AsyncIterator[proxy.Publication]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[proxy.Publication]:
        while (publication := await self.receive()) is not None:
            yield publication


CALL_CLASSES: Mapping[str, type[AnyCall]] = {
    cls.event.name: cls
    for cls in (
        ConnectCall,
        RefreshCall,
        SubscribeCall,
        PublishCall,
        RpcCall,
        SubRefreshCall,
        SubscribeUnidirectionalCall,
        SubscribeBidirectionalCall,
        NotifyCacheEmptyCall,
        NotifyChannelStateCall,
        MapPublishCall,
        MapRemoveCall,
        SharedPollRefreshCall,
    )
}
"""The typed request class of every event, by event name."""
