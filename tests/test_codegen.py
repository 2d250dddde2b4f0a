"""The generator: committed output is current, complete, and unsupported schemas fail loudly."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from centrifugo_types import CENTRIFUGO_VERSION, api, proxy
from codegen import __main__ as cli
from codegen import generate, schema

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def _proto_messages(name: str) -> list[str]:
    """Top-level message names, read from the .proto text (not through protoc)."""
    text = (PROTOS / name).read_text()
    return re.findall(r"^message\s+(\w+)\s*\{", text, flags=re.MULTILINE)


def _proto_rpcs(name: str) -> list[str]:
    return re.findall(r"^\s*rpc\s+(\w+)\s*\(", (PROTOS / name).read_text(), flags=re.MULTILINE)


def _pascal(name: str) -> str:
    """RPCRequest -> RpcRequest, as betterproto2 names classes."""
    return re.sub(r"[A-Z]+(?=[A-Z][a-z]|$)", lambda m: m.group().capitalize(), name)


@pytest.mark.parametrize(("proto", "module"), [("proxy.proto", proxy), ("api.proto", api)])
def test_every_message_is_exported(proto: str, module: object) -> None:
    names = _proto_messages(proto)
    assert names, "no messages found"
    exported = set(getattr(module, "__all__", ()))
    for name in names:
        cls_name = _pascal(name)
        assert cls_name in exported, name
        cls = getattr(module, cls_name)
        assert bytes(cls()) == b""  # it carries our codec
    messages = {n for n in exported if not n.endswith(("Stub", "Base"))}
    assert len(messages) == len(names)


def test_message_counts_match_the_reference() -> None:
    # The numbers the issue and shared/reference/centrifugo.md give for v6.9.1.
    if CENTRIFUGO_VERSION == "6.9.1":
        assert len(_proto_messages("proxy.proto")) == 47
        assert len(_proto_messages("api.proto")) == 163


@pytest.mark.parametrize(
    ("proto", "service"),
    [("proxy.proto", proxy.CentrifugoProxyStub), ("api.proto", api.CentrifugoApiStub)],
)
def test_service_stubs_have_every_rpc(proto: str, service: type) -> None:
    for rpc in _proto_rpcs(proto):
        method = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", _pascal(rpc)).lower()
        assert callable(getattr(service, method)), rpc


def test_version_matches_protos() -> None:
    assert (PROTOS / "VERSION").read_text().strip() == CENTRIFUGO_VERSION


def test_committed_output_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codegen", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_names_a_hand_edited_file(tmp_path: Path) -> None:
    out = tmp_path / "_generated"
    shutil.copytree(cli.GENERATED, out, ignore=shutil.ignore_patterns("__pycache__"))
    target = out / "proxy.py"
    target.write_text(target.read_text().replace("client: ", "client_: ", 1))
    (out / "leftover.py").write_text("")
    (out / "api_strategies.py").unlink()
    assert cli.check(out) == ["api_strategies.py", "leftover.py", "proxy.py"]
    assert cli.main(["--check", "--out", str(out)]) == 1


def _schema_of(tmp_path: Path, body: str) -> schema.Schema:
    (tmp_path / "x.proto").write_text('syntax = "proto3";\npackage t;\n' + body)
    return schema.load(tmp_path, {"x.proto": "x"})


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ("message M { oneof o { int32 a = 1; } }", "oneof"),
        ("message M { optional int32 a = 1; }", "optional"),
        ("message M { message N {} }", "nested message"),
    ],
)
def test_unsupported_schema_features_fail_loudly(tmp_path: Path, body: str, complaint: str) -> None:
    with pytest.raises(schema.SchemaError, match=complaint):
        _schema_of(tmp_path, body)


def test_an_unsupported_schema_fails_in_one_line_naming_file_and_element(
    tmp_path: Path,
) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(PROTOS, protos)
    proxy_proto = protos / "proxy.proto"
    proxy_proto.write_text(
        proxy_proto.read_text() + "\nmessage Odd {\n  oneof choice { int32 a = 1; }\n}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "codegen", "--protos", str(protos), "--out", str(tmp_path / "g")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "codegen: proxy.proto: message Odd: oneof choice (or a proto3 optional field) is not "
        "supported"
    ]
    assert not (tmp_path / "g").exists()


def test_enums_top_level_and_nested_are_open_int32(tmp_path: Path) -> None:
    model = _schema_of(
        tmp_path,
        "enum Top { A = 0; B = 2; }\n"
        "message M { enum Kind { X = 0; Y = 1; } Kind kind = 1; Top top = 2; }\n",
    )
    kind, top = model.message("t.M").fields
    assert kind.type == schema.Type("enum", "t.M.Kind", "MKind")
    assert top.type == schema.Type("enum", "t.Top", "Top")
    assert kind.tag() == (1 << 3 | 0)
    assert model.enum("t.Top").values == (("A", 0), ("B", 2))


def test_schema_model_reads_maps_and_recursion(tmp_path: Path) -> None:
    model = _schema_of(
        tmp_path,
        "message Node { repeated Node kids = 1; map<string, int64> tags = 2; Leaf leaf = 3; }\n"
        "message Leaf { repeated uint32 xs = 1; }\n",
    )
    node = model.message("t.Node")
    kids, tags, leaf = node.fields
    assert kids.repeated and kids.type.message == "t.Node"
    assert tags.map_key == schema.Type("string") and tags.type == schema.Type("int64")
    assert not leaf.repeated and leaf.type.message == "t.Leaf"
    assert model.message("t.Leaf").fields[0].tag() == (1 << 3 | 2)  # packed
    assert model.recursive_messages() == frozenset({"t.Node"})


def _generate(
    tmp_path: Path, name: str, edit: Callable[[str], str] | None = None
) -> dict[str, str]:
    protos = tmp_path / name
    protos.mkdir()
    for file in ("proxy.proto", "api.proto", "VERSION"):
        shutil.copy(PROTOS / file, protos / file)
    if edit is not None:
        (protos / "proxy.proto").write_text(edit((protos / "proxy.proto").read_text()))
    return generate.sources(protos)


def _diff(old: dict[str, str], new: dict[str, str]) -> tuple[int, int]:
    """Lines added and removed, over every file (as ``git diff --numstat`` counts them)."""
    added = removed = 0
    for name in sorted(old.keys() | new.keys()):
        lines = difflib.unified_diff(
            old.get(name, "").splitlines(), new.get(name, "").splitlines(), n=0, lineterm=""
        )
        for line in lines:
            if line.startswith(("+++", "---")):
                continue
            added += line.startswith("+")
            removed += line.startswith("-")
    return added, removed


def _add_connect_field(proto: str) -> str:
    start = proto.index("message ConnectRequest {")
    end = proto.index("\n}", start)
    return proto[:end] + "\n  string extra_field = 99;" + proto[end:]


@pytest.fixture(scope="module")
def field_added_diff(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, int]:
    tmp = tmp_path_factory.mktemp("diff")
    return _diff(_generate(tmp, "old"), _generate(tmp, "new", _add_connect_field))


def test_adding_a_field_changes_no_generated_line_of_other_fields(
    field_added_diff: tuple[int, int],
) -> None:
    # The proto diff is one added line. Nothing generated for the other fields changes, and what
    # is added is that field's lines only: its declaration (2, with the blank line betterproto2
    # puts between fields), its row of the field table the codecs are compiled from (1), its
    # field view (1) and its strategy (1).
    added, removed = field_added_diff
    assert removed == 0, (added, removed)
    assert added <= 5, (added, removed)


def test_adding_a_field_generates_at_most_ten_lines_per_proto_line(
    field_added_diff: tuple[int, int],
) -> None:
    added, removed = field_added_diff
    assert added + removed <= 10 * 1
