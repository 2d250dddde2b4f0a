"""Our messages against a real Centrifugo's gRPC server API (Go's protobuf runtime).

Requests are encoded by our codecs, replies come from Go's protobuf runtime and are decoded
by ours, through the generated grpclib ``CentrifugoApiStub``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from grpclib.client import Channel

from centrifugo_types import CENTRIFUGO_VERSION, api

from .centrifugo import Centrifugo

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stub(centrifugo: Centrifugo) -> AsyncIterator[api.CentrifugoApiStub]:
    channel = Channel("127.0.0.1", centrifugo.grpc_api_port)
    try:
        yield api.CentrifugoApiStub(
            channel, timeout=5, metadata={"authorization": f"apikey {centrifugo.api_key}"}
        )
    finally:
        channel.close()


async def test_publish_then_history_returns_our_payload(stub: api.CentrifugoApiStub) -> None:
    channel = f"news-{uuid.uuid4().hex}"
    payloads = [{"text": "hello", "n": i, "emoji": "\U0001f680"} for i in range(3)]
    offsets = []
    epoch = ""
    for payload in payloads:
        reply = await stub.publish(
            api.PublishRequest(
                channel=channel,
                data=json.dumps(payload).encode(),
                tags={"kind": "greeting"},
                idempotency_key=uuid.uuid4().hex,
            )
        )
        assert reply.error is None
        assert reply.result is not None
        offsets.append(reply.result.offset)
        epoch = reply.result.epoch
    assert offsets == [1, 2, 3]
    assert epoch

    history = await stub.history(api.HistoryRequest(channel=channel, limit=10))
    assert history.error is None and history.result is not None
    assert history.result.epoch == epoch
    assert history.result.offset == 3
    publications = history.result.publications
    assert [json.loads(p.data) for p in publications] == payloads
    assert [p.offset for p in publications] == [1, 2, 3]
    assert all(p.tags == {"kind": "greeting"} for p in publications)

    since = await stub.history(
        api.HistoryRequest(
            channel=channel, limit=10, since=api.StreamPosition(offset=2, epoch=epoch)
        )
    )
    assert since.result is not None
    assert [p.offset for p in since.result.publications] == [3]


async def test_info_describes_the_node(stub: api.CentrifugoApiStub) -> None:
    reply = await stub.info(api.InfoRequest())
    assert reply.error is None and reply.result is not None
    (node,) = reply.result.nodes
    assert node.version.split()[0] == CENTRIFUGO_VERSION  # "6.9.1 OSS"
    assert node.uid and node.name


async def test_errors_come_back_typed(stub: api.CentrifugoApiStub) -> None:
    reply = await stub.publish(api.PublishRequest(channel="unknown:x", data=b"{}"))
    assert reply.result is None
    assert reply.error == api.Error(code=102, message="unknown channel")
