"""What only the gRPC proxy server has, with a grpclib client: the events only gRPC carries,
subscribe streams, gRPC framing, health, deadlines and the write-coalescing protocol.
What every server does (credentials, TLS, shutdown, lifespan, the command line, ...) is in
tests/test_server.py, over every transport.

The events open-source Centrifugo never sends (notify_cache_empty, notify_channel_state are
Centrifugo PRO) are exercised here only, through the generated ``CentrifugoProxyStub``; so are
the map and shared-poll events in binary mode (tests/test_e2e_map_shared_poll.py has them
sent by a real Centrifugo).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator
from typing import Any

import grpclib.server
import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from centrifugo_types import Router, _coalescing, grpc, grpcio, proxy
from centrifugo_types._call import internal_error_reply
from centrifugo_types._coalescing import CoalescingTransport, compatible
from centrifugo_types._generated import proxy_events as events
from centrifugo_types.calls import (
    ConnectCall,
    MapPublishCall,
    MapRemoveCall,
    NotifyCacheEmptyCall,
    NotifyChannelStateCall,
    SharedPollRefreshCall,
)

from .servers import Garbage

INTERNAL = proxy.Error(code=100, message="internal server error", temporary=True)


def typed_router(seen: list[Any]) -> Router:
    router = Router()

    @router.notify_channel_state
    async def state(request: NotifyChannelStateCall) -> None:
        seen.append([(e.channel, e.type) for e in request.events])
        request.respond()

    @router.notify_cache_empty
    async def cache(request: NotifyCacheEmptyCall) -> None:
        seen.append(request.channel)
        request.respond(proxy.NotifyCacheEmptyResult(populated=True))

    @router.map_publish
    async def map_publish(request: MapPublishCall) -> None:
        seen.append((request.channel, request.key, request.json()))
        request.respond(proxy.MapPublishResult(key=request.key.upper(), data=b'{"ok":true}'))

    @router.map_remove
    async def map_remove(request: MapRemoveCall) -> None:
        seen.append((request.channel, request.key))
        request.disconnect(4503, "no removing")

    @router.shared_poll_refresh
    async def poll(request: SharedPollRefreshCall) -> None:
        seen.append([(item.key, item.version) for item in request.items])
        request.respond(
            proxy.SharedPollRefreshResult(
                items=[
                    proxy.SharedPollRefreshResultItem(key=i.key, version=i.version + 1)
                    for i in request.items
                ],
                epoch="e1",
            )
        )

    @router.connect
    async def connect(request: ConnectCall) -> None:
        seen.append(dict(request.metadata))
        request.respond(proxy.ConnectResult(user="u"))

    return router


SERVERS: dict[str, type[grpc.ProxyServer | grpcio.ProxyServer]] = {
    "grpclib": grpc.ProxyServer,
    "grpcio": grpcio.ProxyServer,
}
"""The gRPC servers: the same service on grpclib and on grpcio's C core."""


@pytest.fixture(params=sorted(SERVERS))
def server_class(request: pytest.FixtureRequest) -> type[grpc.ProxyServer | grpcio.ProxyServer]:
    return SERVERS[request.param]


@pytest.fixture
async def serving(
    server_class: type[grpc.ProxyServer | grpcio.ProxyServer],
) -> AsyncIterator[tuple[proxy.CentrifugoProxyStub, list[Any]]]:
    seen: list[Any] = []
    async with server_class(typed_router(seen), port=0) as server:
        channel = Channel("127.0.0.1", server.port)
        try:
            yield proxy.CentrifugoProxyStub(channel, timeout=5), seen
        finally:
            channel.close()


