"""The representative messages the codec benchmark encodes and decodes.

Values are built once, with this project's classes; the other implementations get the same
values by parsing these messages' bytes (see :mod:`bench.impls`).
"""

from __future__ import annotations

from collections.abc import Callable

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


#: label -> (module, builder), in the order the report prints them. The message class has the
#: same name in every implementation's ``proxy`` or ``api`` module.
MESSAGES: dict[str, tuple[str, Callable[[], betterproto2.Message]]] = {
    "ConnectRequest": ("proxy", connect_request),
    "ConnectResponse": ("proxy", connect_response),
    "PublishRequest": ("proxy", publish_request),
    "SubscribeResponse": ("proxy", subscribe_response),
    "api HistoryResult(100)": ("api", history_result),
    "api BatchRequest(9)": ("api", batch_request),
}
