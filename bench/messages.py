"""The representative messages the codec benchmark encodes and decodes.

Values are built once, with this project's classes; the other implementations get the same
values by parsing these messages' bytes (see :mod:`bench.impls`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import betterproto2

from centrifugo_types import api, proxy

_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsImV4cCI6MTkwMDAwMDAwMCwiaW5mbyI6"
    "eyJuYW1lIjoiQWxpY2UifX0.Tq0FX8Nd8HZbBAf7sl9mYr9hKDUcZ1rYHd2t1B8yq3s"
)


def connect_request() -> proxy.ConnectRequest:
    """What Centrifugo sends for a browser connecting with a token and two channels."""
    return proxy.ConnectRequest(
        client="4c8e5a2b-8a1f-4d55-9c3e-2f7b1a0e6d91",
        transport="websocket",
        protocol="json",
        encoding="json",
        data=b'{"token": "' + _TOKEN.encode() + b'"}',
        name="centrifuge-js",
        version="5.2.0",
        channels=["news", "chat:index"],
    )


def connect_response() -> proxy.ConnectResponse:
    """An accepting reply with user, expiry, connection info and data, and one server-side
    subscription (a map entry)."""
    return proxy.ConnectResponse(
        result=proxy.ConnectResult(
            user="42",
            expire_at=1_900_000_000,
            info=b'{"name": "Alice", "avatar": "https://example.com/a/42.png"}',
            data=b'{"welcome": true, "unread": 3}',
            channels=["news"],
            subs={"personal:42": proxy.SubscribeOptions(info=b'{"role": "owner"}')},
        )
    )


def publish_request() -> proxy.PublishRequest:
    """A client publication to a chat channel, proxied to the backend."""
    return proxy.PublishRequest(
        client="4c8e5a2b-8a1f-4d55-9c3e-2f7b1a0e6d91",
        transport="websocket",
        protocol="json",
        encoding="json",
        user="42",
        channel="chat:room-17",
        data=b'{"text": "Hello everyone, the meeting starts in ten minutes", "ts": 1700000000}',
    )


def subscribe_response() -> proxy.SubscribeResponse:
    """An accepting subscribe reply with channel info, data and presence overrides."""
    return proxy.SubscribeResponse(
        result=proxy.SubscribeResult(
            expire_at=1_900_000_000,
            info=b'{"role": "member"}',
            data=b'{"motd": "be nice"}',
            override=proxy.SubscribeOptionOverride(
                presence=proxy.BoolValue(value=True),
                join_leave=proxy.BoolValue(value=True),
            ),
        )
    )


def history_result() -> api.HistoryResult:
    """100 publications with publisher info, as the server API's history call returns."""
    publications = [
        api.Publication(
            data=b'{"text": "message number %d", "ts": %d}' % (i, 1_700_000_000 + i),
            info=api.ClientInfo(
                user=str(40 + i % 5),
                client=f"4c8e5a2b-8a1f-4d55-9c3e-{i:012x}",
                conn_info=b'{"name": "user %d"}' % (40 + i % 5),
            ),
            offset=1000 + i,
        )
        for i in range(100)
    ]
    return api.HistoryResult(publications=publications, epoch="dkQm", offset=1099)


def batch_request() -> api.BatchRequest:
    """A server API batch: eight publications and a broadcast."""
    commands = [
        api.Command(
            publish=api.PublishRequest(
                channel=f"news:{i}",
                data=b'{"headline": "story %d", "score": %d}' % (i, i * 7),
                idempotency_key=f"pub-{i}",
            )
        )
        for i in range(8)
    ]
    commands.append(
        api.Command(
            broadcast=api.BroadcastRequest(
                channels=[f"user:{i}" for i in range(10)],
                data=b'{"type": "refresh"}',
            )
        )
    )
    return api.BatchRequest(commands=commands, parallel=True)


# Readers touch every field a handler would use, with attribute access only, so that the
# same function reads the message of every implementation. upb decodes lazily (Python objects
# for fields are made on first access), so "decode + read" is the fair end-to-end comparison.


def read_connect_request(m: Any) -> object:
    return (
        m.client,
        m.transport,
        m.protocol,
        m.encoding,
        m.data,
        m.b64data,
        m.name,
        m.version,
        list(m.channels),
    )


def read_connect_response(m: Any) -> object:
    r = m.result
    subs = {k: (v.info, v.expire_at) for k, v in r.subs.items()}
    return r.user, r.expire_at, r.info, r.data, list(r.channels), subs


def read_publish_request(m: Any) -> object:
    return (
        m.client,
        m.transport,
        m.protocol,
        m.encoding,
        m.user,
        m.channel,
        m.data,
        m.b64data,
        m.meta,
        dict(m.labels),
    )


def read_subscribe_response(m: Any) -> object:
    r = m.result
    o = r.override
    return r.expire_at, r.info, r.data, o.presence.value, o.join_leave.value


def read_history_result(m: Any) -> object:
    pubs = [
        (p.data, p.info.user, p.info.client, p.info.conn_info, p.offset) for p in m.publications
    ]
    return pubs, m.epoch, m.offset


def read_batch_request(m: Any) -> object:
    commands = list(m.commands)
    publishes = [
        (c.publish.channel, c.publish.data, c.publish.idempotency_key) for c in commands[:8]
    ]
    broadcast = commands[8].broadcast
    return publishes, list(broadcast.channels), broadcast.data, m.parallel


#: label -> (module, builder, reader), in the order the report prints them. The message class
#: has the same name in every implementation's ``proxy`` or ``api`` module.
MESSAGES: dict[str, tuple[str, Callable[[], betterproto2.Message], Callable[[Any], object]]] = {
    "ConnectRequest": ("proxy", connect_request, read_connect_request),
    "ConnectResponse": ("proxy", connect_response, read_connect_response),
    "PublishRequest": ("proxy", publish_request, read_publish_request),
    "SubscribeResponse": ("proxy", subscribe_response, read_subscribe_response),
    "api HistoryResult(100)": ("api", history_result, read_history_result),
    "api BatchRequest(9)": ("api", batch_request, read_batch_request),
}