async def test_notify_map_and_shared_poll_rpcs(
    serving: tuple[proxy.CentrifugoProxyStub, list[Any]],
) -> None:
    stub, seen = serving
    state = await stub.notify_channel_state(
        proxy.NotifyChannelStateRequest(
            events=[proxy.ChannelEvent(time_ms=1, channel="news", type="occupied")]
        )
    )
    assert state == proxy.NotifyChannelStateResponse(result=proxy.NotifyChannelStateResult())
    cache = await stub.notify_cache_empty(proxy.NotifyCacheEmptyRequest(channel="docs"))
    assert cache.result == proxy.NotifyCacheEmptyResult(populated=True)
    published = await stub.map_publish(
        proxy.MapPublishRequest(channel="cursors", key="k1", data=b'{"x":1}')
    )
    assert published.result == proxy.MapPublishResult(key="K1", data=b'{"ok":true}')
    binary = await stub.map_publish(
        proxy.MapPublishRequest(
            channel="cursors", key="k2", encoding="binary", b64data="eyJ4IjoyfQ=="
        )
    )
    assert binary.result == proxy.MapPublishResult(key="K2", b64data="eyJvayI6dHJ1ZX0=")
    removed = await stub.map_remove(proxy.MapRemoveRequest(channel="cursors", key="k1"))
    assert removed.disconnect == proxy.Disconnect(code=4503, reason="no removing")
    polled = await stub.shared_poll_refresh(
        proxy.SharedPollRefreshRequest(
            channel="prices", items=[proxy.SharedPollRefreshItem(key="btc", version=3)]
        )
    )
    assert polled.result == proxy.SharedPollRefreshResult(
        items=[proxy.SharedPollRefreshResultItem(key="btc", version=4)], epoch="e1"
    )
    assert seen == [
        [("news", "occupied")],
        "docs",
        ("cursors", "k1", {"x": 1}),
        ("cursors", "k2", {"x": 2}),
        ("cursors", "k1"),
        [("btc", 3)],
    ]


async def test_streams_without_a_handler_get_a_typed_error(
    serving: tuple[proxy.CentrifugoProxyStub, list[Any]],
) -> None:
    stub, _ = serving
    responses = [
        r async for r in stub.subscribe_unidirectional(proxy.SubscribeRequest(channel="c"))
    ]
    assert responses == [
        proxy.StreamSubscribeResponse(
            subscribe_response=proxy.SubscribeResponse(
                error=proxy.Error(code=108, message="not available")
            )
        )
    ]


STREAM_FAILURE = proxy.StreamSubscribeResponse(
    subscribe_response=proxy.SubscribeResponse(error=INTERNAL)
)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x01\xc3"],
    ids=["bad-tag", "truncated", "bad-utf8"],
)
async def test_a_malformed_stream_request_gets_the_failure_reply(
    serving: tuple[proxy.CentrifugoProxyStub, list[Any]], data: bytes
) -> None:
    stub, _ = serving
    event = events.SUBSCRIBE_UNIDIRECTIONAL
    async with stub.channel.request(
        event.path, Cardinality.UNARY_STREAM, Garbage, event.output_type
    ) as stream:
        await stream.send_message(Garbage(data), end=True)
        assert await stream.recv_message() == STREAM_FAILURE


@pytest.mark.parametrize(
    "first",
    [b"", bytes(proxy.StreamSubscribeRequest(publication=proxy.Publication(data=b"{}")))],
    ids=["no-message", "no-subscribe_request"],
)
async def test_a_bidirectional_stream_must_start_with_its_subscribe_request(
    serving: tuple[proxy.CentrifugoProxyStub, list[Any]], first: bytes
) -> None:
    event = events.SUBSCRIBE_BIDIRECTIONAL
    channel = serving[0].channel
    async with channel.request(
        event.path, Cardinality.STREAM_STREAM, Garbage, event.output_type, timeout=5
    ) as stream:
        if first:
            await stream.send_message(Garbage(first), end=True)
        else:
            await stream.send_request(end=True)
        assert await stream.recv_message() == STREAM_FAILURE


def _frame(message: bytes, *, compressed: bool = False, length: int | None = None) -> bytes:
    """A gRPC length-prefixed message, as it is or with the flag or the length falsified."""
    return struct.pack(">?I", compressed, len(message) if length is None else length) + message


