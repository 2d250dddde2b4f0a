"""``scripts/bench api``: the server API clients against one real Centrifugo, in one run.

Our :class:`~centrifugo_types.client.ApiClient` (async) and
:class:`~centrifugo_types.client.SyncApiClient` over each transport, the HTTP stacks we could
have used under the same client (httpx with its default and with tuned limits, httpcore's
pool, aiohttp with fewer connections), and Centrifugo's own Python client ``cent``
(AsyncClient on aiohttp, Client on requests) as the baseline. Workloads, in calls per second:

- ``sequential``: publish calls one after another (``--calls``);
- ``1,000 in flight``: ``--bursts`` bursts of 1,000 publish calls gathered at once (async);
- ``history 100``: history calls returning 100 publications each (``--history-calls``).

Every publish sends the same small JSON object. Each round runs every client once, in a fresh
random order, each on a fresh event loop with a fresh client (a few untimed warm-up calls
first); the table gives the median over ``--rounds`` rounds and ratios to cent's client of the
same kind from the same run. ``centrifugo cores`` is Centrifugo's CPU seconds per wall second
during the in-flight workload (sequential for sync clients), ``client cores`` this process's,
and ``client CPU us/call`` this process's CPU time per call in that workload: the cost of a
client, whatever share of a busy machine it got.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from centrifugo_types import json as dialect
from centrifugo_types.client import ApiClient, ApiMethod, SyncApiClient, ThreadedTransport
from centrifugo_types.client import _http as http_common
from centrifugo_types.client.grpcio import GrpcioTransport
from centrifugo_types.client.http import HttpTransport
from centrifugo_types.client.http_aiohttp import AiohttpTransport
from centrifugo_types.errors import ApiTimeoutError, TransportError
from examples.centrifugo import Centrifugo, run_centrifugo

DATA = {"text": "hello, world", "n": 1, "ok": True}
HISTORY_CHANNEL = "bench:history"
HISTORY_SIZE = 100
CONFIG: dict[str, Any] = {
    "channel": {
        "namespaces": [
            {"name": "bench", "history_size": HISTORY_SIZE, "history_ttl": "720h"},
        ]
    },
    "log": {"level": "error"},
}
IN_FLIGHT = 1000


# -- the HTTP stacks we did not pick, as transports of the same client ------------------------


class HttpxTransport:
    """Our client over httpx (``limits``: httpx's default, or tuned)."""

    def __init__(self, url: str, api_key: str, max_connections: int | None) -> None:
        import httpx

        self._httpx = httpx
        self.url = url
        limits = (
            httpx.Limits()
            if max_connections is None
            else httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            )
        )
        self._client = httpx.AsyncClient(headers=http_common.headers(api_key), limits=limits)

    async def handle_async_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        url = f"{self.url}/{method.path}"
        try:
            reply = await self._client.post(url, content=dialect.dumps(request), timeout=timeout)
        except self._httpx.TimeoutException as exc:
            raise ApiTimeoutError(str(exc)) from exc
        except self._httpx.HTTPError as exc:
            raise TransportError(str(exc)) from exc
        return http_common.response(method, url, reply.status_code, reply.content)

    async def aclose(self) -> None:
        await self._client.aclose()


class HttpcoreTransport:
    """Our client over httpcore's connection pool (httpx's lower layer)."""

    def __init__(self, url: str, api_key: str, max_connections: int) -> None:
        import httpcore

        self.url = url
        self._headers = [(k.encode(), v.encode()) for k, v in http_common.headers(api_key).items()]
        self._pool = httpcore.AsyncConnectionPool(max_connections=max_connections)

    async def handle_async_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        url = f"{self.url}/{method.path}"
        body = dialect.dumps(request)
        headers = [*self._headers, (b"Content-Length", str(len(body)).encode())]
        extensions = {"timeout": {"pool": timeout, "connect": timeout, "read": timeout}}
        reply = await self._pool.request(
            "POST", url, headers=headers, content=body, extensions=extensions
        )
        return http_common.response(method, url, reply.status, reply.content)

    async def aclose(self) -> None:
        await self._pool.aclose()


