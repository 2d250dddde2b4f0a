"""The JavaScript SDK (centrifuge-js 5.7 in Node) through our backend, beside centrifuge-python.

The same router and transports as tests/test_e2e_proxy.py: a real Centrifugo v6.9.1 whose
proxies point at the e2e router; the client is the SDK the Spiral docs point users to.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from .centrifugo import merge, proxy_config, run_centrifugo
from .e2e_backend import EXPIRE_IN, IN_PROCESS_BACKENDS, Recorder, e2e_router
from .js_client import JsDriver, JsError, js_driver
from .test_e2e_proxy import FAST, Proxied, connected, subscribed

pytestmark = pytest.mark.e2e

WAIT = 5.0


@pytest.fixture(scope="module", params=sorted(IN_PROCESS_BACKENDS))
async def proxied(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Proxied]:
    recorder = Recorder()
    async with IN_PROCESS_BACKENDS[request.param](e2e_router(recorder)) as backend:
        workdir = tmp_path_factory.mktemp(f"centrifugo-js-{request.param}")
        with run_centrifugo(workdir, merge(proxy_config(backend.proxy), FAST)) as centrifugo:
            yield Proxied(centrifugo, backend, recorder)


@pytest.fixture
async def js() -> AsyncIterator[JsDriver]:
    async with js_driver() as driver:
        yield driver


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def test_js_connect_subscribe_publish_rpc(proxied: Proxied, js: JsDriver) -> None:
    user = unique("js-")
    url = proxied.centrifugo.ws_url
    connect = await js.call("connect", client="a", url=url, data={"user": user})
    assert connect["data"] == {"hello": user}
    request = await proxied.recorder.wait_for("connect", lambda r: r.client == connect["client_id"])
    assert request.json() == {"user": user}
    assert request.name == "js"
    assert request.encoding == ("binary" if proxied.backend.binary else "json")

    channel = unique("room-")
    subscribe = await js.call("subscribe", client="a", channel=channel)
    assert subscribe["data"] == {"welcome": channel}
    request = await proxied.recorder.wait_for("subscribe", lambda r: r.channel == channel)
    assert request.user == user

    await js.call("publish", client="a", channel=channel, data={"text": "hi from js"})
    publication = await js.next_event("publication", client="a", channel=channel)
    assert publication["data"] == {"text": "hi from js", "checked": True, "by": user}
    with pytest.raises(JsError) as refused:
        await js.call("publish", client="a", channel=channel, data={"text": "spam!"})
    assert (refused.value.code, refused.value.message) == (451, "spam")

    rpc = await js.call("rpc", client="a", method="echo", data={"n": 1})
    assert rpc["data"] == {"echo": {"n": 1}, "by": user}
    with pytest.raises(JsError) as unknown:
        await js.call("rpc", client="a", method="no-such-method", data={})
    assert (unknown.value.code, unknown.value.message) == (104, "method not found")


async def test_js_and_python_clients_share_a_channel(proxied: Proxied, js: JsDriver) -> None:
    """A publication of either SDK, checked by the backend, reaches the other."""
    channel = unique("mixed-")
    await js.call("connect", client="j", url=proxied.centrifugo.ws_url, data={"user": "js-user"})
    await js.call("subscribe", client="j", channel=channel)
    async with connected(proxied, "py-user") as client:
        subscription, events = await subscribed(client, channel)
        await subscription.publish({"text": "from python"})
        got = await js.next_event("publication", client="j", channel=channel)
        assert got["data"] == {"text": "from python", "checked": True, "by": "py-user"}
        await js.call("publish", client="j", channel=channel, data={"text": "from js"})
        seen: list[Any] = []
        while len(seen) < 2:
            seen.append((await asyncio.wait_for(events.publications.get(), WAIT)).pub.data)
        assert seen == [
            {"text": "from python", "checked": True, "by": "py-user"},
            {"text": "from js", "checked": True, "by": "js-user"},
        ]


async def test_js_refresh_extends_the_session(proxied: Proxied, js: JsDriver) -> None:
    """A session the backend made expire is refreshed through the refresh proxy."""
    user = unique("js-expiring-")
    connect = await js.call(
        "connect", client="r", url=proxied.centrifugo.ws_url, data={"user": user, "expire": True}
    )
    mine = lambda r: r.client == connect["client_id"]  # noqa: E731
    first = await proxied.recorder.wait_for("refresh", mine, within=EXPIRE_IN + WAIT)
    assert first.user == user
    assert first.reply.result.expire_at > 0
    await asyncio.sleep(EXPIRE_IN + 0.5)  # past the first expiry: still the same connection
    assert proxied.recorder.count("refresh", mine) >= 2
    assert (await js.call("ready", client="r"))["client_id"] == connect["client_id"]
    assert (await js.call("rpc", client="r", method="echo", data="alive"))["data"]["by"] == user
