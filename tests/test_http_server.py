"""The HTTP proxy app (``centrifugo_types.http``) through an in-process ASGI client, under
uvicorn, from the command line, and the HTTP statuses a real Centrifugo gets from it.

Centrifugo's own HTTP proxy requests run through the app in the e2e suites
(tests/test_e2e_proxy.py and tests/test_e2e_map_shared_poll.py, transports ``http`` and
``http-binary``); here every event path is called directly, including the two Centrifugo PRO
events, with valid requests drawn by hypothesis and with arbitrary bodies.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import os
import re
import signal
import ssl
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import centrifuge
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centrifugo_types import Router, json, proxy
from centrifugo_types._call import internal_error_reply
from centrifugo_types._generated import proxy_events as events
from centrifugo_types.calls import AnyCall, ConnectCall, RpcCall
from centrifugo_types.http import UNARY_EVENTS, ProxyApp, ProxyServer
from centrifugo_types.testing import json_payloads, messages

from .centrifugo import ROOT, StartCentrifugo

INTERNAL = proxy.Error(code=100, message="internal server error", temporary=True)
EVENT_NAMES = [event.name for event in UNARY_EVENTS]

Seen = list[tuple[str, Any, dict[str, list[str]]]]


def recording_router(seen: Seen) -> Router:
    """Every event accepted with an empty result, after noting (event, message, metadata)."""
    router = Router()
    for event in UNARY_EVENTS:

        async def handler(request: AnyCall) -> None:
            metadata = {key: request.metadata.getall(key) for key in request.metadata}
            seen.append((request.event.name, request.message, metadata))
            request.respond()

        router.add_handler(event.name, handler)
    return router


CENTRIFUGO_HEADERS = {"User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip",
                      "Content-Type": "application/json"}  # fmt: skip
"""The headers of every HTTP proxy request of Centrifugo v6.9.1 (Go's client adds Host and
Content-Length): none of them is metadata."""


def asgi_client(app: ProxyApp, root_path: str = "") -> httpx.AsyncClient:
    """An in-process client of ``app`` sending the headers Centrifugo sends."""
    transport = httpx.ASGITransport(app, root_path=root_path)
    client = httpx.AsyncClient(transport=transport, base_url="http://backend")
    client.headers = httpx.Headers(CENTRIFUGO_HEADERS)
    del client.headers["accept"]  # httpx's default, which Go does not send
    return client


@pytest.fixture
def seen() -> Seen:
    return []


@pytest.fixture
async def client(seen: Seen) -> AsyncIterator[httpx.AsyncClient]:
    app = ProxyApp(recording_router(seen))
    async with asgi_client(app) as client:
        yield client


def path(event: str) -> str:
    return f"/centrifugo/{event}"


def accepted(event: events.Event[Any, Any]) -> Any:
    return event.with_result(event.result_type())


# -- every event path -------------------------------------------------------------------------


def test_paths_are_one_per_unary_event() -> None:
    app = ProxyApp(Router())
    assert dict(app.paths) == {name: f"/centrifugo/{name}" for name in events.EVENTS if
                               events.EVENTS[name].cardinality == "unary_unary"}  # fmt: skip
    assert len(app.paths) == 11
    assert "subscribe_unidirectional" not in app.paths


@pytest.mark.parametrize("name", EVENT_NAMES)
async def test_every_event_path_reaches_its_handler(
    client: httpx.AsyncClient, seen: Seen, name: str
) -> None:
    event = events.EVENTS[name]
    reply = await client.post(
        path(name), content=json.dumps(event.request_type()), headers={"X-Trace": "t1"}
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert json.loads(event.response_type, reply.content) == accepted(event)
    assert [(n, m) for n, m, _ in seen] == [(name, event.request_type())]
    assert seen[0][2] == {"x-trace": ["t1"]}


@pytest.mark.parametrize("name", EVENT_NAMES)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
async def test_any_valid_request_gets_exactly_one_reply_of_its_response_type(
    name: str, data: st.DataObject
) -> None:
    event = events.EVENTS[name]
    message = data.draw(messages(event.request_type, payloads=json_payloads()))
    seen: Seen = []
    app = ProxyApp(recording_router(seen))
    async with asgi_client(app) as c:
        reply = await c.post(path(name), content=json.dumps(message))
    assert reply.status_code == 200
    assert json.loads(event.response_type, reply.content) == accepted(event)
    assert [(n, m) for n, m, _ in seen] == [(name, message)]


# -- the reply: typed requests, binary mode, failures ------------------------------------------


def payload_router() -> Router:
    router = Router(timeout=0.2)

    @router.rpc("echo")
    async def echo(request: RpcCall) -> None:
        request.respond(proxy.RpcResult(data=request.data))

    @router.rpc("bytes")
    async def raw_bytes(request: RpcCall) -> None:
        request.respond(proxy.RpcResult(data=b"\x00\xff"))

    @router.rpc("raise")
    async def fail(request: RpcCall) -> None:
        raise RuntimeError("broken")

    @router.rpc("hang")
    async def hang(request: RpcCall) -> None:
        await asyncio.sleep(10)

    @router.connect
    async def connect(request: ConnectCall) -> None:
        request.respond(
            proxy.ConnectResult(user=request.json()["user"], info=b'{"via":"http"}', data=b"[1]")
        )

    return router


@pytest.fixture
async def payloads() -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(ProxyApp(payload_router())) as client:
        yield client


async def test_json_mode_payloads_are_raw_json(payloads: httpx.AsyncClient) -> None:
    reply = await payloads.post(
        path("connect"), content=b'{"client":"c","encoding":"json","data":{"user": "ann"}}'
    )
    assert reply.content == b'{"result":{"user":"ann","info":{"via":"http"},"data":[1]}}'


async def test_binary_mode_payloads_travel_in_base64(payloads: httpx.AsyncClient) -> None:
    body = {"encoding": "binary", "b64data": base64.b64encode(b'{"user":"bob"}').decode()}
    reply = await payloads.post(path("connect"), json=body)
    assert json.loads(proxy.ConnectResponse, reply.content).result == proxy.ConnectResult(
        user="bob",
        b64info=base64.b64encode(b'{"via":"http"}').decode(),
        b64data=base64.b64encode(b"[1]").decode(),
    )
    binary = {"method": "echo", "encoding": "binary", "b64data": "AP8="}
    reply = await payloads.post(path("rpc"), json=binary)
    assert reply.content == b'{"result":{"b64data":"AP8="}}'
    # The same bytes outside binary mode are no JSON: they cannot be sent, error 100.
    reply = await payloads.post(path("rpc"), json={"method": "bytes"})
    assert (reply.status_code, reply.content) == (
        200,
        json.dumps(proxy.RpcResponse(error=INTERNAL)),
    )
    reply = await payloads.post(path("rpc"), json={**binary, "method": "bytes"})
    assert reply.content == b'{"result":{"b64data":"AP8="}}'


@pytest.mark.parametrize("method", ["raise", "hang", "nothing"])
async def test_failing_handlers_get_one_error_reply(
    payloads: httpx.AsyncClient, method: str
) -> None:
    reply = await payloads.post(path("rpc"), json={"method": method})
    assert reply.status_code == 200
    response = json.loads(proxy.RpcResponse, reply.content)
    if method == "nothing":  # the router's answer to a method without a handler
        assert response.error == proxy.Error(code=104, message="method not found")
    else:
        assert response == proxy.RpcResponse(error=INTERNAL)


async def test_an_event_without_a_handler_is_not_available(payloads: httpx.AsyncClient) -> None:
    reply = await payloads.post(path("subscribe"), json={"channel": "news"})
    assert reply.content == b'{"error":{"code":108,"message":"not available"}}'


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EVENT_NAMES)
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'{"a": 01}',
        b'{"a": 1,}',
        b'{"data": nope}',
        b"\xff\xfe",
        b'"text"',
        b"{}{}",
    ],
)
async def test_malformed_json_gets_the_event_failure_reply(
    client: httpx.AsyncClient, seen: Seen, name: str, body: bytes, caplog: Any
) -> None:
    event = events.EVENTS[name]
    with caplog.at_level(logging.WARNING, "centrifugo_types.http"):
        reply = await client.post(path(name), content=body)
    assert reply.status_code == 200
    assert json.loads(event.response_type, reply.content) == internal_error_reply(event)
    assert "undecodable request" in caplog.text
    assert seen == []
    # and the app goes on serving
    reply = await client.post(path(name), content=b"{}")
    assert json.loads(event.response_type, reply.content) == accepted(event)


def test_the_failure_reply_follows_the_response_shape() -> None:
    assert internal_error_reply(events.CONNECT) == proxy.ConnectResponse(error=INTERNAL)
    # NotifyCacheEmptyResponse has no error field: no result ("not populated").
    assert json.dumps(internal_error_reply(events.NOTIFY_CACHE_EMPTY)) == b"{}"


async def test_http_errors(client: httpx.AsyncClient, seen: Seen) -> None:
    reply = await client.post("/centrifugo/nothing", content=b"{}")
    assert (reply.status_code, reply.text) == (404, "not a proxy path: /centrifugo/nothing")
    assert (await client.post("/centrifugo/connect/", content=b"{}")).status_code == 404
    for method in ("GET", "PUT", "HEAD", "OPTIONS"):
        reply = await client.request(method, path("connect"))
        assert reply.status_code == 405
        assert reply.headers["allow"] == "POST"
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        reply = await client.post(
            path("connect"), content=b"{}", headers={"content-type": content_type}
        )
        assert reply.status_code == 415
        assert reply.text == f"expected a JSON body, got Content-Type {content_type}"
    for content_type in ("application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                         "application/vnd.api+json"):  # fmt: skip
        reply = await client.post(
            path("connect"), content=b"{}", headers={"content-type": content_type}
        )
        assert reply.status_code == 200
    untyped = client.build_request("POST", path("connect"), content=b"{}")
    del untyped.headers["content-type"]  # no Content-Type at all: taken for JSON
    assert (await client.send(untyped)).status_code == 200
    reply = await client.post(path("connect"), content=b"{}", headers={"content-encoding": "br"})
    assert (reply.status_code, reply.text) == (415, "unsupported Content-Encoding br")
    assert len(seen) == 5


async def test_body_size_limit() -> None:
    seen: Seen = []
    app = ProxyApp(recording_router(seen), max_body_size=100)
    async with asgi_client(app) as c:
        fits = b'{"client":"%s"}' % (b"x" * 87)
        assert len(fits) == 100
        assert (await c.post(path("connect"), content=fits)).status_code == 200
        reply = await c.post(path("connect"), content=fits + b" ")
        assert (reply.status_code, reply.text) == (413, "body larger than 100 bytes")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(5):
                yield b" " * 30

        reply = await c.post(path("connect"), content=chunks())
        assert reply.status_code == 413
        assert "content-length" not in reply.request.headers
    assert len(seen) == 1


async def test_gzip_bodies() -> None:
    seen: Seen = []
    app = ProxyApp(recording_router(seen), max_body_size=1000)
    gz = {"content-encoding": "gzip"}
    body = json.dumps(proxy.ConnectRequest(client="zipped", data=b'{"a": 1}'))
    async with asgi_client(app) as c:
        reply = await c.post(path("connect"), content=gzip.compress(body), headers=gz)
        assert reply.status_code == 200
        assert seen[-1][1] == proxy.ConnectRequest(client="zipped", data=b'{"a": 1}')
        # Small once compressed, too large once decompressed: a gzip bomb.
        bomb = gzip.compress(b'{"client":"' + b"x" * 100_000 + b'"}')
        assert len(bomb) < 1000
        reply = await c.post(path("connect"), content=bomb, headers=gz)
        assert (reply.status_code, reply.text) == (
            413,
            "body larger than 1000 bytes once decompressed",
        )
        reply = await c.post(path("connect"), content=gzip.compress(body)[:-5], headers=gz)
        assert (reply.status_code, reply.text) == (400, "invalid gzip body: truncated")
        reply = await c.post(path("connect"), content=body, headers=gz)
        assert reply.status_code == 400 and reply.text.startswith("invalid gzip body:")
        plain = {"content-encoding": "identity"}
        assert (await c.post(path("connect"), content=body, headers=plain)).status_code == 200
    assert len(seen) == 2


# Bodies near valid requests reach deeper into the decoders than random bytes do.
def _near_valid(data: st.DataObject, event: events.Event[Any, Any]) -> bytes:
    body = bytearray(json.dumps(data.draw(messages(event.request_type, payloads=json_payloads()))))
    for _ in range(data.draw(st.integers(0, 3))):
        if not body:
            break
        at = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["flip", "drop", "cut"]))
        if action == "flip":
            body[at] = data.draw(st.sampled_from(b'{}[]",:0aZ\\\x00\xff '))
        elif action == "drop":
            del body[at]
        else:
            del body[at:]
    return bytes(body)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
async def test_arbitrary_bodies_never_crash_the_app(data: st.DataObject) -> None:
    event = data.draw(st.sampled_from(UNARY_EVENTS))
    body = data.draw(
        st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode), st.just(b"{}"))
        if data.draw(st.booleans())
        else st.just(_near_valid(data, event))
    )
    headers = {}
    if data.draw(st.booleans()):
        body = gzip.compress(body) if data.draw(st.booleans()) else body
        headers["content-encoding"] = "gzip"
    content_type = data.draw(st.sampled_from([None, "application/json", "text/plain", ""]))
    if content_type is not None:
        headers["content-type"] = content_type
    seen: Seen = []
    app = ProxyApp(recording_router(seen), max_body_size=data.draw(st.sampled_from([64, 4096])))
    async with asgi_client(app) as c:
        reply = await c.post(path(event.name), content=body, headers=headers)
    # ASGITransport re-raises what the app raises: reaching this line means no crash.
    assert reply.status_code in (200, 400, 413, 415)
    if reply.status_code == 200:
        response = json.loads(event.response_type, reply.content)
        assert response in (accepted(event), internal_error_reply(event))
        assert len(seen) == (response == accepted(event))


# -- headers -> metadata ------------------------------------------------------------------------


async def test_headers_become_metadata(client: httpx.AsyncClient, seen: Seen) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"X-Static", b"e2e"),  # http.static_headers
        (b"X-Multi", b"one"),  # a forwarded header with two values
        (b"X-Multi", b"two"),
        (b"Authorization", b"Bearer t"),
        (b"X-Name", "Zoë".encode()),  # UTF-8, as Go sends it
        (b"X-Latin", b"caf\xe9"),  # not UTF-8: Latin-1
        (b"User-Agent", b"Go-http-client/1.1"),  # Centrifugo's own: not metadata
        (b"Accept-Encoding", b"gzip"),  # and the rest of the transport's headers
        (b"Content-Type", b"application/json"),
    ]
    await client.post(path("connect"), content=b"{}", headers=headers)
    assert seen[0][2] == {
        "x-static": ["e2e"],
        "x-multi": ["one", "two"],
        "authorization": ["Bearer t"],
        "x-name": ["Zoë"],
        "x-latin": ["café"],
    }
    # A client's User-Agent that Centrifugo forwards (http_headers: ["user-agent"]) is kept.
    await client.post(path("rpc"), content=b"{}", headers={"User-Agent": "Mozilla/5.0"})
    assert seen[1][2]["user-agent"] == ["Mozilla/5.0"]


async def test_credentials() -> None:
    seen: Seen = []
    app = ProxyApp(recording_router(seen), credentials=("X-Centrifugo", "s3cret"))
    async with asgi_client(app) as c:
        for headers in ({}, {"x-centrifugo": "wrong"}, {"x-other": "s3cret"}):
            reply = await c.post(path("connect"), content=b"{}", headers=headers)
            assert (reply.status_code, reply.text) == (401, "invalid credentials")
        good = {"X-Centrifugo": "s3cret", "X-App": "a"}
        assert (await c.post(path("connect"), content=b"{}", headers=good)).status_code == 200
    assert [metadata for _, _, metadata in seen] == [{"x-app": ["a"]}]


# -- paths, mounting, the ASGI protocol ---------------------------------------------------------


async def test_prefix_paths_and_root_path() -> None:
    seen: Seen = []
    app = ProxyApp(recording_router(seen), prefix="/proxy/", paths={"connect": "/auth"})
    assert app.paths["connect"] == "/auth" and app.paths["rpc"] == "/proxy/rpc"
    async with asgi_client(app) as c:
        assert (await c.post("/auth", content=b"{}")).status_code == 200
        assert (await c.post("/proxy/rpc", content=b"{}")).status_code == 200
        assert (await c.post("/proxy/connect", content=b"{}")).status_code == 404
    # Mounted below /backend in another ASGI app: the paths are relative to the root_path.
    async with asgi_client(app, root_path="/backend") as c:
        assert (await c.post("/backend/auth", content=b"{}")).status_code == 200
    assert [name for name, _, _ in seen] == ["connect", "rpc", "connect"]
    no_prefix = ProxyApp(Router(), prefix="")
    assert no_prefix.paths["connect"] == "/connect"


def test_invalid_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="served over gRPC only"):
        ProxyApp(Router(), paths={"subscribe_unidirectional": "/s"})
    with pytest.raises(ValueError, match="has no 'nope' event"):
        ProxyApp(Router(), paths={"nope": "/s"})
    with pytest.raises(ValueError, match="'connect' and 'rpc' have the same path"):
        ProxyApp(Router(), paths={"rpc": "/centrifugo/connect"})
    with pytest.raises(ValueError, match="must start with '/'"):
        ProxyApp(Router(), paths={"rpc": "rpc"})
    with pytest.raises(ValueError, match="must start with '/'"):
        ProxyApp(Router(), prefix="centrifugo")


async def test_lifespan_websocket_and_a_disconnect_before_the_body() -> None:
    app = ProxyApp(Router())
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Any:
        return next(incoming)

    await app({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]

    sent.clear()
    await app({"type": "websocket", "path": "/"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1000}]

    async def gone() -> Any:
        return {"type": "http.disconnect"}

    sent.clear()
    scope = {"type": "http", "method": "POST", "path": path("connect"), "headers": []}
    await app(scope, gone, send)
    assert sent == []


# -- under uvicorn ------------------------------------------------------------------------------


async def test_proxy_server_serves_and_closes_gracefully() -> None:
    started = asyncio.Event()
    router = Router(timeout=5)

    @router.rpc
    async def slow(request: RpcCall) -> None:
        started.set()
        await asyncio.sleep(float(request.json()))
        request.respond(proxy.RpcResult(data=b'"done"'))

    server = ProxyServer(router, port=0, shutdown_timeout=5)
    await server.start()
    url = f"{server.url}{server.app.paths['rpc']}"
    async with httpx.AsyncClient(timeout=5) as http:
        reply = await http.post(url, json={"data": 0})
        assert json.loads(proxy.RpcResponse, reply.content).result == proxy.RpcResult(
            data=b'"done"'
        )
        in_flight = asyncio.ensure_future(http.post(url, json={"data": 0.5}))
        await started.wait()
        closing = asyncio.ensure_future(server.close())
        reply = await in_flight  # finishes although the server is closing
        assert reply.content == b'{"result":{"data":"done"}}'
        await closing
        with pytest.raises(httpx.ConnectError):
            await http.post(url, json={"data": 0})


async def test_proxy_server_replies_without_waiting_for_acks(seen: Seen) -> None:
    """Nagle's algorithm is off on the server's connections: a reply (uvicorn writes its head
    and body separately) does not wait ~40 ms for the client's delayed ACK."""
    # One client: one keep-alive connection.
    async with ProxyServer(recording_router(seen), port=0) as server, httpx.AsyncClient() as http:
        url = server.url + "/centrifugo/connect"
        durations = []
        for _ in range(20):
            started = time.perf_counter()
            assert (await http.post(url, content=b"{}")).status_code == 200
            durations.append(time.perf_counter() - started)
    assert statistics.median(durations) < 0.025, durations


