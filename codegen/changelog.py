"""``python -m codegen.changelog OLD_DIR NEW_DIR``: what changed between two Centrifugo schemas.

Both directories hold a ``proxy.proto`` / ``api.proto`` pair (and a ``VERSION`` file). The
output is Markdown a user can paste into a pull request: proxy events, API methods, messages,
enums and fields that were added, removed, or changed type. ``scripts/update-protos`` prints it
at the end of an upgrade.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import generate
from .schema import Enum, Field, Message, Method, Schema, SchemaError, Type, load

#: The service of proxy events and the service of API methods.
SERVICES = {"CentrifugoProxy": "Proxy events", "CentrifugoApi": "API methods"}


def _type(t: Type) -> str:
    return _short(t.message) if t.kind in ("message", "enum") else t.kind


def _short(full_name: str) -> str:
    """``centrifugal.centrifugo.api.Command.MethodType`` -> ``api.Command.MethodType``."""
    parts = full_name.split(".")
    return ".".join(parts[2:]) if full_name.startswith("centrifugal.centrifugo.") else full_name


def field_type(f: Field) -> str:
    """A field's type as written in a .proto file (``repeated string``, ``map<string, X>``)."""
    value = _type(f.type)
    if f.map_key is not None:
        return f"map<{_type(f.map_key)}, {value}>"
    return f"repeated {value}" if f.repeated else value


def _signature(m: Method) -> str:
    stream_in = "stream " if m.client_streaming else ""
    stream_out = "stream " if m.server_streaming else ""
    return f"({stream_in}{_short(m.input)}) returns ({stream_out}{_short(m.output)})"


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)

    def added(self, text: str) -> None:
        self.lines.append(f"- added {text}")

    def removed(self, text: str) -> None:
        self.lines.append(f"- removed {text}")

    def changed(self, text: str) -> None:
        self.lines.append(f"- changed {text}")


def _methods(schema: Schema, service: str) -> dict[str, Method]:
    services = [s for f in schema.files for s in f.services if s.name == service]
    return {m.name: m for s in services for m in s.methods}


def _messages(schema: Schema) -> dict[str, Message]:
    return {m.full_name: m for f in schema.files for m in f.messages}


def _enums(schema: Schema) -> dict[str, Enum]:
    return {e.full_name: e for f in schema.files for e in f.enums}


def _diff_keys(old: Iterable[str], new: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    old_set, new_set = set(old), set(new)
    return sorted(new_set - old_set), sorted(old_set - new_set), sorted(old_set & new_set)


def changes(old: Schema, new: Schema) -> list[Section]:
    """The differences between two schemas, grouped in sections (empty sections left out)."""
    sections: list[Section] = []
    for service, title in SERVICES.items():
        section = Section(title)
        before, after = _methods(old, service), _methods(new, service)
        added, removed, kept = _diff_keys(before, after)
        for name in added:
            section.added(f"`{name}` {_signature(after[name])}")
        for name in removed:
            section.removed(f"`{name}` {_signature(before[name])}")
        for name in kept:
            if _signature(before[name]) != _signature(after[name]):
                section.changed(
                    f"`{name}`: {_signature(before[name])} -> {_signature(after[name])}"
                )
        sections.append(section)

    messages, fields = Section("Messages"), Section("Fields")
    before_m, after_m = _messages(old), _messages(new)
    added, removed, kept = _diff_keys(before_m, after_m)
    for name in added:
        messages.added(f"`{_short(name)}`")
    for name in removed:
        messages.removed(f"`{_short(name)}`")
    for name in kept:
        old_fields = {f.name: f for f in before_m[name].fields}
        new_fields = {f.name: f for f in after_m[name].fields}
        f_added, f_removed, f_kept = _diff_keys(old_fields, new_fields)
        where = _short(name)
        for f in f_added:
            nf = new_fields[f]
            fields.added(f"`{where}.{f}`: {field_type(nf)} = {nf.number}")
        for f in f_removed:
            of = old_fields[f]
            fields.removed(f"`{where}.{f}`: {field_type(of)} = {of.number}")
        for f in f_kept:
            of, nf = old_fields[f], new_fields[f]
            if field_type(of) != field_type(nf) or of.number != nf.number:
                fields.changed(
                    f"`{where}.{f}`: {field_type(of)} = {of.number} -> "
                    f"{field_type(nf)} = {nf.number}"
                )
    enums = Section("Enums")
    before_e, after_e = _enums(old), _enums(new)
    added, removed, kept = _diff_keys(before_e, after_e)
    for name in added:
        enums.added(f"`{_short(name)}`")
    for name in removed:
        enums.removed(f"`{_short(name)}`")
    for name in kept:
        old_values, new_values = dict(before_e[name].values), dict(after_e[name].values)
        v_added, v_removed, _ = _diff_keys(old_values, new_values)
        for v in v_added:
            enums.added(f"`{_short(name)}.{v}` = {new_values[v]}")
        for v in v_removed:
            enums.removed(f"`{_short(name)}.{v}` = {old_values[v]}")
    sections += [messages, fields, enums]
    return [s for s in sections if s.lines]


def _version(proto_dir: Path) -> str:
    try:
        return "v" + generate.centrifugo_version(proto_dir)
    except SchemaError:
        return str(proto_dir)


def render(old_dir: Path, new_dir: Path) -> str:
    """The Markdown changelog from the schema in ``old_dir`` to the one in ``new_dir``."""
    old = load(old_dir, generate.MODULES)
    new = load(new_dir, generate.MODULES)
    title = f"### Centrifugo schema: {_version(old_dir)} -> {_version(new_dir)}"
    sections = changes(old, new)
    if not sections:
        return f"{title}\n\nNo changes to proxy.proto or api.proto.\n"
    out = [title]
    for section in sections:
        out += ["", f"{section.title}:", *section.lines]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen.changelog", description=__doc__)
    parser.add_argument("old", type=Path, help="directory of the old proxy.proto/api.proto")
    parser.add_argument("new", type=Path, help="directory of the new proxy.proto/api.proto")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.old, args.new))
    except SchemaError as exc:
        print(f"changelog: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
