"""Map and shared-poll proxies end to end: a real Centrifugo v6.9.1 calls the suite's router.

Open-source Centrifugo proxies three events of these channel types: ``map_publish`` and
``map_remove`` (a client publishes to / removes a key of a ``subscription_type: map``
namespace with ``map.publish_proxy_enabled`` / ``map.remove_proxy_enabled``) and
``shared_poll_refresh`` (Centrifugo polls the backend for the keys clients track in a
``subscription_type: shared_poll`` namespace). centrifuge-python cannot send these commands,
so the clients here speak the JSON client protocol themselves (tests/protocol_client.py).
The router (tests/e2e_backend.py) is served over every transport of ``IN_PROCESS_BACKENDS``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from centrifugo_types import proxy
from centrifugo_types.calls import MapPublishCall, MapRemoveCall, SharedPollRefreshCall

from .centrifugo import Centrifugo, merge, proxy_config, run_centrifugo
from .e2e_backend import (
    FORWARDED_HEADER,
    IN_PROCESS_BACKENDS,
    STATIC_METADATA,
    Backend,
    Documents,
    Recorder,
    e2e_router,
)
from .protocol_client import Disconnected, ProtocolClient, ReplyError, track_signature

pytestmark = pytest.mark.e2e

SECRET = "e2e-shared-poll-secret"
"""``shared_poll.hmac_secret_key``: what track signatures are made with."""

POLL_INTERVAL = "200ms"
"""``shared_poll.refresh_interval`` of the suite (10 s by default)."""

ACCEPTED_BY_PROXY = (107, "bad request")
"""What Centrifugo v6.9.1 answers the client whose map publish or remove the proxy ACCEPTED.

