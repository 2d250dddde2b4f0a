"""The proxy end to end: a real Centrifugo v6.9.1 and a real client (centrifuge-python).

Centrifugo's proxies point at the suite's router (tests/e2e_backend.py) served over each
transport of ``BACKENDS``; every test runs once per transport with the same expectations.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    DisconnectedContext,
    ErrorContext,
    PublicationContext,
    ReplyError,
    SubscribedContext,
    Subscription,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from centrifugo_types.calls import ConnectCall

from .centrifugo import Centrifugo, merge, proxy_config, run_centrifugo
from .e2e_backend import (
    BACKENDS,
    EXPIRE_IN,
    FORWARDED_HEADER,
    STATIC_METADATA,
    Backend,
    Recorder,
    e2e_router,
)

pytestmark = pytest.mark.e2e

WAIT = 5.0

FAST = {"client": {"presence_update_interval": "300ms", "expired_sub_close_delay": "1ms"}}
"""Centrifugo checks subscription expiry (and so calls sub_refresh) on presence updates, every
27 s by default, and gives 25 s of grace: make both short for the suite."""


@dataclass
class Proxied:
    """A Centrifugo whose proxies point at the e2e router served over ``backend``."""

    centrifugo: Centrifugo
    backend: Backend
    recorder: Recorder


@pytest.fixture(scope="session", params=sorted(BACKENDS))
async def proxied(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Proxied]:
    recorder = Recorder()
    async with BACKENDS[request.param](e2e_router(recorder)) as backend:
        workdir = tmp_path_factory.mktemp(f"centrifugo-{request.param}")
        with run_centrifugo(workdir, merge(proxy_config(backend.proxy), FAST)) as centrifugo:
            yield Proxied(centrifugo, backend, recorder)


@dataclass
class ClientEvents(ClientEventHandler):
    connected: list[ConnectedContext] = field(default_factory=list)
    disconnected: list[DisconnectedContext] = field(default_factory=list)
    errors: list[ErrorContext] = field(default_factory=list)

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.connected.append(ctx)

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.disconnected.append(ctx)

    async def on_error(self, ctx: ErrorContext) -> None:
        self.errors.append(ctx)


@dataclass
class SubscriptionEvents(SubscriptionEventHandler):
    subscribed: list[SubscribedContext] = field(default_factory=list)
    unsubscribed: list[UnsubscribedContext] = field(default_factory=list)
    publications: asyncio.Queue[PublicationContext] = field(default_factory=asyncio.Queue)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed.append(ctx)

    async def on_publication(self, ctx: PublicationContext) -> None:
        await self.publications.put(ctx)


async def until(condition: Any, within: float = WAIT) -> None:
    """Poll ``condition`` (the client library's state) until it holds."""
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still false after {within}s")


def new_client(proxied: Proxied, data: Any) -> tuple[Client, ClientEvents]:
    events = ClientEvents()
    client = Client(
        proxied.centrifugo.ws_url,
        events=events,
        data=data,
        headers={FORWARDED_HEADER: "session-42"},
        proxy=None,
        min_reconnect_delay=0.05,
    )
    return client, events


@contextlib.asynccontextmanager
async def connected(proxied: Proxied, user: str, **data: Any) -> AsyncIterator[Client]:
    client, _ = new_client(proxied, {"user": user, **data})
    await client.connect()
    try:
        await client.ready(timeout=WAIT)
        yield client
    finally:
        await client.disconnect()


async def subscribed(client: Client, channel: str) -> tuple[Subscription, SubscriptionEvents]:
    events = SubscriptionEvents()
    subscription = client.new_subscription(channel, events=events)
    await subscription.subscribe()
    await subscription.ready(timeout=WAIT)
    return subscription, events


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# -- connect ---------------------------------------------------------------------------------


async def test_connect_accepts_with_the_backend_user_and_data(proxied: Proxied) -> None:
    user = unique("alice-")
    client, events = new_client(proxied, {"user": user})
    await client.connect()
    try:
        await client.ready(timeout=WAIT)
        assert events.connected[0].data == {"hello": user}
        request: ConnectCall = await proxied.recorder.wait_for(
            "connect", lambda r: r.client == client.client_id
        )
        assert request.json() == {"user": user}
        assert request.encoding == ("binary" if proxied.backend.binary else "json")
        assert request.transport == "websocket"
        assert request.name == "python"
        assert request.metadata[FORWARDED_HEADER] == "session-42"
        for key, value in STATIC_METADATA.items():
            assert request.metadata[key] == value
        # the user Centrifugo took from our ConnectResult comes back in the next proxy calls
        await client.rpc("echo", {"x": 1})
        rpc = await proxied.recorder.wait_for("rpc", lambda r: r.client == client.client_id)
        assert rpc.user == user
    finally:
        await client.disconnect()


@pytest.mark.parametrize(
    ("reject", "code", "reason"), [("error", 403, "forbidden"), ("disconnect", 4501, "banned")]
)
async def test_connect_rejected(proxied: Proxied, reject: str, code: int, reason: str) -> None:
    client, events = new_client(proxied, {"reject": reject})
    await client.connect()
    try:
        await until(lambda: events.disconnected)
        assert (events.disconnected[-1].code, events.disconnected[-1].reason) == (code, reason)
        assert not events.connected
    finally:
        await client.disconnect()


# -- refresh ---------------------------------------------------------------------------------


async def test_refresh_is_called_and_extends_the_session(proxied: Proxied) -> None:
    async with connected(proxied, unique("bob-"), expire=True) as client:
        connect = await proxied.recorder.wait_for("connect", lambda r: r.client == client.client_id)
        expire_at = connect.reply.result.expire_at
        assert expire_at > 0
        mine = lambda r: r.client == client.client_id  # noqa: E731
        first = await proxied.recorder.wait_for("refresh", mine, within=EXPIRE_IN + WAIT)
        assert first.reply.result.expire_at > expire_at
        # Still connected past the first expiry, and refreshed again: the session was extended.
        await until(lambda: proxied.recorder.count("refresh", mine) >= 2, EXPIRE_IN + WAIT)
        assert await client.rpc("echo", "alive") is not None


# -- subscribe -------------------------------------------------------------------------------


async def test_subscribe_allowed_gets_the_backend_data(proxied: Proxied) -> None:
    async with connected(proxied, "carol") as client:
        channel = unique("news-")
        _, events = await subscribed(client, channel)
        assert events.subscribed[0].data == {"welcome": channel}
        request = await proxied.recorder.wait_for("subscribe", lambda r: r.channel == channel)
        assert request.user == "carol"
        assert request.metadata[FORWARDED_HEADER] == "session-42"


async def test_subscribe_denied(proxied: Proxied) -> None:
    async with connected(proxied, "carol") as client:
        events = SubscriptionEvents()
        subscription = client.new_subscription(unique("deny-"), events=events)
        await subscription.subscribe()
        await until(lambda: events.unsubscribed)
        assert (events.unsubscribed[0].code, events.unsubscribed[0].reason) == (
            403,
            "permission denied",
        )
        assert client.state.value == "connected"


async def test_subscribe_refused_with_disconnect(proxied: Proxied) -> None:
    client, events = new_client(proxied, {"user": "dave"})
    await client.connect()
    try:
        await client.ready(timeout=WAIT)
        await client.new_subscription(unique("kick-")).subscribe()
        await until(lambda: events.disconnected)
        assert (events.disconnected[0].code, events.disconnected[0].reason) == (4502, "kicked")
    finally:
        await client.disconnect()


async def test_sub_refresh_is_called_and_extends_the_subscription(proxied: Proxied) -> None:
    async with connected(proxied, "erin") as client:
        channel = unique("expiring-")
        subscription, events = await subscribed(client, channel)
        refresh = await proxied.recorder.wait_for(
            "sub_refresh", lambda r: r.channel == channel, within=EXPIRE_IN + WAIT
        )
        assert refresh.user == "erin"
        assert refresh.reply.result.expire_at > 0
        assert not events.unsubscribed
        assert subscription.state.value == "subscribed"


# -- publish ---------------------------------------------------------------------------------


async def test_publish_is_validated_and_rewritten(proxied: Proxied) -> None:
    async with connected(proxied, "frank") as client:
        channel = unique("room-")
        subscription, events = await subscribed(client, channel)
        await subscription.publish({"text": "hello"})
        ctx = await asyncio.wait_for(events.publications.get(), WAIT)
        assert ctx.pub.data == {"text": "hello", "checked": True, "by": "frank"}

        with pytest.raises(ReplyError) as refused:
            await subscription.publish({"text": "buy spam"})
        assert (refused.value.code, refused.value.message) == (451, "spam")
        with pytest.raises(ReplyError) as invalid:
            await subscription.publish({"no": "text"})
        assert invalid.value.code == 400
        assert events.publications.empty()


# -- rpc -------------------------------------------------------------------------------------


async def test_rpc_result_and_errors(proxied: Proxied) -> None:
    async with connected(proxied, "grace") as client:
        result = await client.rpc("echo", {"n": 1})
        assert result.data == {"echo": {"n": 1}, "by": "grace"}

        with pytest.raises(ReplyError) as refused:
            await client.rpc("refuse", {})
        assert (refused.value.code, refused.value.message) == (422, "refused")
        with pytest.raises(ReplyError) as unknown:
            await client.rpc("no-such-method", {})
        assert (unknown.value.code, unknown.value.message) == (104, "method not found")


async def test_rpc_sees_the_call_metadata(proxied: Proxied) -> None:
    async with connected(proxied, "heidi") as client:
        result = await client.rpc("whoami", None)
        assert result.data["user"] == "heidi"
        # What Centrifugo forwards and nothing else (no headers of the transport itself).
        assert result.data["meta"] == {FORWARDED_HEADER: "session-42", **STATIC_METADATA}


# -- exactly one reply -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["raise", "noreply", "hang"])
async def test_a_failing_handler_gives_internal_error_and_the_backend_keeps_serving(
    proxied: Proxied, how: str
) -> None:
    async with connected(proxied, "ivan") as client:
        with pytest.raises(ReplyError) as failed:
            await client.rpc(how, {})
        assert (failed.value.code, failed.value.message) == (100, "internal server error")
        assert failed.value.temporary
        assert (await client.rpc("echo", "still here")).data["echo"] == "still here"


async def test_a_failing_connect_handler_gives_a_temporary_error(proxied: Proxied) -> None:
    client, events = new_client(proxied, {"fail": "raise"})
    await client.connect()
    try:
        await until(lambda: events.errors)
        error = events.errors[0].error
        assert isinstance(error, ReplyError)
        assert (error.code, error.temporary) == (100, True)
        assert not events.connected
    finally:
        await client.disconnect()
    async with connected(proxied, "judy") as ok:
        assert ok.client_id


# -- subscribe streams -----------------------------------------------------------------------


async def test_unidirectional_stream_delivers_publications(proxied: Proxied) -> None:
    if not proxied.backend.streams:
        pytest.skip(f"{proxied.backend.transport} does not serve subscribe streams")
    async with connected(proxied, "ken") as client:
        channel = unique("stream:feed-")
        subscription, events = await subscribed(client, channel)
        assert events.subscribed[0].data == {"stream": channel}
        received = [await asyncio.wait_for(events.publications.get(), WAIT) for _ in range(3)]
        assert [ctx.pub.data for ctx in received] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert [ctx.pub.tags for ctx in received] == [{"n": "0"}, {"n": "1"}, {"n": "2"}]
        await subscription.unsubscribe()


async def test_bidirectional_stream_receives_and_sends(proxied: Proxied) -> None:
    if not proxied.backend.streams:
        pytest.skip(f"{proxied.backend.transport} does not serve subscribe streams")
    async with connected(proxied, "liz") as client:
        subscription, events = await subscribed(client, unique("bidi:chat-"))
        for text in ("one", "two"):
            await subscription.publish({"text": text})
            ctx = await asyncio.wait_for(events.publications.get(), WAIT)
            assert ctx.pub.data == {"echo": {"text": text}}
        await subscription.unsubscribe()
