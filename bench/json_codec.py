"""``scripts/bench json``: JSON encode (dumps) and decode (loads) of representative messages.

Four implementations, each writing and reading **its own JSON** of the same message:

- ``ours``: :func:`centrifugo_types.json.dumps` / ``loads`` on the standard library path
  (``json.use_orjson(False)``): Centrifugo's dialect;
- ``ours+orjson``: the same with the orjson fast path on (``json.use_orjson(True)``);
- ``betterproto2``: plain betterproto2's ``to_json()`` / ``from_json()`` (generated without
  our codecs, see :mod:`bench.impls`);
- ``upb``: google.protobuf's ``json_format.MessageToJson(m, indent=None)`` /
  ``json_format.Parse`` on upb messages.

The last two speak protojson, a **different dialect** from Centrifugo's: ``bytes`` fields
are base64 strings (Centrifugo embeds raw JSON), keys are lowerCamelCase (Centrifugo: the
.proto names), 64-bit integers are strings (Centrifugo: numbers). Centrifugo cannot read
protojson, so they are no alternative for talking to it; they are what a user would
otherwise reach for to turn these messages into JSON, and the baseline of what a generic
JSON mapping costs. The comparison is "the same message, each library's JSON".

The values are those of :mod:`bench.messages`, whose payloads are JSON. Centrifugo writes
every raw JSON value compacted (Go's ``encoding/json`` compacts what ``MarshalJSON``
returns), so the messages are normalised once to what Centrifugo would send: our JSON
compacted, decoded back. The other implementations get the same values from our protobuf
bytes, as in ``scripts/bench codec``. Every worker checks, before timing, that each
implementation's dumps decodes with its own loads back to those values (compared through
their protobuf encodings), that both of our paths write the same bytes, and whether our
document takes the orjson decode path (it does when it is orjson's own serialisation; the
report says so).

Timing and the report follow :mod:`bench.harness`; ratios are "times faster": ``upb/ours``
is upb's time over ours.
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

import orjson

from centrifugo_types import json as dialect

from . import codec, harness, impls
from .harness import Case, Settings, quartiles, us
from .messages import MESSAGES

IMPLS = ("ours", "ours+orjson", "betterproto2", "upb")
OPS = ("dumps", "loads")

_STATEMENTS = {
    ("dumps", "ours"): "dumps(m)",
    ("dumps", "ours+orjson"): "dumps(m)",
    ("dumps", "betterproto2"): "m.to_json()",
    ("dumps", "upb"): "MessageToJson(m, indent=None)",
    ("loads", "ours"): "loads(cls, doc)",
    ("loads", "ours+orjson"): "loads(cls, doc)",
    ("loads", "betterproto2"): "cls.from_json(doc)",
    ("loads", "upb"): "Parse(doc, cls())",
}
# Runs before each sample's clock starts: our two paths differ by a module-wide switch.
_SETUP = {"ours": "use_orjson(False)", "ours+orjson": "use_orjson(True)"}

DIALECTS = (
    "ours and ours+orjson write Centrifugo's JSON dialect (raw JSON payloads, .proto field "
    "names, int64 as numbers); betterproto2 and upb write protojson (base64 payloads, "
    "camelCase names, int64 as strings): the same message, each library's JSON"
)

add_arguments = harness.add_arguments


def compact(doc: bytes) -> bytes:
    """``doc`` as Go's encoding/json writes it: no whitespace (keys stay in order)."""
    return json.dumps(json.loads(doc), separators=(",", ":"), ensure_ascii=False).encode()


def centrifugo_message(build: Any) -> Any:
    """A message of :mod:`bench.messages` with its raw JSON payloads as Centrifugo writes
    them (compacted)."""
    message = build()
    return dialect.loads(type(message), compact(dialect.dumps(message)))


# -- worker ---------------------------------------------------------------------------------


def _check_ours(ours: Any, label: str) -> tuple[bytes, bool]:
    """Our document of ``ours`` (both paths write it, and read it back to ``ours``) and
    whether it takes the orjson decode path."""
    cls = type(ours)
    docs = []
    for fast in (False, True):
        dialect.use_orjson(fast)
        doc = dialect.dumps(ours)
        if dialect.loads(cls, doc) != ours:
            raise AssertionError(f"ours (orjson {fast}) does not round-trip {label}")
        docs.append(doc)
    if docs[0] != docs[1]:
        raise AssertionError(f"our two paths write {label} differently")
    return docs[0], orjson.dumps(orjson.loads(docs[0])) == docs[0]


