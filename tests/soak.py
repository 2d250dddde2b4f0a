"""The soak: real Centrifugo, several backend processes, many real clients, faults; nothing lost.

    python -m tests.soak --duration 60            (scripts/soak; --help for the knobs)
    python -m tests.soak --requests 100000 --transport grpc --transport http
    python -m tests.soak --requests 100000 --transport roadrunner

For each proxy transport: a Centrifugo v6.9.1 whose proxies point at ``--backends`` processes
of ``centrifugo-types serve tests.soak_backend:router --reuse-port`` (one port), or, for
``roadrunner``, at RoadRunner's centrifuge plugin running ``--backends`` workers of
``centrifugo-types worker tests.soak_backend:router`` (:class:`RoadRunnerBackends`), and
clients of both SDKs: centrifuge-python (in this process) and centrifuge-js (in Node processes,
driven by tests/js/driver.mjs). Each client connects (connect proxy; its session expires every few
seconds: refresh proxy), subscribes to its room (subscribe proxy), then loops over rpc
(``echo``), publish into its room (publish proxy; the publication must come back), subscribe to
a fresh channel, and reconnect.

While the load runs, faults come one after another: a backend process SIGKILLed and
restarted, a slow period (rpc handlers sleep past the router's timeout), Centrifugo restarted,
a backend process's SIGTERM drain (and restart). Over RoadRunner the killed and the drained
process is a worker, and RoadRunner starts its replacement. Each fault opens a window (its
duration plus ``GRACE``) in which a client operation may fail.

At the end every operation is accounted for, per event: what the clients attempted, what they
got back (a result, or an error), what the backends logged (tests/soak_backend.py), and:

- lost: an operation that timed out on the client (nothing answered it), an error outside
  every fault window, a result the backends never gave, a reply the backends gave that never
  reached its client outside a fault window, a publication accepted but never delivered to
  its subscriber outside a fault window, a session that expired (its refresh failed). The
  soak fails unless this is zero;
- apart: calls Centrifugo itself timed out (its log says so: on an overloaded machine a reply
  can take longer than the proxy's 1 s timeout): the client was answered error 100, or its
  SDK retried; the backend's late reply is not lost, it is counted here (over RoadRunner, also
  RoadRunner answering the same deadline first: :data:`DEADLINE_ERRORS`); shown beside the
  fault whose window they fall in;
- per event: throughput and p50/p99 latency of the operations that succeeded;
- per fault: operations failed and recovery time (fault start to the last failure it caused);
- backend RSS and open file descriptors at the start and end of the load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import centrifuge

from examples.centrifugo import (
    ROOT,
    base_config,
    centrifugo_binary,
    free_port,
    merge,
    proxy_config,
    stop_process,
)
from examples.roadrunner import roadrunner_binary, rr_config

from .js_client import JsDriver, js_driver

TRANSPORTS = ("grpc", "http", "roadrunner")
"""``grpc``, ``http``: backend processes of ``centrifugo-types serve``; ``roadrunner``: RoadRunner's
centrifuge plugin and its pool of ``centrifugo-types worker`` processes."""
EVENTS = ("connect", "subscribe", "publish", "rpc", "refresh")
MIX = {"rpc": 0.5, "publish": 0.3, "subscribe": 0.19, "connect": 0.01}
"""How often each operation comes in a client's loop."""
EXPIRE = 2
"""Seconds a client's session lasts before Centrifugo calls the refresh proxy."""
CLIENT_TIMEOUT = 10.0
"""A client operation not answered in this many seconds is lost."""
GRACE = 6.0
"""Seconds after a fault ends in which operations may still fail (reconnect backoffs)."""
BEFORE = 0.5
"""Seconds before a fault starts from which a call may be hit (answered, but not yet sent)."""
SLOW_FOR = 3.0
"""Seconds the slow-handler fault lasts."""


def now() -> float:
    return time.time()


# -- what the clients did --------------------------------------------------------------------


@dataclass
class Op:
    event: str
    key: str
    start: float
    end: float
    ok: bool
    code: str = ""


@dataclass
class ClientLog:
    """What the clients did and saw (both SDKs together)."""

    ops: list[Op] = field(default_factory=list)
    connected: Counter[str] = field(default_factory=Counter)
    """Connections established, by client name (first connects and reconnects alike)."""
    subscribed: Counter[str] = field(default_factory=Counter)
    """Room subscriptions established, by channel (first ones and resubscribes)."""
    delivered: set[str] = field(default_factory=set)
    """Publication ids that came back to the room's subscriber."""
    disconnects: list[tuple[float, str]] = field(default_factory=list)
    connected_at: list[tuple[str, float]] = field(default_factory=list)
    """When each client (by name) connected, every time."""

    def add_js(self, result: dict[str, Any]) -> None:
        for event, key, start, end, ok, code in result["records"]:
            self.ops.append(Op(event, key, start / 1000, end / 1000, ok, str(code or "")))
        self.connected.update(result["connected"])
        self.subscribed.update(result["subscribed"])
        self.delivered.update(result["delivered"])
        self.connected_at += [(name, t / 1000) for name, t in result["connected_at"]]
        for t, code, reason in result["disconnects"]:
            self.disconnects.append((t / 1000, f"{code} {reason}"))


