"""Both server API clients against a real Centrifugo, observed by a real client.

Every test runs over gRPC (``ApiClient``) and over HTTP (``HttpApiClient``); what a call
does is observed by a centrifuge-python client connected over WebSocket, and the two
transports must give equal typed results for the same calls.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from centrifugo_types import (
    CENTRIFUGO_VERSION,
    ApiError,
    ApiTimeoutError,
    AuthenticationError,
    BadRequestError,
    EncodeError,
    NotFoundError,
    TransportError,
    UnknownChannelError,
    UnsupportedMethodError,
    api,
)
from centrifugo_types import errors as errors_module
from centrifugo_types.client import ApiClient, BaseApiClient, HttpApiClient

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

KINDS = ["grpc", "http"]


@pytest.fixture(scope="session")
def server(start_centrifugo: StartCentrifugo) -> Centrifugo:
    """A Centrifugo that accepts JWT connections and has map and shared poll namespaces."""
    return start_centrifugo(CONFIG)


def make_client(kind: str, server: Centrifugo, api_key: str | None = None) -> BaseApiClient:
    key = server.api_key if api_key is None else api_key
    if kind == "grpc":
        return ApiClient("127.0.0.1", server.grpc_api_port, api_key=key, timeout=WAIT)
    return HttpApiClient(f"{server.http_url}/api", api_key=key, timeout=WAIT)


@pytest.fixture(params=KINDS)
async def client(
    request: pytest.FixtureRequest, server: Centrifugo
) -> AsyncIterator[BaseApiClient]:
    async with make_client(request.param, server) as c:
        yield c


@pytest.fixture
async def both(server: Centrifugo) -> AsyncIterator[dict[str, BaseApiClient]]:
    async with make_client("grpc", server) as grpc, make_client("http", server) as http:
        yield {"grpc": grpc, "http": http}


@pytest.fixture
def channel() -> str:
    return f"chat-{uuid.uuid4().hex}"


# -- the calls, observed by a real client ------------------------------------------------------


async def test_publish_is_received_by_a_subscriber(
    client: BaseApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel) as sub:
        payload = {"text": "hello", "emoji": "\U0001f680", "n": [1, 2.5, None]}
        result = await client.publish(channel, payload, tags={"kind": "greeting"})
        assert await sub.next_publication() == payload
        assert result.offset == 1 and result.epoch
        # Bytes are taken as JSON already.
        await client.publish(channel, b'{"raw": true}')
        assert await sub.next_publication() == {"raw": True}


async def test_broadcast_reaches_every_channel(
    client: BaseApiClient, server: Centrifugo, channel: str
) -> None:
    other = channel + "-2"
    async with subscriber(server, channel) as first, subscriber(server, other) as second:
        result = await client.broadcast([channel, other, "unknown:x"], {"all": 1})
        assert await first.next_publication() == {"all": 1}
        assert await second.next_publication() == {"all": 1}
    ok, ok2, failed = result.responses
    assert ok.result is not None and ok.result.offset == 1 and ok2.error is None
    assert failed.error == api.Error(code=102, message="unknown channel")


async def test_presence_stats_and_history_with_a_client_connected(
    client: BaseApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel, user="42") as sub:
        presence = await client.presence(channel)
        assert list(presence.presence) == [sub.client_id]
        info = presence.presence[sub.client_id]
        assert (info.user, info.client) == ("42", sub.client_id)

        stats = await client.presence_stats(channel)
        assert (stats.num_clients, stats.num_users) == (1, 1)

        for n in range(3):
            await client.publish(channel, {"n": n})
            assert await sub.next_publication() == {"n": n}
        history = await client.history(channel, limit=10)
        assert [json.loads(p.data) for p in history.publications] == [{"n": n} for n in range(3)]
        assert [p.offset for p in history.publications] == [1, 2, 3]
        assert history.offset == 3 and history.epoch

        since = await client.history(
            channel, limit=10, since=api.StreamPosition(offset=1, epoch=history.epoch)
        )
        assert [p.offset for p in since.publications] == [2, 3]
        newest = await client.history(channel, limit=1, reverse=True)
        assert [p.offset for p in newest.publications] == [3]

        assert await client.history_remove(channel) == api.HistoryRemoveResult()
        emptied = await client.history(channel, limit=10)
        assert emptied.publications == []


async def test_unsubscribe_is_observed_by_the_client(
    client: BaseApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel, user="u-unsub") as sub:
        assert await client.unsubscribe("u-unsub", channel) == api.UnsubscribeResult()
        code = await asyncio.wait_for(sub.unsubscribed.get(), WAIT)
        assert code == 2000  # unsubscribed by the server
        assert (await client.presence_stats(channel)).num_clients == 0


async def test_disconnect_is_observed_by_the_client(
    client: BaseApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel, user="u-disc") as sub:
        await client.disconnect("u-disc", code=4501, reason="bye")
        assert await asyncio.wait_for(sub.disconnected.get(), WAIT) == (4501, "bye")


async def test_server_side_subscribe_is_observed_by_the_client(
    client: BaseApiClient, server: Centrifugo, channel: str
) -> None:
    extra = channel + "-server"
    async with subscriber(server, channel, user="u-sub") as sub:
        await client.subscribe("u-sub", extra, client=sub.client_id)
        assert await asyncio.wait_for(sub.server_subscribed.get(), WAIT) == extra
        await client.publish(extra, {"pushed": True})
        assert await asyncio.wait_for(sub.server_publications.get(), WAIT) == (
            extra,
            {"pushed": True},
        )


async def test_refresh_of_a_connected_user(
    client: BaseApiClient, server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel, user="u-refresh"):
        expire_at = int(time.time()) + 3600
        assert await client.refresh("u-refresh", expire_at=expire_at) == api.RefreshResult()


async def test_batch_of_several_commands(
    client: BaseApiClient, server: Centrifugo, channel: str
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
        await client.batch([api.BatchRequest()])


async def test_info(client: BaseApiClient, server: Centrifugo) -> None:
    info = await client.info()
    (node,) = info.nodes
    assert node.version == f"{CENTRIFUGO_VERSION} OSS"
    assert node.uid and node.name.endswith(str(server.http_port))
    assert node.metrics is not None and node.metrics.interval > 0
    assert "centrifugo.node.num_clients" in node.metrics.items


async def test_channels(client: BaseApiClient, server: Centrifugo, channel: str) -> None:
    async with subscriber(server, channel):
        everything = await client.channels()
        assert everything.channels[channel] == api.ChannelInfo(num_clients=1)
        matching = await client.channels(pattern=channel[:10] + "*")
        assert channel in matching.channels
        assert (await client.channels(pattern="nothing-*")).channels == {}


async def test_map_methods(client: BaseApiClient, channel: str) -> None:
    name = f"maps:{channel}"
    first = await client.map_publish(name, "k1", {"v": 1})
    await client.map_publish(name, "k2", {"v": 2}, tags={"t": "x"})
    assert first.offset == 1 and first.epoch
    state = await client.map_read_state(name, limit=10)
    assert {e.key: json.loads(e.data) for e in state.entries} == {"k1": {"v": 1}, "k2": {"v": 2}}
    assert state.offset == 2
    stream = await client.map_read_stream(name, limit=10)
    assert [e.key for e in stream.entries] == ["k1", "k2"]
    assert (await client.map_stats(name)).num_keys == 2
    removed = await client.map_remove(name, "k1")
    assert removed.offset == 3
    assert (await client.map_stats(name)).num_keys == 1
    assert await client.map_clear(name) == api.MapClearResult()
    assert (await client.map_stats(name)).num_keys == 0
    with pytest.raises(BadRequestError):  # map methods need a map namespace
        await client.map_publish(channel, "k", {})


async def test_shared_poll_publish(client: BaseApiClient, channel: str) -> None:
    result = await client.shared_poll_publish(f"poll:{channel}", "item", {"v": 1}, version=1)
    assert result == api.SharedPollPublishResult()
    with pytest.raises(BadRequestError):  # a version is required
        await client.shared_poll_publish(f"poll:{channel}", "item", {"v": 1})


async def test_rpc_without_an_extension_is_not_found(client: BaseApiClient) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.rpc("anything", {"x": 1})
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
    client: BaseApiClient,
) -> None:
    with pytest.raises(UnknownChannelError) as info:
        await client.publish("unknown:x", {"a": 1})
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
            await client.publish("c", {})


async def test_pro_only_methods_raise_unsupported_method_promptly(client: BaseApiClient) -> None:
    started = time.monotonic()
    with pytest.raises(UnsupportedMethodError, match="connections"):
        await asyncio.wait_for(client.call(api.ConnectionsRequest(user="42")), WAIT)
    with pytest.raises(UnsupportedMethodError, match="device_register"):
        await asyncio.wait_for(client.call(api.DeviceRegisterRequest()), WAIT)
    assert time.monotonic() - started < 5


async def test_values_that_cannot_be_encoded_raise_encode_error(client: BaseApiClient) -> None:
    with pytest.raises(EncodeError):
        await client.call(api.HistoryRequest(channel="c", limit=2**31))


@pytest.mark.parametrize("kind", KINDS)
async def test_unreachable_server_raises_transport_error(kind: str) -> None:
    port = free_port()
    client: BaseApiClient
    if kind == "grpc":
        client = ApiClient("127.0.0.1", port, api_key="k", timeout=WAIT)
    else:
        client = HttpApiClient(f"http://127.0.0.1:{port}/api", api_key="k", timeout=WAIT)
    async with client:
        with pytest.raises(TransportError) as info:
            await client.info()
    assert not isinstance(info.value, ApiTimeoutError)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_silent_server_raises_timeout(kind: str) -> None:
    """A server that accepts connections and never answers: the call times out."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client goes away
        writer.close()

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    client: BaseApiClient
    if kind == "grpc":
        client = ApiClient("127.0.0.1", port, api_key="k", timeout=0.3)
    else:
        client = HttpApiClient(f"http://127.0.0.1:{port}/api", api_key="k", timeout=0.3)
    try:
        async with client:
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


