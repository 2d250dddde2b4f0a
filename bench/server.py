"""``scripts/bench server``: unary ``CentrifugoProxy.Connect`` throughput over gRPC on 127.0.0.1.

For each target server and each number of backend processes (``--workers 1,2``), the harness

1. starts that many processes of the server on one free port of 127.0.0.1 (they share it with
   SO_REUSEPORT, and the kernel spreads the load generator's connections over them);
2. checks with a real gRPC call (grpcio client, our message classes) that Connect answers
   with the benchmark's logic: ``ConnectResult(user=request.client)``;
3. drives it with h2load (nghttp2's HTTP/2 load generator, written in C, so it takes little
   of the 2 cores from the server) for ``--warmup`` + ``--duration`` seconds at
   ``--connections`` x ``--streams`` requests in flight, POSTing the gRPC frame of the
   benchmark's ConnectRequest with the headers Centrifugo sends (``content-type``, ``te``
   and ``grpc-timeout``: Centrifugo gives every proxy call a deadline, 1 s by default), and
   logs every request's latency; meanwhile it reads the CPU time the server processes use
   (``/proc/PID/stat``: all their threads);
4. stops the processes (they also stop by themselves after a bounded time).

Targets:

- ``grpcio``: :mod:`bench.grpcio_server`, a hand-written grpcio aio servicer on upb messages;
- ``ours``: :mod:`bench.our_server`, this project's gRPC proxy server with the same connect
  logic, run by ``centrifugo-types serve`` itself (on uvloop, which the dev group installs);
- ``ours-asyncio``: the same with ``--loop asyncio``, asyncio's own event loop.

One grpcio process is not one thread: its C core runs HTTP/2 on threads of its own, so it
uses more than one core when the machine has one to spare, where one process of ours (one
Python thread) uses at most one. The ``cores`` and ``req/cpu-s`` columns show that: requests
per second of server CPU time is the measure of efficiency; req/s at 2 processes is the
measure of throughput on this machine.

h2load counts HTTP statuses, not gRPC ones (a gRPC error is an HTTP 200 with a non-zero
``grpc-status`` trailer), so step 2 is what proves the answers right. Latencies (p50, p99)
come from h2load's per-request log of the measured period; req/s is h2load's own figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import impls
from .messages import connect_request

CONNECT_PATH = "/centrifugal.centrifugo.proxy.CentrifugoProxy/Connect"
HOST = "127.0.0.1"


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


def our_asyncio_server_command(modules: Path, port: int, max_seconds: float) -> list[str] | None:
    """:func:`our_server_command` on asyncio's own event loop instead of uvloop."""
    command = our_server_command(modules, port, max_seconds)
    return None if command is None else [*command, "--loop", "asyncio"]


TARGETS: dict[str, Callable[[Path, int, float], list[str] | None]] = {
    "grpcio": grpcio_command,
    "ours": our_server_command,
    "ours-asyncio": our_asyncio_server_command,
}


# -- harness --------------------------------------------------------------------------------


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
    pairs: tuple[tuple[float, float, float], ...] = ()
    """Per repetition: (req/s, p99, req/cpu-s) of this target / grpcio's in that repetition."""

    @property
    def per_cpu_second(self) -> float:
        """Requests per second of server CPU time."""
        return self.requests_per_second / self.cores if self.cores else float("nan")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="3 s runs, one worker count")
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="comma-separated, of: " + ", ".join(TARGETS) + " (all)",
    )
    parser.add_argument("--workers", help="backend process counts to run (default 1,2; fast 1)")
    parser.add_argument("--duration", type=int, help="measured seconds per run (10; fast 3)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per run (2; fast 1)")
    parser.add_argument(
        "--repeat", type=int, help="runs per target and count, interleaved; medians (3; fast 1)"
    )
    parser.add_argument("--connections", type=int, default=8, help="h2load clients (8)")
    parser.add_argument("--streams", type=int, default=8, help="streams per connection (8)")
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


def _probe(port: int, deadline: float) -> None:
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
    commands: list[list[str]], port: int, deadline: float, stderr: Path
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
            _probe(port, deadline)
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


def _h2load(
    port: int, body: Path, log: Path, args: argparse.Namespace, duration: int, warmup: int
) -> tuple[float, int, int]:
    cmd = [
        "h2load",
        f"http://{HOST}:{port}{CONNECT_PATH}",
        "-d",
        str(body),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        *(["-H", f"grpc-timeout: {args.grpc_timeout}"] if args.grpc_timeout else []),
        "-c",
        str(args.connections),
        "-m",
        str(args.streams),
        "-t",
        "1",
        "-D",
        str(duration),
        f"--warm-up-time={warmup}",
        f"--log-file={log}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 60)
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
    return rps, int(succeeded), int(failed)


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
    target: str,
    n: int,
    modules: Path,
    body: Path,
    tmp: Path,
    args: argparse.Namespace,
    duration: int,
    warmup: int,
) -> Result:
    port = _free_port()
    # Servers stop by themselves a minute after the run should have ended.
    command = TARGETS[target](modules, port, duration + warmup + 60)
    assert command is not None
    log = tmp / f"{target}-{n}.log"
    with _servers([command] * n, port, time.monotonic() + 30, tmp / "stderr") as pids:
        cpu = _cpu_seconds(pids)
        started = time.monotonic()
        rps, ok, bad = _h2load(port, body, log, args, duration, warmup)
        # Warm-up and measured period alike run at full load: CPU over the whole run.
        elapsed = time.monotonic() - started
        used = [(b - a) / elapsed for a, b in zip(cpu, _cpu_seconds(pids), strict=True)]
    p50, p99 = _latencies(log)
    log.unlink()
    return Result(target, n, rps, ok, bad, p50, p99, sum(used), max(used))


