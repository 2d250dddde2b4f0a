"""A real Centrifugo client (centrifuge-python) for end-to-end tests of the server API.

``subscriber()`` connects to a Centrifugo with a JWT signed by ``HMAC_SECRET`` (configure
``client.token.hmac_secret_key`` with ``TOKEN_CONFIG``), subscribes to a channel and records
what the connection sees: publications, server-side subscribe/unsubscribe and disconnects.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import centrifuge

from .centrifugo import Centrifugo

HMAC_SECRET = "test-hmac-secret"
TOKEN_CONFIG: dict[str, Any] = {"client": {"token": {"hmac_secret_key": HMAC_SECRET}}}
WAIT = 10.0
"""Seconds to wait for an event the test expects."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def connection_token(user: str) -> str:
    """An HS256 JWT for ``user`` (the few lines of JWT a test needs, no library)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": user}).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(HMAC_SECRET.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


@dataclass
class Subscriber:
    """One connected client subscribed to ``channel``, and what it has seen."""

    client: centrifuge.Client
    subscription: centrifuge.Subscription
    channel: str
    user: str
    client_id: str = ""
    publications: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    server_subscribed: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    server_publications: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    unsubscribed: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    disconnected: asyncio.Queue[tuple[int, str]] = field(default_factory=asyncio.Queue)

    async def next_publication(self) -> Any:
        return await asyncio.wait_for(self.publications.get(), WAIT)


class _ClientEvents(centrifuge.ClientEventHandler):
    def __init__(self) -> None:
        self.owner: Subscriber | None = None
        self.connected: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def on_connected(self, ctx: centrifuge.ConnectedContext) -> None:
        if not self.connected.done():
            self.connected.set_result(ctx.client)

    async def on_disconnected(self, ctx: centrifuge.DisconnectedContext) -> None:
        if self.owner is not None:
            self.owner.disconnected.put_nowait((ctx.code, ctx.reason))

    async def on_subscribed(self, ctx: centrifuge.ServerSubscribedContext) -> None:
        if self.owner is not None:
            self.owner.server_subscribed.put_nowait(ctx.channel)

    async def on_publication(self, ctx: centrifuge.ServerPublicationContext) -> None:
        if self.owner is not None:
            self.owner.server_publications.put_nowait((ctx.channel, ctx.pub.data))


class _SubscriptionEvents(centrifuge.SubscriptionEventHandler):
    def __init__(self) -> None:
        self.owner: Subscriber | None = None

    async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
        if self.owner is not None:
            self.owner.publications.put_nowait(ctx.pub.data)

    async def on_unsubscribed(self, ctx: centrifuge.UnsubscribedContext) -> None:
        if self.owner is not None:
            self.owner.unsubscribed.put_nowait(ctx.code)


@asynccontextmanager
async def subscriber(
    server: Centrifugo, channel: str, user: str = "42"
) -> AsyncIterator[Subscriber]:
    """A client of ``server`` connected as ``user`` and subscribed to ``channel``."""
    client_events = _ClientEvents()
    sub_events = _SubscriptionEvents()
    client = centrifuge.Client(
        server.ws_url, events=client_events, token=connection_token(user), proxy=None
    )
    subscription = client.new_subscription(channel, events=sub_events)
    sub = Subscriber(client, subscription, channel, user)
    client_events.owner = sub
    sub_events.owner = sub
    try:
        await client.connect()
        sub.client_id = await asyncio.wait_for(asyncio.shield(client_events.connected), WAIT)
        await subscription.subscribe()
        await subscription.ready(timeout=WAIT)
        yield sub
    finally:
        await client.disconnect()
