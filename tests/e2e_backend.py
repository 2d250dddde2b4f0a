"""The backend of the proxy e2e suite: one router whose behaviour the client's data picks, and
the transports it is served over.

The suite's fixture ``proxied`` yields "a Centrifugo whose proxies point at this router served
over transport T". A transport is an entry of :data:`BACKENDS`: an async context manager that
serves a router and says how Centrifugo reaches it (the proxy section of each event). Adding a
transport (HTTP, binary encoding, ...) is adding an entry; the tests stay the same.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from centrifugo_types import DisconnectReply, ErrorReply, Router, grpc, grpcio, http, proxy
from centrifugo_types.calls import (
    CALL_CLASSES,
    AnyCall,
    ConnectCall,
    MapPublishCall,
    MapRemoveCall,
    PublishCall,
    RefreshCall,
    RpcCall,
    SharedPollRefreshCall,
    SubRefreshCall,
    SubscribeBidirectionalCall,
    SubscribeCall,
    SubscribeUnidirectionalCall,
)
from centrifugo_types.router import CallNext
from examples.roadrunner import RoadRunner, roadrunner_binary, run_roadrunner

from .centrifugo import free_port

HANDLER_TIMEOUT = 0.5
"""The router's timeout in the suite: below Centrifugo's proxy timeout (1 s)."""
EXPIRE_IN = 2
"""Seconds until a connection or subscription that asked to expire does (refresh tests)."""
STATIC_METADATA = {"x-static": "e2e"}
"""Metadata every proxy call carries (``grpc.static_metadata`` / ``http.static_headers``)."""
FORWARDED_HEADER = "x-app-session"
"""A WebSocket handshake header Centrifugo forwards to the backend (``http_headers``)."""


@dataclass
class Backend:
    """A router served over one transport."""

    transport: str
    proxy: Callable[[str], dict[str, Any]]
    """The Centrifugo proxy section of an event (empty: the transport cannot serve it)."""
    binary: bool = False
    """Whether the proxies use ``binary_encoding`` (payloads in base64 ``b64*`` fields)."""
    records: Path | None = None
    """Where a router in other processes records its requests (:class:`FileRecorder`), for
    :func:`replay` into this process's recorder; ``None``: the router runs here."""
    grpc_api_port: int | None = None
    """The port Centrifugo's gRPC API must listen on (for a backend that calls it)."""
    centrifugo: dict[str, Any] = field(default_factory=dict)
    """More Centrifugo config the backend needs."""
    roadrunner: RoadRunner | None = None
    """The RoadRunner process of the ``roadrunner`` backend."""

    @property
    def streams(self) -> bool:
        """Whether the transport serves the subscribe streams (gRPC only)."""
        return bool(self.proxy("subscribe_stream"))


def _common(endpoint: str) -> dict[str, Any]:
    return {"endpoint": endpoint, "timeout": "1s", "http_headers": [FORWARDED_HEADER]}


def grpc_backend(
    server_class: type[grpc.ProxyServer | grpcio.ProxyServer], transport: str
) -> Callable[[Router], contextlib.AbstractAsyncContextManager[Backend]]:
    """The router served by ``server_class`` (grpclib's or grpcio's), Centrifugo's
    ``grpc://`` proxies pointing at it."""

    @contextlib.asynccontextmanager
    async def backend(router: Router) -> AsyncIterator[Backend]:
        async with server_class(router, port=0, shutdown_timeout=1) as server:
            endpoint = server.url

            def section(event: str) -> dict[str, Any]:
                return {**_common(endpoint), "grpc": {"static_metadata": STATIC_METADATA}}

            yield Backend(transport, section)

    return backend


def http_backend(
    *, binary: bool
) -> Callable[[Router], contextlib.AbstractAsyncContextManager[Backend]]:
    """The router as an ASGI app under uvicorn, Centrifugo's ``http://`` proxies pointing at
    its paths; ``binary``: with ``binary_encoding`` on every proxy."""
    transport = "http-binary" if binary else "http"

    @contextlib.asynccontextmanager
    async def backend(router: Router) -> AsyncIterator[Backend]:
        async with http.ProxyServer(router, port=0, shutdown_timeout=1) as server:
            app = server.app

            def section(event: str) -> dict[str, Any]:
                if event not in app.paths:  # subscribe streams: gRPC only
                    return {}
                endpoint = server.url + app.paths[event]
                extra = {"binary_encoding": True} if binary else {}
                return {**_common(endpoint), "http": {"static_headers": STATIC_METADATA}, **extra}

            yield Backend(transport, section, binary=binary)

    return backend


