"""A minimal client of Centrifugo's bidirectional JSON protocol over WebSocket, for tests.

centrifuge-python cannot send the commands of map channels (``publish`` with ``type: 1``) nor
track keys of shared-poll channels (``sub_refresh`` with ``type: 1``), so the e2e tests of
those proxies speak the protocol (``centrifugal/protocol`` ``client.proto``, JSON dialect)
themselves: a command is ``{"id": N, "<method>": {...}}``, its reply ``{"id": N, "<method>":
{...}}`` or ``{"id": N, "error": {...}}``, a push ``{"push": {"channel": ..., "pub": ...}}``;
payloads (``data``) are embedded JSON; several messages may share a frame, one per line; the
server pings with ``{}`` and expects ``{}`` back.

Written here rather than taken from a library because no Python client of the protocol
supports these commands; it covers what the tests need and nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from ssl import SSLContext
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

WAIT = 5.0
"""Seconds to wait for a reply or a publication."""

SUBSCRIPTION_MAP = 1
"""``SubscribeRequest.type`` of a map subscription (``centrifuge.SubscriptionTypeMap``)."""
SUBSCRIPTION_SHARED_POLL = 4
"""``SubscribeRequest.type`` of a shared-poll subscription."""
MAP_PHASE_STATE = 2
"""``SubscribeRequest.phase`` asking for the map's state (``centrifuge.MapPhaseState``)."""
PUBLISH_MAP = 1
"""``PublishRequest.type`` of a publication to (or removal from) a map key."""
SUB_REFRESH_TRACK = 1
"""``SubRefreshRequest.type`` tracking keys of a shared-poll channel."""


class ReplyError(Exception):
    """Centrifugo answered a command with an error."""

    def __init__(self, code: int, message: str, temporary: bool) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.temporary = temporary


class Disconnected(Exception):
    """The connection was closed by Centrifugo (its disconnect code and reason)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


def track_signature(
    secret: str, channel: str, user: str, keys: Iterable[str], *, ttl: int = 60
) -> str:
    """The signature allowing ``user`` to track ``keys`` of a shared-poll channel.

    What the application backend hands its clients: ``"<iat>:<expiry>:<hex hmac>"``, the
    HMAC-SHA256 under ``shared_poll.hmac_secret_key`` of the NUL-joined issue time, expiry,
    user, channel and hex SHA-256 of the NUL-joined keys (Centrifugo v6.9.1,
    ``internal/client/track_signature.go``).
    """
    issued = int(time.time())
    expiry = issued + ttl
    keys_hash = hashlib.sha256("\x00".join(keys).encode()).hexdigest()
    payload = "\x00".join((str(issued), str(expiry), user, channel, keys_hash)).encode()
    mac = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return f"{issued}:{expiry}:{mac}"


class ProtocolClient:
    """One connection speaking Centrifugo's JSON client protocol.

    Use :meth:`connect`; commands return their reply's result or raise :class:`ReplyError`
    (or :class:`Disconnected` once Centrifugo closed the connection). Publications pushed to
    a channel queue up: ``await client.publication(channel)`` takes the next one.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._publications: defaultdict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(
            asyncio.Queue
        )
        self._reader = asyncio.create_task(self._read())
        self.closed: Disconnected | None = None
        """Why the connection ended (``None`` while open)."""
        self.client_id = ""
        """The client id Centrifugo gave the connection."""

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        url: str,
        data: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        ssl: SSLContext | None = None,
    ) -> AsyncIterator[ProtocolClient]:
        """Open a connection and send ``connect`` with ``data``; close it on exit."""
        ws = await connect(
            url,
            additional_headers=headers,
            proxy=None,
            open_timeout=WAIT,
            compression=None,
            ssl=ssl,
        )
        client = cls(ws)
        try:
            result = await client.command("connect", {"data": data, "name": "protocol-client"})
            client.client_id = result["client"]
            yield client
        finally:
            await client.close()

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def command(
        self, method: str, params: Mapping[str, Any], *, within: float = WAIT
    ) -> dict[str, Any]:
        """Send a command and wait for its reply's result (``{}`` when it has none)."""
        if self.closed is not None:
            raise self.closed
        command_id = next(self._ids)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = reply
        try:
            try:
                await self._ws.send(json.dumps({"id": command_id, method: params}))
            except ConnectionClosed as closed:
                raise Disconnected(self._ws.close_code, self._ws.close_reason or "") from closed
            message = await asyncio.wait_for(reply, within)
        finally:
            self._pending.pop(command_id, None)
        if "error" in message:
            error = message["error"]
            raise ReplyError(error["code"], error.get("message", ""), error.get("temporary", False))
        result: dict[str, Any] = message.get(method, {})
        return result

    async def publication(self, channel: str, *, within: float = WAIT) -> dict[str, Any]:
        """The next publication pushed to ``channel`` (waiting up to ``within`` seconds)."""
        return await asyncio.wait_for(self._publications[channel].get(), within)

    def pending_publications(self, channel: str) -> list[dict[str, Any]]:
        """The publications pushed to ``channel`` and not taken yet (taking them)."""
        queue = self._publications[channel]
        return [queue.get_nowait() for _ in range(queue.qsize())]

    # -- map channels --------------------------------------------------------------------------

    async def subscribe_map(self, channel: str) -> dict[str, Any]:
        """Subscribe to a map channel; the result carries its ``state`` (a streamless map
        goes live on the state's last page, so one round trip is enough for small maps)."""
        return await self.command(
            "subscribe",
            {"channel": channel, "type": SUBSCRIPTION_MAP, "phase": MAP_PHASE_STATE},
        )

    async def map_publish(self, channel: str, key: str, data: Any) -> dict[str, Any]:
        return await self.command(
            "publish", {"channel": channel, "type": PUBLISH_MAP, "key": key, "data": data}
        )

    async def map_remove(self, channel: str, key: str) -> dict[str, Any]:
        return await self.command(
            "publish", {"channel": channel, "type": PUBLISH_MAP, "key": key, "removed": True}
        )

    # -- shared-poll channels ------------------------------------------------------------------

    async def subscribe_shared_poll(self, channel: str) -> dict[str, Any]:
        return await self.command(
            "subscribe", {"channel": channel, "type": SUBSCRIPTION_SHARED_POLL}
        )

    async def track(
        self, channel: str, versions: Mapping[str, int], signature: str
    ) -> dict[str, Any]:
        """Track keys (with the versions the client has, 0: none) under one signature."""
        items = [{"key": key, "version": version} for key, version in versions.items()]
        return await self.command(
            "sub_refresh",
            {
                "channel": channel,
                "type": SUB_REFRESH_TRACK,
                "track": [{"signature": signature, "items": items}],
            },
        )

    # -- the reader ----------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                for line in (frame if isinstance(frame, str) else frame.decode()).splitlines():
                    if line.strip():
                        await self._dispatch(json.loads(line))
        except ConnectionClosed:
            pass
        finally:
            self.closed = Disconnected(self._ws.close_code, self._ws.close_reason or "")
            for reply in self._pending.values():
                if not reply.done():
                    reply.set_exception(self.closed)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if not message:  # the server's ping
            await self._ws.send("{}")
            return
        command_id = message.get("id", 0)
        if command_id:
            reply = self._pending.get(command_id)
            if reply is not None and not reply.done():
                reply.set_result(message)
            return
        push = message.get("push", {})
        if "pub" in push:
            await self._publications[push["channel"]].put(push["pub"])