async def test_proxy_server_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    seen: Seen = []
    async with ProxyServer(
        recording_router(seen), port=0, certfile=str(cert), keyfile=str(key)
    ) as server:
        assert server.url.startswith("https://127.0.0.1:")
        verify = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=verify, timeout=5) as https:
            reply = await https.post(server.url + "/centrifugo/connect", content=b"{}")
        assert reply.content == b'{"result":{}}'
        plain = server.url.replace("https", "http")
        async with httpx.AsyncClient(timeout=5) as http:
            with pytest.raises(httpx.HTTPError):
                await http.post(plain + "/centrifugo/connect", content=b"{}")
    assert len(seen) == 1


def _connect_router(user: str) -> Router:
    router = Router()

    @router.connect
    async def connect(request: ConnectCall) -> None:
        request.respond(proxy.ConnectResult(user=user))

    return router


async def _who_answers(port: int) -> str:
    # A new client, so a new connection: the kernel picks the listener that accepts it.
    async with httpx.AsyncClient(timeout=5) as http:
        reply = await http.post(f"http://127.0.0.1:{port}/centrifugo/connect", json={})
    result = json.loads(proxy.ConnectResponse, reply.content).result
    assert result is not None
    return result.user


async def test_reuse_port_lets_servers_share_a_port() -> None:
    async with ProxyServer(_connect_router("a"), port=0, reuse_port=True) as first:
        port = first.port
        with pytest.raises(OSError, match="in use"):  # without SO_REUSEPORT: taken
            await ProxyServer(_connect_router("x"), port=port).start()
        async with ProxyServer(_connect_router("b"), port=port, reuse_port=True) as second:
            assert second.port == port
            # Spread by a hash of the client's address and port: 32 connections all to one
            # listener has odds 2**-31.
            answers = {await _who_answers(port) for _ in range(32)}
            assert answers == {"a", "b"}
        assert await _who_answers(port) == "a"  # the other one serves on alone