The publication or removal is made (subscribers get it), yet the client's command fails:
Centrifugo's proxy handlers return the result of the map operation they made without the key
(internal/proxy/map_publish_handler.go and map_remove_handler.go, ``return
centrifuge.MapPublishReply{Result: &result}, err``), and centrifuge rejects a reply without
a key before it looks at the result (client.go, ``handleMapPublish`` / ``handleMapRemove``:
``if key == "" { ... ErrorBadRequest``). Nothing a backend replies changes that. When a
Centrifugo release fixes it, the tests asserting this fail and this becomes a success.
"""


def map_poll_config(backend: Backend) -> dict[str, Any]:
    """Namespaces ``map`` and ``poll`` whose proxies are the events ``backend`` serves."""
    namespaces: list[dict[str, Any]] = []
    if backend.proxy("map_publish") and backend.proxy("map_remove"):
        namespaces.append(
            {
                "name": "map",
                "subscription_type": "map",
                "allow_subscribe_for_client": True,
                "map": {
                    "mode": "ephemeral",
                    "key_ttl": "60s",
                    "publish_proxy_enabled": True,
                    "remove_proxy_enabled": True,
                },
            }
        )
    if backend.proxy("shared_poll_refresh"):
        namespaces.append(
            {
                "name": "poll",
                "subscription_type": "shared_poll",
                "allow_subscribe_for_client": True,
                "shared_poll": {"mode": "versioned", "refresh_interval": POLL_INTERVAL},
            }
        )
    return {"channel": {"namespaces": namespaces}, "shared_poll": {"hmac_secret_key": SECRET}}


@dataclass
class Served:
    """A Centrifugo whose map and shared-poll proxies point at the e2e router."""

    centrifugo: Centrifugo
    backend: Backend
    recorder: Recorder
    documents: Documents

    def needs(self, *events: str) -> None:
        """Skip the test when the transport does not serve ``events``."""
        missing = [event for event in events if not self.backend.proxy(event)]
        if missing:
            pytest.skip(f"{self.backend.transport} does not serve {', '.join(missing)}")


@pytest.fixture(scope="session", params=sorted(IN_PROCESS_BACKENDS))
async def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    recorder, documents = Recorder(), Documents()
    async with IN_PROCESS_BACKENDS[request.param](e2e_router(recorder, documents)) as backend:
        workdir = tmp_path_factory.mktemp(f"centrifugo-map-poll-{request.param}")
        config = merge(proxy_config(backend.proxy), map_poll_config(backend))
        with run_centrifugo(workdir, config) as centrifugo:
            yield Served(centrifugo, backend, recorder, documents)


@contextlib.asynccontextmanager
async def connected(served: Served, user: str) -> AsyncIterator[ProtocolClient]:
    """A client the connect handler accepts as ``user``."""
    async with ProtocolClient.connect(
        served.centrifugo.ws_url, {"user": user}, headers={FORWARDED_HEADER: "session-42"}
    ) as client:
        yield client


async def accepted(command: Awaitable[Any]) -> None:
    """Run a map publish or remove the proxy accepts (see ``ACCEPTED_BY_PROXY``)."""
    with pytest.raises(ReplyError) as reply:
        await command
    assert (reply.value.code, reply.value.message) == ACCEPTED_BY_PROXY


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def state(result: dict[str, Any]) -> dict[str, Any]:
    """A map subscription's state: ``{key: data}``."""
    return {entry["key"]: entry.get("data") for entry in result.get("state", [])}


def polled(request: SharedPollRefreshCall) -> list[tuple[str, int]]:
    """The keys and versions Centrifugo asked the backend about."""
    return [(item.key, item.version) for item in request.items]


def returned(request: SharedPollRefreshCall) -> list[tuple[str, int]]:
    """The keys and versions the backend answered with."""
    reply = request.reply
    if reply is None or reply.result is None:
        return []
    return [(item.key, item.version) for item in reply.result.items]


def refreshes(served: Served, channel: str) -> list[SharedPollRefreshCall]:
    """The shared_poll_refresh requests of ``channel`` so far, in order."""
    return [
        r
        for r in served.recorder.requests
        if isinstance(r, SharedPollRefreshCall) and r.channel == channel
    ]


async def refresh(
    served: Served, channel: str, where: Callable[[SharedPollRefreshCall], bool]
) -> SharedPollRefreshCall:
    """The first replied shared_poll_refresh request of ``channel`` matching ``where``."""
    request: SharedPollRefreshCall = await served.recorder.wait_for(
        "shared_poll_refresh", lambda r: r.channel == channel and where(r)
    )
    return request


# -- map_publish -----------------------------------------------------------------------------


async def test_map_publish_is_rewritten_and_delivered_to_subscribers(served: Served) -> None:
    served.needs("map_publish")
    channel = unique("map:room-")
    async with connected(served, "alice") as alice, connected(served, "bob") as bob:
        assert state(await bob.subscribe_map(channel)) == {}
        await accepted(alice.map_publish(channel, "k1", {"text": "hi"}))

        publication = await bob.publication(channel)
        assert publication["key"] == "alice/k1"  # the key our handler chose
        assert publication["data"] == {"text": "hi", "checked": True, "by": "alice"}
        assert publication["tags"] == {"by": "alice"}
        assert publication["info"]["user"] == "alice"

        request: MapPublishCall = await served.recorder.wait_for(
            "map_publish", lambda r: r.channel == channel
        )
        assert (request.user, request.client, request.key) == ("alice", alice.client_id, "k1")
        assert request.json() == {"text": "hi"}
        assert (request.transport, request.protocol) == ("websocket", "json")
        assert request.metadata[FORWARDED_HEADER] == "session-42"
        for key, value in STATIC_METADATA.items():
            assert request.metadata[key] == value

        # The map keeps the entry as the handler rewrote it.
        async with connected(served, "carol") as carol:
            assert state(await carol.subscribe_map(channel)) == {
                "alice/k1": {"text": "hi", "checked": True, "by": "alice"}
            }


@pytest.mark.parametrize(
    ("key", "data", "code", "message"),
    [
        ("k1", {"no": "text"}, 400, "a publication needs a text"),
        ("k1", {"text": "buy spam"}, 451, "spam"),
        ("deny-k1", {"text": "hi"}, 403, "key not allowed"),
    ],
)
async def test_map_publish_refused(
    served: Served, key: str, data: Any, code: int, message: str
) -> None:
    served.needs("map_publish")
    channel = unique("map:room-")
    async with connected(served, "dave") as dave:
        await dave.subscribe_map(channel)
        with pytest.raises(ReplyError) as refused:
            await dave.map_publish(channel, key, data)
        assert (refused.value.code, refused.value.message) == (code, message)
        assert not refused.value.temporary

        # Nothing was published: the next publication the subscriber sees is a later one.
        await accepted(dave.map_publish(channel, "later", {"text": "ok"}))
        assert (await dave.publication(channel))["key"] == "dave/later"
        async with connected(served, "carol") as carol:
            assert list(state(await carol.subscribe_map(channel))) == ["dave/later"]


async def test_map_publish_refused_with_disconnect(served: Served) -> None:
    served.needs("map_publish")
    async with connected(served, "erin") as erin:
        with pytest.raises(Disconnected) as gone:
            await erin.map_publish(unique("map:room-"), "kick-me", {"text": "hi"})
        assert (gone.value.code, gone.value.reason) == (4503, "kicked from the map")


# -- map_remove ------------------------------------------------------------------------------


async def test_map_remove_is_proxied_with_the_key(served: Served) -> None:
    served.needs("map_publish", "map_remove")
    channel = unique("map:room-")
    async with connected(served, "frank") as frank, connected(served, "bob") as bob:
        await bob.subscribe_map(channel)
        for key in ("k1", "keep-k2"):
            await accepted(frank.map_publish(channel, key, {"text": key}))
            assert (await bob.publication(channel))["key"] == f"frank/{key}"

        await accepted(frank.map_remove(channel, "k1"))
        removal = await bob.publication(channel)
        assert (removal["key"], removal.get("removed")) == ("frank/k1", True)
        request: MapRemoveCall = await served.recorder.wait_for(
            "map_remove", lambda r: r.channel == channel
        )
        assert (request.user, request.client, request.key) == ("frank", frank.client_id, "k1")
        assert request.metadata[FORWARDED_HEADER] == "session-42"

        with pytest.raises(ReplyError) as refused:
            await frank.map_remove(channel, "keep-k2")
        assert (refused.value.code, refused.value.message) == (403, "this key stays")
        async with connected(served, "carol") as carol:
            assert list(state(await carol.subscribe_map(channel))) == ["frank/keep-k2"]
        assert bob.pending_publications(channel) == []


# -- shared_poll_refresh ---------------------------------------------------------------------


async def test_shared_poll_refresh_feeds_the_tracking_client(served: Served) -> None:
    served.needs("shared_poll_refresh")
    channel = unique("poll:votes-")
    served.documents.put(channel, "a", {"votes": 1})
    async with connected(served, "gina") as gina:
        await gina.subscribe_shared_poll(channel)
        signature = track_signature(SECRET, channel, "gina", ["a", "b"])
        tracked = await gina.track(channel, {"a": 0, "b": 0}, signature)
        assert tracked["expires"] and 0 < tracked["ttl"] <= 60

        # Centrifugo asks the backend about the new keys at once; what it returns reaches
        # the client. "b" has no document: asked about, nothing delivered.
        publication = await gina.publication(channel)
        assert (publication["key"], publication["version"]) == ("a", 1)
        assert publication["data"] == {"votes": 1}
        first = await refresh(served, channel, lambda r: ("a", 0) in polled(r))
        assert returned(first) == [("a", 1)]
        await refresh(served, channel, lambda r: ("b", 0) in polled(r))

        # Then it polls every interval with the versions it holds: a new version goes out.
        served.documents.put(channel, "a", {"votes": 2})
        publication = await gina.publication(channel)
        assert (publication["key"], publication["version"]) == ("a", 2)
        assert publication["data"] == {"votes": 2}
        request = await refresh(served, channel, lambda r: ("a", 2) in returned(r))
        assert ("a", 1) in polled(request)

        # A removed document removes the key from the client's view.
        served.documents.remove(channel, "a")
        removal = await gina.publication(channel)
        assert (removal["key"], removal.get("removed")) == ("a", True)
        assert gina.pending_publications(channel) == []


async def test_a_failing_shared_poll_refresh_is_polled_again(served: Served) -> None:
    served.needs("shared_poll_refresh")
    channel = unique("poll:flaky-")  # the handler raises on the first refresh
    served.documents.put(channel, "a", {"votes": 7})
    async with connected(served, "hank") as hank:
        await hank.subscribe_shared_poll(channel)
        await hank.track(channel, {"a": 0}, track_signature(SECRET, channel, "hank", ["a"]))
        publication = await hank.publication(channel)
        assert (publication["key"], publication["version"], publication["data"]) == (
            "a",
            1,
            {"votes": 7},
        )
        # The first refresh got error 100 from the router; the publication came from a
        # later one.
        first, *later = refreshes(served, channel)
        assert first.reply == proxy.SharedPollRefreshResponse(
            error=proxy.Error(code=100, message="internal server error", temporary=True)
        )
        assert ("a", 1) in [item for r in later for item in returned(r)]


async def test_tracking_needs_a_valid_signature(served: Served) -> None:
    served.needs("shared_poll_refresh")
    channel = unique("poll:votes-")
    async with connected(served, "ivy") as ivy:
        await ivy.subscribe_shared_poll(channel)
        for signature in (
            track_signature("not-the-secret", channel, "ivy", ["a"]),
            track_signature(SECRET, channel, "someone-else", ["a"]),
            track_signature(SECRET, channel, "ivy", ["b"]),
        ):
            with pytest.raises(ReplyError) as refused:
                await ivy.track(channel, {"a": 0}, signature)
            assert refused.value.code == 103  # permission denied
        signature = track_signature(SECRET, channel, "ivy", ["a"])
        assert (await ivy.track(channel, {"a": 0}, signature))["expires"]