class HttpxSyncTransport:
    """Our sync client over ``httpx.Client``."""

    def __init__(self, url: str, api_key: str) -> None:
        import httpx

        self.url = url
        self._client = httpx.Client(headers=http_common.headers(api_key))

    def handle_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        url = f"{self.url}/{method.path}"
        reply = self._client.post(url, content=dialect.dumps(request), timeout=timeout)
        return http_common.response(method, url, reply.status_code, reply.content)

    def close(self) -> None:
        self._client.close()


# -- the clients, behind one shape -------------------------------------------------------------


@dataclass
class AsyncCase:
    name: str
    open: Callable[[Centrifugo], Any]
    publish: Callable[[Any, str], Awaitable[Any]]
    history: Callable[[Any], Awaitable[int]]
    close: Callable[[Any], Awaitable[None]]
    baseline: bool = False


@dataclass
class SyncCase:
    name: str
    open: Callable[[Centrifugo], Any]
    publish: Callable[[Any, str], Any]
    history: Callable[[Any], int]
    close: Callable[[Any], None]
    baseline: bool = False


def _ours(transport: Callable[[Centrifugo], Any] | None = None, grpc: bool = False) -> Any:
    def open_client(server: Centrifugo) -> ApiClient:
        if transport is not None:
            return ApiClient(transport=transport(server))
        url = f"grpc://127.0.0.1:{server.grpc_api_port}" if grpc else f"{server.http_url}/api"
        return ApiClient(url, api_key=server.api_key)

    return open_client


async def _ours_publish(client: ApiClient, channel: str) -> Any:
    return await client.publish(channel=channel, data=DATA)


async def _ours_history(client: ApiClient) -> int:
    return len((await client.history(channel=HISTORY_CHANNEL, limit=HISTORY_SIZE)).publications)


async def _ours_close(client: ApiClient) -> None:
    await client.aclose()


def _async_ours(name: str, open_client: Callable[[Centrifugo], Any]) -> AsyncCase:
    return AsyncCase(name, open_client, _ours_publish, _ours_history, _ours_close)


def _cent_async() -> AsyncCase:
    import cent

    def open_client(server: Centrifugo) -> Any:
        return cent.AsyncClient(f"{server.http_url}/api", server.api_key)

    async def publish(client: Any, channel: str) -> Any:
        return await client.publish(cent.PublishRequest(channel=channel, data=DATA))

    async def history(client: Any) -> int:
        request = cent.HistoryRequest(channel=HISTORY_CHANNEL, limit=HISTORY_SIZE)
        return len((await client.history(request)).publications)

    async def close(client: Any) -> None:
        await client.close()

    return AsyncCase("cent AsyncClient (aiohttp)", open_client, publish, history, close, True)


def _sync_ours(name: str, open_client: Callable[[Centrifugo], SyncApiClient]) -> SyncCase:
    return SyncCase(
        name,
        open_client,
        lambda c, channel: c.publish(channel=channel, data=DATA),
        lambda c: len(c.history(channel=HISTORY_CHANNEL, limit=HISTORY_SIZE).publications),
        lambda c: c.close(),
    )


def _cent_sync() -> SyncCase:
    import cent

    return SyncCase(
        "cent Client (requests)",
        lambda server: cent.Client(f"{server.http_url}/api", server.api_key),
        lambda c, channel: c.publish(cent.PublishRequest(channel=channel, data=DATA)),
        lambda c: len(
            c.history(cent.HistoryRequest(channel=HISTORY_CHANNEL, limit=HISTORY_SIZE)).publications
        ),
        lambda c: c.close(),
        True,
    )


