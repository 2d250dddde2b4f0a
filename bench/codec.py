"""``scripts/bench codec``: encode and decode time of representative messages, three ways.

The parent process builds the other implementations once (:mod:`bench.impls`), then runs the
timing harness of :mod:`bench.harness` (fresh worker processes, calibrated samples, warm-up,
interleaved rounds, medians). Each worker builds every message of :mod:`bench.messages` with
our classes and gets the *same values* into plain betterproto2 and upb by parsing our bytes
with their own decoders (and checks that all three encode to bytes that decode back to the
same message), then times every case.

The report gives per case the median over all samples of all processes, the spread
(interquartile range / median), and the ratios computed from those medians: ``ours/upb`` (how
many times upb's time we take: target <= 3) and ``bp2/ours`` (how many times faster than
plain betterproto2: target >= 25).

Operations: ``encode`` (``bytes(m)`` / ``SerializeToString()``), ``decode`` (``parse`` /
``FromString``) and ``read``: decode, then read every field a handler would use with the
same attribute-access function for all three. upb decodes lazily -- its ``FromString`` makes
no Python objects until fields are read -- so ``read`` is the end-to-end comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

from . import harness, impls
from .harness import Case, Settings, quartiles, us
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

add_arguments = harness.add_arguments


# -- worker ---------------------------------------------------------------------------------


def same_values(
    modules: dict[str, impls.Modules], module: str, ours: Any, read: Any, label: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``ours`` and the same values in plain betterproto2 and upb, decoded by each one's own
    decoder from our bytes (checked: they encode back to the same message and read the same),
    and the three classes: ``({impl: message}, {impl: class})``."""
    wire = bytes(ours)
    name = type(ours).__name__
    classes = {impl: getattr(modules[impl].of(module), name) for impl in IMPLS}
    values = {
        "ours": ours,
        "betterproto2": classes["betterproto2"].parse(wire),
        "upb": classes["upb"].FromString(wire),
    }
    for impl in ("betterproto2", "upb"):
        encoded = values[impl].SerializeToString()
        if classes["ours"].parse(encoded) != ours:
            raise AssertionError(f"{impl} does not hold the same {label}")
        if read(values[impl]) != read(ours):
            raise AssertionError(f"{impl} reads {label} differently")
    return values, classes


def _cases(tmp: Path, only: str | None) -> tuple[list[Case], dict[str, int]]:
    modules = impls.load(tmp)
    cases, sizes = [], {}
    for label, (module, build, read) in MESSAGES.items():
        if only and only.lower() not in label.lower():
            continue
        ours = build()
        wire = bytes(ours)
        sizes[label] = len(wire)
        values, classes = same_values(modules, module, ours, read, label)
        for op in OPS:
            for impl in IMPLS:
                env = {"m": values[impl], "cls": classes[impl], "wire": wire, "read": read}
                timer = timeit.Timer(_STATEMENTS[op, impl], globals=env)
                cases.append(Case(label, op, impl, timer))
    return cases, sizes


def worker(tmp: Path, settings: Settings, only: str | None, seed: int) -> dict[str, Any]:
    cases, sizes = _cases(tmp, only)
    return {"sizes": sizes, "cases": harness.measure(cases, settings, seed)}


# -- parent ---------------------------------------------------------------------------------


def report(results: list[dict[str, Any]], info: dict[str, Any], settings: Settings) -> str:
    samples = harness.samples_by_case(results)
    sizes = results[0]["sizes"]
    lines = [
        *harness.header(info, settings),
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
                q1, q2, q3 = quartiles(samples[label, op, impl])
                med[impl] = q2
                cells.append(f"{us(q2)} {(q3 - q1) / q2:4.0%}")
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


def main(args: argparse.Namespace) -> int:
    settings = Settings.from_args(args)
    if args.worker is not None:
        json.dump(worker(args.worker, settings, args.only, args.seed), sys.stdout)
        return 0
    info = harness.machine()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="centrifugo-types-bench-") as tmp:
        print("building plain betterproto2 and upb modules ...", file=sys.stderr)
        impls.build(Path(tmp))
        results = harness.run_workers("codec", args, settings, Path(tmp))
    if results is None:
        return 1
    info["loadavg_end"] = os.getloadavg()
    info["seconds"] = round(time.monotonic() - started, 1)
    text = report(results, info, settings)
    print(text)
    print(f"\n({info['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    return 0
