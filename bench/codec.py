"""``scripts/bench codec``: encode and decode time of representative messages, three ways.

The parent process builds the other implementations once (:mod:`bench.impls`), then starts
``--processes`` fresh worker processes one after another. Each worker

1. builds every message of :mod:`bench.messages` with our classes and gets the *same values*
   into plain betterproto2 and upb by parsing our bytes with their own decoders (and checks
   that all three encode to bytes that decode back to the same message);
2. calibrates, per case, a loop count that makes one sample last ``--min-time``;
3. runs warm-up rounds (discarded) then ``--rounds`` measured rounds; in each round the cases
   come in a fresh random order, the three implementations of one message and operation
   back to back, so that they share whatever load the machine has at that moment.

Timing uses :mod:`timeit` (the statement compiled into the loop, garbage collection off
while timing, as ``timeit`` does). The report gives per case the median over all samples of
all processes, the spread (interquartile range / median), and the ratios computed from
those medians: ``ours/upb`` (how many times upb's time we take: target <= 3) and
``bp2/ours`` (how many times faster than plain betterproto2: target >= 25).

Why not pyperf: pyperf runs every benchmark in its own set of processes, so the 36 cases
here would take 20+ minutes at its defaults, and the three implementations of one case
would be measured minutes apart -- on a shared machine under varying load that makes the
ratios (the numbers that matter) noisier than the interleaved rounds above.

Operations: ``encode`` (``bytes(m)`` / ``SerializeToString()``), ``decode`` (``parse`` /
``FromString``) and ``read``: decode, then read every field a handler would use with the
same attribute-access function for all three. upb decodes lazily -- its ``FromString`` makes
no Python objects until fields are read -- so ``read`` is the end-to-end comparison.
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
import tempfile
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import impls
from .messages import MESSAGES

IMPLS = ("ours", "betterproto2", "upb")
OPS = ("encode", "decode", "read")  # read: decode + read every field a handler uses
ENCODE_TARGET = DECODE_TARGET = 3.0  # at most this many times upb's time
PLAIN_TARGET = 25.0  # at least this many times faster than plain betterproto2

_STATEMENTS = {
    ("encode", "ours"): "bytes(m)",
    ("encode", "betterproto2"): "bytes(m)",
    ("encode", "upb"): "m.SerializeToString()",
    ("decode", "ours"): "cls.parse(wire)",
    ("decode", "betterproto2"): "cls.parse(wire)",
    ("decode", "upb"): "cls.FromString(wire)",
    ("read", "ours"): "read(cls.parse(wire))",
    ("read", "betterproto2"): "read(cls.parse(wire))",
    ("read", "upb"): "read(cls.FromString(wire))",
}


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="fewer processes and rounds (~20 s)")
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


def _cases(tmp: Path, only: str | None) -> tuple[list[Case], dict[str, int]]:
    modules = impls.load(tmp)
    cases, sizes = [], {}
    for label, (module, build, read) in MESSAGES.items():
        if only and only.lower() not in label.lower():
            continue
        ours = build()
        wire = bytes(ours)
        sizes[label] = len(wire)
        name = type(ours).__name__
        values: dict[str, Any] = {"ours": ours}
        classes: dict[str, Any] = {}
        for impl in IMPLS:
            classes[impl] = getattr(modules[impl].of(module), name)
        # The same values in every implementation, decoded by each one's own decoder.
        values["betterproto2"] = classes["betterproto2"].parse(wire)
        values["upb"] = classes["upb"].FromString(wire)
        for impl in ("betterproto2", "upb"):
            encoded = values[impl].SerializeToString()
            if classes["ours"].parse(encoded) != ours:
                raise AssertionError(f"{impl} does not hold the same {label}")
            if read(values[impl]) != read(ours):
                raise AssertionError(f"{impl} reads {label} differently")
        for op in OPS:
            for impl in IMPLS:
                env = {"m": values[impl], "cls": classes[impl], "wire": wire, "read": read}
                timer = timeit.Timer(_STATEMENTS[op, impl], globals=env)
                cases.append(Case(label, op, impl, timer))
    return cases, sizes


def _calibrate(case: Case, min_time: float) -> None:
    loops = 1
    while True:
        elapsed = case.timer.timeit(loops)
        if elapsed >= min_time / 4:
            case.loops = max(1, round(loops * min_time / elapsed))
            return
        loops *= 10


def worker(tmp: Path, settings: Settings, only: str | None, seed: int) -> dict[str, Any]:
    cases, sizes = _cases(tmp, only)
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
    return {
        "sizes": sizes,
        "cases": [
            {"message": c.message, "op": c.op, "impl": c.impl, "samples": c.samples} for c in cases
        ],
    }


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

    return {
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "protobuf": f"{google.protobuf.__version__} (upb)",
        "betterproto2": getattr(betterproto2, "__version__", "0.10.0"),
        "loadavg_start": os.getloadavg(),
    }


def _quartiles(samples: list[float]) -> tuple[float, float, float]:
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, q2, q3


def report(results: list[dict[str, Any]], info: dict[str, Any], settings: Settings) -> str:
    samples: dict[tuple[str, str, str], list[float]] = {}
    for result in results:
        for case in result["cases"]:
            key = (case["message"], case["op"], case["impl"])
            samples.setdefault(key, []).extend(case["samples"])
    sizes = results[0]["sizes"]
    lines = [
        f"machine: {info['cpu']}, {info['nproc']} cores, {info['python']}, {info['platform']}",
        f"load average: {_load(info['loadavg_start'])} at start, "
        f"{_load(info['loadavg_end'])} at end",
        f"runtimes: protobuf {info['protobuf']}, betterproto2 {info['betterproto2']}",
        f"harness: {settings.processes} processes x ({settings.warmups} warm-up + "
        f"{settings.rounds} rounds), {settings.min_time * 1000:g} ms per sample; "
        "median per call, (IQR/median)",
        "",
        f"{'message':<23} {'bytes':>5} {'op':<6} {'ours':>16} {'betterproto2':>16}"
        f" {'upb':>16} {'ours/upb':>9} {'bp2/ours':>9}",
    ]
    misses = []
    for label in MESSAGES:
        if label not in sizes:
            continue
        for op in OPS:
            med = {}
            cells = []
            for impl in IMPLS:
                q1, q2, q3 = _quartiles(samples[label, op, impl])
                med[impl] = q2
                cells.append(f"{_us(q2)} {(q3 - q1) / q2:4.0%}")
            vs_upb = med["ours"] / med["upb"]
            vs_plain = med["betterproto2"] / med["ours"]
            mark_upb = " " if vs_upb <= ENCODE_TARGET or op == "read" else "!"
            mark_plain = " " if vs_plain >= PLAIN_TARGET or op == "read" else "!"
            if mark_upb == "!" or mark_plain == "!":
                misses.append(f"{label} {op}")
            name, size = (label, str(sizes[label])) if op == "encode" else ("", "")
            lines.append(
                f"{name:<23} {size:>5} {op:<6} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}"
                f" {vs_upb:8.1f}x{mark_upb}{vs_plain:8.1f}x{mark_plain}"
            )
    lines += [
        "",
        f"targets (encode, decode): ours/upb <= {ENCODE_TARGET:g}x, bp2/ours >= "
        f"{PLAIN_TARGET:g}x ('!' marks a miss); read = decode + read every field a handler "
        "uses (upb decodes lazily: its decode alone makes no Python objects)",
        f"missed: {', '.join(misses)}" if misses else "all targets met",
    ]
    return "\n".join(lines)


def _us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:.3g} us" if us < 100 else f"{us:.0f} us"


def _load(load: list[float] | tuple[float, ...]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def main(args: argparse.Namespace) -> int:
    settings = Settings.from_args(args)
    if args.worker is not None:
        json.dump(worker(args.worker, settings, args.only, args.seed), sys.stdout)
        return 0
    info = machine()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="centrifugo-types-bench-") as tmp:
        print("building plain betterproto2 and upb modules ...", file=sys.stderr)
        impls.build(Path(tmp))
        results = []
        for i in range(settings.processes):
            print(f"worker {i + 1}/{settings.processes} ...", file=sys.stderr)
            cmd = [sys.executable, "-m", "bench", "codec", "--worker", tmp, "--seed", str(i)]
            cmd += _passthrough(args)
            out = subprocess.run(cmd, cwd=impls.ROOT, capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            results.append(json.loads(out.stdout))
    info["loadavg_end"] = os.getloadavg()
    info["seconds"] = round(time.monotonic() - started, 1)
    text = report(results, info, settings)
    print(text)
    print(f"\n({info['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    return 0


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