def async_cases() -> list[AsyncCase]:
    def api(server: Centrifugo) -> str:
        return f"{server.http_url}/api"

    return [
        _async_ours("ours HTTP (default: h1 on httptools, 20 conns)", _ours()),
        _async_ours(
            "ours HTTP (h1 on httptools, 100 conns)",
            _ours(lambda s: HttpTransport(api(s), api_key=s.api_key, connections=100)),
        ),
        _async_ours(
            "ours HTTP (aiohttp, 100 conns)",
            _ours(lambda s: AiohttpTransport(api(s), api_key=s.api_key, connections=100)),
        ),
        _async_ours(
            "ours HTTP (aiohttp, 10 conns)",
            _ours(lambda s: AiohttpTransport(api(s), api_key=s.api_key, connections=10)),
        ),
        _async_ours(
            "ours HTTP (httpx, 10 conns)", _ours(lambda s: HttpxTransport(api(s), s.api_key, 10))
        ),
        _async_ours(
            "ours HTTP (httpcore, 10 conns)",
            _ours(lambda s: HttpcoreTransport(api(s), s.api_key, 10)),
        ),
        _async_ours("ours gRPC (grpclib)", _ours(grpc=True)),
        _async_ours(
            "ours gRPC (grpcio aio)",
            _ours(lambda s: GrpcioTransport("127.0.0.1", s.grpc_api_port, api_key=s.api_key)),
        ),
        _cent_async(),
    ]


def sync_cases() -> list[SyncCase]:
    return [
        _sync_ours(
            "ours sync HTTP (urllib3)",
            lambda s: SyncApiClient(f"{s.http_url}/api", api_key=s.api_key),
        ),
        _sync_ours(
            "ours sync HTTP (httpx.Client)",
            lambda s: SyncApiClient(transport=HttpxSyncTransport(f"{s.http_url}/api", s.api_key)),
        ),
        _sync_ours(
            "ours sync gRPC (grpclib, loop thread)",
            lambda s: SyncApiClient(f"grpc://127.0.0.1:{s.grpc_api_port}", api_key=s.api_key),
        ),
        _sync_ours(
            "ours sync gRPC (grpcio aio, loop thread)",
            lambda s: SyncApiClient(
                transport=ThreadedTransport(
                    GrpcioTransport("127.0.0.1", s.grpc_api_port, api_key=s.api_key)
                )
            ),
        ),
        _cent_sync(),
    ]


# -- measuring ---------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    rate: float
    server_cores: float
    client_cores: float


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, case: str, workload: str, sample: Sample) -> None:
        self.samples.setdefault((case, workload), []).append(sample)

    def rate(self, case: str, workload: str) -> float | None:
        samples = self.samples.get((case, workload))
        return statistics.median(s.rate for s in samples) if samples else None

    def client_cpu_per_call(self, case: str, workload: str) -> float | None:
        """CPU seconds this process spent per call: what a client costs, whatever share of
        the machine it got (the most robust number on a shared machine)."""
        samples = self.samples.get((case, workload))
        return statistics.median(s.client_cores / s.rate for s in samples) if samples else None

    def cores(self, case: str, workload: str) -> tuple[float, float] | None:
        samples = self.samples.get((case, workload))
        if not samples:
            return None
        return (
            statistics.median(s.server_cores for s in samples),
            statistics.median(s.client_cores for s in samples),
        )


class Meter:
    """Calls per second and CPU shares of one timed stretch."""

    def __init__(self, server: Centrifugo) -> None:
        self.pid = server.process.pid

    def __enter__(self) -> Meter:
        self.server_cpu = _cpu_seconds(self.pid)
        self.client_cpu = time.process_time()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall = time.perf_counter() - self.started
        self.server_cores = (_cpu_seconds(self.pid) - self.server_cpu) / self.wall
        self.client_cores = (time.process_time() - self.client_cpu) / self.wall

    def sample(self, calls: int) -> Sample:
        return Sample(calls / self.wall, self.server_cores, self.client_cores)


async def _run_async(
    case: AsyncCase, server: Centrifugo, args: argparse.Namespace, results: Results
) -> None:
    client = case.open(server)
    channel = f"bench-{random.getrandbits(32):x}"
    try:
        for _ in range(20):  # connect, warm up
            await case.publish(client, channel)
        await asyncio.gather(*(case.publish(client, channel) for _ in range(IN_FLIGHT)))
        with Meter(server) as meter:
            for _ in range(args.calls):
                await case.publish(client, channel)
        results.add(case.name, "sequential", meter.sample(args.calls))
        with Meter(server) as meter:
            for _ in range(args.bursts):
                await asyncio.gather(*(case.publish(client, channel) for _ in range(IN_FLIGHT)))
        results.add(case.name, "in flight", meter.sample(args.bursts * IN_FLIGHT))
        with Meter(server) as meter:
            for _ in range(args.history_calls):
                assert await case.history(client) == HISTORY_SIZE
        results.add(case.name, "history", meter.sample(args.history_calls))
    finally:
        await case.close(client)


