"""The API clients against a real Centrifugo, observed by a real client.

Every test runs over every transport, async and sync (``KINDS``: ``ApiClient`` and
``SyncApiClient`` over HTTP and gRPC); what a call does is observed by a centrifuge-python
client connected over WebSocket, and the transports must give equal typed results for the
same calls. The sync client is driven through :class:`SyncView` (its calls run in a worker
thread), so that one test body covers both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from centrifugo_types import (
    CENTRIFUGO_VERSION,
    ApiError,
    ApiTimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientError,
    EncodeError,
    NotFoundError,
    TransportError,
    UnknownChannelError,
    UnsupportedMethodError,
    api,
)
from centrifugo_types import errors as errors_module
from centrifugo_types._generated.api_methods import METHODS
from centrifugo_types.client import ApiClient, SyncApiClient, ThreadedTransport
from centrifugo_types.client.grpcio import GrpcioTransport
from centrifugo_types.client.http_aiohttp import AiohttpTransport
from centrifugo_types.client.http_sync import SyncHttpTransport
from examples import api_client as api_client_example

from . import go_source
from .centrifugo import Centrifugo, StartCentrifugo, free_port, merge
from .go_source import go_html_escape
from .realtime import TOKEN_CONFIG, WAIT, subscriber

pytestmark = pytest.mark.e2e

CONFIG = merge(
    TOKEN_CONFIG,
    {
        "shared_poll": {"hmac_secret_key": "test-poll-secret"},
        "channel": {
            # Required by the shared poll namespace; never called (no client subscribes there).
            "proxy": {"shared_poll_refresh": {"endpoint": "http://127.0.0.1:9/unused"}},
            "namespaces": [
                {"name": "ns", "history_size": 10, "history_ttl": "60s"},
                {
                    "name": "maps",
                    "subscription_type": "map",
                    "map": {
                        "mode": "recoverable",
                        "key_ttl": "60s",
                        "stream_size": 10,
                        "stream_ttl": "60s",
                    },
                },
                {
                    "name": "poll",
                    "subscription_type": "shared_poll",
                    "shared_poll": {"mode": "versioned", "publish_enabled": True},
                },
            ],
        },
    },
)

KINDS = ["http", "aiohttp", "grpc", "grpcio", "http-sync", "grpc-sync", "grpcio-sync"]
"""Transport (``aiohttp``: :class:`AiohttpTransport`; ``grpcio``: :class:`GrpcioTransport`; else
the one the URL picks), and ``-sync`` for :class:`SyncApiClient`."""


@pytest.fixture(scope="session")
def server(start_centrifugo: StartCentrifugo) -> Centrifugo:
    """A Centrifugo that accepts JWT connections and has map and shared poll namespaces."""
    return start_centrifugo(CONFIG)


class SyncView:
    """A :class:`SyncApiClient` seen through awaitables: each call runs in a worker thread,
    so the test's event loop (and its real Centrifugo client) keeps running meanwhile."""

    def __init__(self, client: SyncApiClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call

    async def aclose(self) -> None:
        self.client.close()

    async def __aenter__(self) -> SyncView:
        self.client.__enter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.client.close()


def url_of(kind: str, server: Centrifugo, port: int | None = None) -> str:
    """The URL of the API ``kind`` calls (``port``: another server's)."""
    if kind.startswith("grpc"):
        return f"grpc://127.0.0.1:{server.grpc_api_port if port is None else port}"
    return f"{server.http_url}/api" if port is None else f"http://127.0.0.1:{port}/api"


def make_client(
    kind: str,
    server: Centrifugo,
    api_key: str | None = None,
    timeout: float = WAIT,
    port: int | None = None,
) -> ApiClient:
    """The client of ``kind``; the sync one wrapped in :class:`SyncView` (typed as the async
    one: the same methods, awaited)."""
    key = server.api_key if api_key is None else api_key
    url = url_of(kind, server, port)
    if kind.startswith("grpcio"):
        grpc_port = server.grpc_api_port if port is None else port
        transport = GrpcioTransport("127.0.0.1", grpc_port, api_key=key)
        if kind.endswith("-sync"):
            sync_client = SyncApiClient(transport=ThreadedTransport(transport), timeout=timeout)
            return cast(ApiClient, SyncView(sync_client))
        return ApiClient(transport=transport, timeout=timeout)
    if kind == "aiohttp":
        return ApiClient(transport=AiohttpTransport(url, api_key=key), timeout=timeout)
    if kind.endswith("-sync"):
        return cast(ApiClient, SyncView(SyncApiClient(url, api_key=key, timeout=timeout)))
    return ApiClient(url, api_key=key, timeout=timeout)


@pytest.fixture(params=KINDS)
async def client(request: pytest.FixtureRequest, server: Centrifugo) -> AsyncIterator[ApiClient]:
    async with make_client(request.param, server) as c:
        yield c


@pytest.fixture
async def both(server: Centrifugo) -> AsyncIterator[dict[str, ApiClient]]:
    async with make_client("grpc", server) as grpc, make_client("http", server) as http:
        yield {"grpc": grpc, "http": http}


@pytest.fixture
def channel() -> str:
    return f"chat-{uuid.uuid4().hex}"


# -- the calls, observed by a real client ------------------------------------------------------


async def test_publish_is_received_by_a_subscriber(
    client: ApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel) as sub:
        payload = {"text": "hello", "emoji": "\U0001f680", "n": [1, 2.5, None]}
        result = await client.publish(channel=channel, data=payload, tags={"kind": "greeting"})
        assert await sub.next_publication() == payload
        assert result.offset == 1 and result.epoch
        # Bytes are taken as JSON already.
        await client.publish(channel=channel, data=b'{"raw": true}')
        assert await sub.next_publication() == {"raw": True}


async def test_broadcast_reaches_every_channel(
    client: ApiClient, server: Centrifugo, channel: str
) -> None:
    other = channel + "-2"
    async with subscriber(server, channel) as first, subscriber(server, other) as second:
        result = await client.broadcast(channels=[channel, other, "unknown:x"], data={"all": 1})
        assert await first.next_publication() == {"all": 1}
        assert await second.next_publication() == {"all": 1}
    ok, ok2, failed = result.responses
    assert ok.result is not None and ok.result.offset == 1 and ok2.error is None
    assert failed.error == api.Error(code=102, message="unknown channel")


async def test_presence_stats_and_history_with_a_client_connected(
    client: ApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel, user="42") as sub:
        presence = await client.presence(channel=channel)
        assert list(presence.presence) == [sub.client_id]
        info = presence.presence[sub.client_id]
        assert (info.user, info.client) == ("42", sub.client_id)

        stats = await client.presence_stats(channel=channel)
        assert (stats.num_clients, stats.num_users) == (1, 1)

        for n in range(3):
            await client.publish(channel=channel, data={"n": n})
            assert await sub.next_publication() == {"n": n}
        history = await client.history(channel=channel, limit=10)
        assert [json.loads(p.data) for p in history.publications] == [{"n": n} for n in range(3)]
        assert [p.offset for p in history.publications] == [1, 2, 3]
        assert history.offset == 3 and history.epoch

        since = await client.history(
            channel=channel, limit=10, since=api.StreamPosition(offset=1, epoch=history.epoch)
        )
        assert [p.offset for p in since.publications] == [2, 3]
        newest = await client.history(channel=channel, limit=1, reverse=True)
        assert [p.offset for p in newest.publications] == [3]

        assert await client.history_remove(channel=channel) == api.HistoryRemoveResult()
        emptied = await client.history(channel=channel, limit=10)
        assert emptied.publications == []


async def test_unsubscribe_is_observed_by_the_client(
    client: ApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel, user="u-unsub") as sub:
        assert await client.unsubscribe(user="u-unsub", channel=channel) == api.UnsubscribeResult()
        code = await asyncio.wait_for(sub.unsubscribed.get(), WAIT)
        assert code == 2000  # unsubscribed by the server
        assert (await client.presence_stats(channel=channel)).num_clients == 0


async def test_disconnect_is_observed_by_the_client(
    client: ApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel, user="u-disc") as sub:
        await client.disconnect(user="u-disc", disconnect=api.Disconnect(code=4501, reason="bye"))
        assert await asyncio.wait_for(sub.disconnected.get(), WAIT) == (4501, "bye")


async def test_server_side_subscribe_is_observed_by_the_client(
    client: ApiClient, server: Centrifugo, channel: str
) -> None:
    extra = channel + "-server"
    async with subscriber(server, channel, user="u-sub") as sub:
        await client.subscribe(user="u-sub", channel=extra, client=sub.client_id)
        assert await asyncio.wait_for(sub.server_subscribed.get(), WAIT) == extra
        await client.publish(channel=extra, data={"pushed": True})
        assert await asyncio.wait_for(sub.server_publications.get(), WAIT) == (
            extra,
            {"pushed": True},
        )


async def test_refresh_of_a_connected_user(
    client: ApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel, user="u-refresh"):
        expire_at = int(time.time()) + 3600
        assert await client.refresh(user="u-refresh", expire_at=expire_at) == api.RefreshResult()


async def test_batch_of_several_commands(
    client: ApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel) as sub:
        results = await client.batch(
            [
                api.PublishRequest(channel=channel, data=b'{"in":"batch"}'),
                api.PresenceStatsRequest(channel=channel),
                api.HistoryRequest(channel=channel, limit=5),
                api.PublishRequest(channel="unknown:x", data=b"{}"),
                api.ConnectionsRequest(user="42"),  # Centrifugo PRO only
                api.InfoRequest(),
            ]
        )
        assert await sub.next_publication() == {"in": "batch"}
    published, stats, history, unknown, pro, info = results
    assert isinstance(published, api.PublishResult) and published.offset == 1
    assert stats == api.PresenceStatsResult(num_clients=1, num_users=1)
    assert isinstance(history, api.HistoryResult) and history.offset == 1
    assert isinstance(unknown, UnknownChannelError) and unknown.code == 102
    assert isinstance(pro, NotFoundError) and pro.code == 104
    assert isinstance(info, api.InfoResult) and len(info.nodes) == 1

    raw = await client.call(api.BatchRequest(commands=[api.Command(info=api.InfoRequest())]))
    assert isinstance(raw, api.BatchResponse) and raw.replies[0].info is not None
    with pytest.raises(TypeError, match="cannot be sent in a batch"):
        await client.batch([api.BatchRequest()])  # type: ignore[list-item]


async def test_info(client: ApiClient, server: Centrifugo) -> None:
    info = await client.info()
    (node,) = info.nodes
    assert node.version == f"{CENTRIFUGO_VERSION} OSS"
    assert node.uid and node.name.endswith(str(server.http_port))
    assert node.metrics is not None and node.metrics.interval > 0
    assert "centrifugo.node.num_clients" in node.metrics.items


async def test_channels(client: ApiClient, server: Centrifugo, channel: str) -> None:
    async with subscriber(server, channel):
        everything = await client.channels()
        assert everything.channels[channel] == api.ChannelInfo(num_clients=1)
        matching = await client.channels(pattern=channel[:10] + "*")
        assert channel in matching.channels
        assert (await client.channels(pattern="nothing-*")).channels == {}


async def test_map_methods(client: ApiClient, channel: str) -> None:
    name = f"maps:{channel}"
    first = await client.map_publish(channel=name, key="k1", data={"v": 1})
    await client.map_publish(channel=name, key="k2", data={"v": 2}, tags={"t": "x"})
    assert first.offset == 1 and first.epoch
    state = await client.map_read_state(channel=name, limit=10)
    assert {e.key: json.loads(e.data) for e in state.entries} == {"k1": {"v": 1}, "k2": {"v": 2}}
    assert state.offset == 2
    stream = await client.map_read_stream(channel=name, limit=10)
    assert [e.key for e in stream.entries] == ["k1", "k2"]
    assert (await client.map_stats(channel=name)).num_keys == 2
    removed = await client.map_remove(channel=name, key="k1")
    assert removed.offset == 3
    assert (await client.map_stats(channel=name)).num_keys == 1
    assert await client.map_clear(channel=name) == api.MapClearResult()
    assert (await client.map_stats(channel=name)).num_keys == 0
    with pytest.raises(BadRequestError):  # map methods need a map namespace
        await client.map_publish(channel=channel, key="k", data={})


async def test_shared_poll_publish(client: ApiClient, channel: str) -> None:
    result = await client.shared_poll_publish(
        channel=f"poll:{channel}", key="item", data={"v": 1}, version=1
    )
    assert result == api.SharedPollPublishResult()
    with pytest.raises(BadRequestError):  # a version is required
        await client.shared_poll_publish(channel=f"poll:{channel}", key="item", data={"v": 1})


async def test_rpc_without_an_extension_is_not_found(client: ApiClient) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.rpc(method="anything", params={"x": 1})
    assert (info.value.code, info.value.message, info.value.method) == (104, "not found", "rpc")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.skipif(go_source.module_dir() is None, reason="no Centrifugo Go source")
def test_error_classes_are_the_errors_centrifugo_defines() -> None:
    defined = {
        cls.CODE: cls.MESSAGE
        for cls in vars(errors_module).values()
        if isinstance(cls, type) and issubclass(cls, ApiError) and cls is not ApiError
    }
    assert defined == go_source.api_errors()
    for code, message in defined.items():
        error = ApiError.for_code(code, message)
        assert (type(error).CODE, error.code, error.message) == (code, code, message)
    assert type(ApiError.for_code(4000, "custom")) is ApiError


async def test_unknown_namespace_raises_api_error_with_centrifugos_code(
    client: ApiClient,
) -> None:
    with pytest.raises(UnknownChannelError) as info:
        await client.publish(channel="unknown:x", data={"a": 1})
    error = info.value
    assert isinstance(error, ApiError)
    assert (error.code, error.message, error.method) == (102, "unknown channel", "publish")
    assert str(error) == "publish: 102 unknown channel"


@pytest.mark.parametrize("kind", KINDS)
async def test_wrong_api_key_raises_authentication_error(kind: str, server: Centrifugo) -> None:
    async with make_client(kind, server, api_key="wrong") as client:
        with pytest.raises(AuthenticationError):
            await client.info()
    async with make_client(kind, server, api_key="") as client:
        with pytest.raises(AuthenticationError):
            await client.publish(channel="c", data={})


async def test_pro_only_methods_raise_unsupported_method_promptly(client: ApiClient) -> None:
    started = time.monotonic()
    with pytest.raises(UnsupportedMethodError, match="connections"):
        await asyncio.wait_for(client.call(api.ConnectionsRequest(user="42")), WAIT)
    with pytest.raises(UnsupportedMethodError, match="device_register"):
        await asyncio.wait_for(client.call(api.DeviceRegisterRequest()), WAIT)
    assert time.monotonic() - started < 5


async def test_values_that_cannot_be_encoded_raise_encode_error(client: ApiClient) -> None:
    with pytest.raises(EncodeError):
        await client.call(api.HistoryRequest(channel="c", limit=2**31))


@pytest.mark.parametrize("kind", KINDS)
async def test_unreachable_server_raises_transport_error(kind: str, server: Centrifugo) -> None:
    async with make_client(kind, server, api_key="k", port=free_port()) as client:
        with pytest.raises(TransportError) as info:
            await client.info()
    assert not isinstance(info.value, ApiTimeoutError)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_silent_server_raises_timeout(kind: str, server: Centrifugo) -> None:
    """A server that accepts connections and never answers: the call times out."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client goes away
        writer.close()

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        async with make_client(kind, server, api_key="k", timeout=0.3, port=port) as client:
            with pytest.raises(ApiTimeoutError):
                await client.info()
            with pytest.raises(ApiTimeoutError):
                await client.call(api.InfoRequest(), timeout=0.1)
    finally:
        silent.close()
        await silent.wait_closed()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made with the openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class WatchedContext(ssl.SSLContext):
    """An SSLContext that records the changes made to its ALPN protocols."""

    alpn: list[list[str]]

    def set_alpn_protocols(self, protocols: Any) -> None:
        self.alpn.append(list(protocols))
        super().set_alpn_protocols(protocols)


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_grpc_over_tls(
    start_centrifugo: StartCentrifugo, tls_files: tuple[Path, Path], sync: bool
) -> None:
    cert, key = tls_files
    server = start_centrifugo(
        {"grpc_api": {"tls": {"enabled": True, "cert_pem": str(cert), "key_pem": str(key)}}}
    )
    trusted = WatchedContext(ssl.PROTOCOL_TLS_CLIENT)
    trusted.alpn = []
    trusted.load_verify_locations(cafile=str(cert))
    trusted.set_alpn_protocols(["h2"])  # gRPC's, set by its owner
    url = f"grpcs://127.0.0.1:{server.grpc_api_port}"
    kind = "grpc-sync" if sync else "grpc"

    def tls_client(context: ssl.SSLContext | bool) -> ApiClient:
        if sync:
            sync_client = SyncApiClient(url, api_key=server.api_key, ssl=context, timeout=WAIT)
            return cast(ApiClient, SyncView(sync_client))
        return ApiClient(url, api_key=server.api_key, ssl=context, timeout=WAIT)

    async with tls_client(trusted) as client:
        assert (await client.publish(channel=f"over-tls-{kind}", data={"tls": 1})).offset == 1
    assert trusted.alpn == [["h2"]]  # the client did not touch the caller's context
    async with tls_client(True) as client:
        with pytest.raises(TransportError):  # the default CA store does not trust it
            await client.info()


@pytest.fixture(scope="session")
def transport_error_mode(start_centrifugo: StartCentrifugo) -> Centrifugo:
    return start_centrifugo(
        {"http_api": {"error_mode": "transport"}, "grpc_api": {"error_mode": "transport"}}
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_transport_error_mode_still_raises_api_errors(
    kind: str, transport_error_mode: Centrifugo
) -> None:
    async with make_client(kind, transport_error_mode) as client:
        with pytest.raises(UnknownChannelError) as info:
            await client.publish(channel="unknown:x", data={})
        assert info.value.code == 102
        assert (await client.publish(channel=f"fine-{kind}", data={})).offset == 1


# -- both transports, same results -------------------------------------------------------------

Call = Callable[[ApiClient, str], Any]

CALLS: dict[str, Call] = {
    "presence": lambda c, ch: c.presence(channel=ch),
    "presence_stats": lambda c, ch: c.presence_stats(channel=ch),
    "history": lambda c, ch: c.history(channel=ch, limit=10),
    "history_reverse": lambda c, ch: c.history(channel=ch, limit=2, reverse=True),
    "channels": lambda c, ch: c.channels(pattern=ch),
    "map_read_state": lambda c, ch: c.map_read_state(channel=f"maps:{ch}", limit=10),
    "map_read_stream": lambda c, ch: c.map_read_stream(channel=f"maps:{ch}", limit=10),
    "map_stats": lambda c, ch: c.map_stats(channel=f"maps:{ch}"),
    "batch": lambda c, ch: c.batch(
        [api.PresenceStatsRequest(channel=ch), api.HistoryRequest(channel=ch, limit=10)]
    ),
    "rpc_error": lambda c, ch: c.rpc(method="missing"),
    "unknown_channel_error": lambda c, ch: c.history(channel="unknown:" + ch),
    "unsupported": lambda c, ch: c.call(api.GetUserStatusRequest(users=["42"])),
}


async def _outcome(call: Call, client: ApiClient, channel: str) -> Any:
    try:
        return await call(client, channel)
    except ApiError as exc:
        return (type(exc), exc.code, exc.message, exc.method)
    except UnsupportedMethodError as exc:
        return (type(exc), exc.method)


@pytest.mark.parametrize("name", list(CALLS))
async def test_both_clients_give_equal_typed_results(
    name: str, both: dict[str, ApiClient], server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel, user="same"):
        grpc, http = both["grpc"], both["http"]
        await grpc.publish(
            channel=channel, data={"via": "grpc", "text": "\u00e9\U0001f680"}, tags={"t": "1"}
        )
        await http.publish(channel=channel, data={"via": "http", "n": 1.5})
        await grpc.map_publish(channel=f"maps:{channel}", key="k", data={"v": [1]})
        by_grpc = await _outcome(CALLS[name], grpc, channel)
        by_http = await _outcome(CALLS[name], http, channel)
    assert by_grpc == by_http
    assert by_grpc  # a result or an error, never nothing


async def test_http_payloads_come_back_as_gos_encoder_writes_them(
    both: dict[str, ApiClient], channel: str
) -> None:
    """The one difference between the transports: over HTTP, Centrifugo's encoding/json writes
    raw payloads compacted and with HTML characters escaped. Same JSON value, other bytes."""
    data = b'{"html": "<b>&amp;</b>", "line": "\xe2\x80\xa8"}'
    await both["grpc"].publish(channel=channel, data=data)
    by_grpc = (await both["grpc"].history(channel=channel, limit=1)).publications[0].data
    by_http = (await both["http"].history(channel=channel, limit=1)).publications[0].data
    assert by_grpc == data
    assert by_http == go_html_escape(data.replace(b'": "', b'":"').replace(b'", "', b'","'))
    assert json.loads(by_http) == json.loads(by_grpc)


async def test_info_is_equal_over_both_transports_but_for_live_numbers(
    both: dict[str, ApiClient],
) -> None:
    grpc_node = (await both["grpc"].info()).nodes[0]
    http_node = (await both["http"].info()).nodes[0]
    for node in (grpc_node, http_node):
        node.uptime = 0
        node.metrics = None
        node.process = None
    assert grpc_node == http_node


# -- every method, loops, lifecycle, threads ---------------------------------------------------

PRO_PATHS = {m.path for m in METHODS} - {
    "batch", "publish", "broadcast", "subscribe", "unsubscribe", "disconnect", "presence",
    "presence_stats", "history", "history_remove", "info", "rpc", "refresh", "channels",
    "map_publish", "map_remove", "map_read_state", "map_read_stream", "map_stats",
    "map_clear", "shared_poll_publish",
}  # fmt: skip
"""The methods of Centrifugo PRO: the open-source server answers them as unsupported."""


def _by_name(name: str) -> Call:
    """The call of the client's method ``name`` with no arguments."""
    return lambda client, _: getattr(client, name)()


async def test_every_method_answers_typed(client: ApiClient) -> None:
    """Each generated method, called with the schema's defaults: a result of its type, or
    Centrifugo's typed refusal (empty channel/user: 107; PRO methods: unsupported)."""
    assert PRO_PATHS and len(PRO_PATHS) < len(METHODS)
    for method in METHODS:
        if method.result is None:  # the batch
            assert await client.batch([]) == []
            continue
        outcome = await _outcome(_by_name(method.py_name), client, "")
        if method.path in PRO_PATHS:
            assert outcome == (UnsupportedMethodError, method.path)
        elif isinstance(outcome, tuple):  # an ApiError: (type, code, message, method)
            assert outcome[1] in (102, 104, 107) and outcome[3] == method.path
        else:
            assert type(outcome) is method.result


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("kind", ["http", "aiohttp", "grpc", "grpcio"])
def test_an_async_client_works_under_a_new_event_loop(
    kind: str, loop: str, server: Centrifugo
) -> None:
    """A client used by one asyncio.run(), then by another (pytest's per-test loops, sync code
    calling asyncio.run per request), and by two loops at once: each loop gets its own
    connections; no call waits for a timeout."""
    uvloop = pytest.importorskip("uvloop") if loop == "uvloop" else None
    client = make_client(kind, server, timeout=WAIT)

    def run(coroutine: Any) -> Any:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop if uvloop else None) as runner:
            return runner.run(coroutine)

    async def calls(n: int) -> list[int]:
        return [len((await client.info()).nodes) for _ in range(n)]

    started = time.monotonic()
    assert run(calls(2)) == [1, 1]
    assert run(calls(2)) == [1, 1]  # the first loop is closed now
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        both_loops = list(pool.map(lambda _: run(calls(5)), range(2)))
    assert both_loops == [[1] * 5] * 2
    run(client.aclose())
    assert time.monotonic() - started < WAIT / 2


