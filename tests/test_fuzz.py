"""``python -m centrifugo_types.fuzz``: the targets run, find nothing in the example backend,
and report a crashing handler with the input that caused it (a reproducer file)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from centrifugo_types import fuzz

ROOT = Path(__file__).resolve().parent.parent


def _fuzz(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "centrifugo_types.fuzz", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="needs atheris")
def test_the_example_backend_has_no_findings(tmp_path: Path) -> None:
    """The CI run: coverage-guided, every event over both transports, for 30 seconds."""
    run = _fuzz(
        "router", "examples.backend:router", "--time", "30", "--corpus", str(tmp_path / "corpus"),
        "--crashes", str(tmp_path / "crashes"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done" in run.stderr  # libFuzzer's summary: "Done N runs in S second(s)"
    assert not list((tmp_path / "crashes").glob("crash-*"))
    assert list((tmp_path / "corpus").iterdir())  # the corpus grew


@pytest.mark.parametrize("target", ["codec", "json"])
def test_codec_targets_have_no_findings(target: str, tmp_path: Path) -> None:
    assert fuzz.main([target, "--plain", "--runs", "300", "--crashes", str(tmp_path)]) == 0


def test_a_crashing_handler_is_reported_with_its_input(tmp_path: Path) -> None:
    crashes = tmp_path / "crashes"
    args = ["router", "tests.buggy_backend:router", "--event", "connect", "--crashes", str(crashes)]
    run = _fuzz(*args, "--plain", "--time", "60")
    assert run.returncode == 1, run.stderr[-3000:]
    assert "FINDING (router): connect over" in run.stderr
    [reproducer] = [p for p in crashes.glob("crash-*") if p.suffix != ".txt"]
    report = reproducer.with_name(reproducer.name + ".txt").read_text()
    assert "connect handler failed" in report  # the router's log of the crash ...
    assert "ConnectRequest(" in report  # ... the request that caused it ...
    assert 'request.json()["token"]' in report  # ... and the handler's traceback
    replay = _fuzz(*args, "--reproduce", str(reproducer))
    assert replay.returncode == 1
    assert "FINDING (router): connect over" in replay.stderr


def test_corruptions_change_the_bytes() -> None:
    data = bytes(range(40))
    for kind in fuzz._CORRUPTIONS:
        assert fuzz.corrupt(data, (kind, 7, b"\xff\xfe")) != data
