"""Demo: typed messages through a real Centrifugo (server API over gRPC).

Starts Centrifugo (built by scripts/install-centrifugo) on free 127.0.0.1 ports, publishes
typed messages through its gRPC API, reads them back from history, and prints each typed
exchange. Exits 0 when everything round-trips.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from grpclib.client import Channel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from centrifugo_types import CENTRIFUGO_VERSION, api
from tests.centrifugo import run_centrifugo


def show(direction: str, message: object) -> None:
    print(f"{direction} {message!r}")


async def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, run_centrifugo(Path(tmp)) as centrifugo:
        print(f"Centrifugo v{CENTRIFUGO_VERSION} on {centrifugo.http_url}")
        channel = Channel("127.0.0.1", centrifugo.grpc_api_port)
        stub = api.CentrifugoApiStub(
            channel, timeout=5, metadata={"authorization": f"apikey {centrifugo.api_key}"}
        )
        try:
            for text in ("hello", "typed", "world"):
                data = json.dumps({"text": text}).encode()
                request = api.PublishRequest(channel="demo", data=data)
                show("->", request)
                show("<-", await stub.publish(request))
            request_h = api.HistoryRequest(channel="demo", limit=10)
            show("->", request_h)
            history = await stub.history(request_h)
            show("<-", history)
            assert history.result is not None
            texts = [json.loads(p.data)["text"] for p in history.result.publications]
            assert texts == ["hello", "typed", "world"], texts
            info = await stub.info(api.InfoRequest())
            show("<-", info)
        finally:
            channel.close()
    print("demo: OK")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
