"""Run a real Centrifugo: binary, config, process (used by the demo and the tests).

The binary is built by ``scripts/install-centrifugo`` (``go install`` of the version in
protos/VERSION, cached under .cache/); ``CENTRIFUGO_BIN`` points at another one. Every
process listens on free 127.0.0.1 ports only and is stopped when its context ends.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def stop_process(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM ``process`` if it still runs; SIGKILL it if it has not ended ``timeout`` s later."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    tls: ssl.SSLContext | None = None
    """How to reach its HTTP server when it serves TLS (``http_server.tls``)."""

    @property
    def http_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://127.0.0.1:{self.http_port}/connection/websocket"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


@contextlib.contextmanager
def run_centrifugo(
    workdir: Path,
    extra_config: dict[str, Any] | None = None,
    *,
    timeout: float = 30.0,
    grpc_api_port: int | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Centrifugo]:
    """Start Centrifugo with ``base_config()`` merged with ``extra_config``; wait for /health
    (over HTTPS with ``tls``, the client context for a config with ``http_server.tls``).

    ``grpc_api_port``: where its gRPC API listens (default: a free port), for a peer that must
    know it before Centrifugo starts (RoadRunner)."""
    http_port = free_port()
    grpc_api_port = grpc_api_port or free_port()
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
    server = Centrifugo(process, http_port, grpc_api_port, config, log_path, tls=tls)
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
            health = f"{server.http_url}/health"
            with urllib.request.urlopen(health, timeout=1, context=server.tls) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"centrifugo did not become healthy in {timeout}s:\n{server.log()}")


#: Centrifugo's proxy config sections, by proxy event name (see ``centrifugo defaultconfig``).
PROXY_SECTIONS: dict[str, tuple[str, ...]] = {
    "connect": ("client", "proxy", "connect"),
    "refresh": ("client", "proxy", "refresh"),
    "subscribe": ("channel", "proxy", "subscribe"),
    "publish": ("channel", "proxy", "publish"),
    "sub_refresh": ("channel", "proxy", "sub_refresh"),
    "subscribe_stream": ("channel", "proxy", "subscribe_stream"),
    "map_publish": ("channel", "proxy", "map_publish"),
    "map_remove": ("channel", "proxy", "map_remove"),
    "shared_poll_refresh": ("channel", "proxy", "shared_poll_refresh"),
    "rpc": ("rpc", "proxy"),
}


def proxy_config(proxy: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Config pointing Centrifugo's proxies at a backend.

    ``proxy(event)`` gives the proxy section of one event (``endpoint``, ``timeout``,
    ``binary_encoding``, ...; empty: leave that proxy off). Connect and refresh are
    enabled; channels without a namespace go through the subscribe, publish and sub_refresh
    proxies, rpc methods through the rpc proxy; the namespaces ``stream`` and ``bidi`` are
    subscribe streams (unidirectional and bidirectional) when ``proxy`` gives a
    ``subscribe_stream`` section.
    """
    config: dict[str, Any] = {}
    for event in PROXY_SECTIONS:
        section = proxy(event)
        if not section:
            continue
        if event in ("connect", "refresh"):
            section = {**section, "enabled": True}
        node = config
        *parents, leaf = PROXY_SECTIONS[event]
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = section
    config = merge(
        config,
        {
            "channel": {
                "without_namespace": {
                    "subscribe_proxy_enabled": True,
                    "publish_proxy_enabled": True,
                    "sub_refresh_proxy_enabled": True,
                    "allow_subscribe_for_client": False,
                    "allow_publish_for_client": False,
                },
            },
            "rpc": {"without_namespace": {"proxy_enabled": True}},
        },
    )
    if "subscribe_stream" in config.get("channel", {}).get("proxy", {}):
        config["channel"]["namespaces"] = [
            {"name": "stream", "subscribe_stream_proxy_enabled": True},
            {
                "name": "bidi",
                "subscribe_stream_proxy_enabled": True,
                "subscribe_stream_proxy_bidirectional": True,
            },
        ]
    return config
