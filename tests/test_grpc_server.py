"""The gRPC proxy server with a grpclib client: every rpc, bad input, credentials, health,
deadlines, graceful shutdown, TLS and the command line.

The events open-source Centrifugo never sends (notify_cache_empty, notify_channel_state are
Centrifugo PRO) are exercised here only, through the generated ``CentrifugoProxyStub``; so are
the map and shared-poll events in binary mode (tests/test_e2e_map_shared_poll.py has them
sent by a real Centrifugo).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from grpclib import GRPCError, Status
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.exceptions import StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from centrifugo_types import Router, proxy
from centrifugo_types.__main__ import event_loop_runner, load_router
from centrifugo_types._generated import proxy_events as events
from centrifugo_types.calls import (
    ConnectCall,
    MapPublishCall,
    MapRemoveCall,
    NotifyCacheEmptyCall,
    NotifyChannelStateCall,
    RpcCall,
    SharedPollRefreshCall,
)
from centrifugo_types.grpc import ProxyServer, _CoalescingTransport, server_ssl_context

from .centrifugo import ROOT

INTERNAL = proxy.Error(code=100, message="internal server error", temporary=True)

cli_router = Router()
"""Served by the command-line test: ``tests.test_grpc_server:cli_router``."""


@cli_router.rpc
async def _slow_rpc(request: RpcCall) -> None:
    await asyncio.sleep(float(request.json()))
    request.respond(proxy.RpcResult(data=b'"done"'))


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


@pytest.fixture
async def serving() -> AsyncIterator[tuple[proxy.CentrifugoProxyStub, list[Any]]]:
    seen: list[Any] = []
    async with ProxyServer(typed_router(seen), port=0) as server:
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


async def test_events_without_a_handler_get_a_typed_error(
    serving: tuple[proxy.CentrifugoProxyStub, list[Any]],
) -> None:
    stub, _ = serving
    reply = await stub.sub_refresh(proxy.SubRefreshRequest(channel="c"))
    assert reply.error == proxy.Error(code=108, message="not available")
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


class Garbage:
    """A "message" whose encoding is whatever bytes we want to send."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data

    @classmethod
    def FromString(cls, data: bytes) -> Garbage:
        return cls(data)


