"""scripts/update-protos: an upgrade replaces protos/ and _generated/ only when it succeeds."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_upgrade_matrix import ROOT, _copy_tree


def _fingerprint(tree: Path) -> dict[str, str]:
    out = {}
    for folder in ("protos", "centrifugo_types/_generated"):
        for path in sorted((tree / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                out[str(path.relative_to(tree))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    _copy_tree(tree)
    return tree


def _update(tree: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [str(tree / "scripts" / "update-protos"), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )


def _pair(tmp_path: Path, extra_api: str = "") -> Path:
    pair = tmp_path / "pair"
    pair.mkdir()
    shutil.copy(ROOT / "protos" / "proxy.proto", pair)
    (pair / "api.proto").write_text((ROOT / "protos" / "api.proto").read_text() + extra_api)
    return pair


def test_a_schema_codegen_cannot_support_changes_nothing(tree: Path, tmp_path: Path) -> None:
    pair = _pair(tmp_path, "\nmessage Odd {\n  oneof choice { int32 a = 1; }\n}\n")
    staging = tmp_path / "staging"
    staging.mkdir()
    before = _fingerprint(tree)
    result = _update(tree, staging, "--from", str(pair), "7.0.0")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "codegen: api.proto: message Odd: oneof choice (or a proto3 optional field) is not "
        "supported",
        "update-protos: v7.0.0: code generation failed (see above); nothing was changed",
    ]
    assert _fingerprint(tree) == before
    assert list(staging.iterdir()) == []  # no temporary folder left behind


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["6.9"], "update-protos: 6.9 is not a version like 6.9.1"),
        (["--from", "/nonexistent"], "update-protos: --from /nonexistent: no such directory"),
    ],
)
def test_bad_arguments_say_what_is_wrong(
    tree: Path, tmp_path: Path, args: list[str], complaint: str
) -> None:
    result = _update(tree, tmp_path, *args)
    assert result.returncode == 1
    assert result.stderr.strip() == complaint


def test_from_a_folder_with_a_v_version_and_a_changelog(tree: Path, tmp_path: Path) -> None:
    pair = _pair(tmp_path)
    staging = tmp_path / "staging"
    staging.mkdir()
    before = _fingerprint(tree)
    result = _update(tree, staging, "--from", str(pair), "v6.9.1")
    assert result.returncode == 0, result.stderr
    assert "### Centrifugo schema: v6.9.1 -> v6.9.1" in result.stdout
    assert "No changes to proxy.proto or api.proto." in result.stdout
    assert _fingerprint(tree) == before  # the pinned pair again: byte for byte the same
    assert list(staging.iterdir()) == []