class _PyClientEvents(centrifuge.ClientEventHandler):
    def __init__(self, name: str, log: ClientLog) -> None:
        self.name, self.log = name, log

    async def on_connected(self, ctx: centrifuge.ConnectedContext) -> None:
        self.log.connected[self.name] += 1
        self.log.connected_at.append((self.name, now()))

    async def on_disconnected(self, ctx: centrifuge.DisconnectedContext) -> None:
        self.log.disconnects.append((now(), f"{ctx.code} {ctx.reason}"))

    async def on_connecting(self, ctx: centrifuge.ConnectingContext) -> None:
        self.log.disconnects.append((now(), f"{ctx.code} {ctx.reason}"))


class _PyRoomEvents(centrifuge.SubscriptionEventHandler):
    def __init__(self, channel: str, log: ClientLog) -> None:
        self.channel, self.log = channel, log

    async def on_subscribed(self, ctx: centrifuge.SubscribedContext) -> None:
        self.log.subscribed[self.channel] += 1

    async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
        self.log.delivered.add(ctx.pub.data["id"])


def _choose(rng: random.Random) -> str:
    return rng.choices(list(MIX), weights=list(MIX.values()))[0]


async def python_client(name: str, url: str, log: ClientLog, stop: asyncio.Event) -> None:
    """One centrifuge-python client running the soak's loop until ``stop``."""
    client = centrifuge.Client(
        url,
        events=_PyClientEvents(name, log),
        data={"user": name, "expire": EXPIRE},
        timeout=CLIENT_TIMEOUT,
        min_reconnect_delay=0.05,
        max_reconnect_delay=1.0,
        proxy=None,
    )
    rng = random.Random(name)

    async def record(event: str, key: str, action: Callable[[], Awaitable[Any]]) -> None:
        start = now()
        try:
            await action()
        except centrifuge.ReplyError as exc:
            log.ops.append(Op(event, key, start, now(), False, str(exc.code)))
        except centrifuge.CentrifugeError as exc:
            log.ops.append(Op(event, key, start, now(), False, type(exc).__name__))
        else:
            log.ops.append(Op(event, key, start, now(), True))

    async def connect() -> None:
        await client.connect()
        await client.ready()

    room_channel = f"room-{name}"
    room = client.new_subscription(room_channel, events=_PyRoomEvents(room_channel, log))

    async def subscribe_room() -> None:
        await room.subscribe()
        await room.ready()

    await record("connect", name, connect)
    await record("subscribe", room_channel, subscribe_room)
    seq = 0
    while not stop.is_set():
        seq += 1
        op_id = f"{name}-{seq}"
        op = _choose(rng)
        if op == "rpc":

            async def rpc(op_id: str = op_id) -> None:
                result = await client.rpc("echo", {"id": op_id})
                if result.data != {"id": op_id}:
                    raise centrifuge.CentrifugeError(f"wrong reply {result.data}")

            await record("rpc", op_id, rpc)
        elif op == "publish":

            async def publish(op_id: str = op_id) -> None:
                await room.publish({"id": op_id})

            await record("publish", op_id, publish)
        elif op == "subscribe":
            sub = client.new_subscription(f"s-{op_id}")

            async def subscribe(sub: centrifuge.Subscription = sub) -> None:
                await sub.subscribe()
                await sub.ready()

            await record("subscribe", sub.channel, subscribe)
            await sub.unsubscribe()
            client.remove_subscription(sub)
        else:

            async def reconnect() -> None:
                await client.disconnect()
                await connect()

            await record("connect", name, reconnect)
    await asyncio.sleep(0.5)  # the last publications' delivery
    await client.disconnect()