@pytest.mark.parametrize(
    "name", ["connect", "rpc", "notify_cache_empty", "subscribe_unidirectional"]
)
@pytest.mark.parametrize(
    "data",
    [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x01\xc3"],
    ids=["bad-tag", "truncated", "bad-utf8"],
)
async def test_malformed_protobuf_gets_the_failure_reply_and_the_server_keeps_serving(
    serving: tuple[proxy.CentrifugoProxyStub, list[Any]], name: str, data: bytes
) -> None:
    stub, _ = serving
    event = events.EVENTS[name]
    channel = stub.channel
    cardinality = (
        Cardinality.UNARY_STREAM if event.cardinality == "unary_stream" else Cardinality.UNARY_UNARY
    )
    async with channel.request(event.path, cardinality, Garbage, event.output_type) as stream:
        await stream.send_message(Garbage(data), end=True)
        reply = await stream.recv_message()
    if event.with_error is None:
        assert reply == event.with_result(None)
    elif event.cardinality == "unary_stream":
        assert reply == proxy.StreamSubscribeResponse(
            subscribe_response=proxy.SubscribeResponse(error=INTERNAL)
        )
    else:
        assert reply == event.with_error(INTERNAL)
    assert (await stub.connect(proxy.ConnectRequest())).result == proxy.ConnectResult(user="u")


async def test_credentials_are_required_and_not_passed_to_handlers() -> None:
    seen: list[Any] = []
    async with ProxyServer(typed_router(seen), port=0, credentials=("X-Key", "s3cret")) as server:
        channel = Channel("127.0.0.1", server.port)
        try:
            stub = proxy.CentrifugoProxyStub(channel, timeout=5)
            for metadata in (None, {"x-key": "wrong"}):
                with pytest.raises(GRPCError) as refused:
                    await stub.connect(proxy.ConnectRequest(), metadata=metadata)
                assert refused.value.status is Status.UNAUTHENTICATED
            reply = await stub.connect(
                proxy.ConnectRequest(), metadata={"x-key": "s3cret", "x-other": "1"}
            )
            assert reply.result == proxy.ConnectResult(user="u")
            assert seen == [{"x-other": "1"}]
        finally:
            channel.close()


async def test_health_service() -> None:
    async with ProxyServer(Router(), port=0) as server:
        channel = Channel("127.0.0.1", server.port)
        try:
            health = HealthStub(channel)
            for service in ("", events.SERVICE):
                reply = await health.Check(HealthCheckRequest(service=service))
                assert reply.status == HealthCheckResponse.SERVING
        finally:
            channel.close()


async def test_grpc_deadline_bounds_the_handler() -> None:
    router = Router(timeout=None)

    @router.connect
    async def hang(request: ConnectCall) -> None:
        await asyncio.sleep(3600)

    async with ProxyServer(router, port=0) as server:
        channel = Channel("127.0.0.1", server.port)
        try:
            stub = proxy.CentrifugoProxyStub(channel)
            # Centrifugo sends its proxy timeout as grpc-timeout: the error reply beats it.
            reply = await stub.connect(proxy.ConnectRequest(), timeout=0.3)
            assert reply.error == INTERNAL
        finally:
            channel.close()


async def test_close_lets_calls_in_flight_finish_and_refuses_new_ones() -> None:
    router = Router(timeout=5)
    release = asyncio.Event()
    entered = asyncio.Event()

    @router.connect
    async def slow(request: ConnectCall) -> None:
        entered.set()
        await release.wait()
        request.respond(proxy.ConnectResult(user="finished"))

    server = ProxyServer(router, port=0)
    await server.start()
    channel = Channel("127.0.0.1", server.port)
    try:
        stub = proxy.CentrifugoProxyStub(channel, timeout=5)
        in_flight = asyncio.ensure_future(stub.connect(proxy.ConnectRequest()))
        await asyncio.wait_for(entered.wait(), 5)
        closing = asyncio.ensure_future(server.close())
        await asyncio.sleep(0.05)
        assert not closing.done()
        with pytest.raises(GRPCError) as refused:
            await stub.connect(proxy.ConnectRequest())
        assert refused.value.status is Status.UNAVAILABLE
        release.set()
        assert (await in_flight).result == proxy.ConnectResult(user="finished")
        await asyncio.wait_for(closing, 5)
    finally:
        channel.close()
        await server.close()


async def test_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    seen: list[Any] = []
    tls = server_ssl_context(str(cert), str(key))
    async with ProxyServer(typed_router(seen), port=0, ssl=tls) as server:
        client_tls = ssl.create_default_context(cafile=str(cert))
        client_tls.set_alpn_protocols(["h2"])
        channel = Channel("127.0.0.1", server.port, ssl=client_tls)
        try:
            reply = await proxy.CentrifugoProxyStub(channel, timeout=5).connect(
                proxy.ConnectRequest()
            )
            assert reply.result == proxy.ConnectResult(user="u")
        finally:
            channel.close()
        plain = Channel("127.0.0.1", server.port)
        try:
            with pytest.raises((GRPCError, StreamTerminatedError, OSError, TimeoutError)):
                await proxy.CentrifugoProxyStub(plain, timeout=1).connect(proxy.ConnectRequest())
        finally:
            plain.close()


def _named_router(name: str) -> Router:
    router = Router()

    @router.connect
    async def connect(request: ConnectCall) -> None:
        request.respond(proxy.ConnectResult(user=name))

    return router


async def _who_answers(port: int) -> str:
    channel = Channel("127.0.0.1", port)  # a new connection: the kernel picks its listener
    try:
        reply = await proxy.CentrifugoProxyStub(channel, timeout=5).connect(proxy.ConnectRequest())
        assert reply.result is not None
        return reply.result.user
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
    transport = _CoalescingTransport(real)
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


async def test_concurrent_calls_on_one_connection() -> None:
    router = Router()

    @router.connect
    async def connect(request: ConnectCall) -> None:
        await asyncio.sleep(0.001 * (int(request.client) % 3))
        request.respond(proxy.ConnectResult(user=request.client))

    async with ProxyServer(router, port=0) as server:
        channel = Channel("127.0.0.1", server.port)
        try:
            stub = proxy.CentrifugoProxyStub(channel, timeout=5)
            replies = await asyncio.gather(
                *(stub.connect(proxy.ConnectRequest(client=str(i))) for i in range(200))
            )
        finally:
            channel.close()
    assert [r.result.user for r in replies if r.result] == [str(i) for i in range(200)]


async def test_unary_calls_are_not_held_back_by_nagles_algorithm() -> None:
    # A reply is three small writes (headers, message, trailers). Without TCP_NODELAY on the
    # accepted connection the second one waits for the client's delayed ACK: >= 40 ms a call
    # on Linux, where a call on 127.0.0.1 otherwise takes well under a millisecond.
    async with ProxyServer(_named_router("a"), port=0) as server:
        channel = Channel("127.0.0.1", server.port)
        try:
            stub = proxy.CentrifugoProxyStub(channel, timeout=5)
            await stub.connect(proxy.ConnectRequest())
            loop = asyncio.get_running_loop()
            durations = []
            for _ in range(21):
                started = loop.time()
                await stub.connect(proxy.ConnectRequest())
                durations.append(loop.time() - started)
        finally:
            channel.close()
    assert sorted(durations)[10] < 0.02, durations


async def test_reuse_port_lets_servers_share_a_port() -> None:
    async with ProxyServer(_named_router("a"), port=0, reuse_port=True) as first:
        port = first.port
        with pytest.raises(OSError, match="in use"):  # without SO_REUSEPORT: taken
            await ProxyServer(_named_router("x"), port=port).start()
        async with ProxyServer(_named_router("b"), port=port, reuse_port=True) as second:
            assert second.port == port
            # The kernel spreads new connections over both listeners (by a hash of the
            # client's address and port): 32 connections all to one has odds 2**-31.
            answers = {await _who_answers(port) for _ in range(32)}
            assert answers == {"a", "b"}
        assert await _who_answers(port) == "a"  # the other one serves on alone


def test_load_router_reports_bad_specs() -> None:
    assert load_router("tests.test_grpc_server:cli_router") is cli_router
    for spec, message in [
        ("tests.test_grpc_server", "expected MODULE:ATTRIBUTE"),
        ("tests.no_such_module:router", "cannot import"),
        ("tests.test_grpc_server:nothing", "has no attribute"),
        ("tests.test_grpc_server:INTERNAL", "not a centrifugo_types.Router"),
    ]:
        with pytest.raises(SystemExit, match=message):
            load_router(spec)


def test_event_loop_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvloop

    assert event_loop_runner("asyncio") is asyncio.run
    assert event_loop_runner("uvloop") is uvloop.run
    assert event_loop_runner() is uvloop.run  # auto: uvloop, installed with the dev group
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert event_loop_runner("auto") is asyncio.run
    with pytest.raises(SystemExit, match="needs uvloop"):
        event_loop_runner("uvloop")
    with pytest.raises(ValueError, match="loop must be"):
        event_loop_runner("trio")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_cli_serves_and_shuts_down_gracefully_on_sigterm(loop: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "centrifugo_types",
        "serve",
        "tests.test_grpc_server:cli_router",
        "--port",
        "0",
        "--reuse-port",
        "--loop",
        loop,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    try:
        port = 0
        lines = []
        async with asyncio.timeout(20):
            while not port:
                line = (await process.stderr.readline()).decode()
                assert line, "the server exited before listening"
                lines.append(line)
                if match := re.search(r"on 127\.0\.0\.1:(\d+)", line):
                    port = int(match[1])
        assert any(f"event loop: {loop}" in line for line in lines), lines
        # --reuse-port: another SO_REUSEPORT server can bind the same port.
        async with ProxyServer(Router(), port=port, reuse_port=True):
            pass
        channel = Channel("127.0.0.1", port)
        try:
            stub = proxy.CentrifugoProxyStub(channel, timeout=5)
            in_flight = asyncio.ensure_future(stub.rpc(proxy.RpcRequest(method="m", data=b"0.5")))
            await asyncio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            assert (await in_flight).result == proxy.RpcResult(data=b'"done"')
        finally:
            channel.close()
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
