"""Centrifugo's Go source as an oracle for the facts of its JSON dialect.

The Go structs that Centrifugo marshals to JSON are generated from the same .proto files and
then edited by its generate.sh (``[]byte`` -> ``Raw``) and generate_tags.sh (``omitempty``
removed from some fields). Their struct tags are the ground truth of the dialect; this module
reads them from the Go module cache (``go install`` of Centrifugo puts the source there).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = (ROOT / "protos" / "VERSION").read_text().strip()

_STRUCT = re.compile(r"^type (\w+) struct \{$")
_FIELD = re.compile(r'^\t\w+\s+(\S+)\s+`protobuf:"[^"]*name=(\w+)[^"]*" json:"([^"]*)"')


@dataclass(frozen=True)
class GoField:
    go_type: str
    json_tag: str

    @property
    def omitempty(self) -> bool:
        return "omitempty" in self.json_tag.split(",")[1:]

    @property
    def key(self) -> str:
        return self.json_tag.split(",")[0]


@cache
def module_dir() -> Path | None:
    """Centrifugo's module directory in the Go module cache, if it is there."""
    roots = []
    if os.environ.get("GOMODCACHE"):
        roots.append(Path(os.environ["GOMODCACHE"]))
    if shutil.which("go"):
        out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            roots.append(Path(out.stdout.strip()))
    roots.append(Path.home() / "go" / "pkg" / "mod")
    for root in roots:
        candidate = root / "github.com" / "centrifugal" / "centrifugo" / f"v6@v{VERSION}"
        if candidate.is_dir():
            return candidate
    return None


@cache
def structs(package: str) -> dict[str, dict[str, GoField]]:
    """``{message: {proto field name: GoField}}`` of ``proxy`` or ``api``'s generated Go file."""
    base = module_dir()
    assert base is not None
    path = {
        "proxy": base / "internal" / "proxyproto" / "proxy.pb.go",
        "api": base / "internal" / "apiproto" / "api.pb.go",
    }[package]
    out: dict[str, dict[str, GoField]] = {}
    current: dict[str, GoField] | None = None
    for line in path.read_text().splitlines():
        m = _STRUCT.match(line)
        if m:
            current = out.setdefault(m.group(1), {})
            continue
        if line == "}":
            current = None
            continue
        f = _FIELD.match(line)
        if f and current is not None:
            current[f.group(2)] = GoField(f.group(1), f.group(3))
    return out


_ERROR = re.compile(r"(\w+) = &Error\{\s*Code:\s*(\d+),\s*Message:\s*\"([^\"]*)\",\s*\}")


@cache
def api_errors() -> dict[int, str]:
    """``{code: message}`` of the errors the server API defines (internal/apiproto/errors.go)."""
    base = module_dir()
    assert base is not None
    text = (base / "internal" / "apiproto" / "errors.go").read_text()
    return {int(code): message for _, code, message in _ERROR.findall(text)}


def go_html_escape(payload: bytes) -> bytes:
    """What Go's encoding/json does to a compact raw JSON value it writes: <, >, &, U+2028 and
    U+2029 (which valid JSON only holds inside strings) become \\u escapes."""
    for char, escaped in (
        (b"<", b"\\u003c"),
        (b">", b"\\u003e"),
        (b"&", b"\\u0026"),
        ("\u2028".encode(), b"\\u2028"),
        ("\u2029".encode(), b"\\u2029"),
    ):
        payload = payload.replace(char, escaped)
    return payload