# -- the processes ---------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_fds(pid: int) -> tuple[int, int]:
    """Resident memory (KiB, counted page by page: smaps_rollup) and open file descriptors."""
    rss = 0
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Backends:
    """``count`` processes of ``centrifugo-types serve --reuse-port`` on one port."""

    transport: str
    count: int
    workdir: Path
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    every_pid: list[int] = field(default_factory=list)

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "centrifugo_types", "serve", "tests.soak_backend:router"]
        command += ["--port", str(self.port), "--reuse-port", "--log-level", "warning"]
        command += ["--shutdown-timeout", "5"]
        return [*command, "--http"] if self.transport == "http" else command

    def start(self, index: int | None = None) -> None:
        """Start one process (replacing process ``index``) and wait until it listens."""
        env = {**os.environ, "SOAK_DIR": str(self.workdir)}
        log = (self.workdir / "backends.log").open("ab")
        process = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=log, stderr=log)
        log.close()
        if index is None:
            self.processes.append(process)
        else:
            self.processes[index] = process
        self.every_pid.append(process.pid)
        deadline = time.monotonic() + 60
        # Listening once its log exists (it is opened at import) and the port accepts.
        while not (self.workdir / f"{process.pid}.log").exists() or not self._listening(
            process.pid
        ):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"backend did not start:\n{self.log()}")
            time.sleep(0.05)

    def _listening(self, pid: int) -> bool:
        """Whether process ``pid`` has a listening TCP socket (its inode in /proc/net/tcp)."""
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        with open("/proc/net/tcp") as tcp:
            for line in list(tcp)[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                    return True
        return False

    def log(self) -> str:
        return (self.workdir / "backends.log").read_text(errors="replace")[-4000:]

    def signal_all(self, signum: int) -> None:
        for process in self.processes:
            process.send_signal(signum)

    def start_all(self) -> None:
        for _ in range(self.count):
            self.start()

    def pids(self) -> list[int]:
        """The processes serving now."""
        return [process.pid for process in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    async def kill(self) -> str:
        """The SIGKILL fault: one process killed, restarted 1 s later."""
        process = self.processes[0]
        process.kill()
        process.wait()
        await asyncio.sleep(1.0)
        await _in_thread(lambda: self.start(0))
        return f"pid {process.pid} SIGKILLed, restarted 1 s later"

    async def drain(self) -> str:
        """The drain fault: one process's SIGTERM (it answers its calls in flight), restarted."""
        process = self.processes[-1]
        process.terminate()
        started = time.monotonic()
        code = await _in_thread(process.wait)
        took = time.monotonic() - started
        await _in_thread(lambda: self.start(len(self.processes) - 1))
        return f"pid {process.pid} SIGTERM: drained and exited ({code}) in {took:.2f} s, restarted"

    def section(self, event: str) -> dict[str, Any]:
        """Centrifugo's proxy section of ``event`` for these backends."""
        if event not in (*EVENTS, "sub_refresh"):  # sub_refresh: enabled, never called
            return {}
        if self.transport == "http":
            endpoint = f"http://127.0.0.1:{self.port}/centrifugo/{event}"
        else:
            endpoint = f"grpc://127.0.0.1:{self.port}"
        return {"endpoint": endpoint, "timeout": "1s"}


def _children(pid: int) -> list[int]:
    """The live (not zombie) child processes of ``pid``."""
    children: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                children.update(int(child) for child in f.read().split())
    live = []
    for child in sorted(children):
        with contextlib.suppress(OSError), open(f"/proc/{child}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                live.append(child)
    return live


@dataclass
class RoadRunnerBackends:
    """RoadRunner (scripts/install-roadrunner): its centrifuge plugin is the gRPC endpoint of
    every proxy, its pool runs ``count`` workers of ``centrifugo-types worker
    tests.soak_backend:router``, each serving one call at a time. RoadRunner replaces a worker
    that exits (killed or drained) by itself."""

    count: int
    workdir: Path
    max_jobs: int = 0
    """``pool.max_jobs``: RoadRunner replaces each worker after this many calls (0: never)."""
    transport: str = "roadrunner"
    proxy_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def every_pid(self) -> list[int]:
        """Every worker that served (each logged to ``<pid>.log`` from its start)."""
        pids = (path.stem for path in self.workdir.glob("*.log"))
        return sorted(int(pid) for pid in pids if pid.isdigit())

    def config(self) -> dict[str, Any]:
        config = rr_config(
            "tests.soak_backend:router",
            proxy_port=self.proxy_port,
            rpc_port=free_port(),
            grpc_api_port=free_port(),  # the soak calls no API through RoadRunner
            workers=self.count,
            env={"SOAK_DIR": str(self.workdir)},
        )
        config["server"]["command"] += " --log-level warning"
        config["logs"]["level"] = "warn"
        config["centrifuge"]["pool"]["max_jobs"] = self.max_jobs
        return config

    def start_all(self) -> None:
        path = self.workdir / ".rr.yaml"
        path.write_text(json.dumps(self.config(), indent=2))
        with (self.workdir / "roadrunner.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(roadrunner_binary()), "serve", "-c", str(path)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_workers(lambda pids: len(pids) == self.count)
        deadline = time.monotonic() + 60
        while True:  # the proxy endpoint listens once the pool is up
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.proxy_port), timeout=1).close()
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"roadrunner did not start:\n{self.log()}")
            time.sleep(0.05)

    def pids(self) -> list[int]:
        """The workers serving now (started, and the soak's router loaded: its log exists)."""
        assert self.process is not None
        return [
            pid for pid in _children(self.process.pid) if (self.workdir / f"{pid}.log").exists()
        ]

    def _wait_workers(self, done: Callable[[list[int]], bool], timeout: float = 60) -> list[int]:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not done(pids := self.pids()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"roadrunner's workers: {pids}\n{self.log()}")
            time.sleep(0.05)
        return pids

    def log(self) -> str:
        return (self.workdir / "roadrunner.log").read_text(errors="replace")[-4000:]

    def signal_all(self, signum: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=15)

    def section(self, event: str) -> dict[str, Any]:
        """Centrifugo's proxy section of ``event``: RoadRunner's endpoint."""
        if event not in (*EVENTS, "sub_refresh"):
            return {}
        return {"endpoint": f"grpc://127.0.0.1:{self.proxy_port}", "timeout": "1s"}

    async def _replaced(self, pid: int, signum: int) -> tuple[float, float, list[int]]:
        """Send ``signum`` to worker ``pid``; when it was gone, and when RoadRunner had a full
        pool again (seconds after the signal), and the new workers."""
        before = set(self.pids())
        started = time.monotonic()
        os.kill(pid, signum)
        await _in_thread(lambda: self._wait_workers(lambda pids: pid not in pids))
        gone = time.monotonic() - started
        pids = await _in_thread(lambda: self._wait_workers(lambda pids: len(pids) >= self.count))
        return gone, time.monotonic() - started, sorted(set(pids) - before)

    async def kill(self) -> str:
        """The SIGKILL fault: one worker killed; RoadRunner starts another."""
        pid = self.pids()[0]
        _, full, new = await self._replaced(pid, signal.SIGKILL)
        return (
            f"worker {pid} SIGKILLed ({self.unanswered(pid)} call(s) in flight); "
            f"RoadRunner started {new} ({full:.2f} s)"
        )

    async def drain(self) -> str:
        """The drain fault: one worker's SIGTERM (it answers its call in flight, then exits);
        RoadRunner starts another."""
        pid = self.pids()[-1]
        gone, full, new = await self._replaced(pid, signal.SIGTERM)
        how = "exited normally" if (self.workdir / f"{pid}.exit").exists() else "died"
        return (
            f"worker {pid} SIGTERM: drained and {how} in {gone:.2f} s "
            f"({self.unanswered(pid)} call(s) it was sent left unanswered); "
            f"RoadRunner started {new} ({full:.2f} s)"
        )

    def unanswered(self, pid: int) -> int:
        """Calls RoadRunner sent worker ``pid`` that it did not answer (its log says so)."""
        return sum(
            1
            for line in self.log_lines()
            if "can't communicate with the worker" in line and f'"pid": {pid},' in line
        )

    def log_lines(self) -> list[str]:
        return (self.workdir / "roadrunner.log").read_text(errors="replace").splitlines()


AnyBackends = Backends | RoadRunnerBackends


@dataclass
class Node:
    """A Centrifugo process on fixed ports, so that it can be restarted in place."""

    workdir: Path
    config: dict[str, Any]
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/connection/websocket"

    def start(self) -> None:
        config = merge(
            self.config, {"http_server": {"address": "127.0.0.1", "port": self.http_port}}
        )
        config["grpc_api"] = {"enabled": False}
        path = self.workdir / "centrifugo.json"
        path.write_text(json.dumps(config))
        with (self.workdir / "centrifugo.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(centrifugo_binary()), "--config", str(path)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                log_text = (self.workdir / "centrifugo.log").read_text()[-4000:]
                raise RuntimeError(f"centrifugo did not start:\n{log_text}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=1):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- faults ----------------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    start: float
    end: float = 0.0
    detail: str = ""

    def covers(self, t: float) -> bool:
        """Whether ``t`` is in the fault's window: from ``BEFORE`` its start (calls in flight
        when it hit) to ``GRACE`` after its end."""
        return self.start - BEFORE <= t <= self.end + GRACE


async def _in_thread(function: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(function)


async def kill_backend(backends: AnyBackends, node: Node) -> str:
    return await backends.kill()


async def slow_handler(backends: AnyBackends, node: Node) -> str:
    backends.signal_all(signal.SIGUSR1)
    await asyncio.sleep(SLOW_FOR)
    backends.signal_all(signal.SIGUSR2)
    return f"rpc handlers slept 2 s (router timeout 0.5 s) for {SLOW_FOR:g} s"


async def restart_centrifugo(backends: AnyBackends, node: Node) -> str:
    await _in_thread(node.stop)
    await _in_thread(node.start)
    return "SIGTERM, then started again on the same port"


async def drain_backend(backends: AnyBackends, node: Node) -> str:
    return await backends.drain()


FAULTS: dict[str, Callable[[AnyBackends, Node], Awaitable[str]]] = {
    "backend SIGKILL": kill_backend,
    "slow handler": slow_handler,
    "centrifugo restart": restart_centrifugo,
    "backend SIGTERM drain": drain_backend,
}


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Options:
    transports: list[str]
    backends: int = 4
    python_clients: int = 20
    js_processes: int = 2
    js_clients: int = 10
    duration: float = 60.0
    requests: int = 0
    fault_interval: float = 0.0
    faults: bool = True
    max_jobs: int = 0
    """RoadRunner's ``pool.max_jobs`` (its own worker recycling; 0: never)."""


@dataclass
class Result:
    transport: str
    options: Options
    seconds: float
    clients: ClientLog
    backend_lines: list[tuple[str, str, bool, float, int]]
    faults: list[Fault]
    memory: dict[int, tuple[tuple[int, int], tuple[int, int]]]
    pids: list[int]
    cpu: dict[int, float]
    """CPU seconds of each backend process alive at the end."""
    load: tuple[float, float]
    """The machine's 1-minute load average at the start and the end."""
    proxy_timeouts: list[tuple[str, str, float]]
    """Proxy calls that reached Centrifugo's timeout (``error proxying ...`` with one of
    :data:`DEADLINE_ERRORS` in its log): event, channel (if logged), time (to the second)."""
    roadrunner_memory: tuple[tuple[int, int], tuple[int, int]] | None = None
    """RoadRunner's own process (the ``roadrunner`` transport): RSS and fds, start and end."""
    report: dict[str, Any] = field(default_factory=dict)


def _read_backend_logs(workdir: Path) -> list[tuple[str, str, bool, float, int]]:
    lines = []
    for path in workdir.glob("*.log"):
        if not path.stem.isdigit():
            continue
        pid = int(path.stem)
        for line in path.read_text().splitlines():
            event, key, ok, t = line.split("\t")
            lines.append((event, key, ok == "ok", float(t), pid))
    return lines


async def soak(transport: str, options: Options, workdir: Path) -> Result:
    """One soak over one proxy transport."""
    backends: AnyBackends = (
        RoadRunnerBackends(options.backends, workdir, options.max_jobs)
        if transport == "roadrunner"
        else Backends(transport, options.backends, workdir)
    )
    fast = {"client": {"presence_update_interval": "1s"}}
    node = Node(workdir, merge(merge(base_config(), proxy_config(backends.section)), fast))
    log = ClientLog()
    faults: list[Fault] = []
    memory: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}
    stop = asyncio.Event()
    try:
        await _in_thread(backends.start_all)
        await _in_thread(node.start)
        async with contextlib.AsyncExitStack() as stack:
            drivers: list[JsDriver] = [
                await stack.enter_async_context(js_driver()) for _ in range(options.js_processes)
            ]
            started = now()
            load_start = os.getloadavg()[0]
            js_loads = [
                asyncio.create_task(
                    driver.call(
                        "load",
                        url=node.ws_url,
                        names=[f"js{d}-{i}" for i in range(options.js_clients)],
                        mix=MIX,
                        expire=EXPIRE,
                    )
                )
                for d, driver in enumerate(drivers)
            ]
            py_tasks = [
                asyncio.create_task(python_client(f"py-{i}", node.ws_url, log, stop))
                for i in range(options.python_clients)
            ]
            js_progress = [0] * len(drivers)

            async def progress(index: int, driver: JsDriver) -> None:
                while True:
                    line = await driver.events.get()
                    if line.get("event") == "progress":
                        js_progress[index] = line["ops"]

            watchers = [asyncio.create_task(progress(i, d)) for i, d in enumerate(drivers)]

            def total_ops() -> int:
                return len(log.ops) + sum(js_progress)

            await asyncio.sleep(3)  # warmed up: the first memory sample
            first = {pid: _rss_fds(pid) for pid in backends.pids()}
            rr_process = backends.process if isinstance(backends, RoadRunnerBackends) else None
            rr_pid = rr_process.pid if rr_process else None
            rr_first = _rss_fds(rr_pid) if rr_pid else None

            interval = options.fault_interval or options.duration / (len(FAULTS) + 1)
            fault_times = [started + interval * (n + 1) for n in range(len(FAULTS))]
            pending = list(FAULTS.items()) if options.faults else []
            while True:
                if pending and now() >= fault_times[len(faults)]:
                    name, run_fault = pending.pop(0)
                    fault = Fault(name, now())
                    faults.append(fault)
                    fault.detail = await run_fault(backends, node)
                    fault.end = now()
                    print(f"  fault: {name}: {fault.detail}", flush=True)
                elapsed = now() - started
                done_faults = not pending and (not faults or now() > faults[-1].end + GRACE)
                if options.requests:
                    enough = total_ops() >= options.requests
                else:
                    enough = elapsed >= options.duration
                if enough and done_faults:
                    break
                await asyncio.sleep(0.2)
            alive = backends.pids()
            last = {pid: _rss_fds(pid) for pid in alive}
            cpu = {pid: round(_cpu_seconds(pid), 1) for pid in alive}
            load = (load_start, os.getloadavg()[0])
            for pid, sample in last.items():
                if pid in first:  # not the restarted ones
                    memory[pid] = (first[pid], sample)
            rr_memory = (rr_first, _rss_fds(rr_pid)) if rr_pid and rr_first else None
            stop.set()
            for driver in drivers:
                await driver.call("stop")
            await asyncio.gather(*py_tasks)
            for task in js_loads:
                log.add_js(await task)
            for watcher in watchers:
                watcher.cancel()
            seconds = now() - started
    finally:
        stop.set()
        node.stop()
        backends.stop()
    await asyncio.sleep(0.2)
    lines = _read_backend_logs(workdir)
    timeouts = _proxy_timeouts(workdir / "centrifugo.log")
    result = Result(
        transport,
        options,
        seconds,
        log,
        lines,
        faults,
        memory,
        backends.every_pid,
        cpu,
        load,
        timeouts,
        rr_memory,
    )
    result.report = account(result)
    # For a closer look: the faults, every failed operation and every lost one, in seconds
    # from the start.
    t0 = started
    details = {
        "faults": [(f.name, round(f.start - t0, 3), round(f.end - t0, 3)) for f in faults],
        "failed": [
            (op.event, op.key, round(op.start - t0, 3), round(op.end - t0, 3), op.code)
            for op in log.ops
            if not op.ok
        ],
        "lost": result.report["lost_examples"],
        "start": t0,
    }
    (workdir / "details.json").write_text(json.dumps(details, indent=1))
    return result


# -- the accounts ----------------------------------------------------------------------------


DEADLINE_ERRORS = ("deadline exceeded", "code = DeadlineExceeded", "NoFreeWorkers")
"""How Centrifugo logs a proxy call that reached its 1 s deadline. The first is its own timer;
the other two are RoadRunner noticing the same deadline first (Centrifugo sends it along, as
``grpc-timeout``; measured in the soak's logs, calls queued in RoadRunner's pool): its gRPC
server resets the call (``DeadlineExceeded ... RST_STREAM ... CANCEL``), or its pool gives up
waiting for a free worker (``Unknown ... NoFreeWorkers``: RoadRunner logs ``no free workers in
the pool ... context deadline exceeded`` or ``context canceled``; its own allocate timeout,
60 s, is never reached in the soak). Either way the call waited past Centrifugo's timeout."""


def _proxy_timeouts(path: Path) -> list[tuple[str, str, float]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if "error proxying" not in line or not any(e in line for e in DEADLINE_ERRORS):
            continue
        entry = json.loads(line)
        event = entry["message"].removeprefix("error proxying ").lower()
        t = datetime.datetime.fromisoformat(entry["time"]).timestamp()
        out.append((event, entry.get("channel", ""), t))
    return out


def _percentile(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def account(result: Result) -> dict[str, Any]:
    """Match what the clients did with what the backends logged; the report."""
    log, faults = result.clients, result.faults

    def fault_at(t: float) -> Fault | None:
        """The latest fault whose window covers ``t``."""
        return next((f for f in reversed(faults) if f.covers(t)), None)

    # A client's own reconnects drop the replies in flight to it (its resubscribe, say).
    reconnects: dict[str, list[tuple[float, float]]] = {}
    for op in log.ops:
        if op.event == "connect":
            reconnects.setdefault(op.key, []).append((op.start - 1.0, op.end + 1.0))

    def reconnecting(key: tuple[str, str], t: float) -> bool:
        name = key[1].removeprefix("room-") if key[0] == "subscribe" else key[1]
        return any(a <= t <= b for a, b in reconnects.get(name, ()))

    # Calls Centrifugo timed out (its log says so; an overloaded machine): the client got
    # error 100 (or its SDK retried), the backend's reply came too late. Answered, not lost;
    # counted apart, not charged to a fault.
    unmatched = sorted(result.proxy_timeouts, key=lambda entry: entry[2])
    late_ops: set[tuple[str, str]] = set()

    def missed_deadline(event: str, channel: str, t: float) -> bool:
        for entry in unmatched:
            kind, logged_channel, logged = entry
            same = kind == event and (not channel or channel == logged_channel)
            if same and abs(logged - t) <= 2.0:
                unmatched.remove(entry)
                return True
        return False

    lost: list[str] = []
    failed_by_fault: Counter[str] = Counter()
    timed_out_by_fault: Counter[str] = Counter()
    codes_by_fault: dict[str, Counter[str]] = {}
    failed_ms: dict[str, list[float]] = {}
    last_failure: dict[str, float] = {}
    per_event: dict[str, dict[str, Any]] = {}
    for event in EVENTS:
        ops = [op for op in log.ops if op.event == event]
        succeeded = [op for op in ops if op.ok]
        latencies = [(op.end - op.start) * 1000 for op in succeeded]
        per_event[event] = {
            "attempted": len(ops),
            "ok": len(succeeded),
            "failed": len(ops) - len(succeeded),
            "per_second": round(len(succeeded) / result.seconds, 1),
            "p50_ms": round(_percentile(latencies, 50), 1),
            "p99_ms": round(_percentile(latencies, 99), 1),
        }
    # In time order, each taking the earliest log entry in its window: the most operations
    # matched (the clients' records come per SDK, not in time order; matched in that order, a
    # burst of timeouts could leave a late one without its entry, taken by an earlier one).
    for op in sorted(log.ops, key=lambda op: op.end):
        if op.ok:
            continue
        fault = fault_at(op.end) or fault_at(op.start)
        if op.code in ("OperationTimeoutError", "1"):  # no answer in CLIENT_TIMEOUT
            lost.append(f"{op.event} {op.key}: timed out ({op.code})")
        elif op.code == "100" and missed_deadline(op.event, "", op.end):
            late_ops.add((op.event, op.key))
            if fault is not None:  # counted apart, but shown beside the fault: RoadRunner's
                # queue behind slow calls is timed out by Centrifugo, not by the router
                timed_out_by_fault[fault.name] += 1
                last_failure[fault.name] = max(last_failure.get(fault.name, 0.0), op.end)
        elif fault is None:
            lost.append(f"{op.event} {op.key}: failed outside any fault ({op.code})")
        else:
            failed_by_fault[fault.name] += 1
            failed_ms.setdefault(fault.name, []).append((op.end - op.start) * 1000)
            codes_by_fault.setdefault(fault.name, Counter())[f"{op.event} {op.code}"] += 1
            last_failure[fault.name] = max(last_failure.get(fault.name, 0.0), op.end)

    # The backends' side: every client result was given by a backend; every reply a backend
    # gave reached its client (or was lost to a fault).
    backend_ok: Counter[tuple[str, str]] = Counter()
    backend_times: dict[tuple[str, str], list[float]] = {}
    backend_seen: Counter[str] = Counter()
    per_pid: Counter[int] = Counter()
    for event, name, replied, t, pid in result.backend_lines:
        backend_seen[event] += 1
        per_pid[pid] += 1
        if replied:
            backend_ok[(event, name)] += 1
            backend_times.setdefault((event, name), []).append(t)
    client_ok: Counter[tuple[str, str]] = Counter()
    for op in log.ops:
        if op.ok and (op.event in ("publish", "rpc") or op.key.startswith("s-")):
            client_ok[(op.event, op.key)] += 1
    for name, count in log.connected.items():
        client_ok[("connect", name)] += count
    for channel, count in log.subscribed.items():
        client_ok[("subscribe", channel)] += count
    unreplied_by_fault: Counter[str] = Counter()
    dropped_by_reconnect = 0
    late_replies = 0
    for call in client_ok.keys() | backend_ok.keys():
        if call[0] == "refresh":
            continue
        got, gave = client_ok[call], backend_ok[call]
        if got > gave:
            lost.append(f"{call}: {got} results on the clients, {gave} from the backends")
        elif gave > got:
            late = sorted(backend_times[call])[got:]  # the replies that did not arrive
            for t in late:
                fault = fault_at(t)
                if reconnecting(call, t):
                    dropped_by_reconnect += 1
                elif call in late_ops or (
                    call[0] == "subscribe" and missed_deadline("subscribe", call[1], t)
                ):
                    late_replies += 1
                elif fault is None:
                    lost.append(f"{call}: a reply at {t:.3f} never reached the client")
                else:
                    unreplied_by_fault[fault.name] += 1
    published = {op.key: op for op in log.ops if op.event == "publish" and op.ok}
    undelivered_by_fault: Counter[str] = Counter()
    for key, op in published.items():
        if key not in log.delivered:
            fault = fault_at(op.end)
            if fault is None:
                lost.append(f"publication {key} accepted at {op.end:.3f}, never delivered")
            else:
                undelivered_by_fault[fault.name] += 1
    for event in EVENTS:
        per_event[event]["backend_ok"] = sum(n for (e, _), n in backend_ok.items() if e == event)
        per_event[event]["backend_seen"] = backend_seen[event]
    per_event["connect"]["client_connections"] = sum(log.connected.values())
    expired = [d for d in log.disconnects if d[1].startswith("3005")]
    if expired:
        lost.append(f"{len(expired)} sessions expired (refresh failed): {expired[:3]}")
    fault_report = [
        {
            "fault": f.name,
            "detail": f.detail,
            "took_s": round(f.end - f.start, 2),
            "ops_failed": failed_by_fault[f.name],
            "errors": dict(codes_by_fault.get(f.name, {})),
            "failed_p50_ms": round(_percentile(failed_ms.get(f.name, []), 50), 1),
            "centrifugo_timeouts": timed_out_by_fault[f.name],
            "replies_lost": unreplied_by_fault[f.name],
            "publications_undelivered": undelivered_by_fault[f.name],
            "recovery_s": round(_recovered(f, last_failure.get(f.name, f.start), log) - f.start, 2),
        }
        for f in faults
    ]
    total_ops = len(log.ops)
    return {
        "transport": result.transport,
        "seconds": round(result.seconds, 1),
        "client_ops": total_ops,
        "proxied_requests": sum(backend_seen.values()),
        "proxied_per_second": round(sum(backend_seen.values()) / result.seconds, 1),
        "lost": len(lost),
        "lost_examples": lost[:20],
        "events": per_event,
        "faults": fault_report,
        "backend_calls_per_process": {str(pid): per_pid[pid] for pid in result.pids},
        "backend_cpu_s": {str(pid): s for pid, s in result.cpu.items()},
        "load_average": list(result.load),
        "backend_memory": {
            str(pid): {"rss_kib": [a[0], b[0]], "fds": [a[1], b[1]]}
            for pid, (a, b) in result.memory.items()
        },
        "roadrunner_memory": result.roadrunner_memory
        and {
            "rss_kib": [result.roadrunner_memory[0][0], result.roadrunner_memory[1][0]],
            "fds": [result.roadrunner_memory[0][1], result.roadrunner_memory[1][1]],
        },
        "disconnects": len(log.disconnects),
        "replies_dropped_by_own_reconnect": dropped_by_reconnect,
        "centrifugo_proxy_timeouts": len(result.proxy_timeouts),
        "ops_failed_by_proxy_timeout": len(late_ops),
        "replies_after_proxy_timeout": late_replies,
    }


def _recovered(fault: Fault, last_failure: float, log: ClientLog) -> float:
    """When a fault was over for the clients: its last failure and, for a Centrifugo restart,
    the moment the last client was connected again."""
    if fault.name != "centrifugo restart":
        return last_failure
    first_after: dict[str, float] = {}
    for name, t in sorted(log.connected_at, key=lambda item: item[1]):
        if t >= fault.start:
            first_after.setdefault(name, t)
    return max(last_failure, *first_after.values())


def format_report(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    out = [
        f"### {report['transport']}: {report['proxied_requests']:,} proxied requests "
        f"in {report['seconds']} s ({report['proxied_per_second']:,}/s), "
        f"{report['client_ops']:,} client operations, lost: {report['lost']}",
        "",
        "| event | attempted | ok | failed | backends: ok / seen | ok/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for event, row in report["events"].items():
        if event == "refresh":  # called by Centrifugo when a session expires, not by clients
            out.append(
                f"| refresh (by Centrifugo) | | | | {row['backend_ok']:,} / "
                f"{row['backend_seen']:,} | | | |"
            )
            continue
        out.append(
            f"| {event} | {row['attempted']:,} | {row['ok']:,} | {row['failed']:,} "
            f"| {row['backend_ok']:,} / {row['backend_seen']:,} | {row['per_second']:,} "
            f"| {row['p50_ms']} | {row['p99_ms']} |"
        )
    out += [
        "",
        "| fault | what happened | took s | ops failed (p50 ms) | Centrifugo timed out "
        "| replies lost | undelivered | recovery s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for fault in report["faults"]:
        out.append(
            f"| {fault['fault']} | {fault['detail']} | {fault['took_s']} "
            f"| {fault['ops_failed']} ({fault['failed_p50_ms']}) | {fault['centrifugo_timeouts']} "
            f"| {fault['replies_lost']} | {fault['publications_undelivered']} "
            f"| {fault['recovery_s']} |"
        )
    for fault in report["faults"]:
        if fault["errors"]:
            errors = ", ".join(f"{k}: {n}" for k, n in sorted(fault["errors"].items()))
            out.append(f"\n{fault['fault']}: {errors}")
    out += [
        "",
        "| backend pid | calls | CPU s | RSS KiB start → end | fds start → end |",
        "|---|---:|---:|---:|---:|",
    ]
    memory, cpu = report["backend_memory"], report["backend_cpu_s"]
    for pid, calls in report["backend_calls_per_process"].items():
        used = cpu.get(pid, "killed")
        if pid in memory:
            (rss0, rss1), (fds0, fds1) = memory[pid]["rss_kib"], memory[pid]["fds"]
            out.append(f"| {pid} | {calls:,} | {used} | {rss0:,} → {rss1:,} | {fds0} → {fds1} |")
        else:
            out.append(f"| {pid} | {calls:,} | {used} | (not there at the start) | |")
    if report["roadrunner_memory"]:
        (rss0, rss1), (fds0, fds1) = (
            report["roadrunner_memory"]["rss_kib"],
            report["roadrunner_memory"]["fds"],
        )
        out.append(f"\nRoadRunner's own process: RSS {rss0:,} → {rss1:,} KiB, fds {fds0} → {fds1}.")
    if report["centrifugo_proxy_timeouts"]:
        out.append(
            f"\nCentrifugo timed out {report['centrifugo_proxy_timeouts']} "
            f"proxy call(s) (its 1 s timeout, or RoadRunner seeing it first: the machine "
            f"overloaded, or calls queued behind a fault's, the faults' column): "
            f"{report['ops_failed_by_proxy_timeout']} client operation(s) got error 100, "
            f"{report['replies_after_proxy_timeout']} backend repl(ies) came too late."
        )
    load_start, load_end = report["load_average"]
    out.append(f"\nLoad average (1 min): {load_start:.1f} at the start, {load_end:.1f} at the end.")
    if report["lost_examples"]:
        out += ["", "Lost:", *(f"- {line}" for line in report["lost_examples"])]
    return "\n".join(out)


async def run(options: Options, workdir: Path) -> list[dict[str, Any]]:
    reports = []
    for transport in options.transports:
        sub = workdir / transport
        sub.mkdir(parents=True, exist_ok=True)
        print(f"soak over {transport}: {options}", flush=True)
        result = await soak(transport, options, sub)
        print(format_report(result.report), flush=True)
        reports.append(result.report)
    return reports


@contextlib.contextmanager
def _workdir(path: str | None) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
    else:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", action="append", choices=TRANSPORTS)
    parser.add_argument("--backends", type=int, default=4, help="backend processes (4)")
    parser.add_argument("--python-clients", type=int, default=20, help="(20)")
    parser.add_argument("--js-processes", type=int, default=2, help="Node processes (2)")
    parser.add_argument("--js-clients", type=int, default=10, help="per Node process (10)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per transport")
    parser.add_argument(
        "--requests",
        type=int,
        default=0,
        help="client operations per transport (instead of --duration)",
    )
    parser.add_argument(
        "--fault-interval", type=float, default=0.0, help="seconds between faults (duration/5)"
    )
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument(
        "--max-jobs",
        type=int,
        default=0,
        help="roadrunner: RoadRunner replaces each worker after this many calls (pool.max_jobs)",
    )
    parser.add_argument("--json", help="write the reports to this file")
    parser.add_argument("--workdir", help="keep logs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    options = Options(
        transports=args.transport or list(TRANSPORTS),
        backends=args.backends,
        python_clients=args.python_clients,
        js_processes=args.js_processes,
        js_clients=args.js_clients,
        duration=args.duration,
        requests=args.requests,
        fault_interval=args.fault_interval,
        faults=not args.no_faults,
        max_jobs=args.max_jobs,
    )
    # SIGTERM like Ctrl-C: the processes started are stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with _workdir(args.workdir) as workdir:
        reports = asyncio.run(run(options, workdir))
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))
    return 1 if any(report["lost"] for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
