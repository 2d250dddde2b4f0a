"""Two Centrifugo nodes on the Redis engine, a backend behind each, clients on both.

What "more than one machine" means for a Centrifugo backend: a publication through one node's
API reaches a client on the other, presence and history are the same from both nodes, each
node's proxied events reach its own backend, and when a node dies its clients reconnect (through
a load balancer) to the other node and its backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from centrifuge import Client

from centrifugo_types.client import ApiClient

from .centrifugo import Centrifugo, merge, proxy_config, run_centrifugo
from .cluster import Balancer, redis_engine, run_redis
from .e2e_backend import IN_PROCESS_BACKENDS, Backend, Recorder, e2e_router
from .js_client import JsDriver, js_driver
from .test_e2e_proxy import FAST, SubscriptionEvents, until

pytestmark = pytest.mark.e2e

WAIT = 10.0
SUBSCRIBERS_SEE = {
    "channel": {
        "without_namespace": {
            "allow_presence_for_subscriber": True,
            "allow_history_for_subscriber": True,
        }
    }
}
"""Subscribers may ask for presence and history themselves (the clients compare them)."""


@dataclass
class Node:
    centrifugo: Centrifugo
    backend: Backend
    recorder: Recorder

    def api(self) -> ApiClient:
        return ApiClient(
            f"grpc://127.0.0.1:{self.centrifugo.grpc_api_port}", api_key=self.centrifugo.api_key
        )


@contextlib.asynccontextmanager
async def two_nodes(transport: str, workdir: Path) -> AsyncIterator[tuple[Node, Node]]:
    """Redis, then two nodes on it, each with its own backend over ``transport``."""
    with run_redis(workdir / "redis") as redis:
        async with contextlib.AsyncExitStack() as stack:
            nodes = []
            for name in ("a", "b"):
                recorder = Recorder()
                backend = await stack.enter_async_context(
                    IN_PROCESS_BACKENDS[transport](e2e_router(recorder))
                )
                config = merge(proxy_config(backend.proxy), FAST)
                config = merge(merge(config, SUBSCRIBERS_SEE), redis_engine(redis, "e2e"))
                centrifugo = stack.enter_context(run_centrifugo(workdir / name, config))
                nodes.append(Node(centrifugo, backend, recorder))
            await _wait_for_each_other(nodes)
            yield nodes[0], nodes[1]


async def _wait_for_each_other(nodes: list[Node]) -> None:
    """Until every node lists both (nodes find each other through Redis)."""
    for node in nodes:
        async with node.api() as api:
            for _ in range(int(WAIT / 0.1)):
                if len((await api.info()).nodes) == len(nodes):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the nodes did not find each other through Redis")


@pytest.fixture(scope="module", params=sorted(IN_PROCESS_BACKENDS))
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
async def cluster(
    transport: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Node, Node]]:
    async with two_nodes(transport, tmp_path_factory.mktemp(f"cluster-{transport}")) as nodes:
        yield nodes


@pytest.fixture
async def js() -> AsyncIterator[JsDriver]:
    async with js_driver() as driver:
        yield driver


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def python_client(url: str, user: str) -> AsyncIterator[Client]:
    client = Client(url, data={"user": user}, proxy=None, min_reconnect_delay=0.05)
    await client.connect()
    try:
        await client.ready(timeout=WAIT)
        yield client
    finally:
        await client.disconnect()


async def python_subscription(client: Client, channel: str) -> SubscriptionEvents:
    events = SubscriptionEvents()
    subscription = client.new_subscription(channel, events=events)
    await subscription.subscribe()
    await subscription.ready(timeout=WAIT)
    return events


async def next_data(events: SubscriptionEvents) -> Any:
    return (await asyncio.wait_for(events.publications.get(), WAIT)).pub.data


async def test_a_publication_through_one_node_reaches_clients_on_both(
    cluster: tuple[Node, Node], js: JsDriver
) -> None:
    a, b = cluster
    channel = unique("news-")
    async with python_client(b.centrifugo.ws_url, "py-on-b") as client:
        on_b = await python_subscription(client, channel)
        await js.call("connect", client="j", url=a.centrifugo.ws_url, data={"user": "js-on-a"})
        await js.call("subscribe", client="j", channel=channel)
        # Each connection went through its own node's backend.
        py_connect = await b.recorder.wait_for("connect", lambda r: r.client == client.client_id)
        assert py_connect.json() == {"user": "py-on-b"}
        assert not a.recorder.count("connect", lambda r: r.client == client.client_id)
        assert a.recorder.count("subscribe", lambda r: r.channel == channel) == 1
        assert b.recorder.count("subscribe", lambda r: r.channel == channel) == 1

        async with a.api() as api:
            await api.publish(channel=channel, data={"text": "through a"})
        assert await next_data(on_b) == {"text": "through a"}
        got = await js.next_event("publication", client="j", channel=channel)
        assert got["data"] == {"text": "through a"}


async def test_presence_and_history_agree_across_nodes(
    cluster: tuple[Node, Node], js: JsDriver
) -> None:
    a, b = cluster
    channel = unique("room-")
    async with python_client(a.centrifugo.ws_url, "py-on-a") as client:
        on_a = await python_subscription(client, channel)
        js_id = (
            await js.call("connect", client="j", url=b.centrifugo.ws_url, data={"user": "js-on-b"})
        )["client_id"]
        await js.call("subscribe", client="j", channel=channel)
        # Client publications: each through its node's publish proxy, to its node's backend.
        await js.call("publish", client="j", channel=channel, data={"text": "from b"})
        assert await next_data(on_a) == {"text": "from b", "checked": True, "by": "js-on-b"}
        await on_a_publish(client, channel, {"text": "from a"})
        assert await next_data(on_a) == {"text": "from a", "checked": True, "by": "py-on-a"}
        assert b.recorder.count("publish", lambda r: r.channel == channel) == 1
        assert a.recorder.count("publish", lambda r: r.channel == channel) == 1

        views = []
        for node in (a, b):
            async with node.api() as api:
                presence = await api.presence(channel=channel)
                history = await api.history(channel=channel, limit=-1)
            views.append(
                (
                    {cid: info.user for cid, info in presence.presence.items()},
                    [json.loads(p.data) for p in history.publications],
                    (history.epoch, history.offset),
                )
            )
        assert views[0] == views[1]
        users, publications, _ = views[0]
        assert users == {client.client_id: "py-on-a", js_id: "js-on-b"}
        assert [p["text"] for p in publications] == ["from b", "from a"]
        # A client sees the same through its own node.
        js_presence = await js.call("presence", client="j", channel=channel)
        assert set(js_presence["result"]["clients"]) == set(users)
        js_history = await js.call("history", client="j", channel=channel)
        assert js_history["result"]["publications"] == publications


async def on_a_publish(client: Client, channel: str, data: Any) -> None:
    subscription = client.get_subscription(channel)
    assert subscription is not None
    await subscription.publish(data)


def by(user: str) -> Any:
    """Matches the connect requests of ``user``."""
    return lambda request: request.json() == {"user": user}


async def test_a_killed_node_s_clients_reconnect_to_the_other(
    transport: str, tmp_path: Path, js: JsDriver
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        a, b = await stack.enter_async_context(two_nodes(transport, tmp_path))
        ports = [a.centrifugo.http_port, b.centrifugo.http_port]
        lb = await stack.enter_async_context(Balancer(ports).serve())
        channel = unique("survive-")
        client = await stack.enter_async_context(python_client(lb.ws_url, "py-user"))
        py_events = await python_subscription(client, channel)
        await js.call("connect", client="j", url=lb.ws_url, data={"user": "js-user"})
        await js.call("subscribe", client="j", channel=channel)
        js_before = (await js.call("ready", client="j"))["client_id"]
        assert set(lb.connections) == {a.centrifugo.http_port}
        py_before = client.client_id

        a.centrifugo.process.kill()
        a.centrifugo.process.wait()

        # Both reconnect through the balancer to b, via b's backend, and resubscribe.
        while (await js.next_event("connected", client="j"))["client_id"] == js_before:
            pass
        js_connect = await b.recorder.wait_for("connect", by("js-user"))
        py_connect = await b.recorder.wait_for("connect", by("py-user"))
        assert py_connect.client != py_before

        def on_channel(request: Any) -> bool:
            return bool(request.channel == channel)

        await until(lambda: b.recorder.count("subscribe", on_channel) == 2, WAIT)
        assert b.recorder.count("subscribe", lambda r: on_channel(r) and r.user == "js-user")
        assert b.recorder.count("subscribe", lambda r: on_channel(r) and r.user == "py-user")
        assert lb.connections[-2:] == [b.centrifugo.http_port] * 2
        subscription = client.get_subscription(channel)
        assert subscription is not None
        await subscription.ready(timeout=WAIT)
        await js.call("subscribed", client="j", channel=channel)
        async with b.api() as api:
            await api.publish(channel=channel, data={"text": "after the failover"})
        assert await next_data(py_events) == {"text": "after the failover"}
        got = await js.next_event("publication", client="j", channel=channel)
        assert got["data"] == {"text": "after the failover"}
        rpc = await js.call("rpc", client="j", method="echo", data=1)
        assert rpc["data"] == {"echo": 1, "by": "js-user"}
        assert b.recorder.count("rpc", lambda r: r.client == js_connect.client) == 1
