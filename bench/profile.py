"""``scripts/bench profile``: where the time of our generated codecs goes, per message.

For every representative message (see :mod:`bench.messages`), encode and decode with this
project's classes:

- ``bytecodes``: bytecode instructions executed (``sys.settrace`` opcode events), and
  ``calls``: Python-level function calls, per encode/decode;
- ``us`` and ``ns/bc``: time per call (best of a few ``timeit`` repeats) and that time
  divided by the bytecodes -- a near-constant ns/bc says the interpreter loop is the cost;
- ``in Python``: the share of cProfile's time spent inside Python functions (the generated
  codecs and runtime helpers, i.e. interpreting bytecode) rather than in C functions
  (``str.decode``, ``dict.copy``, ``bytearray.append``, ...).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import sys
import timeit
from collections.abc import Callable
from types import FrameType
from typing import Any

from .messages import MESSAGES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", metavar="TEXT", help="only messages whose label contains TEXT")


def _executed(fn: Callable[[], object]) -> tuple[int, int]:
    """(bytecodes, Python calls) executed by one call of ``fn`` (the call itself excluded)."""
    counts = {"ops": 0, "calls": 0}

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            counts["ops"] += 1
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        counts["calls"] += 1
        return local

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return counts["ops"], counts["calls"] - 1


def _python_share(fn: Callable[[], object], loops: int) -> float:
    """Share of profiled time spent in Python functions' own code, not in C functions."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(loops):
        fn()
    profiler.disable()
    # pstats keeps its table in an attribute typeshed does not declare:
    # {(file, line, name): (primitive calls, calls, own time, cumulative time, callers)}
    stats: Any = getattr(pstats.Stats(profiler), "stats")  # noqa: B009
    total = python = 0.0
    for (filename, _, _), (_, _, own, _, _) in stats.items():
        total += own
        if filename != "~" and not filename.endswith("bench/profile.py"):
            python += own
    return python / total if total else 0.0


def main(args: argparse.Namespace) -> int:
    print(
        f"{'message':<24} {'op':<7}{'bytecodes':>10}{'calls':>7}{'us':>9}{'ns/bc':>7}"
        f"{'in Python':>11}"
    )
    for label, (_, build, _) in MESSAGES.items():
        if args.only and args.only.lower() not in label.lower():
            continue
        message = build()
        wire = bytes(message)
        encode = message.__bytes__
        decode = functools.partial(type(message).parse, wire)
        for op, fn in (("encode", encode), ("decode", decode)):
            ops, calls = _executed(fn)
            loops = max(1, 20_000 // max(ops // 100, 1))
            us = min(timeit.repeat(fn, number=loops, repeat=5)) / loops * 1e6
            share = _python_share(fn, loops)
            print(
                f"{label:<24} {op:<7}{ops:>10}{calls:>7}{us:>9.2f}{us * 1000 / ops:>7.1f}"
                f"{share:>11.0%}"
            )
    return 0
