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

``scripts/bench profile --json``: the same for ``centrifugo_types.json`` (dumps and loads, on
the standard library path and with orjson; the messages as ``scripts/bench json`` uses them),
with the time split by where the CPU runs instead of cProfile's share (cProfile does not see
the C scanner, a callable object rather than a function): a child process loops over one
case, and ``perf record`` (Linux perf, when installed) samples it for ``--seconds``. The
samples are grouped by symbol: ``bytecode`` (``_PyEval_EvalFrameDefault``, the interpreter
loop), ``regex`` (the ``re`` engine: matching keys and strings), ``scanner`` (the ``_json``
C extension: the standard library's scanner and string escaping), ``orjson``, ``alloc``
(object allocation and freeing), ``gc`` (the cyclic garbage collector, which ``timeit`` turns
off but a server does not), ``dict`` (lookups and inserts, hashing), ``str`` (building,
joining, comparing and copying strings) and ``other`` (calls, frames, truth tests, ...).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from . import impls
from .messages import MESSAGES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", metavar="TEXT", help="only messages whose label contains TEXT")
    parser.add_argument("--json", action="store_true", help="profile the JSON dialect codec")
    parser.add_argument(
        "--seconds", type=float, default=1.5, help="--json: perf sampling time per case (1.5)"
    )
    parser.add_argument("--loop", nargs=3, help=argparse.SUPPRESS)  # internal: the child


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
    if args.loop:
        return _json_loop(*args.loop)
    if args.json:
        return json_main(args)
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


# -- the JSON dialect codec -----------------------------------------------------------------

JSON_PATHS = ("stdlib", "orjson")
CATEGORIES = ("bytecode", "regex", "scanner", "orjson", "alloc", "gc", "dict", "str", "other")
_REGEX = re.compile(r"^_?sre|^pattern_|^match_|^state_|^_sre")
_ALLOC = re.compile(
    r"malloc|free|dealloc|_alloc|_New\b|_NewVar|GC_Del|GC_UnTrack|NewReference|unlink_chunk"
    r"|new_keys_object|PyObject_GC_Track|_PyObject_Realloc",
    re.IGNORECASE,
)
_DICT = re.compile(r"dict|keys_lookup|siphash|find_empty_slot", re.IGNORECASE)
_STR = re.compile(r"unicode|_copy_characters|^mem(move|cpy|cmp|set)|^__mem|ascii|utf8", re.I)
_GC = re.compile(r"^gc_|^visit_|^collect|^move_|^subtract_refs|^update_refs|^deduce_")
_PERF_LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(\S+)")


def _json_case(label: str, op: str, path: str) -> Callable[[], object]:
    from centrifugo_types import json as dialect

    from .json_codec import centrifugo_message

    message = centrifugo_message(MESSAGES[label][1])
    dialect.use_orjson(path == "orjson")
    doc, cls = dialect.dumps(message), type(message)
    if op == "dumps":
        return functools.partial(dialect.dumps, message)
    return functools.partial(dialect.loads, cls, doc)


def _json_loop(label: str, op: str, path: str) -> int:
    """The child: warm up, say so, then run the case until killed (or for a minute)."""
    fn = _json_case(label, op, path)
    for _ in range(2000):
        fn()
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for _ in range(100):
            fn()
    return 0


def _category(dso: str, symbol: str) -> str:
    if symbol == "_PyEval_EvalFrameDefault":
        return "bytecode"
    if dso.startswith("_json"):
        return "scanner"
    if "orjson" in dso:
        return "orjson"
    if _GC.search(symbol):
        return "gc"
    if _REGEX.search(symbol):
        return "regex"
    if _ALLOC.search(symbol):
        return "alloc"
    if _DICT.search(symbol):
        return "dict"
    if _STR.search(symbol):
        return "str"
    return "other"


def _perf_shares(label: str, op: str, path: str, seconds: float, tmp: Path) -> dict[str, float]:
    """Share of CPU samples per category while a child loops over the case."""
    cmd = [sys.executable, "-m", "bench", "profile", "--loop", label, op, path]
    child = subprocess.Popen(cmd, cwd=impls.ROOT, stdout=subprocess.PIPE, text=True)
    data = tmp / "perf.data"
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"profile child failed: {label} {op} {path}")
        record = ["perf", "record", "-q", "-F", "999", "-o", str(data), "-p", str(child.pid)]
        subprocess.run([*record, "--", "sleep", str(seconds)], check=True, capture_output=True)
    finally:
        child.kill()
        child.wait()
    out = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,sym", "--stdio"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    shares = dict.fromkeys(CATEGORIES, 0.0)
    for line in out.splitlines():
        m = _PERF_LINE.match(line)
        if m:
            category = _category(m[2], m[4])
            shares[category] += float(m[1]) / 100
            if os.environ.get("BENCH_PROFILE_SHOW") == category:
                print(f"    {m[1]:>6}% {m[2]} {m[4]}")
    return shares


def json_main(args: argparse.Namespace) -> int:
    perf = shutil.which("perf") is not None
    print(
        f"{'message':<24} {'op':<6}{'path':<7}{'bytecodes':>10}{'calls':>6}{'us':>9}"
        f"{'ns/bc':>6}" + ("".join(f"{c:>9}" for c in CATEGORIES) if perf else "")
    )
    with tempfile.TemporaryDirectory(prefix="centrifugo-types-profile-") as tmp:
        for label in MESSAGES:
            if args.only and args.only.lower() not in label.lower():
                continue
            for op in ("dumps", "loads"):
                for path in JSON_PATHS:
                    fn = _json_case(label, op, path)
                    ops, calls = _executed(fn)
                    loops = max(1, 20_000 // max(ops // 100, 1))
                    us = min(timeit.repeat(fn, number=loops, repeat=5)) / loops * 1e6
                    line = (
                        f"{label:<24} {op:<6}{path:<7}{ops:>10}{calls:>6}{us:>9.2f}"
                        f"{us * 1000 / ops:>6.1f}"
                    )
                    if perf:
                        shares = _perf_shares(label, op, path, args.seconds, Path(tmp))
                        line += "".join(f"{shares[c]:>9.0%}" for c in CATEGORIES)
                    print(line, flush=True)
    if not perf:
        print("(install Linux perf for the split of the time by where the CPU runs)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0