def run(args: argparse.Namespace) -> list[Result]:
    if shutil.which("h2load") is None:
        raise SystemExit(
            "h2load is missing: install nghttp2's client (Debian: apt-get install nghttp2-client)"
        )
    duration = args.duration or (3 if args.fast else 10)
    warmup = args.warmup or (1 if args.fast else 2)
    workers = [int(n) for n in (args.workers or ("1" if args.fast else "1,2")).split(",")]
    repeat = args.repeat or (1 if args.fast else 3)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        raise SystemExit(f"unknown targets: {sorted(unknown)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="centrifugo-types-bench-server-") as tmp_name:
        tmp = Path(tmp_name)
        impls.build(tmp, plain=False)
        modules = tmp / impls.UPB_DIR
        body = tmp / "connect.grpc"
        body.write_bytes(_grpc_frame(bytes(connect_request())))
        available = []
        for target in targets:
            if TARGETS[target](modules, 0, 0) is None:
                print(f"{target}: not available", file=sys.stderr)
            else:
                available.append(target)
        runs: dict[tuple[str, int], list[Result]] = {}
        # Targets alternate within each repetition, so that they share the machine's load.
        for rep in range(repeat):
            for n in workers:
                for target in available:
                    print(
                        f"[{rep + 1}/{repeat}] {target} x{n}: {duration + warmup} s of load ...",
                        file=sys.stderr,
                    )
                    runs.setdefault((target, n), []).append(
                        _one_run(target, n, modules, body, tmp, args, duration, warmup)
                    )
        for (target, n), rs in runs.items():
            base = runs.get(("grpcio", n), [])
            pairs = tuple(
                (
                    r.requests_per_second / b.requests_per_second,
                    r.p99_ms / b.p99_ms,
                    r.per_cpu_second / b.per_cpu_second,
                )
                for r, b in zip(rs, base, strict=False)
            )
            results.append(
                Result(
                    target,
                    n,
                    statistics.median(r.requests_per_second for r in rs),
                    sum(r.succeeded for r in rs),
                    sum(r.failed for r in rs),
                    statistics.median(r.p50_ms for r in rs),
                    statistics.median(r.p99_ms for r in rs),
                    statistics.median(r.cores for r in rs),
                    statistics.median(r.busiest for r in rs),
                    pairs if target != "grpcio" else (),
                )
            )
    return results


def report(results: list[Result], args: argparse.Namespace) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    timeout = f"grpc-timeout {args.grpc_timeout}" if args.grpc_timeout else "no grpc-timeout"
    lines = [
        f"load generator: h2load, {args.connections} connections x {args.streams} streams "
        f"in flight, 1 thread, {timeout}; {os.cpu_count()} cores; load average now {load}",
        "req/s, p50, p99, cores (server CPU s per s; busiest: of the busiest process): "
        "medians over the repetitions; ok/failed: summed",
        "",
        f"{'target':<12} {'procs':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cores':>5}"
        f" {'busiest':>7} {'req/cpu-s':>9} {'ok':>9} {'failed':>6}",
    ]
    results = sorted(results, key=lambda r: (r.workers, list(TARGETS).index(r.target)))
    for r in results:
        lines.append(
            f"{r.target:<12} {r.workers:>5} {r.requests_per_second:>8.0f} {r.p50_ms:>7.2f}"
            f" {r.p99_ms:>7.2f} {r.cores:>5.2f} {r.busiest:>7.2f} {r.per_cpu_second:>9.0f}"
            f" {r.succeeded:>9}"
            f" {r.failed:>6}"
        )
    lines.append("")
    for r in results:
        if r.target == "grpcio" or not r.pairs:
            continue
        ratios = [statistics.median(values) for values in zip(*r.pairs, strict=True)]
        lines.append(
            f"{r.target} / grpcio, {r.workers} process(es): {ratios[0]:.2f}x req/s "
            f"(target: >= 1.0x), {ratios[1]:.2f}x p99, {ratios[2]:.2f}x req/cpu-s"
        )
    lines.append("(ratios: medians of the ratios within each repetition, where the targets ran")
    lines.append(" back to back)")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    results = run(args)
    print(report(results, args))
    return 0