def _run_sync(
    case: SyncCase, server: Centrifugo, args: argparse.Namespace, results: Results
) -> None:
    client = case.open(server)
    channel = f"bench-{random.getrandbits(32):x}"
    try:
        for _ in range(20):
            case.publish(client, channel)
        with Meter(server) as meter:
            for _ in range(args.calls):
                case.publish(client, channel)
        results.add(case.name, "sequential", meter.sample(args.calls))
        with Meter(server) as meter:
            for _ in range(args.history_calls):
                assert case.history(client) == HISTORY_SIZE
        results.add(case.name, "history", meter.sample(args.history_calls))
    finally:
        case.close(client)


async def _fill_history(server: Centrifugo) -> None:
    async with ApiClient(f"{server.http_url}/api", api_key=server.api_key) as client:
        for n in range(HISTORY_SIZE):
            await client.publish(channel=HISTORY_CHANNEL, data={**DATA, "n": n})


def _table(results: Results, cases: list[Any], workloads: list[str]) -> list[str]:
    baseline = next(c.name for c in cases if c.baseline)
    head = "| client | " + " | ".join(f"{w} calls/s | x cent" for w in workloads)
    head += " | centrifugo cores | client cores | client CPU us/call |"
    lines = [head, "|---" * (2 * len(workloads) + 4) + "|"]
    busiest = workloads[1] if "in flight" in workloads else workloads[0]
    for case in cases:
        cells = [case.name]
        for workload in workloads:
            rate, base = results.rate(case.name, workload), results.rate(baseline, workload)
            cells.append(f"{rate:,.0f}" if rate else "-")
            cells.append(f"{rate / base:.2f}" if rate and base else "-")
        cores = results.cores(case.name, busiest)
        cost = results.client_cpu_per_call(case.name, busiest)
        cells += [f"{cores[0]:.2f}", f"{cores[1]:.2f}"] if cores else ["-", "-"]
        cells.append(f"{cost * 1e6:.0f}" if cost else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--calls", type=int, default=1000, help="sequential publish calls")
    parser.add_argument("--bursts", type=int, default=3, help="bursts of 1,000 in flight")
    parser.add_argument("--history-calls", type=int, default=300, help="history calls")
    parser.add_argument("--only", metavar="TEXT", help="only clients whose name contains TEXT")
    parser.add_argument("--uvloop", action="store_true", help="run the async clients on uvloop")


def main(args: argparse.Namespace) -> int:
    acases = [c for c in async_cases() if not args.only or args.only in c.name or c.baseline]
    scases = [c for c in sync_cases() if not args.only or args.only in c.name or c.baseline]
    results = Results()
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if args.uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    load = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="centrifugo-types-bench-api-") as tmp,
        run_centrifugo(Path(tmp), CONFIG) as server,
    ):
        asyncio.run(_fill_history(server))
        for round_ in range(args.rounds):
            order: list[AsyncCase | SyncCase] = [*acases, *scases]
            random.shuffle(order)
            for case in order:
                if isinstance(case, AsyncCase):
                    with asyncio.Runner(loop_factory=loop_factory) as runner:
                        runner.run(_run_async(case, server, args, results))
                else:
                    _run_sync(case, server, args, results)
            _report(results, acases, scases, round_ + 1, load)
    return 0


def _report(
    results: Results,
    acases: list[AsyncCase],
    scases: list[SyncCase],
    rounds: int,
    load: tuple[float, float, float],
) -> None:
    """The tables so far (printed after every round: a long run interrupted keeps them)."""
    now = os.getloadavg()
    print()
    print(
        f"after {rounds} rounds, median calls/s; x cent = ratio to cent's client of the same "
        f"kind in the same run; {os.cpu_count()} cores, load average {load[0]:.1f} at the "
        f"start, {now[0]:.1f} now"
    )
    print()
    print("\n".join(_table(results, acases, ["sequential", "in flight", "history"])))
    print()
    print("\n".join(_table(results, scases, ["sequential", "history"])), flush=True)
