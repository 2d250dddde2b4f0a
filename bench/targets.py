"""``scripts/bench targets``: every performance target of the project from one run.

Runs, one after the other and each in a process of its own, the benchmarks that carry a target
(issue 6's codec and gRPC server, issue 17's grpcio transport, HTTP proxy and import time):

- ``codec``: encode and decode at most 3x upb, at least 25x plain betterproto2;
- ``server``: our gRPC servers (grpclib, grpcio) against a grpcio aio + upb servicer;
- ``http``: the HTTP proxy against the empty-ASGI floor, 1 and 2 processes;
- ``import``: ``import centrifugo_types`` and ``centrifugo_types.api``.

Each benchmark's whole report is kept in ``--out`` (a directory; a temporary one by default)
and the lines that state a target, with their ratio, are printed together at the end.
``--fast`` runs each in its quick mode (a smoke test of the numbers, not a measurement).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: benchmark -> its arguments (before ``--fast``)
BENCHES: dict[str, list[str]] = {
    "codec": ["codec"],
    "server": ["server", "--targets", "grpcio,ours,ours-grpcio"],
    "http": ["http", "--targets", "ours-http,asgi-floor,ours-http-uvloop,asgi-floor-uvloop"],
    "import": ["import", "--top", "0"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="each benchmark's quick mode")
    parser.add_argument(
        "--only", help="comma-separated, of: " + ", ".join(BENCHES) + " (all)", default=""
    )
    parser.add_argument("--out", type=Path, help="keep each full report here (BENCH.txt)")


def target_lines(report: str) -> list[str]:
    """The lines of a report that state a target or a verdict."""
    keep = ("target", "missed:", " encode ", " decode ")
    return [line for line in report.splitlines() if any(k in line for k in keep)]


def main(args: argparse.Namespace) -> int:
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    unknown = set(names) - set(BENCHES)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="centrifugo-types-targets-") as tmp:
        out: Path = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        summary: list[str] = []
        status = 0
        for name in names:
            command = [sys.executable, "-m", "bench", *BENCHES[name]]
            if args.fast and name != "import":
                command.append("--fast")
            print(f"== {name}: {' '.join(command[2:])}", file=sys.stderr, flush=True)
            started = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            report = done.stdout + (f"\n{done.stderr}" if done.returncode else "")
            (out / f"{name}.txt").write_text(report)
            seconds = time.monotonic() - started
            summary.append(f"\n{name} ({seconds:.0f} s, full report: {out / (name + '.txt')}):")
            if done.returncode:
                status = 1
                summary.append(f"  FAILED with status {done.returncode}")
            summary += [f"  {line.rstrip()}" for line in target_lines(report)]
        print("\n".join(summary).lstrip("\n"))
    return status