ROADRUNNER_APP = "tests.roadrunner_app:router"
"""The suite's router as RoadRunner's workers serve it (``e2e_router`` and a few rpc methods
that only make sense in a worker)."""
RECORD_ENV = "CENTRIFUGO_TYPES_E2E_RECORD"
"""The file the workers record their requests to (see :class:`FileRecorder`)."""


def require_roadrunner() -> None:
    """Skip the test when no RoadRunner binary can be had (``RR_BIN`` unset and
    scripts/install-roadrunner failing, e.g. without Go); scripts/test always builds one."""
    try:
        binary = roadrunner_binary()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no RoadRunner binary (scripts/install-roadrunner): {exc}")
    if not binary.is_file():
        pytest.skip(f"no RoadRunner binary at {binary} (RR_BIN)")


@contextlib.asynccontextmanager
async def roadrunner_backend(router: Router, *, workers: int = 2) -> AsyncIterator[Backend]:
    """RoadRunner (scripts/install-roadrunner) with Python workers serving the suite's router;
    Centrifugo's ``grpc://`` proxies point at RoadRunner's proxy endpoint.

    ``router`` (this process's) does not serve: each worker builds the same router
    (:data:`ROADRUNNER_APP`) and records its requests to a file that the suite replays into
    its recorder.
    """
    require_roadrunner()
    with tempfile.TemporaryDirectory(prefix="roadrunner-") as tmp:
        records = Path(tmp) / "records.jsonl"
        records.touch()
        grpc_api_port = free_port()
        with run_roadrunner(
            Path(tmp),
            ROADRUNNER_APP,
            grpc_api_port=grpc_api_port,
            workers=workers,
            env={RECORD_ENV: str(records)},
        ) as roadrunner:

            def section(event: str) -> dict[str, Any]:
                if event == "subscribe_stream":  # the plugin has no subscribe streams
                    return {}
                endpoint = roadrunner.proxy_endpoint
                return {**_common(endpoint), "grpc": {"static_metadata": STATIC_METADATA}}

            yield Backend(
                "roadrunner",
                section,
                records=records,
                grpc_api_port=grpc_api_port,
                # RoadRunner calls Centrifugo's gRPC API without a key
                centrifugo={"grpc_api": {"key": ""}},
                roadrunner=roadrunner,
            )


BACKENDS: dict[str, Callable[[Router], contextlib.AbstractAsyncContextManager[Backend]]] = {
    "grpc": grpc_backend(grpc.ProxyServer, "grpc"),
    "grpcio": grpc_backend(grpcio.ProxyServer, "grpcio"),
    "http": http_backend(binary=False),
    "http-binary": http_backend(binary=True),
    "roadrunner": roadrunner_backend,
}
"""Every transport the e2e suite runs over."""

IN_PROCESS_BACKENDS = {name: start for name, start in BACKENDS.items() if name != "roadrunner"}
"""The transports that serve the router in this process, so that the router's recorder sees the
calls: the suites that read it directly (or need events RoadRunner's plugin does not forward:
map, shared poll) run over these; RoadRunner's workers report through test_e2e_proxy.py."""


@dataclass
class Recorder:
    """Every request the router saw, in order (an outermost ``*`` interceptor)."""

    requests: list[AnyCall] = field(default_factory=list)

    async def __call__(self, request: AnyCall, call_next: CallNext) -> None:
        try:
            await call_next(request)
        finally:
            self.requests.append(request)

    async def wait_for(
        self,
        event: str,
        where: Callable[[Any], bool] = lambda request: True,
        *,
        within: float = 5.0,
    ) -> Any:
        """The first replied request of ``event`` matching ``where``, waiting for it."""
        deadline = time.monotonic() + within
        while True:
            for request in self.requests:
                if request.event.name == event and request.replied and where(request):
                    return request
            if time.monotonic() > deadline:
                seen = [(r.event.name, r.message) for r in self.requests[-10:]]
                raise AssertionError(f"no {event} request matched in {within}s; last: {seen}")
            await asyncio.sleep(0.02)

    def count(self, event: str, where: Callable[[Any], bool] = lambda request: True) -> int:
        return sum(1 for r in self.requests if r.event.name == event and where(r))


