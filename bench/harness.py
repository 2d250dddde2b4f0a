"""The timing harness shared by ``scripts/bench codec`` and ``scripts/bench json``.

The parent process starts ``--processes`` fresh worker processes one after another
(:func:`run_workers`). Each worker builds its cases, then (:func:`measure`)

1. calibrates, per case, a loop count that makes one sample last ``--min-time``;
2. runs warm-up rounds (discarded) then ``--rounds`` measured rounds; in each round the
   groups of cases (one message and operation) come in a fresh random order, and the
   implementations of one group run back to back in a random order, so that they share
   whatever load the machine has at that moment.

Timing uses :mod:`timeit` (the statement compiled into the loop, garbage collection off while
timing, as ``timeit`` does; a case's ``setup`` runs before the clock starts). Reports give per
case the median over all samples of all processes and the spread (interquartile range /
median); ratios are computed from those medians.

Why not pyperf: pyperf runs every benchmark in its own set of processes, so the dozens of
cases here would take 20+ minutes at its defaults, and the implementations of one case would
be measured minutes apart -- on a shared machine under varying load that makes the ratios
(the numbers that matter) noisier than the interleaved rounds above.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import timeit
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import impls


@dataclass(frozen=True)
class Settings:
    processes: int
    warmups: int
    rounds: int
    min_time: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        fast = cls(processes=2, warmups=1, rounds=3, min_time=0.01)
        full = cls(processes=5, warmups=1, rounds=8, min_time=0.025)
        base = fast if args.fast else full
        return cls(
            processes=args.processes or base.processes,
            warmups=base.warmups,
            rounds=args.rounds or base.rounds,
            min_time=args.min_time or base.min_time,
        )

    def describe(self) -> str:
        return (
            f"{self.processes} processes x ({self.warmups} warm-up + {self.rounds} rounds), "
            f"{self.min_time * 1000:g} ms per sample; median per call, (IQR/median)"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="fewer processes and rounds")
    parser.add_argument("--processes", type=int, help="worker processes (default 5, fast 2)")
    parser.add_argument("--rounds", type=int, help="measured rounds per process (8, fast 3)")
    parser.add_argument("--min-time", type=float, help="seconds per sample (0.025, fast 0.01)")
    parser.add_argument("--only", metavar="TEXT", help="only messages whose label contains TEXT")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write all samples here")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: tmp dir
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)


# -- worker ---------------------------------------------------------------------------------


@dataclass
class Case:
    message: str
    op: str
    impl: str
    timer: timeit.Timer
    loops: int = 0
    samples: list[float] = field(default_factory=list)


def _calibrate(case: Case, min_time: float) -> None:
    loops = 1
    while True:
        elapsed = case.timer.timeit(loops)
        if elapsed >= min_time / 4:
            case.loops = max(1, round(loops * min_time / elapsed))
            return
        loops *= 10


def measure(cases: list[Case], settings: Settings, seed: int) -> list[dict[str, Any]]:
    """Calibrate and time ``cases`` (see the module docstring); their samples, as JSON."""
    for case in cases:
        _calibrate(case, settings.min_time)
    groups: dict[tuple[str, str], list[Case]] = {}
    for case in cases:
        groups.setdefault((case.message, case.op), []).append(case)
    rng = random.Random(seed)
    keys = list(groups)
    for round_ in range(settings.warmups + settings.rounds):
        rng.shuffle(keys)
        for key in keys:
            group = groups[key][:]
            rng.shuffle(group)
            for case in group:
                per_op = case.timer.timeit(case.loops) / case.loops
                if round_ >= settings.warmups:
                    case.samples.append(per_op)
    return [{"message": c.message, "op": c.op, "impl": c.impl, "samples": c.samples} for c in cases]


# -- parent ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on (printed and stored with them)."""
    import betterproto2
    import google.protobuf

    from centrifugo_types import CODEC_BACKEND

    return {
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "protobuf": f"{google.protobuf.__version__} (upb)",
        "betterproto2": getattr(betterproto2, "__version__", "0.10.0"),
        "codec": CODEC_BACKEND,
        "loadavg_start": os.getloadavg(),
    }


def header(info: dict[str, Any], settings: Settings) -> list[str]:
    """The report's first lines: machine, load, runtimes, harness."""
    return [
        f"machine: {info['cpu']}, {info['nproc']} cores, {info['python']}, {info['platform']}",
        f"load average: {load(info['loadavg_start'])} at start, {load(info['loadavg_end'])} at end",
        f"runtimes: protobuf {info['protobuf']}, betterproto2 {info['betterproto2']}; "
        f"our binary codec: {info.get('codec', 'python')}",
        f"harness: {settings.describe()}",
    ]


def samples_by_case(results: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[float]]:
    """All processes' samples of each (message, op, impl)."""
    samples: dict[tuple[str, str, str], list[float]] = {}
    for result in results:
        for case in result["cases"]:
            key = (case["message"], case["op"], case["impl"])
            samples.setdefault(key, []).extend(case["samples"])
    return samples


def quartiles(samples: list[float]) -> tuple[float, float, float]:
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, q2, q3


def us(seconds: float) -> str:
    micros = seconds * 1e6
    return f"{micros:.3g} us" if micros < 100 else f"{micros:.0f} us"


def load(values: Iterable[float]) -> str:
    return " ".join(f"{x:.2f}" for x in values)


def run_workers(
    command: str, args: argparse.Namespace, settings: Settings, tmp: Path
) -> list[dict[str, Any]] | None:
    """Run ``python -m bench COMMAND --worker TMP`` ``settings.processes`` times, one after
    another; their JSON outputs (None, with their stderr printed, if one fails)."""
    results = []
    for i in range(settings.processes):
        print(f"worker {i + 1}/{settings.processes} ...", file=sys.stderr)
        cmd = [sys.executable, "-m", "bench", command, "--worker", str(tmp), "--seed", str(i)]
        cmd += _passthrough(args)
        out = subprocess.run(cmd, cwd=impls.ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return None
        results.append(json.loads(out.stdout))
    return results


def _passthrough(args: argparse.Namespace) -> list[str]:
    out = []
    if args.fast:
        out.append("--fast")
    for flag, value in (
        ("--rounds", args.rounds),
        ("--min-time", args.min_time),
        ("--only", args.only),
    ):
        if value:
            out += [flag, str(value)]
    return out
