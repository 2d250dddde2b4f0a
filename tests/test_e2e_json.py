"""The JSON dialect codec against a real Centrifugo (Go's encoding/json on the other side).

- Requests: every request type that the open-source server implements, drawn by hypothesis
  and encoded by ``json.dumps``, is accepted by Centrifugo's HTTP API (which answers 400 to
  a body its encoding/json cannot decode), and its reply decodes with ``json.loads``.
- Replies: publications with hypothesis payloads and tags, read back over the HTTP API (Go's
  encoding/json, decoded by us) and over the gRPC API (Go's protobuf, decoded by our binary
  codec), give equal messages; raw payloads are byte-exact.
- The proxy side: Centrifugo's HTTP proxy requests (connect, rpc, subscribe, publish)
  decode with ``json.loads``, and replies made with ``json.dumps`` reach a real client.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import betterproto2
import centrifuge
import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centrifugo_types import api, json, proxy
from centrifugo_types._generated.api_methods import METHODS
from centrifugo_types.client import ApiClient
from centrifugo_types.testing import json_payloads, messages

from .centrifugo import Centrifugo, StartCentrifugo, free_port
from .go_source import go_html_escape
from .realtime import TOKEN_CONFIG, WAIT

pytestmark = pytest.mark.e2e

#: The methods the open-source Centrifugo serves over HTTP (the others are Centrifugo PRO's).
OSS_PATHS = {
    "batch", "publish", "broadcast", "subscribe", "unsubscribe", "disconnect", "presence",
    "presence_stats", "history", "history_remove", "info", "rpc", "refresh", "channels",
    "map_publish", "map_remove", "map_read_state", "map_read_stream", "map_stats",
    "map_clear", "shared_poll_publish",
}  # fmt: skip
OSS_METHODS = [m for m in METHODS if m.path in OSS_PATHS]


@pytest.fixture(scope="session")
def scratch(start_centrifugo: StartCentrifugo) -> Centrifugo:
    """A Centrifugo of its own: random requests may disconnect, unsubscribe, publish..."""
    return start_centrifugo(None)


@pytest_asyncio.fixture(scope="session")
async def http(scratch: Centrifugo) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{scratch.http_url}/api", headers={"X-API-Key": scratch.api_key}, timeout=WAIT
    ) as client:
        yield client


@pytest_asyncio.fixture(scope="session")
async def grpc(scratch: Centrifugo) -> AsyncIterator[ApiClient]:
    async with ApiClient(
        f"grpc://127.0.0.1:{scratch.grpc_api_port}", api_key=scratch.api_key
    ) as client:
        yield client


def test_every_oss_method_is_covered() -> None:
    assert {m.path for m in OSS_METHODS} == OSS_PATHS


@pytest.mark.parametrize("method", OSS_METHODS, ids=lambda m: m.path)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
async def test_centrifugo_decodes_our_requests(
    method: Any, http: httpx.AsyncClient, data: st.DataObject
) -> None:
    request = data.draw(messages(method.request, payloads=json_payloads(), allow_infinity=False))
    body = json.dumps(request)
    reply = await http.post(f"/{method.path}", content=body)
    # 400 is Centrifugo's answer to a body its encoding/json cannot unmarshal.
    assert reply.status_code == 200, (reply.status_code, reply.text, body)
    response = json.loads(method.response, reply.content)
    assert isinstance(response, method.response)


publications = st.tuples(
    json_payloads().filter(bool),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(items=st.lists(publications, min_size=1, max_size=3), via_http=st.booleans())
async def test_history_over_http_equals_history_over_grpc(
    items: list[tuple[bytes, dict[str, str]]],
    via_http: bool,
    http: httpx.AsyncClient,
    grpc: ApiClient,
) -> None:
    channel = f"h-{uuid.uuid4().hex}"
    for payload, tags in items:
        request = api.PublishRequest(channel=channel, data=payload, tags=tags)
        if via_http:
            reply = await http.post("/publish", content=json.dumps(request))
            assert json.loads(api.PublishResponse, reply.content).result is not None
        else:
            await grpc.call(request)
    history_request = api.HistoryRequest(channel=channel, limit=-1)
    over_grpc = await grpc.call(history_request)
    reply = await http.post("/history", content=json.dumps(history_request))
    response = json.loads(api.HistoryResponse, reply.content)
    assert response.error is None and response.result is not None
    over_http = response.result

    # Centrifugo kept our raw payloads byte for byte...
    assert [p.data for p in over_grpc.publications] == [payload for payload, _ in items]
    # ... and its JSON writes them as encoding/json does (HTML characters escaped), which we
    # decode byte for byte; everything else is equal.
    for publication in over_grpc.publications:
        publication.data = go_html_escape(publication.data)
    assert over_http == over_grpc


# -- the proxy side ---------------------------------------------------------------------------


class ProxyBackend:
    """An HTTP proxy backend in a thread: decodes Centrifugo's requests with ``json.loads``
    and answers with ``json.dumps``."""

    REQUESTS: ClassVar[dict[str, type[betterproto2.Message]]] = {
        "/connect": proxy.ConnectRequest,
        "/rpc": proxy.RpcRequest,
        "/subscribe": proxy.SubscribeRequest,
        "/publish": proxy.PublishRequest,
    }

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[betterproto2.Message, bytes]]] = {}
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                path = urllib.parse.urlparse(self.path).path
                request = json.loads(backend.REQUESTS[path], body)
                backend.seen.setdefault(path, []).append((request, body))
                reply = json.dumps(backend.reply(path, request))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reply(self, path: str, request: Any) -> betterproto2.Message:
        if path == "/connect":
            user = "" if b'"anonymous":true' in request.data else "py-user"
            return proxy.ConnectResponse(
                result=proxy.ConnectResult(user=user, data=b'{"welcome": "<you> & me"}')
            )
        if path == "/rpc":
            if request.method == "fail":
                return proxy.RpcResponse(error=proxy.Error(code=1001, message="nope"))
            return proxy.RpcResponse(
                result=proxy.RpcResult(data=b'{"echo": ' + request.data + b"}")
            )
        if path == "/subscribe":
            return proxy.SubscribeResponse(result=proxy.SubscribeResult(data=b"[1,2,3]"))
        # publish: the backend rewrites the data
        return proxy.PublishResponse(result=proxy.PublishResult(data=b'{"rewritten":true}'))


@pytest.fixture(scope="session")
def backend() -> Iterator[ProxyBackend]:
    backend = ProxyBackend()
    backend.thread.start()
    try:
        yield backend
    finally:
        backend.server.shutdown()
        backend.server.server_close()


@pytest.fixture(scope="session")
def proxied(start_centrifugo: StartCentrifugo, backend: ProxyBackend) -> Centrifugo:
    def endpoint(name: str) -> dict[str, Any]:
        return {"endpoint": f"{backend.url}/{name}", "timeout": "5s"}

    return start_centrifugo(
        {
            "client": {
                "proxy": {"connect": {"enabled": True, **endpoint("connect")}},
                "token": TOKEN_CONFIG["client"]["token"],
            },
            "rpc": {"proxy": endpoint("rpc"), "without_namespace": {"proxy_enabled": True}},
            "channel": {
                "proxy": {"subscribe": endpoint("subscribe"), "publish": endpoint("publish")},
                "namespaces": [
                    {
                        "name": "px",
                        "subscribe_proxy_enabled": True,
                        "publish_proxy_enabled": True,
                        "history_size": 10,
                        "history_ttl": "60s",
                    }
                ],
            },
        }
    )


class _Events(centrifuge.ClientEventHandler):
    def __init__(self) -> None:
        self.connected: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def on_connected(self, ctx: centrifuge.ConnectedContext) -> None:
        if not self.connected.done():
            self.connected.set_result(ctx.data)


async def test_proxy_requests_decode_and_our_replies_reach_the_client(
    proxied: Centrifugo, backend: ProxyBackend
) -> None:
    events = _Events()
    client = centrifuge.Client(
        proxied.ws_url, events=events, data={"token": "t", "html": "<&>"}, proxy=None
    )
    channel = f"px:{uuid.uuid4().hex}"
    try:
        await client.connect()
        assert await asyncio.wait_for(events.connected, WAIT) == {"welcome": "<you> & me"}
        sub = client.new_subscription(channel)
        await sub.subscribe()
        await sub.ready(timeout=WAIT)
        rpc = await client.rpc("echo", {"n": 1})
        assert rpc.data == {"echo": {"n": 1}}
        with pytest.raises(centrifuge.ReplyError) as info:
            await client.rpc("fail", None)
        assert (info.value.code, info.value.message) == (1001, "nope")
        await sub.publish({"original": True})
    finally:
        await client.disconnect()

    (connect, connect_body), *_ = backend.seen["/connect"]
    assert isinstance(connect, proxy.ConnectRequest)
    assert connect.transport == "websocket" and connect.protocol == "json"
    # The client's connect data, as Centrifugo's encoding/json wrote it (HTML escaped).
    assert connect.data == b'{"token":"t","html":"\\u003c\\u0026\\u003e"}'
    assert connect.data in connect_body

    rpc_request = next(r for r, _ in backend.seen["/rpc"] if getattr(r, "method", "") == "echo")
    assert isinstance(rpc_request, proxy.RpcRequest)
    assert rpc_request.user == "py-user" and rpc_request.data == b'{"n":1}'

    subscribe = next(
        r for r, _ in backend.seen["/subscribe"] if getattr(r, "channel", "") == channel
    )
    assert isinstance(subscribe, proxy.SubscribeRequest) and subscribe.user == "py-user"

    publish = next(r for r, _ in backend.seen["/publish"] if getattr(r, "channel", "") == channel)
    assert isinstance(publish, proxy.PublishRequest) and publish.data == b'{"original":true}'
    async with ApiClient(
        f"grpc://127.0.0.1:{proxied.grpc_api_port}", api_key=proxied.api_key
    ) as api_client:
        history = await api_client.history(channel=channel, limit=10)
    assert [p.data for p in history.publications] == [b'{"rewritten":true}']


async def test_proxy_requests_carry_the_always_present_user(
    proxied: Centrifugo, backend: ProxyBackend
) -> None:
    """``user`` has no omitempty in proxy requests: for an anonymous connection Centrifugo
    writes ``"user":""``, and it decodes to the empty user."""
    client = centrifuge.Client(
        proxied.ws_url, events=_Events(), data={"anonymous": True}, proxy=None
    )
    try:
        await client.connect()
        assert (await client.rpc("echo", {"who": "anonymous"})).data == {
            "echo": {"who": "anonymous"}
        }
    finally:
        await client.disconnect()
    request, body = next((r, b) for r, b in backend.seen["/rpc"] if b'"who":"anonymous"' in b)
    assert b'"user":""' in body
    assert isinstance(request, proxy.RpcRequest) and request.user == ""