cli_router = Router()
"""Served by the command-line test: ``tests.test_http_server:cli_router``."""


@cli_router.rpc
async def _slow_rpc(request: RpcCall) -> None:
    await asyncio.sleep(float(request.json()))
    request.respond(proxy.RpcResult(data=b'"done"'))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_cli_serves_http_and_shuts_down_gracefully_on_sigterm(loop: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "centrifugo_types", "serve", "tests.test_http_server:cli_router",
        "--http", "--port", "0", "--prefix", "/cf", "--reuse-port", "--loop", loop,
        "--credentials-key", "x-centrifugo", "--credentials-value", "s3cret",
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stderr is not None
    try:
        port = 0
        lines = []
        async with asyncio.timeout(20):
            while not port:
                line = (await process.stderr.readline()).decode()
                assert line, "the server exited before listening"
                lines.append(line)
                if match := re.search(r"on http://127\.0\.0\.1:(\d+) \(POST /cf/connect", line):
                    port = int(match[1])
        assert any(f"event loop: {loop}" in line for line in lines), lines
        # --reuse-port: another SO_REUSEPORT server can bind the same port.
        async with ProxyServer(Router(), port=port, reuse_port=True):
            pass
        url = f"http://127.0.0.1:{port}/cf/rpc"
        async with httpx.AsyncClient(timeout=5, headers={"x-centrifugo": "s3cret"}) as http:
            refused = await http.post(url, json={"data": 0}, headers={"x-centrifugo": "no"})
            assert refused.status_code == 401
            in_flight = asyncio.ensure_future(http.post(url, json={"data": 0.5}))
            await asyncio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            assert (await in_flight).content == b'{"result":{"data":"done"}}'
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_cli_http_options_need_http(capsys: pytest.CaptureFixture[str]) -> None:
    from centrifugo_types.__main__ import main

    with pytest.raises(SystemExit) as exit:
        main(["serve", "tests.test_http_server:cli_router", "--prefix", "/x"])
    assert exit.value.code == 2
    assert "--prefix and --max-body-size are options of --http" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="prefix must start with '/'"):
        main(["serve", "tests.test_http_server:cli_router", "--http", "--prefix", "x"])


