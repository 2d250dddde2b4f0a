"""A storm of misbehaving handlers through our real servers: every call gets exactly one reply.

2,000 rpc calls (1,000 per transport) to ``tests.misbehaving_backend`` served by
``centrifugo-types serve`` over gRPC and over HTTP, as Centrifugo sends them (a 5 s deadline,
50 at once), their handlers mixed at random: replying, refusing, raising, cancelled from
inside (awaiting a task something else cancels), swallowing their cancellation, sleeping past
the deadline, never replying, replying twice.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from grpclib.client import Channel

from centrifugo_types import json, proxy

from .cli_server import cli_server

BACKEND = "tests.misbehaving_backend:router"
CALLS = 1000  # per transport
IN_FLIGHT = 50
DEADLINE = 5.0
"""Centrifugo's proxy timeout here (its default is 1 s): the router's own is 0.3 s, and the
margin keeps a loaded test machine from turning slowness into unanswered calls."""

INTERNAL = proxy.Error(code=100, message="internal server error", temporary=True)
EXPECTED: dict[str, Callable[[bytes], proxy.RpcResponse]] = {
    "echo": lambda data: proxy.RpcResponse(result=proxy.RpcResult(data=data)),
    "refuse": lambda _: proxy.RpcResponse(error=proxy.Error(code=4000, message="refused")),
    "raise": lambda _: proxy.RpcResponse(error=INTERNAL),
    "cancel": lambda _: proxy.RpcResponse(error=INTERNAL),
    "swallow": lambda _: proxy.RpcResponse(error=INTERNAL),
    "sleep": lambda _: proxy.RpcResponse(error=INTERNAL),
    "never": lambda _: proxy.RpcResponse(error=INTERNAL),
    "twice": lambda _: proxy.RpcResponse(result=proxy.RpcResult(data=b'"first"')),
}
Call = Callable[[proxy.RpcRequest], Awaitable[proxy.RpcResponse]]


async def _storm(call: Call) -> tuple[Counter[str], dict[str, list[str]]]:
    rng = random.Random(15)
    methods = [rng.choice(sorted(EXPECTED)) for _ in range(CALLS)]
    gate = asyncio.Semaphore(IN_FLIGHT)
    failures: dict[str, list[str]] = {}

    async def one(n: int, method: str) -> None:
        data = b'{"n":%d}' % n
        async with gate:
            try:
                reply = await call(proxy.RpcRequest(method=method, data=data, user="u"))
            except Exception as exc:
                failures.setdefault(method, []).append(f"no reply: {type(exc).__name__} {exc}")
                return
        if reply != EXPECTED[method](data):
            failures.setdefault(method, []).append(f"wrong reply: {reply!r}")

    await asyncio.gather(*(one(n, m) for n, m in enumerate(methods)))
    return Counter(methods), failures


async def _grpc_storm() -> tuple[Counter[str], dict[str, list[str]]]:
    with cli_server(BACKEND) as server:
        channel = Channel("127.0.0.1", server.port)
        try:
            stub = proxy.CentrifugoProxyStub(channel, timeout=DEADLINE)
            return await _storm(stub.rpc)
        finally:
            channel.close()


async def _http_storm() -> tuple[Counter[str], dict[str, list[str]]]:
    with cli_server(BACKEND, "--http") as server:
        url = f"http://127.0.0.1:{server.port}/centrifugo/rpc"
        limits = httpx.Limits(max_connections=IN_FLIGHT)
        async with httpx.AsyncClient(timeout=DEADLINE, limits=limits) as http:

            async def call(request: proxy.RpcRequest) -> proxy.RpcResponse:
                reply = await http.post(
                    url, content=json.dumps(request), headers={"content-type": "application/json"}
                )
                if reply.status_code != 200:
                    raise RuntimeError(f"HTTP {reply.status_code}")
                return json.loads(proxy.RpcResponse, reply.content)

            return await _storm(call)


STORMS: dict[str, Callable[[], Any]] = {"grpc": _grpc_storm, "http": _http_storm}


@pytest.mark.parametrize("transport", sorted(STORMS))
async def test_every_call_of_a_misbehaving_storm_gets_its_reply(transport: str) -> None:
    counts, failures = await STORMS[transport]()
    assert set(counts) == set(EXPECTED)  # every behaviour was in the storm
    assert not failures, {m: (len(f), f[:3]) for m, f in failures.items()}