def _check_protojson(values: dict[str, Any], classes: dict[str, Any], label: str) -> dict[str, Any]:
    """Each protojson implementation's document of its value, checked to decode back to the
    same message (compared as our message, through the protobuf bytes)."""
    from google.protobuf import json_format

    ours = values["ours"]
    docs = {
        "betterproto2": values["betterproto2"].to_json().encode(),
        "upb": json_format.MessageToJson(values["upb"], indent=None).encode(),
    }
    back = {
        "betterproto2": classes["betterproto2"].from_json(docs["betterproto2"]),
        "upb": json_format.Parse(docs["upb"], classes["upb"]()),
    }
    for impl, message in back.items():
        if classes["ours"].parse(message.SerializeToString()) != ours:
            raise AssertionError(f"{impl} does not round-trip {label} through its JSON")
    return docs


def _cases(tmp: Path, only: str | None) -> tuple[list[Case], dict[str, Any]]:
    from google.protobuf import json_format

    modules = impls.load(tmp)
    cases: list[Case] = []
    info: dict[str, Any] = {"sizes": {}, "protojson_sizes": {}, "orjson_loads": {}}
    for label, (module, build, read) in MESSAGES.items():
        if only and only.lower() not in label.lower():
            continue
        ours = centrifugo_message(build)
        values, classes = codec.same_values(modules, module, ours, read, label)
        doc, canonical = _check_ours(ours, label)
        docs = {"ours": doc, "ours+orjson": doc, **_check_protojson(values, classes, label)}
        values["ours+orjson"], classes["ours+orjson"] = ours, classes["ours"]
        info["sizes"][label] = len(doc)
        info["protojson_sizes"][label] = len(docs["upb"])
        info["orjson_loads"][label] = canonical
        for op in OPS:
            for impl in IMPLS:
                env = {
                    "m": values[impl],
                    "cls": classes[impl],
                    "doc": docs[impl],
                    "dumps": dialect.dumps,
                    "loads": dialect.loads,
                    "use_orjson": dialect.use_orjson,
                    "MessageToJson": json_format.MessageToJson,
                    "Parse": json_format.Parse,
                }
                stmt = _STATEMENTS[op, impl]
                timer = timeit.Timer(stmt, setup=_SETUP.get(impl, "pass"), globals=env)
                cases.append(Case(label, op, impl, timer))
    dialect.use_orjson(True)
    return cases, info


def worker(tmp: Path, settings: Settings, only: str | None, seed: int) -> dict[str, Any]:
    cases, info = _cases(tmp, only)
    return {**info, "cases": harness.measure(cases, settings, seed)}


# -- parent ---------------------------------------------------------------------------------


def report(results: list[dict[str, Any]], info: dict[str, Any], settings: Settings) -> str:
    samples = harness.samples_by_case(results)
    sizes, pj_sizes = results[0]["sizes"], results[0]["protojson_sizes"]
    fallback = [label for label, fast in results[0]["orjson_loads"].items() if not fast]
    lines = [
        *harness.header(info, settings),
        f"orjson {orjson.__version__}; upb: json_format.MessageToJson(m, indent=None) / Parse",
        f"dialects: {DIALECTS}",
        "",
        f"{'message':<23} {'bytes':>5} {'pj':>5} {'op':<5} {'ours':>13} {'ours+orjson':>13}"
        f" {'betterproto2':>13} {'upb':>13} {'upb/ours':>8} {'upb/orj':>8} {'bp2/ours':>8}"
        f" {'bp2/orj':>8}",
    ]
    for label in MESSAGES:
        if label not in sizes:
            continue
        for op in OPS:
            med = {}
            cells = []
            for impl in IMPLS:
                q1, q2, q3 = quartiles(samples[label, op, impl])
                med[impl] = q2
                cells.append(f"{us(q2)} {(q3 - q1) / q2:3.0%}")
            ratios = [
                med[base] / med[impl]
                for base in ("upb", "betterproto2")
                for impl in ("ours", "ours+orjson")
            ]
            name, size, pj = (
                (label, str(sizes[label]), str(pj_sizes[label])) if op == "dumps" else ("", "", "")
            )
            lines.append(
                f"{name:<23} {size:>5} {pj:>5} {op:<5} "
                + " ".join(f"{cell:>13}" for cell in cells)
                + "".join(f" {ratio:7.1f}x" for ratio in ratios)
            )
    lines += [
        "",
        "bytes: our JSON (Centrifugo's dialect); pj: upb's protojson; ratios: times faster "
        "(upb/ours = upb's time / ours; orj = ours+orjson)",
        "ours+orjson loads takes the orjson path for every message"
        if not fallback
        else f"ours+orjson loads falls back to the standard library for: {', '.join(fallback)}",
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
        results = harness.run_workers("json", args, settings, Path(tmp))
    if results is None:
        return 1
    info["loadavg_end"] = os.getloadavg()
    info["seconds"] = round(time.monotonic() - started, 1)
    print(report(results, info, settings))
    print(f"\n({info['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    return 0
