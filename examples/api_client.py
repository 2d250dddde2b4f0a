"""Calling Centrifugo's server API from Python: the async and the sync client.

    python -m examples.api_client [URL] [API_KEY]

URL: ``http://127.0.0.1:8000/api`` (the HTTP API) or ``grpc://127.0.0.1:10000`` (the gRPC
API). Publishes into ``news``, reads it back, and shows a typed error.
"""

from __future__ import annotations

import asyncio
import sys

from centrifugo_types import UnknownChannelError, api
from centrifugo_types.client import ApiClient, SyncApiClient


async def publish_and_read(url: str, api_key: str) -> list[bytes]:
    async with ApiClient(url, api_key=api_key, timeout=5) as client:
        published = await client.publish(channel="news", data={"text": "from asyncio"})
        print(f"published at offset {published.offset} (epoch {published.epoch})")
        results = await client.batch(
            [api.PresenceStatsRequest(channel="news"), api.PublishRequest(channel="nope:x")]
        )
        for result in results:
            print("batch:", repr(result))
        history = await client.history(channel="news", limit=10)
        return [p.data for p in history.publications]


def publish_sync(url: str, api_key: str) -> int:
    with SyncApiClient(url, api_key=api_key, timeout=5) as client:
        offset = client.publish(channel="news", data={"text": "from a thread"}).offset
        try:
            client.publish(channel="unknown-namespace:x", data={})
        except UnknownChannelError as error:
            print(f"typed error: {error.code} {error.message}")
        return offset


def main(argv: list[str]) -> int:
    url = argv[0] if argv else "http://127.0.0.1:8000/api"
    api_key = argv[1] if len(argv) > 1 else ""
    print("history:", asyncio.run(publish_and_read(url, api_key)))
    print("sync publish at offset", publish_sync(url, api_key))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
