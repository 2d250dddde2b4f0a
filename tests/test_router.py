"""Typed requests and the router, without a transport: replies, interceptors, failures."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import betterproto2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centrifugo_types import (
    AlreadyRepliedError,
    CallNext,
    DisconnectReply,
    ErrorReply,
    Router,
    StreamError,
    proxy,
)
from centrifugo_types._generated import proxy_events as events
from centrifugo_types.calls import (
    CALL_CLASSES,
    AnyCall,
    ConnectCall,
    NotifyCacheEmptyCall,
    NotifyChannelStateCall,
    PublishCall,
    RefreshCall,
    RpcCall,
    SharedPollRefreshCall,
    SubscribeBidirectionalCall,
    SubscribeUnidirectionalCall,
)
from centrifugo_types.testing import messages

INTERNAL = proxy.Error(code=100, message="internal server error", temporary=True)


def connect_request(**fields: Any) -> ConnectCall:
    return ConnectCall(proxy.ConnectRequest(client="c1", **fields))


def rpc_request(method: str = "m", **fields: Any) -> RpcCall:
    return RpcCall(proxy.RpcRequest(client="c1", user="u1", method=method, **fields))


# -- the generated events and the hand-written classes agree --------------------------------


@pytest.mark.parametrize("name", list(events.EVENTS))
def test_every_event_has_a_request_class_a_router_method_and_its_reply_methods(
    name: str,
) -> None:
    event = events.EVENTS[name]
    cls = CALL_CLASSES[name]
    assert cls.event is event
    assert hasattr(cls, "error") == (event.with_error is not None)
    assert hasattr(cls, "disconnect") == (event.with_disconnect is not None)
    assert callable(getattr(Router(), name))
    # every field of the wire message reads through the typed request
    message = event.request_type()
    request = cls(message)
    names: dict[str, Any] = vars(type(message))["__dataclass_fields__"]
    for field in names:
        if not field.startswith("b64"):
            assert getattr(request, field) == getattr(message, field)


def test_events_mirror_the_service() -> None:
    rpcs = [e.rpc for e in events.EVENTS.values()]
    assert rpcs == [
        "Connect",
        "Refresh",
        "Subscribe",
        "Publish",
        "RPC",
        "SubRefresh",
        "SubscribeUnidirectional",
        "SubscribeBidirectional",
        "NotifyCacheEmpty",
        "NotifyChannelState",
        "MapPublish",
        "MapRemove",
        "SharedPollRefresh",
    ]
    assert events.NOTIFY_CACHE_EMPTY.with_error is None
    assert events.NOTIFY_CHANNEL_STATE.with_disconnect is None
    assert events.SHARED_POLL_REFRESH.with_disconnect is None
    assert events.SUBSCRIBE_BIDIRECTIONAL.input_type is proxy.StreamSubscribeRequest
    assert events.SUBSCRIBE_BIDIRECTIONAL.response_type is proxy.SubscribeResponse


# -- requests --------------------------------------------------------------------------------


def test_a_request_replies_exactly_once() -> None:
    request = connect_request()
    assert not request.replied and request.reply is None
    request.respond(proxy.ConnectResult(user="42"))
    assert request.reply == proxy.ConnectResponse(result=proxy.ConnectResult(user="42"))
    with pytest.raises(AlreadyRepliedError):
        request.respond()
    with pytest.raises(AlreadyRepliedError):
        request.error(403, "no")
    with pytest.raises(AlreadyRepliedError):
        request.disconnect(4500, "bye")
    assert request.reply == proxy.ConnectResponse(result=proxy.ConnectResult(user="42"))


def test_replies_are_typed_and_checked() -> None:
    with pytest.raises(TypeError, match="ConnectResult"):
        connect_request().respond(proxy.RpcResult())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"wraps a proxy\.ConnectRequest"):
        ConnectCall(proxy.RpcRequest())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"0\.\.4294967295"):
        connect_request().error(-1, "negative")
    request = connect_request()
    request.error(403, "forbidden", temporary=True)
    assert request.reply == proxy.ConnectResponse(
        error=proxy.Error(code=403, message="forbidden", temporary=True)
    )
    request = connect_request()
    request.disconnect(4501, "banned")
    assert request.reply == proxy.ConnectResponse(
        disconnect=proxy.Disconnect(code=4501, reason="banned")
    )
    poll = SharedPollRefreshCall(proxy.SharedPollRefreshRequest(channel="c"))
    poll.respond()
    assert poll.reply == proxy.SharedPollRefreshResponse(result=proxy.SharedPollRefreshResult())


def test_metadata_is_case_insensitive_and_read_only() -> None:
    request = ConnectCall(proxy.ConnectRequest(), [("X-Token", "a"), ("x-token", "b")])
    assert request.metadata["x-token"] == "a"
    assert request.metadata.getall("X-TOKEN") == ["a", "b"]
    with pytest.raises(TypeError):
        request.metadata["x"] = "y"  # type: ignore[index]


@settings(max_examples=50)
@given(st.binary())
def test_payloads_read_the_same_in_both_encodings(payload: bytes) -> None:
    json_mode = PublishCall(proxy.PublishRequest(encoding="json", data=payload))
    binary = PublishCall(
        proxy.PublishRequest(encoding="binary", b64data=base64.b64encode(payload).decode())
    )
    assert json_mode.data == binary.data == payload
    assert not json_mode.binary and binary.binary


def test_json_accessor() -> None:
    assert connect_request(data=b'{"token": "t"}').json() == {"token": "t"}
    assert connect_request().json() is None


def _read(raw: bytes, b64: str) -> bytes:
    """How Centrifugo reads a payload of a reply: the base64 twin when set, else the raw."""
    return base64.b64decode(b64) if b64 else raw


@settings(max_examples=100)
@given(messages(proxy.ConnectResult))
def test_binary_replies_carry_the_same_payloads_in_base64(result: proxy.ConnectResult) -> None:
    result.b64data = result.b64info = ""
    for options in result.subs.values():
        options.b64data = options.b64info = ""
    before = bytes(result)
    request = connect_request(encoding="binary")
    request.respond(result)
    assert bytes(result) == before, "the handler's result is not modified"
    assert request.reply is not None and request.reply.result is not None
    sent = request.reply.result
    assert not sent.data and not sent.info
    assert _read(sent.data, sent.b64data) == result.data
    assert _read(sent.info, sent.b64info) == result.info
    assert sent.meta == result.meta  # raw JSON, no twin
    for channel, options in result.subs.items():
        out = sent.subs[channel]
        assert _read(out.data, out.b64data) == options.data
        assert _read(out.info, out.b64info) == options.info
    json_request = connect_request(encoding="json")
    json_request.respond(result)
    assert json_request.reply == proxy.ConnectResponse(result=result)


# -- router ----------------------------------------------------------------------------------


async def test_handlers_by_decorator_and_by_registration() -> None:
    router = Router()

    @router.connect
    async def connect(request: ConnectCall) -> None:
        request.respond(proxy.ConnectResult(user="decorated"))

    async def refresh(request: RefreshCall) -> None:
        request.respond(proxy.RefreshResult(expire_at=7))

    router.add_handler("refresh", refresh)
    assert router.handles("connect") and router.handles("refresh")
    assert not router.handles("publish")
    reply = await router.handle(connect_request())
    assert reply.result == proxy.ConnectResult(user="decorated")
    refreshed = await router.handle(RefreshCall(proxy.RefreshRequest()))
    assert refreshed.result == proxy.RefreshResult(expire_at=7)
    with pytest.raises(ValueError, match="unknown proxy event 'conect'"):
        router.add_handler("conect", connect)


async def test_unregistered_events_get_a_typed_error_reply() -> None:
    router = Router()
    reply = await router.handle(PublishCall(proxy.PublishRequest()))
    assert reply == proxy.PublishResponse(error=proxy.Error(code=108, message="not available"))
    empty = await router.handle(NotifyCacheEmptyCall(proxy.NotifyCacheEmptyRequest()))
    assert empty == proxy.NotifyCacheEmptyResponse()


async def test_rpc_routes_by_method() -> None:
    router = Router()

    @router.rpc("add")
    async def add(request: RpcCall) -> None:
        a, b = request.json()
        request.respond(proxy.RpcResult(data=str(a + b).encode()))

    reply = await router.handle(rpc_request("add", data=b"[1, 2]"))
    assert reply.result == proxy.RpcResult(data=b"3")
    unknown = await router.handle(rpc_request("sub"))
    assert unknown.error == proxy.Error(code=104, message="method not found")

    @router.rpc
    async def fallback(request: RpcCall) -> None:
        request.respond(proxy.RpcResult(data=f'"{request.method}"'.encode()))

    assert (await router.handle(rpc_request("sub"))).result == proxy.RpcResult(data=b'"sub"')
    assert (await router.handle(rpc_request("add", data=b"[2, 2]"))).result == proxy.RpcResult(
        data=b"4"
    )


async def test_interceptors_run_outermost_first_and_wrap_the_handler() -> None:
    router = Router()
    trace: list[str] = []

    def interceptor(name: str) -> Any:
        async def intercept(request: AnyCall, call_next: CallNext) -> None:
            trace.append(f"{name}>")
            await call_next(request)
            trace.append(f"<{name}")

        return intercept

    router.add_interceptor(interceptor("connect-1"), "connect")
    router.add_interceptor(interceptor("all-1"))
    router.intercept("*")(interceptor("all-2"))
    router.intercept("connect", "refresh")(interceptor("connect-2"))
    router.add_interceptor(interceptor("publish"), "publish")

    @router.connect
    async def connect(request: ConnectCall) -> None:
        trace.append("handler")
        request.respond()

    await router.handle(connect_request())
    assert trace == [
        "all-1>",
        "all-2>",
        "connect-1>",
        "connect-2>",
        "handler",
        "<connect-2",
        "<connect-1",
        "<all-2",
        "<all-1",
    ]


async def test_interceptors_short_circuit_map_exceptions_and_replace_requests() -> None:
    router = Router()
    calls: list[str] = []

    @router.intercept("rpc")
    async def auth(request: RpcCall, call_next: CallNext) -> None:
        if request.metadata.get("authorization") != "secret":
            request.error(401, "unauthorized")
            return
        try:
            await call_next(request)
        except PermissionError:
            request.error(403, "forbidden")

    @router.intercept("rpc")
    async def rewrite(request: RpcCall, call_next: CallNext) -> None:
        message = proxy.RpcRequest(method=request.method, data=b'"rewritten"')
        await call_next(RpcCall(message, request.metadata))

    @router.rpc
    async def handler(request: RpcCall) -> None:
        calls.append(request.json())
        if request.method == "admin":
            raise PermissionError
        request.respond(proxy.RpcResult(data=request.data))

    denied = await router.handle(rpc_request())
    assert denied.error == proxy.Error(code=401, message="unauthorized")
    assert calls == []
    ok = await router.handle(RpcCall(proxy.RpcRequest(method="m"), {"Authorization": "secret"}))
    assert ok.result == proxy.RpcResult(data=b'"rewritten"')
    admin = await router.handle(
        RpcCall(proxy.RpcRequest(method="admin"), {"authorization": "secret"})
    )
    assert admin.error == proxy.Error(code=403, message="forbidden")
    assert calls == ["rewritten", "rewritten"]


async def _hang(request: AnyCall) -> None:
    await asyncio.sleep(3600)


async def _raise(request: AnyCall) -> None:
    raise KeyError("boom")


async def _noreply(request: AnyCall) -> None:
    return None


@pytest.mark.parametrize("handler", [_raise, _noreply, _hang], ids=["raise", "noreply", "hang"])
async def test_a_failing_handler_gets_internal_server_error(
    handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router(timeout=0.05)
    router.add_handler("connect", handler)
    with caplog.at_level(logging.ERROR, logger="centrifugo_types.router"):
        reply = await asyncio.wait_for(router.handle(connect_request()), 1)
    assert reply == proxy.ConnectResponse(error=INTERNAL)
    assert caplog.records, "the failure is logged"
    assert "connect handler" in caplog.records[-1].getMessage()


async def test_the_transport_deadline_shortens_the_router_timeout() -> None:
    router = Router(timeout=10)
    router.add_handler("connect", _hang)
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await router.handle(connect_request(), deadline=started + 0.05)
    assert reply.error == INTERNAL
    assert loop.time() - started < 1


async def test_handlers_that_suspend_or_not_and_other_awaitables() -> None:
    # The router runs a handler's first step before it arms the timeout; what follows must
    # behave as a plain ``await``: values and exceptions of what the handler awaits, several
    # suspensions, the deadline, and handlers that return another kind of awaitable.
    router = Router(timeout=0.2)
    loop = asyncio.get_running_loop()

    @router.connect
    async def connect(request: ConnectCall) -> None:
        kind = request.json()
        if kind == "sync":
            request.respond(proxy.ConnectResult(user="sync"))
            return
        future: asyncio.Future[str] = loop.create_future()
        loop.call_soon(future.set_result, "from a future")
        user = await future
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        if kind == "raise":
            failed: asyncio.Future[None] = loop.create_future()
            loop.call_soon(failed.set_exception, ErrorReply(409, "conflict"))
            await failed
        if kind == "overrun":
            await asyncio.sleep(0.1)
            await asyncio.sleep(10)
        request.respond(proxy.ConnectResult(user=user))

    def reply_with_a_future(request: AnyCall) -> asyncio.Future[None]:
        request.respond(proxy.RpcResult(data=b'"f"'))
        future: asyncio.Future[None] = loop.create_future()
        loop.call_later(0.01, future.set_result, None)
        return future

    router.add_handler("rpc", reply_with_a_future)

    def connect_with(kind: str) -> ConnectCall:
        return connect_request(data=json.dumps(kind).encode())

    assert (await router.handle(connect_with("sync"))).result == proxy.ConnectResult(user="sync")
    suspended = await router.handle(connect_with("suspend"))
    assert suspended.result == proxy.ConnectResult(user="from a future")
    raised = await router.handle(connect_with("raise"))
    assert raised.error == proxy.Error(code=409, message="conflict")
    started = loop.time()
    overrun = await router.handle(connect_with("overrun"))
    assert overrun.error == INTERNAL
    assert 0.19 < loop.time() - started < 1
    assert (await router.handle(rpc_request())).result == proxy.RpcResult(data=b'"f"')


async def test_cancelling_the_caller_cancels_the_handler() -> None:
    router = Router(timeout=5)
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    @router.connect
    async def connect(request: ConnectCall) -> None:
        await asyncio.sleep(0)
        entered.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    call = asyncio.ensure_future(router.handle(connect_request()))
    await asyncio.wait_for(entered.wait(), 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert cancelled.is_set()


async def test_exceptions_map_to_replies() -> None:
    router = Router()

    @router.connect
    async def connect(request: ConnectCall) -> None:
        kind = request.json()
        if kind == "error":
            raise ErrorReply(429, "slow down", temporary=True)
        raise DisconnectReply(4501, "banned")

    error = await router.handle(connect_request(data=b'"error"'))
    assert error.error == proxy.Error(code=429, message="slow down", temporary=True)
    disconnect = await router.handle(connect_request(data=b'"disconnect"'))
    assert disconnect.disconnect == proxy.Disconnect(code=4501, reason="banned")


async def test_failures_of_events_without_error_or_disconnect_fields() -> None:
    router = Router()

    @router.notify_channel_state
    async def state(request: NotifyChannelStateCall) -> None:
        raise DisconnectReply(4501, "cannot disconnect here")

    @router.notify_cache_empty
    async def cache(request: NotifyCacheEmptyCall) -> None:
        raise ErrorReply(400, "no error field either")

    reply = await router.handle(NotifyChannelStateCall(proxy.NotifyChannelStateRequest()))
    assert reply == proxy.NotifyChannelStateResponse(error=INTERNAL)
    empty = await router.handle(NotifyCacheEmptyCall(proxy.NotifyCacheEmptyRequest()))
    assert empty == proxy.NotifyCacheEmptyResponse()


async def test_raising_after_replying_keeps_the_reply(caplog: pytest.LogCaptureFixture) -> None:
    router = Router()

    @router.connect
    async def connect(request: ConnectCall) -> None:
        request.respond(proxy.ConnectResult(user="kept"))
        raise ErrorReply(403, "too late")

    with caplog.at_level(logging.ERROR, logger="centrifugo_types.router"):
        reply = await router.handle(connect_request())
    assert reply.result == proxy.ConnectResult(user="kept")
    assert "after replying" in caplog.text


# -- subscribe streams -----------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.items: list[betterproto2.Message] = []

    async def __call__(self, item: betterproto2.Message) -> None:
        self.items.append(item)


def unidirectional() -> SubscribeUnidirectionalCall:
    return SubscribeUnidirectionalCall(proxy.SubscribeRequest(channel="feed"))


async def test_a_unidirectional_stream_replies_then_sends_publications() -> None:
    router = Router()

    @router.subscribe_unidirectional
    async def feed(request: SubscribeUnidirectionalCall) -> AsyncIterator[proxy.Publication]:
        request.respond(proxy.SubscribeResult(data=b"{}"))
        for n in range(3):
            yield proxy.Publication(data=str(n).encode())

    sink = Sink()
    await router.handle_stream(unidirectional(), sink)
    assert sink.items == [
        proxy.SubscribeResponse(result=proxy.SubscribeResult(data=b"{}")),
        proxy.Publication(data=b"0"),
        proxy.Publication(data=b"1"),
        proxy.Publication(data=b"2"),
    ]


async def test_a_stream_reply_is_sent_before_the_first_publication_is_ready() -> None:
    router = Router()
    sink = Sink()
    go_on = asyncio.Event()

    @router.subscribe_unidirectional
    async def feed(request: SubscribeUnidirectionalCall) -> AsyncIterator[proxy.Publication]:
        request.respond()
        await go_on.wait()
        yield proxy.Publication(data=b"late")

    task = asyncio.ensure_future(router.handle_stream(unidirectional(), sink))
    for _ in range(100):
        if sink.items:
            break
        await asyncio.sleep(0.01)
    assert sink.items == [proxy.SubscribeResponse(result=proxy.SubscribeResult())]
    go_on.set()
    await task
    assert sink.items[-1] == proxy.Publication(data=b"late")


async def test_stream_rejections_and_failures() -> None:
    router = Router(timeout=0.05)
    mode = ""

    @router.subscribe_unidirectional
    async def feed(request: SubscribeUnidirectionalCall) -> AsyncIterator[proxy.Publication]:
        if mode == "reject":
            request.error(403, "no")
        elif mode == "hang":
            await asyncio.sleep(3600)
        elif mode == "after":
            request.respond()
            yield proxy.Publication(data=b"1")
            raise RuntimeError("feed broke")
        yield proxy.Publication(data=b"never sent")

    mode = "reject"
    sink = Sink()
    await router.handle_stream(unidirectional(), sink)
    assert sink.items == [proxy.SubscribeResponse(error=proxy.Error(code=403, message="no"))]

    for mode in ("yield-first", "hang"):
        sink = Sink()
        await router.handle_stream(unidirectional(), sink)
        assert sink.items == [proxy.SubscribeResponse(error=INTERNAL)], mode

    mode = "after"
    sink = Sink()
    with pytest.raises(StreamError, match="feed broke"):
        await router.handle_stream(unidirectional(), sink)
    assert sink.items == [
        proxy.SubscribeResponse(result=proxy.SubscribeResult()),
        proxy.Publication(data=b"1"),
    ]


async def test_a_bidirectional_stream_receives_and_sends() -> None:
    router = Router()

    @router.subscribe_bidirectional
    async def chat(request: SubscribeBidirectionalCall) -> None:
        request.respond()
        async for publication in request:
            await request.send(proxy.Publication(data=publication.data.upper()))

    async def incoming() -> AsyncIterator[proxy.Publication]:
        for text in (b"a", b"b"):
            yield proxy.Publication(data=text)

    sink = Sink()
    request = SubscribeBidirectionalCall(
        proxy.SubscribeRequest(channel="chat"), incoming=incoming()
    )
    await router.handle_stream(request, sink)
    assert sink.items == [
        proxy.SubscribeResponse(result=proxy.SubscribeResult()),
        proxy.Publication(data=b"A"),
        proxy.Publication(data=b"B"),
    ]
    assert await request.receive() is None
