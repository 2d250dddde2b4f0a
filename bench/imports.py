"""``scripts/bench import``: how long importing the package takes, and the memory it holds.

For each statement (``import centrifugo_types``, ``import centrifugo_types.api``, ...), run
``--runs`` fresh interpreters ``python -X importtime -c STATEMENT`` (after one run that writes
the ``.pyc`` files: warm bytecode caches, as an installed package has) and report

- ``import ms``: the sum of the top-level modules' cumulative ``-X importtime`` times of the
  statement beyond a bare interpreter's start, minimum and median over the runs (the minimum
  is the least disturbed by other work on the machine);
- ``cpu ms``: the child's user + system CPU time, minus that of ``python -c pass``, median;
- ``RSS MB``: the child's resident memory after the statement (``VmRSS``), minus that of
  ``python -c pass``, median;
- with ``--callgrind``, ``Minstr``: millions of CPU instructions the statement executes
  beyond a bare interpreter (valgrind's callgrind, one run): the number to compare designs
  by on a busy machine;
- with ``--top N``, the N modules with the largest own (``self``) import time in the median
  run of each statement: what dominates.

``PYTHONDONTWRITEBYTECODE`` is removed from the children's environment, so the caches exist.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .impls import ROOT

STATEMENTS = (
    "import centrifugo_types",
    "from centrifugo_types import Router, ConnectCall",
    "import centrifugo_types.proxy",
    "import centrifugo_types.api",
    "import centrifugo_types.json",
    "from centrifugo_types.json import dumps; from centrifugo_types.proxy import Error; "
    "dumps(Error())",
    "import centrifugo_types.testing",
)
_ROOT = ROOT
"""The checkout the children import from (their working directory: first on sys.path)."""
TARGETS = {"import centrifugo_types": 100.0, "import centrifugo_types.api": 150.0}
"""Issue 17's targets, milliseconds."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per statement")
    parser.add_argument("--top", type=int, default=8, help="modules with most own time shown")
    parser.add_argument(
        "--statement", action="append", help="a statement to time (repeatable; default: a set)"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="import the package from this checkout instead (e.g. `git worktree add` of the "
        "commit before a change): its directory goes first on sys.path",
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="also count the CPU instructions of each statement (valgrind's callgrind, one "
        "run each, minus a bare interpreter's): independent of the machine's other load",
    )


def _child(statement: str) -> tuple[dict[str, tuple[int, int]], list[str], float]:
    """One fresh interpreter: ({module: (self us, cumulative us)}, top-level modules, CPU
    seconds)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    modules: dict[str, tuple[int, int]] = {}
    top: list[str] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|")
        module = name.strip()
        modules[module] = (int(own), int(cumulative))
        if name.startswith(" ") and not name.startswith("  "):
            top.append(module)
    return modules, top, cpu


def _rss(statement: str) -> float:
    """Resident memory (MB, ``VmRSS``) of a fresh interpreter after running ``statement``.
    (Not ``ru_maxrss``: Linux carries it over ``execve`` from the parent.)"""
    code = (
        f"{statement}\nimport sys\n"
        "sys.stdout.write([l for l in open('/proc/self/status') if l.startswith('VmRSS')]"
        "[0].split()[1])"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=_ROOT, env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout) / 1024


def _instructions(statement: str) -> int:
    """CPU instructions a fresh interpreter executes for ``statement`` (start-up included)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                "--quiet",
                sys.executable,
                "-c",
                statement,
            ],
            cwd=_ROOT,
            env=env,
            capture_output=True,
            check=True,
        )
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("no callgrind summary")


def measure(statement: str, runs: int, top: int) -> tuple[list[str], dict[str, float]]:
    _child(statement)  # writes the .pyc files
    totals, cpus, rsss = [], [], []
    samples = []
    for _ in range(runs):
        modules, roots, cpu = _child(statement)
        totals.append(sum(modules[m][1] for m in roots if m in modules) / 1000)
        cpus.append(cpu * 1000)
        rsss.append(_rss(statement))
        samples.append((totals[-1], modules))
    median_run = sorted(samples, key=lambda s: s[0])[len(samples) // 2][1]
    heaviest = sorted(median_run.items(), key=lambda kv: -kv[1][0])[:top]
    lines = [f"      {own / 1000:7.1f} ms  {name}" for name, (own, _) in heaviest]
    return lines, {
        "min": min(totals),
        "median": statistics.median(totals),
        "cpu": statistics.median(cpus),
        "rss": statistics.median(rsss),
    }


def main(args: argparse.Namespace) -> int:
    global _ROOT
    _ROOT = args.root.resolve()
    statements = args.statement or list(STATEMENTS)
    _child("pass")
    base_cpu = statistics.median(_child("pass")[2] * 1000 for _ in range(args.runs))
    base_rss = statistics.median(_rss("pass") for _ in range(5))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{_ROOT}: CPython {sys.version.split()[0]}; {args.runs} fresh processes per "
        f"statement, warm .pyc; load average {load}\nbare interpreter: {base_cpu:.0f} ms CPU, "
        f"{base_rss:.1f} MB RSS (subtracted below)\n"
    )
    base_instructions = _instructions("pass") if args.callgrind else 0
    print(
        f"{'import ms (min / median)':>26} {'cpu ms':>7} {'RSS MB':>7}"
        + (f" {'Minstr':>7}" if args.callgrind else "")
        + "  statement"
    )
    for statement in statements:
        top, result = measure(statement, args.runs, args.top)
        instructions = ""
        if args.callgrind:
            count = (_instructions(statement) - base_instructions) / 1e6
            instructions = f" {count:>7.0f}"
        goal = TARGETS.get(statement)
        verdict = ""
        if goal is not None:
            verdict = f"  (target <= {goal:.0f} ms: {'met' if result['min'] <= goal else 'missed'})"
        print(
            f"{result['min']:>12.1f} / {result['median']:>9.1f}"
            f" {result['cpu'] - base_cpu:>7.0f} {result['rss'] - base_rss:>7.1f}{instructions}"
            f"  {statement}" + verdict
        )
        if args.top:
            print("\n".join(top))
    return 0
