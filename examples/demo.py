"""Demo: a real Centrifugo whose proxies call a typed Python backend, and a real client.

Starts the example backend (``examples/backend.py``) on a free port, a Centrifugo (built by
scripts/install-centrifugo) with its proxies pointed at it over gRPC, then drives a
centrifuge-python client through every event: connect (refused, then accepted), subscribe
(allowed, denied), publish (validated and rewritten, refused), rpc, refresh, sub_refresh and
a subscribe stream. Every typed exchange is printed; exits 0 when all went as expected.

    python -m examples.demo      (or scripts/demo)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from centrifuge import (
    Client,
    ClientEventHandler,
    DisconnectedContext,
    PublicationContext,
    ReplyError,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from centrifugo_types import CENTRIFUGO_VERSION
from centrifugo_types.calls import AnyCall
from centrifugo_types.grpc import ProxyServer
from centrifugo_types.router import CallNext

from .backend import SESSION_SECONDS, router
from .centrifugo import merge, proxy_config, run_centrifugo

WAIT = 5.0


async def show(request: AnyCall, call_next: CallNext) -> None:
    """Print each typed request and its reply (the outermost interceptor)."""
    print(f"  -> {type(request).__name__}: {request.message!r}")
    try:
        await call_next(request)
    except Exception as exc:
        print(f"  <- raised {exc!r}: the router replies with it")
        raise
    print(f"  <- {request.reply!r}")


class Events(ClientEventHandler):
    def __init__(self) -> None:
        self.disconnected: asyncio.Future[DisconnectedContext] = asyncio.Future()

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(ctx)


class Channel(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.publications: asyncio.Queue[Any] = asyncio.Queue()
        self.unsubscribed: asyncio.Future[UnsubscribedContext] = asyncio.Future()

    async def on_publication(self, ctx: PublicationContext) -> None:
        await self.publications.put(ctx.pub.data)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        if not self.unsubscribed.done():
            self.unsubscribed.set_result(ctx)


def step(title: str) -> None:
    print(f"\n== {title}")


def client(url: str, token: str) -> tuple[Client, Events]:
    events = Events()
    return Client(url, events=events, data={"token": token}, proxy=None), events


async def run(url: str) -> None:
    step("connect with a wrong token: refused")
    intruder, intruder_events = client(url, "guess")
    await intruder.connect()
    refused = await asyncio.wait_for(intruder_events.disconnected, WAIT)
    assert (refused.code, refused.reason) == (401, "unauthorized"), refused
    print(f"client disconnected: {refused.code} {refused.reason}")

    step("connect as alice: accepted")
    alice, _ = client(url, "secret-alice")
    await alice.connect()
    await alice.ready(timeout=WAIT)
    try:
        step("subscribe to news (allowed) and to bob's channel (denied)")
        news = Channel()
        subscription = alice.new_subscription("news", events=news)
        await subscription.subscribe()
        await subscription.ready(timeout=WAIT)
        denied = Channel()
        await alice.new_subscription("personal:bob", events=denied).subscribe()
        ctx = await asyncio.wait_for(denied.unsubscribed, WAIT)
        assert (ctx.code, ctx.reason) == (403, "permission denied"), ctx
        print(f"personal:bob: {ctx.code} {ctx.reason}")

        step("publish: validated and stamped by the backend, or refused")
        await subscription.publish({"text": "hello, typed world"})
        received = await asyncio.wait_for(news.publications.get(), WAIT)
        assert received == {"text": "hello, typed world", "author": "alice"}, received
        print(f"news subscribers got {received}")
        try:
            await subscription.publish({"text": ""})
            raise AssertionError("an empty message was accepted")
        except ReplyError as error:
            print(f"empty message refused: {error.code} {error.message}")

        step("rpc")
        result = await alice.rpc("time", None)
        assert abs(result.data["unix"] - time.time()) < 5, result
        print(f"rpc time -> {result.data}")

        step("subscribe stream: the backend itself feeds ticker:3")
        ticker = Channel()
        await alice.new_subscription("ticker:3", events=ticker).subscribe()
        ticks = [await asyncio.wait_for(ticker.publications.get(), WAIT) for _ in range(3)]
        assert ticks == [{"tick": 1}, {"tick": 2}, {"tick": 3}], ticks
        print(f"ticker:3 -> {ticks}")

        step(f"refresh and sub_refresh: sessions of {SESSION_SECONDS}s extended by the backend")
        personal = alice.new_subscription("personal:alice", events=Channel())
        await personal.subscribe()
        await personal.ready(timeout=WAIT)
        await asyncio.sleep(SESSION_SECONDS + 1.5)
        assert alice.state.value == "connected"
        assert personal.state.value == "subscribed"
        print("alice is still connected and subscribed past her first expiry")
    finally:
        await alice.disconnect()
        await intruder.disconnect()


async def main() -> int:
    router.add_interceptor(show)
    async with ProxyServer(router, port=0) as backend:
        endpoint = f"grpc://127.0.0.1:{backend.port}"

        def section(event: str) -> dict[str, Any]:
            return {"endpoint": endpoint, "timeout": "1s"}

        config = merge(
            proxy_config(section),
            {
                "channel": {
                    "namespaces": [
                        {"name": "personal", "subscribe_proxy_enabled": True,
                         "sub_refresh_proxy_enabled": True},
                        {"name": "ticker", "subscribe_stream_proxy_enabled": True},
                    ]
                },
                # check subscription expiry often (27 s by default) for a short demo
                "client": {"presence_update_interval": "300ms", "expired_sub_close_delay": "1ms"},
            },
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp, run_centrifugo(Path(tmp), config) as server:
            print(f"Centrifugo v{CENTRIFUGO_VERSION} on {server.http_url}, backend on {endpoint}")
            await run(server.ws_url)
    print("\ndemo: OK")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
