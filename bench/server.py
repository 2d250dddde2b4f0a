"""``scripts/bench server`` and ``scripts/bench http``: unary Connect throughput on 127.0.0.1.

For each target server and each number of backend processes (``--workers``), the harness

1. starts that many processes of the server on one free port of 127.0.0.1 (they share it with
   SO_REUSEPORT, and the kernel spreads the load generator's connections over them; targets
   that cannot share a port run with one process only);
2. checks with a real call that Connect answers with the benchmark's logic,
   ``ConnectResult(user=request.client)``: a gRPC call (grpcio client, our message classes)
   or an HTTP POST of Centrifugo's JSON body, whose reply must decode to that result;
3. drives it with h2load (nghttp2's load generator, written in C, so it takes little of the
   2 cores from the server) for ``--warmup`` + ``--duration`` seconds, and logs every
   request's latency; meanwhile it reads the CPU time the server processes use
   (``/proc/PID/stat``: all their threads) and the load generator's (its rusage);
4. stops the processes (they also stop by themselves after a bounded time).

What h2load sends depends on the target's protocol:

- ``grpc``: HTTP/2, ``--connections`` x ``--streams`` requests in flight, POSTing the gRPC
  frame of the benchmark's ConnectRequest with the headers Centrifugo sends
  (``content-type``, ``te`` and ``grpc-timeout``: Centrifugo gives every proxy call a
  deadline, 1 s by default);
- ``http``: HTTP/1.1 (``h2load --h1``), ``--h1-connections`` connections with one request at
  a time each (Go's HTTP client, which Centrifugo uses, does not pipeline: it opens up to 255
  connections per backend), POSTing to ``/centrifugo/connect`` the JSON body Centrifugo sends
  for the same ConnectRequest (Go's ``encoding/json`` output: compact, raw payloads embedded)
  with Go's headers (``Content-Type: application/json``, ``User-Agent``,
  ``Accept-Encoding``). Equal defaults: 64 requests in flight for both.

``scripts/bench server`` targets (gRPC):

- ``grpcio``: :mod:`bench.grpcio_server`, a hand-written grpcio aio servicer on upb messages;
- ``ours``: :mod:`bench.our_server`, this project's gRPC proxy server with the same connect
  logic, run by ``centrifugo-types serve`` itself (on uvloop, which the dev group installs);
- ``ours-asyncio``: the same with ``--loop asyncio``, asyncio's own event loop;
- ``ours-grpcio``: the same router served by ``centrifugo-types serve --transport grpcio``
  (:mod:`centrifugo_types.grpcio`: grpcio's C core, our codec and router), on uvloop;
  ``ours-grpcio-asyncio``: the same on asyncio's loop.

``--callgrind N`` replaces the timed runs: each target runs as one process under valgrind's
callgrind, gets ``N // 4`` calls of warm-up, then the counters are zeroed and ``N`` calls are
counted: instructions per call, all the process's threads, unaffected by other work on the
machine. With many calls in flight the count still depends on timing (how many calls one
loop iteration batches); ``--connections 1 --streams 1`` takes that out.

One grpcio process is not one thread: its C core runs HTTP/2 on threads of its own, so it
uses more than one core when the machine has one to spare, where one process of ours (one
Python thread) uses at most one. The ``cores`` and ``req/cpu-s`` columns show that: requests
per second of server CPU time is the measure of efficiency; req/s at 2 processes is the
measure of throughput on this machine.

``scripts/bench http`` targets (HTTP proxy, and our gRPC server as the baseline):

- ``ours-grpc``: ``ours`` above, the same Connect over gRPC;
- ``ours-http``: :mod:`bench.our_server` ``--http``: ``centrifugo-types serve --http``, the
  same router as Centrifugo's HTTP proxy (:class:`~centrifugo_types.http.ProxyApp` under
  uvicorn, which parses HTTP with httptools when it is installed);
- ``ours-http-h11``: the same with httptools hidden from the process (uvicorn then parses
  with h11, pure Python: what users get without httptools installed);
- ``ours-http-uvloop``: the same with ``--loop uvloop`` (``ours-http`` runs on asyncio's
  loop);
- ``ours-http-stdlib``: ``ours-http`` with the JSON codec's orjson path off (as installed
  without the ``fast`` extra);
- ``asgi-floor``, ``asgi-floor-h11``, ``asgi-floor-uvloop``: :mod:`bench.asgi_floor`, an ASGI
  app that reads the body and answers the same bytes as a constant, served the same way: the
  floor of what uvicorn and the event loop cost per request.

Every HTTP target runs as ``serve --http --reuse-port`` does, so ``--workers 1,2`` (the
default) measures one process against two on one port: the kernel spreads h2load's
connections over them, as it spreads Centrifugo's (one connection per concurrent call). The
report gives each target's 2-process / 1-process ratio.

``scripts/bench roadrunner`` targets (gRPC, as Centrifugo calls RoadRunner's proxy endpoint):

- ``roadrunner``: RoadRunner (scripts/install-roadrunner, its centrifuge plugin) with
  ``--workers`` Python workers (``centrifugo-types worker bench.our_server:router``, on
  uvloop): one RoadRunner process, its pool of workers answering one request at a time each
  over pipes; its CPU columns count RoadRunner and its workers together;
- ``ours-grpc`` and ``ours-http``: our gRPC server (``--workers`` processes) and HTTP proxy
  (one process) with the same router, directly.

h2load counts HTTP statuses, not gRPC ones (a gRPC error is an HTTP 200 with a non-zero
``grpc-status`` trailer), so step 2 is what proves the answers right. Latencies (p50, p99)
come from h2load's per-request log of the measured period; req/s is h2load's own figure.
The targets run one after the other within each of ``--repeat`` repetitions; req/s, p50, p99
and CPU are medians over the repetitions, the ratios are medians of the ratios within each
repetition (where the targets ran back to back).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import impls
from .messages import connect_request

CONNECT_PATH = "/centrifugal.centrifugo.proxy.CentrifugoProxy/Connect"
HTTP_CONNECT_PATH = "/centrifugo/connect"
HOST = "127.0.0.1"
#: The headers of Go's HTTP client on Centrifugo's proxy calls (besides Host and the length).
HTTP_HEADERS = (
    "content-type: application/json",
    "user-agent: Go-http-client/1.1",
    "accept-encoding: gzip",
)

Command = Callable[[Path, int, float], "list[str] | None"]


# -- targets --------------------------------------------------------------------------------


def grpcio_command(modules: Path, port: int, max_seconds: float) -> list[str]:
    """One process of the baseline: grpcio aio + upb (see :mod:`bench.grpcio_server`)."""
    return [
        sys.executable,
        "-m",
        "bench.grpcio_server",
        "--modules",
        str(modules),
        "--port",
        str(port),
        "--max-seconds",
        str(max_seconds),
    ]


def our_server_command(modules: Path, port: int, max_seconds: float) -> list[str] | None:
    """One process of this project's gRPC proxy server (see :mod:`bench.our_server`).

    ``centrifugo_types.grpc.serve`` over a router with the baseline's connect logic,
    ``ConnectResponse(result=ConnectResult(user=request.client))``, listening on
    ``127.0.0.1:port`` with SO_REUSEPORT; it exits by itself after ``max_seconds`` and on
    SIGTERM. ``modules`` (the upb modules) is the baseline's business, not ours.
    """
    return [
        sys.executable,
        "-m",
        "bench.our_server",
        "--port",
        str(port),
        "--max-seconds",
        str(max_seconds),
    ]


def _with(command: Command, *extra: str) -> Command:
    def variant(modules: Path, port: int, max_seconds: float) -> list[str] | None:
        base = command(modules, port, max_seconds)
        return None if base is None else [*base, *extra]

    return variant


def roadrunner_command(modules: Path, port: int, max_seconds: float) -> list[str] | None:
    """RoadRunner with Python workers serving :mod:`bench.our_server`'s router, its proxy
    endpoint on ``port`` (the harness sets the number of workers, see :attr:`Target.pool`).
    ``None`` when RoadRunner cannot be built (no Go)."""
    if not port:  # the availability check
        return [] if shutil.which("go") or os.environ.get("RR_BIN") else None
    from examples.roadrunner import roadrunner_binary, rr_config

    config = rr_config(
        "bench.our_server:router",
        proxy_port=port,
        rpc_port=_free_port(),
        grpc_api_port=_free_port(),  # nothing there: the proxy path only
    )
    config["logs"]["level"] = "error"
    path = modules.parent / f"rr-{port}.yaml"
    path.write_text(json.dumps(config))
    return [str(roadrunner_binary()), "serve", "-c", str(path)]


def floor_command(modules: Path, port: int, max_seconds: float) -> list[str]:
    """One process of the ASGI floor (see :mod:`bench.asgi_floor`)."""
    return [
        sys.executable,
        "-m",
        "bench.asgi_floor",
        "--port",
        str(port),
        "--max-seconds",
        str(max_seconds),
    ]


@dataclass(frozen=True)
class Target:
    command: Command
    protocol: str
    """``grpc`` or ``http``: what the load generator sends (see the module docstring)."""
    reuse_port: bool = True
    """Whether several processes can share the port."""
    pool: bool = False
    """One process that runs ``--workers`` workers itself (RoadRunner's pool), given as
    ``-o centrifuge.pool.num_workers=N``."""


@dataclass(frozen=True)
class Suite:
    name: str
    targets: dict[str, Target]
    ratios: tuple[tuple[str, str], ...]
    """(target, baseline) pairs the report compares."""
    workers: str
    """The default ``--workers``."""
    goal: dict[tuple[str, str], str]
    """A target to print next to a ratio, e.g. ``(ours, grpcio): ">= 1.0x"``."""
    scaling_goal: str = ""
    """A target to print next to each target's 2-process / 1-process ratio."""


SERVER = Suite(
    name="server",
    targets={
        "grpcio": Target(grpcio_command, "grpc"),
        "ours": Target(our_server_command, "grpc"),
        "ours-asyncio": Target(_with(our_server_command, "--loop", "asyncio"), "grpc"),
        "ours-grpcio": Target(_with(our_server_command, "--grpcio"), "grpc"),
        "ours-grpcio-asyncio": Target(
            _with(our_server_command, "--grpcio", "--loop", "asyncio"), "grpc"
        ),
    },
    ratios=(
        ("ours", "grpcio"),
        ("ours-asyncio", "grpcio"),
        ("ours-grpcio", "grpcio"),
        ("ours-grpcio-asyncio", "grpcio"),
    ),
    workers="1,2",
    goal={
        ("ours", "grpcio"): ">= 1.0x",
        ("ours-asyncio", "grpcio"): ">= 1.0x",
        ("ours-grpcio", "grpcio"): ">= 1.0x",
        ("ours-grpcio-asyncio", "grpcio"): ">= 1.0x",
    },
)

_HTTP = _with(our_server_command, "--http")
HTTP = Suite(
    name="http",
    targets={
        "ours-grpc": Target(our_server_command, "grpc"),
        "ours-http": Target(_HTTP, "http"),
        "ours-http-h11": Target(_with(_HTTP, "--no-httptools"), "http"),
        "ours-http-uvloop": Target(_with(_HTTP, "--loop", "uvloop"), "http"),
        "ours-http-stdlib": Target(_with(_HTTP, "--no-orjson"), "http"),
        "asgi-floor": Target(floor_command, "http"),
        "asgi-floor-h11": Target(_with(floor_command, "--no-httptools"), "http"),
        "asgi-floor-uvloop": Target(_with(floor_command, "--loop", "uvloop"), "http"),
    },
    ratios=(
        ("ours-http", "ours-grpc"),
        ("ours-http-h11", "ours-grpc"),
        ("ours-http-uvloop", "ours-grpc"),
        ("ours-http", "asgi-floor"),
        ("ours-http-h11", "asgi-floor-h11"),
        ("ours-http-uvloop", "asgi-floor-uvloop"),
        ("ours-http", "ours-http-h11"),
        ("asgi-floor", "asgi-floor-h11"),
        ("ours-http-uvloop", "ours-http"),
        ("asgi-floor-uvloop", "asgi-floor"),
        ("ours-http-stdlib", "ours-http"),
    ),
    workers="1,2",
    goal={
        ("ours-http", "asgi-floor"): ">= 0.8x",
        ("ours-http-uvloop", "asgi-floor-uvloop"): ">= 0.8x",
    },
    scaling_goal=">= 1.7x",
)

ROADRUNNER = Suite(
    name="roadrunner",
    targets={
        "ours-grpc": Target(our_server_command, "grpc"),
        "roadrunner": Target(roadrunner_command, "grpc", reuse_port=False, pool=True),
        "ours-http": Target(_HTTP, "http"),
    },
    ratios=(("roadrunner", "ours-grpc"), ("roadrunner", "ours-http")),
    workers="1,2",
    goal={},
)

SUITES = {"server": SERVER, "http": HTTP, "roadrunner": ROADRUNNER}


# -- harness --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What h2load sends, over and over."""

    path: str
    body: Path
    headers: tuple[str, ...]
    h1: bool
    connections: int
    streams: int
    """Requests in flight per connection (HTTP/2 streams; with ``h1``: pipelined requests)."""

    def describe(self) -> str:
        if self.h1:
            return (
                f"HTTP/1.1, {self.connections} connections x {self.streams} request, POST "
                f"{self.path} with Centrifugo's JSON ({self.body.stat().st_size} bytes)"
            )
        return (
            f"HTTP/2, {self.connections} connections x {self.streams} streams, the gRPC "
            f"frame of ConnectRequest ({self.body.stat().st_size} bytes)"
        )


@dataclass(frozen=True)
class Result:
    target: str
    workers: int
    requests_per_second: float
    succeeded: int
    failed: int
    p50_ms: float
    p99_ms: float
    cores: float
    """Server CPU seconds per second of load (all processes and threads)."""
    busiest: float
    """The same for the busiest process: the kernel spreads connections, not requests."""
    generator: float = float("nan")
    """The load generator's CPU seconds per second of load."""

    @property
    def per_cpu_second(self) -> float:
        """Requests per second of server CPU time."""
        return self.requests_per_second / self.cores if self.cores else float("nan")


def add_arguments(parser: argparse.ArgumentParser, suite: Suite) -> None:
    parser.add_argument("--fast", action="store_true", help="3 s runs, one worker count")
    parser.add_argument(
        "--targets",
        default=",".join(suite.targets),
        help="comma-separated, of: " + ", ".join(suite.targets) + " (all)",
    )
    parser.add_argument(
        "--workers", help=f"backend process counts to run (default {suite.workers}; fast 1)"
    )
    parser.add_argument("--duration", type=int, help="measured seconds per run (10; fast 3)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per run (2; fast 1)")
    parser.add_argument(
        "--repeat", type=int, help="runs per target and count, interleaved; medians (3; fast 1)"
    )
    parser.add_argument("--connections", type=int, default=8, help="gRPC: h2load clients (8)")
    parser.add_argument("--streams", type=int, default=8, help="gRPC: streams per connection (8)")
    parser.add_argument(
        "--h1-connections",
        type=int,
        default=64,
        help="HTTP/1.1: h2load clients, one request at a time each (64)",
    )
    parser.add_argument(
        "--callgrind",
        type=int,
        metavar="N",
        help="instead of timed load: count the CPU instructions each target (one process, "
        "under valgrind's callgrind, all threads) executes for N requests after a warm-up; "
        "independent of the machine's other load",
    )
    parser.add_argument(
        "--grpc-timeout",
        default="999999u",
        help="grpc-timeout header of every request, as Centrifugo's Go client writes a 1 s "
        "deadline (999999u); empty: none",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _grpc_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def http_body() -> bytes:
    """The JSON body Centrifugo sends for the benchmark's ConnectRequest."""
    from centrifugo_types import json

    from .json_codec import centrifugo_message

    return json.dumps(centrifugo_message(connect_request))


def _probe_grpc(port: int, deadline: float) -> None:
    """A real Connect call: wait for the server, then check its answer."""
    import grpc

    from centrifugo_types.proxy import ConnectRequest, ConnectResponse

    request = connect_request()
    last: Exception | None = None
    while time.monotonic() < deadline:
        with grpc.insecure_channel(f"{HOST}:{port}") as channel:
            call = channel.unary_unary(
                CONNECT_PATH,
                request_serializer=ConnectRequest.SerializeToString,
                response_deserializer=ConnectResponse.FromString,
            )
            try:
                reply = call(request, timeout=2)
            except grpc.RpcError as exc:
                last = exc
                time.sleep(0.2)
                continue
        if reply.result is None or reply.result.user != request.client:
            raise RuntimeError(f"wrong Connect reply: {reply!r}")
        return
    raise RuntimeError(f"server on port {port} did not answer Connect: {last}")


def _probe_http(port: int, deadline: float) -> None:
    """A real HTTP proxy Connect call: wait for the server, then check its answer."""
    from centrifugo_types import json
    from centrifugo_types.proxy import ConnectResponse

    headers = dict(h.split(": ", 1) for h in HTTP_HEADERS)
    del headers["accept-encoding"]  # urllib does not decompress
    last: Exception | None = None
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"http://{HOST}:{port}{HTTP_CONNECT_PATH}", data=http_body(), headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                status, body = response.status, response.read()
        except OSError as exc:
            last = exc
            time.sleep(0.2)
            continue
        reply = json.loads(ConnectResponse, body)
        if status != 200 or reply.result is None or reply.result.user != connect_request().client:
            raise RuntimeError(f"wrong Connect reply: {status} {body!r}")
        return
    raise RuntimeError(f"server on port {port} did not answer Connect: {last}")


_PROBES = {"grpc": _probe_grpc, "http": _probe_http}


def _cpu_seconds(pids: list[int]) -> list[float]:
    """User + system CPU time of each process, all its threads included."""
    seconds = []
    for pid in pids:
        # The fields after the command name (which may hold spaces) are split safely.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
        seconds.append(ticks / os.sysconf("SC_CLK_TCK"))
    return seconds


@contextlib.contextmanager
def _servers(
    commands: list[list[str]],
    port: int,
    deadline: float,
    stderr: Path,
    probe: Callable[[int, float], None],
) -> Iterator[list[int]]:
    """Start the servers (their stderr into one file); yield their pids once they answer."""
    with stderr.open("wb") as errors:
        procs = [
            subprocess.Popen(
                cmd,
                cwd=impls.ROOT,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            for cmd in commands
        ]
    try:
        try:
            probe(port, deadline)
            time.sleep(1.0)  # let every process finish starting, not just the first to answer
            dead = [p.args for p in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"server processes exited early: {dead}")
        except RuntimeError as exc:
            tail = stderr.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}\nserver stderr (end):\n{tail}") from None
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _children(pids: list[int]) -> list[int]:
    """The processes whose parent is one of ``pids`` (RoadRunner's workers)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rpartition(")")[2].split()[1]) in pids:
                    children.append(int(entry.name))
    return children


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _h2load_command(port: int, load: Load, *run: str) -> list[str]:
    """h2load sending ``load`` to ``port`` on one thread; ``run``: how long, and where to log."""
    headers = [arg for header in load.headers for arg in ("-H", header)]
    return [
        "h2load",
        f"http://{HOST}:{port}{load.path}",
        *(["--h1"] if load.h1 else []),
        *("-d", str(load.body), *headers),
        *("-c", str(load.connections), "-m", str(load.streams), "-t", "1"),
        *run,
    ]


def _h2load(
    port: int, load: Load, log: Path, duration: int, warmup: int
) -> tuple[float, int, int, float]:
    """(req/s, succeeded, failed, h2load's CPU seconds) of one run."""
    cmd = _h2load_command(
        port, load, "-D", str(duration), f"--warm-up-time={warmup}", f"--log-file={log}"
    )
    # The servers are children too, but reaped only later: this counts h2load alone.
    cpu = _children_cpu()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 60)
    cpu = _children_cpu() - cpu
    if out.returncode != 0:
        raise RuntimeError(f"h2load failed ({out.returncode}): {out.stderr or out.stdout}")
    rps = succeeded = failed = 0.0
    for line in out.stdout.splitlines():
        words = line.replace(",", "").split()
        if line.startswith("finished in"):
            rps = float(words[3])
        elif line.startswith("requests:"):
            succeeded = float(words[words.index("succeeded") - 1])
            failed = sum(float(words[words.index(w) - 1]) for w in ("failed", "errored"))
    return rps, int(succeeded), int(failed), cpu


def _latencies(log: Path) -> tuple[float, float]:
    """Median and 99th percentile of the logged request latencies, in milliseconds."""
    micros = []
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1] == "200":
            micros.append(int(parts[2]))
    if len(micros) < 2:
        return float("nan"), float("nan")
    cuts = statistics.quantiles(micros, n=100, method="inclusive")
    return cuts[49] / 1000, cuts[98] / 1000


def _one_run(
    suite: Suite,
    target: str,
    n: int,
    modules: Path,
    loads: dict[str, Load],
    tmp: Path,
    duration: int,
    warmup: int,
) -> Result:
    spec = suite.targets[target]
    port = _free_port()
    # Servers stop by themselves a minute after the run should have ended.
    command = spec.command(modules, port, duration + warmup + 60)
    assert command is not None
    log = tmp / f"{target}-{n}.log"
    probe = _PROBES[spec.protocol]
    commands = (
        [[*command, "-o", f"centrifuge.pool.num_workers={n}"]] if spec.pool else [command] * n
    )
    with _servers(commands, port, time.monotonic() + 60, tmp / "stderr", probe) as pids:
        if spec.pool:
            pids = pids + _children(pids)
        cpu = _cpu_seconds(pids)
        started = time.monotonic()
        rps, ok, bad, generator = _h2load(port, loads[spec.protocol], log, duration, warmup)
        # Warm-up and measured period alike run at full load: CPU over the whole run.
        elapsed = time.monotonic() - started
        used = [(b - a) / elapsed for a, b in zip(cpu, _cpu_seconds(pids), strict=True)]
    p50, p99 = _latencies(log)
    log.unlink()
    return Result(target, n, rps, ok, bad, p50, p99, sum(used), max(used), generator / elapsed)


Runs = dict[tuple[str, int], list[Result]]


def _loads(args: argparse.Namespace, tmp: Path) -> dict[str, Load]:
    """What h2load sends to each protocol's targets (the bodies written into ``tmp``)."""
    (tmp / "connect.grpc").write_bytes(_grpc_frame(bytes(connect_request())))
    (tmp / "connect.json").write_bytes(http_body())
    grpc_headers = ["content-type: application/grpc", "te: trailers"]
    if args.grpc_timeout:
        grpc_headers.append(f"grpc-timeout: {args.grpc_timeout}")
    return {
        "grpc": Load(
            CONNECT_PATH,
            tmp / "connect.grpc",
            tuple(grpc_headers),
            h1=False,
            connections=args.connections,
            streams=args.streams,
        ),
        "http": Load(
            HTTP_CONNECT_PATH,
            tmp / "connect.json",
            HTTP_HEADERS,
            h1=True,
            connections=args.h1_connections,
            streams=1,
        ),
    }


def _instructions(
    suite: Suite, target: str, modules: Path, loads: dict[str, Load], tmp: Path, n: int
) -> float:
    """Instructions per request of one process of ``target`` serving ``n`` requests (after
    ``n // 4`` of warm-up), counted by callgrind over all its threads."""
    spec = suite.targets[target]
    port = _free_port()
    command = spec.command(modules, port, 900)
    assert command is not None
    out = tmp / f"{target}.callgrind"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--quiet"]
    load = loads[spec.protocol]
    deadline = time.monotonic() + 600
    with _servers([valgrind + command], port, deadline, tmp / "stderr", _PROBES[spec.protocol]) as (
        pids
    ):

        def h2load(requests: int) -> None:
            done = subprocess.run(
                _h2load_command(port, load, "-n", str(requests)),
                capture_output=True,
                text=True,
                timeout=900,
            )
            if done.returncode != 0 or f"{requests} succeeded" not in done.stdout:
                raise RuntimeError(f"h2load failed: {done.stdout[-1000:]} {done.stderr}")

        def control(*flags: str) -> None:
            subprocess.run(
                ["callgrind_control", *flags, str(pids[0])], check=True, capture_output=True
            )

        h2load(max(n // 4, 64))
        control("--zero")
        h2load(n)
        control("--dump")
    dumped = out.with_name(out.name + ".1")  # the --dump (the file without a suffix: the exit)
    totals = [
        int(line.split()[1])
        for line in dumped.read_text(errors="replace").splitlines()
        if line.startswith("summary:")
    ]
    for part in tmp.glob(f"{target}.callgrind*"):
        part.unlink()
    if not totals:
        raise RuntimeError(f"no callgrind totals for {target}")
    return totals[0] / n


def instructions(args: argparse.Namespace, suite: Suite) -> str:
    """``--callgrind N``: the report of instructions per request of each target."""
    if shutil.which("h2load") is None or shutil.which("valgrind") is None:
        raise SystemExit("--callgrind needs h2load and valgrind (apt-get install valgrind)")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    per_request: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="centrifugo-types-bench-callgrind-") as tmp_name:
        tmp = Path(tmp_name)
        impls.build(tmp, plain=False)
        loads = _loads(args, tmp)
        for target in targets:
            print(f"{target}: {args.callgrind} requests under callgrind ...", file=sys.stderr)
            per_request[target] = _instructions(
                suite, target, tmp / impls.UPB_DIR, loads, tmp, args.callgrind
            )
    lines = [
        f"instructions per request (callgrind, one process, all threads; {args.callgrind} "
        f"requests after a warm-up of {max(args.callgrind // 4, 64)}; load: h2load "
        f"{args.connections} x {args.streams} for gRPC, {args.h1_connections} x 1 for HTTP)",
        "",
        *(f"{t:<19} {i / 1000:>9.1f} k" for t, i in per_request.items()),
        "",
    ]
    for target, baseline in suite.ratios:
        if target in per_request and baseline in per_request:
            lines.append(
                f"{target} / {baseline}: {per_request[target] / per_request[baseline]:.2f}x "
                "the instructions per request"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace, suite: Suite) -> tuple[Runs, dict[str, str]]:
    """Every repetition's results of every target and process count, and the loads."""
    if shutil.which("h2load") is None:
        raise SystemExit(
            "h2load is missing: install nghttp2's client (Debian: apt-get install nghttp2-client)"
        )
    duration = args.duration or (3 if args.fast else 10)
    warmup = args.warmup or (1 if args.fast else 2)
    workers = [int(n) for n in (args.workers or ("1" if args.fast else suite.workers)).split(",")]
    repeat = args.repeat or (1 if args.fast else 3)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - set(suite.targets)
    if unknown:
        raise SystemExit(f"unknown targets: {sorted(unknown)}")
    runs: Runs = {}
    with tempfile.TemporaryDirectory(prefix="centrifugo-types-bench-server-") as tmp_name:
        tmp = Path(tmp_name)
        impls.build(tmp, plain=False)
        modules = tmp / impls.UPB_DIR
        loads = _loads(args, tmp)
        described = {
            protocol: load.describe()
            for protocol, load in loads.items()
            if any(suite.targets[t].protocol == protocol for t in targets)
        }
        available = []
        for target in targets:
            if suite.targets[target].command(modules, 0, 0) is None:
                print(f"{target}: not available", file=sys.stderr)
            else:
                available.append(target)
        # Targets alternate within each repetition, so that they share the machine's load.
        for rep in range(repeat):
            for n in workers:
                for target in available:
                    spec = suite.targets[target]
                    if n > 1 and not spec.reuse_port and not spec.pool:
                        continue
                    print(
                        f"[{rep + 1}/{repeat}] {target} x{n}: {duration + warmup} s of load ...",
                        file=sys.stderr,
                    )
                    runs.setdefault((target, n), []).append(
                        _one_run(suite, target, n, modules, loads, tmp, duration, warmup)
                    )
    return runs, described


def _median_result(rs: list[Result]) -> Result:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    return Result(
        rs[0].target,
        rs[0].workers,
        med([r.requests_per_second for r in rs]),
        sum(r.succeeded for r in rs),
        sum(r.failed for r in rs),
        med([r.p50_ms for r in rs]),
        med([r.p99_ms for r in rs]),
        med([r.cores for r in rs]),
        med([r.busiest for r in rs]),
        med([r.generator for r in rs]),
    )


def report(runs: Runs, loads: dict[str, str], args: argparse.Namespace, suite: Suite) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    timeout = f"grpc-timeout {args.grpc_timeout}" if args.grpc_timeout else "no grpc-timeout"
    lines = [
        f"load generator: h2load, 1 thread; {os.cpu_count()} cores; load average now {load}",
        *(
            f"  {protocol}: {text}" + (f", {timeout}" if protocol == "grpc" else "")
            for protocol, text in loads.items()
        ),
        "req/s, p50, p99, cores (server CPU s per s; busiest: of the busiest process; gen: "
        "of the load generator): medians over the repetitions; ok/failed: summed",
        "",
        f"{'target':<19} {'procs':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cores':>5}"
        f" {'busiest':>7} {'req/cpu-s':>9} {'gen':>5} {'ok':>9} {'failed':>6}",
    ]
    order = list(suite.targets)
    for key in sorted(runs, key=lambda k: (k[1], order.index(k[0]))):
        r = _median_result(runs[key])
        lines.append(
            f"{r.target:<19} {r.workers:>5} {r.requests_per_second:>8.0f} {r.p50_ms:>7.2f}"
            f" {r.p99_ms:>7.2f} {r.cores:>5.2f} {r.busiest:>7.2f} {r.per_cpu_second:>9.0f}"
            f" {r.generator:>5.2f} {r.succeeded:>9} {r.failed:>6}"
        )
    lines.append("")
    workers = sorted({n for _, n in runs})
    for target, baseline in suite.ratios:
        for n in workers:
            rs, bs = runs.get((target, n), []), runs.get((baseline, n), [])
            if not rs or not bs:
                continue
            pairs = [
                (
                    r.requests_per_second / b.requests_per_second,
                    r.p99_ms / b.p99_ms,
                    r.per_cpu_second / b.per_cpu_second,
                )
                for r, b in zip(rs, bs, strict=False)
            ]
            ratios = [statistics.median(values) for values in zip(*pairs, strict=True)]
            goal = suite.goal.get((target, baseline))
            lines.append(
                f"{target} / {baseline}, {n} process(es): {ratios[0]:.2f}x req/s"
                + (f" (target: {goal})" if goal else "")
                + f", {ratios[1]:.2f}x p99, {ratios[2]:.2f}x req/cpu-s"
            )
    if 1 in workers and 2 in workers:
        for target in order:
            ones, twos = runs.get((target, 1), []), runs.get((target, 2), [])
            if ones and twos:
                one, two = _median_result(ones), _median_result(twos)
                goal = f" (target: {suite.scaling_goal})" if suite.scaling_goal else ""
                lines.append(
                    f"{target}, 2 processes / 1: "
                    f"{two.requests_per_second / one.requests_per_second:.2f}x req/s{goal}; "
                    f"h2load's CPU {one.generator:.2f} -> {two.generator:.2f} cores"
                )
    lines.append("(ratios: medians of the ratios within each repetition, where the targets ran")
    lines.append(" back to back; 2 / 1 processes: of the medians)")
    single = [
        t for t in suite.targets if not suite.targets[t].reuse_port and not suite.targets[t].pool
    ]
    if any(n > 1 for n in workers) and single:
        lines.append(f"not run with more than one process: {', '.join(single)}")
    return "\n".join(lines)


def main(args: argparse.Namespace, suite: Suite = SERVER) -> int:
    if args.callgrind:
        print(instructions(args, suite))
        return 0
    runs, loads = run(args, suite)
    print(report(runs, loads, args, suite))
    return 0