class FileRecorder:
    """An outermost ``*`` interceptor appending every request and its reply to a file, one
    JSON line each (for a router in another process: a RoadRunner worker)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def __call__(self, request: AnyCall, call_next: CallNext) -> None:
        try:
            await call_next(request)
        finally:
            reply = request.reply
            line = json.dumps(
                {
                    "event": request.event.name,
                    "message": base64.b64encode(bytes(request.message)).decode(),
                    "metadata": list(request.metadata.items()),
                    "reply": None if reply is None else base64.b64encode(bytes(reply)).decode(),
                }
            )
            with self.path.open("a") as file:
                file.write(line + "\n")


@contextlib.asynccontextmanager
async def replay(path: Path, recorder: Recorder) -> AsyncIterator[None]:
    """While inside, add what a :class:`FileRecorder` writes to ``path`` to ``recorder``."""

    def load(line: str) -> AnyCall:
        record = json.loads(line)
        cls = CALL_CLASSES[record["event"]]
        message = cls.event.request_type.parse(base64.b64decode(record["message"]))
        request = cls(message, [tuple(pair) for pair in record["metadata"]])
        if record["reply"] is not None:
            request._set_reply(cls.event.response_type.parse(base64.b64decode(record["reply"])))
        return request

    async def follow() -> None:
        with path.open() as file:
            pending = ""
            while True:
                pending += file.read()
                *lines, pending = pending.split("\n")
                recorder.requests.extend(load(line) for line in lines)
                await asyncio.sleep(0.02)

    task = asyncio.ensure_future(follow())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Documents:
    """What the shared-poll handler serves: per channel and key, a version and its data.

    Tests change a document (``put``, ``remove``) and watch the change reach the clients that
    track the key through Centrifugo's next poll.
    """

    entries: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    """``(channel, key) -> (version, data)``; data ``None``: removed at that version."""

    def put(self, channel: str, key: str, data: Any) -> int:
        """Store a new version of a document; its version."""
        version = self.entries.get((channel, key), (0, None))[0] + 1
        self.entries[(channel, key)] = (version, data)
        return version

    def remove(self, channel: str, key: str) -> int:
        """Remove a document (a new version without data); its version."""
        return self.put(channel, key, None)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _fail(how: str) -> None:
    """Misbehave as asked: raise, return without replying, or never reply."""
    if how == "raise":
        raise RuntimeError("the handler broke")
    if how == "hang":
        await asyncio.sleep(3600)


def e2e_router(recorder: Recorder | FileRecorder, documents: Documents | None = None) -> Router:
    """The suite's router. What it does depends on what the client sends:

    - connect data ``{"user": U}`` accepts as U, ``{"expire": true}`` too, with an
      ``expire_at`` soon; ``{"reject": "error"|"disconnect"}`` refuses; ``{"fail": F}``
      misbehaves (``raise``, ``noreply``, ``hang``);
    - channels ``deny-*`` are refused, ``kick-*`` disconnect, ``expiring-*`` expire soon
      (sub_refresh extends them), others are allowed with ``{"welcome": channel}``;
    - publications need a string ``text``; ``spam`` is refused; accepted ones are rewritten to
      carry ``{"checked": true, "by": user}``;
    - rpc methods: ``echo``, ``whoami`` (metadata), ``refuse``, ``raise``, ``noreply``,
      ``hang``; others get "method not found";
    - namespace ``stream``: three publications; ``bidi``: every client publication echoed;
    - map publications follow the rules of publications, keys ``deny-*`` are refused and
      ``kick-*`` disconnect; accepted ones are stored under ``"<user>/<key>"`` with the same
      rewritten data and a tag ``by``; removals of keys ``keep-*`` are refused, others remove
      ``"<user>/<key>"``;
    - shared-poll refreshes answer from ``documents``: the keys whose version is newer than
      the one Centrifugo holds (removed documents as removals); channels ``poll:flaky-*``
      fail their first refresh.
    """
    documents = Documents() if documents is None else documents
    router = Router(timeout=HANDLER_TIMEOUT)
    router.add_interceptor(recorder)

    @router.connect
    async def connect(request: ConnectCall) -> None:
        data = request.json() or {}
        if "fail" in data:
            await _fail(data["fail"])
            return
        if data.get("reject") == "error":
            request.error(403, "forbidden")
        elif data.get("reject") == "disconnect":
            request.disconnect(4501, "banned")
        else:
            expire_at = int(time.time()) + EXPIRE_IN if data.get("expire") else 0
            request.respond(
                proxy.ConnectResult(
                    user=data.get("user", "anonymous"),
                    expire_at=expire_at,
                    data=_json({"hello": data.get("user", "anonymous")}),
                )
            )

    @router.refresh
    async def refresh(request: RefreshCall) -> None:
        request.respond(proxy.RefreshResult(expire_at=int(time.time()) + EXPIRE_IN))

    @router.subscribe
    async def subscribe(request: SubscribeCall) -> None:
        channel = request.channel
        if channel.startswith("deny-"):
            raise ErrorReply(403, "permission denied")
        if channel.startswith("kick-"):
            raise DisconnectReply(4502, "kicked")
        expire_at = int(time.time()) + EXPIRE_IN if channel.startswith("expiring-") else 0
        request.respond(
            proxy.SubscribeResult(expire_at=expire_at, data=_json({"welcome": channel}))
        )

    @router.sub_refresh
    async def sub_refresh(request: SubRefreshCall) -> None:
        request.respond(proxy.SubRefreshResult(expire_at=int(time.time()) + EXPIRE_IN))

    def checked(request: PublishCall | MapPublishCall) -> bytes:
        """The publication's data rewritten, or a ErrorReply refusing it."""
        payload = request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            raise ErrorReply(400, "a publication needs a text")
        if "spam" in payload["text"]:
            raise ErrorReply(451, "spam")
        return _json({**payload, "checked": True, "by": request.user})

    @router.publish
    async def publish(request: PublishCall) -> None:
        request.respond(proxy.PublishResult(data=checked(request)))

    @router.map_publish
    async def map_publish(request: MapPublishCall) -> None:
        if request.key.startswith("kick-"):
            raise DisconnectReply(4503, "kicked from the map")
        if request.key.startswith("deny-"):
            raise ErrorReply(403, "key not allowed")
        request.respond(
            proxy.MapPublishResult(
                key=f"{request.user}/{request.key}",
                data=checked(request),
                tags={"by": request.user},
            )
        )

    @router.map_remove
    async def map_remove(request: MapRemoveCall) -> None:
        if request.key.startswith("keep-"):
            raise ErrorReply(403, "this key stays")
        request.respond(proxy.MapRemoveResult(key=f"{request.user}/{request.key}"))

    flaky_failed: set[str] = set()

    @router.shared_poll_refresh
    async def shared_poll_refresh(request: SharedPollRefreshCall) -> None:
        if request.channel.startswith("poll:flaky-") and request.channel not in flaky_failed:
            flaky_failed.add(request.channel)
            raise RuntimeError("the backend is not ready yet")
        items = []
        for item in request.items:
            version, data = documents.entries.get((request.channel, item.key), (0, None))
            if version <= item.version:
                continue  # nothing newer than what Centrifugo has
            if data is None:
                items.append(
                    proxy.SharedPollRefreshResultItem(key=item.key, version=version, removed=True)
                )
            else:
                items.append(
                    proxy.SharedPollRefreshResultItem(
                        key=item.key, version=version, data=_json(data)
                    )
                )
        request.respond(proxy.SharedPollRefreshResult(items=items))

    @router.rpc("echo")
    async def echo(request: RpcCall) -> None:
        request.respond(proxy.RpcResult(data=_json({"echo": request.json(), "by": request.user})))

    @router.rpc("whoami")
    async def whoami(request: RpcCall) -> None:
        metadata = {key: request.metadata[key] for key in request.metadata}
        request.respond(proxy.RpcResult(data=_json({"user": request.user, "meta": metadata})))

    @router.rpc("refuse")
    async def refuse(request: RpcCall) -> None:
        request.error(422, "refused", temporary=False)

    for how in ("raise", "noreply", "hang"):

        async def misbehave(request: RpcCall, how: str = how) -> None:
            await _fail(how)

        router.rpc(how)(misbehave)

    @router.subscribe_unidirectional
    async def stream(request: SubscribeUnidirectionalCall) -> AsyncIterator[proxy.Publication]:
        request.respond(proxy.SubscribeResult(data=_json({"stream": request.channel})))
        for n in range(3):
            yield proxy.Publication(data=_json({"n": n}), tags={"n": str(n)})
        await asyncio.sleep(3600)  # keep the subscription open until the client leaves

    @router.subscribe_bidirectional
    async def bidi(request: SubscribeBidirectionalCall) -> None:
        request.respond()
        async for publication in request:
            echo = {"echo": json.loads(publication.data)}
            await request.send(proxy.Publication(data=_json(echo)))

    return router