# -- what a real Centrifugo makes of HTTP statuses ---------------------------------------------


@pytest.mark.e2e
async def test_centrifugo_and_the_http_statuses_of_the_app(
    start_centrifugo: StartCentrifugo,
) -> None:
    """Centrifugo reads only HTTP 200 bodies: any other status fails the proxy call (the client
    gets error 100, temporary), unless ``http.status_to_code_transforms`` maps the status
    to an error or a disconnect for the client."""
    seen: Seen = []
    router = recording_router(seen)

    @router.connect
    async def connect(request: ConnectCall) -> None:
        seen.append(("connect", request.message, {}))
        request.respond(proxy.ConnectResult(user="u"))

    open_app = ProxyApp(router)
    locked_app = ProxyApp(router, credentials=("x-centrifugo", "s3cret"))
    async with ProxyServer(open_app, port=0) as opened, ProxyServer(locked_app, port=0) as locked:
        connect_url = opened.url + open_app.paths["connect"]
        config = {
            "client": {"proxy": {"connect": {"enabled": True, "endpoint": connect_url}}},
            "channel": {
                "proxy": {
                    # The app answers 404 (a wrong path): no transform, error 100.
                    "subscribe": {"endpoint": opened.url + "/wrong/subscribe"},
                    # The right credentials: accepted.
                    "publish": {
                        "endpoint": locked.url + locked_app.paths["publish"],
                        "http": {"static_headers": {"x-centrifugo": "s3cret"}},
                    },
                },
                "without_namespace": {"subscribe_proxy_enabled": True},
                "namespaces": [
                    {
                        "name": "pub",
                        "publish_proxy_enabled": True,
                        "allow_subscribe_for_client": True,
                    },
                ],
            },
            "rpc": {
                # No credentials: 401, mapped to an error the client sees.
                "proxy": {
                    "endpoint": locked.url + locked_app.paths["rpc"],
                    "http": {
                        "status_to_code_transforms": [
                            {
                                "status_code": 401,
                                "to_error": {"code": 403, "message": "backend refused"},
                            },
                        ]
                    },
                },
                "without_namespace": {"proxy_enabled": True},
            },
        }
        centrifugo = start_centrifugo(config)
        client = centrifuge.Client(centrifugo.ws_url, data={"user": "u"}, proxy=None)
        await client.connect()
        try:
            await client.ready(timeout=5)
            with pytest.raises(centrifuge.ReplyError) as refused:
                await client.rpc("anything", {})
            assert (refused.value.code, refused.value.message) == (403, "backend refused")

            events_ = _SubscriptionErrors()
            subscription = client.new_subscription(f"news-{uuid.uuid4().hex}", events=events_)
            await subscription.subscribe()
            error = await asyncio.wait_for(events_.errors.get(), 5)
            assert (error.code, error.temporary) == (100, True)
            await subscription.unsubscribe()

            published = client.new_subscription(f"pub:{uuid.uuid4().hex}")
            await published.subscribe()
            await published.ready(timeout=5)
            await published.publish({"text": "hi"})
        finally:
            await client.disconnect()
    assert [name for name, _, _ in seen] == ["connect", "publish"]
    assert "unexpected HTTP status code: 404" in centrifugo.log()


class _SubscriptionErrors(centrifuge.SubscriptionEventHandler):
    def __init__(self) -> None:
        self.errors: asyncio.Queue[Any] = asyncio.Queue()

    async def on_error(self, ctx: centrifuge.SubscriptionErrorContext) -> None:
        if isinstance(ctx.error, centrifuge.ReplyError):
            await self.errors.put(ctx.error)