@pytest.mark.parametrize("name", ["connect", "notify_cache_empty", "subscribe_unidirectional"])
@pytest.mark.parametrize(
    "data",
    [
        b"",
        _frame(bytes(proxy.ConnectRequest(client="c")), compressed=True),
        _frame(b"\x0a\x01c", length=40),
        b"\x00\x00",
    ],
    ids=["no-message", "compressed-flag", "length-beyond-the-message", "prefix-cut-short"],
)
@pytest.mark.parametrize("server_class", [grpc.ProxyServer], ids=["grpclib"])
async def test_grpc_framing_oddities_get_the_failure_reply(
    serving: tuple[proxy.CentrifugoProxyStub, list[Any]],
    name: str,
    data: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A call without a message or with a frame grpclib cannot read gets the event's failure
    reply, not UNKNOWN. (grpcio's core answers these itself, before our code sees the call:
    see centrifugo_types.grpcio.)"""
    stub, _ = serving
    event = events.EVENTS[name]
    streaming = event.cardinality == "unary_stream"
    cardinality = Cardinality.UNARY_STREAM if streaming else Cardinality.UNARY_UNARY
    with caplog.at_level(logging.WARNING):
        async with stub.channel.request(
            event.path, cardinality, Garbage, event.output_type, timeout=5
        ) as stream:
            await stream.send_request()
            await stream._stream.send_data(data, end_stream=True)  # raw, below grpclib's codec
            stream._end_done = True
            reply = await stream.recv_message()
    if streaming:
        assert reply == STREAM_FAILURE
    else:
        assert reply == internal_error_reply(event)
    assert "undecodable request" in caplog.text
    assert (await stub.connect(proxy.ConnectRequest())).result == proxy.ConnectResult(user="u")


async def test_health_service(
    server_class: type[grpc.ProxyServer | grpcio.ProxyServer],
) -> None:
    async with server_class(Router(), port=0) as server:
        channel = Channel("127.0.0.1", server.port)
        try:
            health = HealthStub(channel)
            for service in ("", events.SERVICE):
                reply = await health.Check(HealthCheckRequest(service=service))
                assert reply.status == HealthCheckResponse.SERVING
        finally:
            channel.close()


async def test_grpc_deadline_bounds_the_handler(
    server_class: type[grpc.ProxyServer | grpcio.ProxyServer],
) -> None:
    router = Router(timeout=None)

    @router.connect
    async def hang(request: ConnectCall) -> None:
        await asyncio.sleep(3600)

    async with server_class(router, port=0) as server:
        channel = Channel("127.0.0.1", server.port)
        try:
            stub = proxy.CentrifugoProxyStub(channel)
            # Centrifugo sends its proxy timeout as grpc-timeout: the error reply beats it.
            reply = await stub.connect(proxy.ConnectRequest(), timeout=0.3)
            assert reply.error == INTERNAL
        finally:
            channel.close()


class _RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bytes]] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", b""))

    def abort(self) -> None:
        self.calls.append(("abort", b""))


async def test_writes_of_one_loop_iteration_reach_the_socket_together() -> None:
    real = _RecordingTransport()
    transport = CoalescingTransport(real)
    transport.write(b"headers")
    transport.write(b"")
    transport.write(bytearray(b"message"))
    transport.write(b"trailers")
    assert real.calls == []
    await asyncio.sleep(0)
    assert real.calls == [("write", b"headersmessagetrailers")]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert real.calls[1:] == [("write", b"next")]
    # close() sends what is pending first; abort() drops it, as the socket would.
    transport.write(b"goaway")
    transport.close()
    assert real.calls[2:] == [("write", b"goaway"), ("close", b"")]
    transport.write(b"lost")
    transport.abort()
    await asyncio.sleep(0)
    assert real.calls[4:] == [("abort", b"")]


async def test_concurrent_calls_on_one_connection(
    server_class: type[grpc.ProxyServer | grpcio.ProxyServer],
) -> None:
    router = Router()

    @router.connect
    async def connect(request: ConnectCall) -> None:
        await asyncio.sleep(0.001 * (int(request.client) % 3))
        request.respond(proxy.ConnectResult(user=request.client))

    async with server_class(router, port=0) as server:
        channel = Channel("127.0.0.1", server.port)
        try:
            stub = proxy.CentrifugoProxyStub(channel, timeout=5)
            replies = await asyncio.gather(
                *(stub.connect(proxy.ConnectRequest(client=str(i))) for i in range(200))
            )
        finally:
            channel.close()
    assert [r.result.user for r in replies if r.result] == [str(i) for i in range(200)]


def test_the_grpclib_internals_of_write_coalescing_are_still_there() -> None:
    """If this fails, grpclib changed what centrifugo_types._coalescing relies on: the server
    still works (plain grpclib, a warning), but update _coalescing for the new version."""
    assert compatible(), grpclib.__version__


async def test_write_coalescing_falls_back_to_plain_grpclib(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with monkeypatch.context() as renamed:
        renamed.setattr(grpclib.server.Server, "_protocol_factory", None)
        assert not compatible()
    monkeypatch.setattr(_coalescing, "compatible", lambda: False)  # grpclib works on
    seen: list[Any] = []
    with caplog.at_level(logging.WARNING):
        async with grpc.ProxyServer(typed_router(seen), port=0) as server:
            assert type(server._server) is grpclib.server.Server
            channel = Channel("127.0.0.1", server.port)
            try:
                stub = proxy.CentrifugoProxyStub(channel, timeout=5)
                reply = await stub.connect(proxy.ConnectRequest())
            finally:
                channel.close()
    assert reply.result == proxy.ConnectResult(user="u")
    assert "no longer has Server._protocol_factory" in caplog.text