@pytest.mark.parametrize("kind", KINDS)
async def test_a_closed_client_raises_client_error_at_once(kind: str, server: Centrifugo) -> None:
    client = make_client(kind, server)
    async with client:
        assert (await client.info()).nodes
    started = time.monotonic()
    with pytest.raises(ClientError, match="closed") as info:
        await client.info()
    assert type(info.value) is ClientError
    with pytest.raises(ClientError, match="closed"):
        async with client:
            pass
    await client.aclose()  # closing twice is fine
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("kind", ["http-sync", "grpc-sync", "grpcio-sync"])
def test_a_sync_client_is_shared_by_threads(kind: str, server: Centrifugo) -> None:
    """One SyncApiClient for every thread (a Django process's views): calls run at once and
    reuse pooled connections."""
    channel = f"ns:threads-{uuid.uuid4().hex}"
    view = make_client(kind, server)
    assert isinstance(view, SyncView)
    with view.client as client:

        def publish(n: int) -> int:
            return client.publish(channel=channel, data={"n": n}).offset

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            offsets = list(pool.map(publish, range(64)))
        assert sorted(offsets) == list(range(1, 65))
        history = client.history(channel=channel, limit=-1)  # the namespace keeps 10
        assert [p.offset for p in history.publications] == list(range(55, 65))
        transport = client.transport
        if isinstance(transport, SyncHttpTransport):
            assert transport.connections_opened <= 8  # not one per call


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_the_example_script_runs(
    kind: str, server: Centrifugo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert api_client_example.main([url_of(kind, server), server.api_key]) == 0
    out = capsys.readouterr().out
    assert "published at offset" in out and "typed error: 102 unknown channel" in out
    assert "batch: PresenceStatsResult" in out and "batch: UnknownChannelError" in out


@pytest.mark.parametrize("kind", KINDS)
async def test_a_server_that_goes_away_raises_transport_error_promptly(
    kind: str, start_centrifugo: StartCentrifugo
) -> None:
    """Pooled connections to a Centrifugo that stopped: the next call fails with a
    TransportError at once (no hang, no library exception)."""
    server = start_centrifugo(None)
    async with make_client(kind, server) as client:
        assert (await client.info()).nodes
        server.stop()
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            await client.info()
        assert not isinstance(info.value, ApiTimeoutError)
        assert time.monotonic() - started < WAIT / 2
