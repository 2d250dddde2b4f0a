"""What only RoadRunner has, end to end: Centrifugo 6.9.1 -> RoadRunner (scripts/install-
roadrunner) -> Python workers -> a centrifuge-python client.

The proxy events themselves run in tests/test_e2e_proxy.py over every backend, RoadRunner's
included. Here: the API called from inside a worker through RoadRunner's RPC, a worker killed
under load, and the workers leaving when RoadRunner stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from centrifuge import Client, ClientEventHandler, DisconnectedContext, ReplyError

from centrifugo_types import UnsupportedMethodError
from centrifugo_types import api as api_proto
from centrifugo_types.roadrunner import RoadRunnerApiClient

from .centrifugo import Centrifugo, merge, proxy_config, run_centrifugo
from .e2e_backend import Backend, Recorder, e2e_router, roadrunner_backend

pytestmark = pytest.mark.e2e

WAIT = 5.0


@dataclass
class Stack:
    centrifugo: Centrifugo
    backend: Backend
    roadrunner_pid: int


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rpartition(")")[2].split()[1]) == pid:
                    children.add(int(entry.name))
    return children


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with roadrunner_backend(e2e_router(Recorder()), workers=2) as backend:
        config = merge(proxy_config(backend.proxy), backend.centrifugo)
        workdir = tmp_path_factory.mktemp("centrifugo-rr")
        with run_centrifugo(workdir, config, grpc_api_port=backend.grpc_api_port) as centrifugo:
            assert backend.roadrunner is not None
            yield Stack(centrifugo, backend, backend.roadrunner.process.pid)


@contextlib.asynccontextmanager
async def connected(stack: Stack, user: str) -> AsyncIterator[Client]:
    client = Client(stack.centrifugo.ws_url, data={"user": user}, proxy=None)
    await client.connect()
    try:
        await client.ready(timeout=WAIT)
        yield client
    finally:
        await client.disconnect()


async def test_the_api_from_a_worker_through_roadrunners_rpc(stack: Stack) -> None:
    channel = f"api-{uuid.uuid4().hex[:8]}"
    async with connected(stack, "ann") as client:
        first = await client.rpc("api", {"channel": channel, "n": 1})
        second = await client.rpc("api", {"channel": channel, "n": 2})
    assert first.data["history"] == [{"n": 1}]
    assert second.data["history"] == [{"n": 1}, {"n": 2}]
    assert second.data["offset"] == first.data["offset"] + 1


async def test_a_handler_printing_to_stdout_does_not_break_the_worker(stack: Stack) -> None:
    assert stack.backend.roadrunner is not None
    async with connected(stack, "pat") as client:
        for _ in range(3):  # both workers, likely
            assert (await client.rpc("print", None)).data == "printed"
        assert (await client.rpc("echo", "after")).data["echo"] == "after"
    # what it printed went to stderr, which RoadRunner logs
    assert "a stray print from a handler" in stack.backend.roadrunner.log()
    assert "and a write to file descriptor 1" in stack.backend.roadrunner.log()


class Disconnects(ClientEventHandler):
    def __init__(self) -> None:
        self.disconnected: asyncio.Queue[DisconnectedContext] = asyncio.Queue()

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        await self.disconnected.put(ctx)


async def test_the_api_client_over_rpc_disconnects_and_lacks_map_methods(stack: Stack) -> None:
    """The PHP bridge's ``disconnect()`` sent ``centrifuge.Unsubscribe``: ours disconnects."""
    assert stack.backend.roadrunner is not None
    user = f"dan-{uuid.uuid4().hex[:8]}"
    events = Disconnects()
    client = Client(stack.centrifugo.ws_url, data={"user": user}, events=events, proxy=None)
    await client.connect()
    try:
        await client.ready(timeout=WAIT)
        async with RoadRunnerApiClient(stack.backend.roadrunner.rpc_address) as api:
            await api.disconnect(
                user=user, disconnect=api_proto.Disconnect(code=4509, reason="bye")
            )
            ctx = await asyncio.wait_for(events.disconnected.get(), WAIT)
            assert (ctx.code, ctx.reason) == (4509, "bye")
            with pytest.raises(UnsupportedMethodError):
                await api.map_stats(channel="any")
    finally:
        await client.disconnect()


async def test_a_worker_killed_under_load_is_replaced_and_no_call_hangs(stack: Stack) -> None:
    workers = _children(stack.roadrunner_pid)
    assert len(workers) == 2
    async with connected(stack, "kim") as client:
        outcomes: list[str] = []

        async def call() -> None:
            try:
                await asyncio.wait_for(client.rpc("slow", None), WAIT)
                outcomes.append("ok")
            except ReplyError as error:  # the calls on the killed worker
                outcomes.append(f"error {error.code}")

        async def load() -> None:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                await asyncio.gather(*(call() for _ in range(10)))

        loading = asyncio.ensure_future(load())
        await asyncio.sleep(0.4)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        await asyncio.wait_for(loading, 2 * WAIT)  # a TimeoutError here: a call hung

        assert outcomes.count("ok") > 0
        assert set(outcomes) <= {"ok", "error 100"}, set(outcomes)
        # RoadRunner replaced the worker: two again, one of them new; every call succeeds
        for _ in range(int(WAIT / 0.1)):
            now = _children(stack.roadrunner_pid)
            if len(now) == 2 and victim not in now:
                break
            await asyncio.sleep(0.1)
        assert len(now) == 2 and victim not in now, (workers, now)
        results = await asyncio.gather(*(client.rpc("slow", None) for _ in range(20)))
        assert all(result.data == "slow" for result in results)


async def test_the_workers_leave_when_roadrunner_stops(tmp_path: Path) -> None:
    async with roadrunner_backend(e2e_router(Recorder()), workers=2) as backend:
        assert backend.roadrunner is not None
        process = backend.roadrunner.process
        workers = _children(process.pid)
        assert len(workers) == 2
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 10)
        elapsed = time.monotonic() - started
        log = backend.roadrunner.log()
    assert elapsed < 5.0, log  # RoadRunner kills workers still there after 10 s
    assert log.count("stop frame received") == 2, log
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
