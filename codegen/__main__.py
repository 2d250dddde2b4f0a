"""``python -m codegen``: regenerate ``centrifugo_types/_generated/`` from ``protos/``.

python -m codegen            write the generated modules
python -m codegen --check    regenerate in a temporary directory and fail, naming the
                             files, when the committed output differs
python -m codegen --protos DIR --out DIR
                             generate from another proxy.proto/api.proto pair (with a
                             VERSION file) into another directory
python -m codegen --plain --out DIR
                             betterproto2's output alone, without our codecs (the
                             benchmark baseline)
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from . import generate
from .schema import SchemaError

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "centrifugo_types" / "_generated"


def check(out_dir: Path, proto_dir: Path = generate.PROTOS) -> list[str]:
    """Names of files under ``out_dir`` that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate.write(fresh, generate.sources(proto_dir))
        names = {p.name for p in fresh.iterdir()}
        if out_dir.is_dir():
            names |= {p.name for p in out_dir.iterdir() if p.name != "__pycache__"}
        stale = []
        for name in sorted(names):
            mine, theirs = fresh / name, out_dir / name
            if not (mine.exists() and theirs.exists() and filecmp.cmp(mine, theirs, shallow=False)):
                stale.append(name)
        return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    parser.add_argument("--plain", action="store_true", help="betterproto2 output only")
    parser.add_argument("--out", type=Path, default=GENERATED, help="output directory")
    parser.add_argument(
        "--protos", type=Path, default=generate.PROTOS, help="directory of the .proto files"
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except SchemaError as exc:
        # What the generators cannot support is named in one line, without a traceback.
        print(f"codegen: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:

    if args.check:
        stale = check(args.out, args.protos)
        if stale:
            rel = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
            print(f"codegen: {rel} is stale; run scripts/codegen. Differing files:")
            for name in stale:
                print(f"  {rel}/{name}")
            return 1
        print("codegen: generated code is up to date")
        return 0

    # Everything is generated before any write.
    files = generate.sources(args.protos, plain=args.plain)
    if args.out.exists():
        shutil.rmtree(args.out)
    generate.write(args.out, files)
    print(f"codegen: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