async def test_grpc_over_tls(
    start_centrifugo: StartCentrifugo, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    server = start_centrifugo(
        {"grpc_api": {"tls": {"enabled": True, "cert_pem": str(cert), "key_pem": str(key)}}}
    )
    trusted = ssl.create_default_context(cafile=str(cert))
    async with ApiClient(
        "127.0.0.1", server.grpc_api_port, api_key=server.api_key, ssl=trusted, timeout=WAIT
    ) as client:
        assert (await client.publish("over-tls", {"secure": True})).offset == 1
    async with ApiClient(
        "127.0.0.1", server.grpc_api_port, api_key=server.api_key, ssl=True, timeout=WAIT
    ) as client:
        with pytest.raises(TransportError):  # the default CA store does not trust it
            await client.info()


async def test_http_client_can_use_an_httpx_client_of_ones_own(server: Centrifugo) -> None:
    async with httpx.AsyncClient(headers={"User-Agent": "mine"}) as own:
        async with HttpApiClient(f"{server.http_url}/api", api_key=server.api_key, client=own) as c:
            assert (await c.info()).nodes
        assert not own.is_closed  # not ours to close
        async with HttpApiClient(
            f"{server.http_url}/api/", api_key=server.api_key, client=own
        ) as c:
            assert (await c.presence_stats("x")).num_clients == 0


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
            await client.publish("unknown:x", {})
        assert info.value.code == 102
        assert (await client.publish(f"fine-{kind}", {})).offset == 1


# -- both transports, same results -------------------------------------------------------------

Call = Callable[[BaseApiClient, str], Any]

CALLS: dict[str, Call] = {
    "presence": lambda c, ch: c.presence(ch),
    "presence_stats": lambda c, ch: c.presence_stats(ch),
    "history": lambda c, ch: c.history(ch, limit=10),
    "history_reverse": lambda c, ch: c.history(ch, limit=2, reverse=True),
    "channels": lambda c, ch: c.channels(pattern=ch),
    "map_read_state": lambda c, ch: c.map_read_state(f"maps:{ch}", limit=10),
    "map_read_stream": lambda c, ch: c.map_read_stream(f"maps:{ch}", limit=10),
    "map_stats": lambda c, ch: c.map_stats(f"maps:{ch}"),
    "batch": lambda c, ch: c.batch(
        [api.PresenceStatsRequest(channel=ch), api.HistoryRequest(channel=ch, limit=10)]
    ),
    "rpc_error": lambda c, ch: c.rpc("missing"),
    "unknown_channel_error": lambda c, ch: c.history("unknown:" + ch),
    "unsupported": lambda c, ch: c.call(api.GetUserStatusRequest(users=["42"])),
}


async def _outcome(call: Call, client: BaseApiClient, channel: str) -> Any:
    try:
        return await call(client, channel)
    except ApiError as exc:
        return (type(exc), exc.code, exc.message, exc.method)
    except UnsupportedMethodError as exc:
        return (type(exc), exc.method)


@pytest.mark.parametrize("name", list(CALLS))
async def test_both_clients_give_equal_typed_results(
    name: str, both: dict[str, BaseApiClient], server: Centrifugo, channel: str
) -> None:
    async with subscriber(server, channel, user="same"):
        grpc, http = both["grpc"], both["http"]
        await grpc.publish(channel, {"via": "grpc", "text": "\u00e9\U0001f680"}, tags={"t": "1"})
        await http.publish(channel, {"via": "http", "n": 1.5})
        await grpc.map_publish(f"maps:{channel}", "k", {"v": [1]})
        by_grpc = await _outcome(CALLS[name], grpc, channel)
        by_http = await _outcome(CALLS[name], http, channel)
    assert by_grpc == by_http
    assert by_grpc  # a result or an error, never nothing


async def test_http_payloads_come_back_as_gos_encoder_writes_them(
    both: dict[str, BaseApiClient], channel: str
) -> None:
    """The one difference between the transports: over HTTP, Centrifugo's encoding/json writes
    raw payloads compacted and with HTML characters escaped. Same JSON value, other bytes."""
    data = b'{"html": "<b>&amp;</b>", "line": "\xe2\x80\xa8"}'
    await both["grpc"].publish(channel, data)
    by_grpc = (await both["grpc"].history(channel, limit=1)).publications[0].data
    by_http = (await both["http"].history(channel, limit=1)).publications[0].data
    assert by_grpc == data
    assert by_http == go_html_escape(data.replace(b'": "', b'":"').replace(b'", "', b'","'))
    assert json.loads(by_http) == json.loads(by_grpc)


async def test_info_is_equal_over_both_transports_but_for_live_numbers(
    both: dict[str, BaseApiClient],
) -> None:
    grpc_node = (await both["grpc"].info()).nodes[0]
    http_node = (await both["http"].info()).nodes[0]
    for node in (grpc_node, http_node):
        node.uptime = 0
        node.metrics = None
        node.process = None
    assert grpc_node == http_node
