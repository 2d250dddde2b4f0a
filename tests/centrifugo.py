"""A real Centrifugo for end-to-end tests: binary, config, process, fixtures.

The binary is built by ``scripts/install-centrifugo`` (``go install`` of the version in
protos/VERSION, cached under .cache/); ``CENTRIFUGO_BIN`` points at another one. Every
process listens on free 127.0.0.1 ports only and is stopped when its fixture ends.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-api-key"


def centrifugo_binary() -> Path:
    """The Centrifugo binary to test against, built on first use."""
    if os.environ.get("CENTRIFUGO_BIN"):
        return Path(os.environ["CENTRIFUGO_BIN"])
    result = subprocess.run(
        [str(ROOT / "scripts" / "install-centrifugo")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_config() -> dict[str, Any]:
    """Centrifugo v6 config without proxies (see shared/reference/centrifugo.md)."""
    return {
        "client": {"allowed_origins": ["*"]},
        "channel": {
            "without_namespace": {
                "presence": True,
                "join_leave": True,
                "history_size": 10,
                "history_ttl": "60s",
                "allow_subscribe_for_client": True,
                "allow_publish_for_client": True,
            },
            "namespaces": [{"name": "ns", "history_size": 10, "history_ttl": "60s"}],
        },
        "http_api": {"key": API_KEY},
        "grpc_api": {"enabled": True, "key": API_KEY},
        "health": {"enabled": True},
        "usage_stats": {"disabled": True},
        "log": {"level": "info"},
    }


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base`` (dicts merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Centrifugo:
    """A running Centrifugo process."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_api_port: int
    config: dict[str, Any]
    log_path: Path
    api_key: str = API_KEY

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/connection/websocket"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def run_centrifugo(
    workdir: Path, extra_config: dict[str, Any] | None = None, *, timeout: float = 30.0
) -> Iterator[Centrifugo]:
    """Start Centrifugo with ``base_config()`` merged with ``extra_config``; wait for /health."""
    http_port, grpc_api_port = free_port(), free_port()
    config = merge(base_config(), extra_config or {})
    config = merge(
        config,
        {
            "http_server": {"address": "127.0.0.1", "port": http_port},
            "grpc_api": {"address": "127.0.0.1", "port": grpc_api_port},
        },
    )
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = workdir / "centrifugo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(centrifugo_binary()), "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    server = Centrifugo(process, http_port, grpc_api_port, config, log_path)
    try:
        _wait_healthy(server, timeout)
        yield server
    finally:
        server.stop()


def _wait_healthy(server: Centrifugo, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise RuntimeError(f"centrifugo exited with {code}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.http_url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"centrifugo did not become healthy in {timeout}s:\n{server.log()}")


StartCentrifugo = Callable[[dict[str, Any] | None], Centrifugo]


@pytest.fixture(scope="session")
def start_centrifugo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartCentrifugo]:
    """Start Centrifugo processes with extra config; all are stopped at session end."""
    with contextlib.ExitStack() as stack:

        def start(extra_config: dict[str, Any] | None = None) -> Centrifugo:
            workdir = tmp_path_factory.mktemp("centrifugo")
            return stack.enter_context(run_centrifugo(workdir, extra_config))

        yield start


@pytest.fixture(scope="session")
def centrifugo(start_centrifugo: StartCentrifugo) -> Centrifugo:
    """A Centrifugo without proxies, shared by the session."""
    return start_centrifugo(None)
