"""Run a real RoadRunner with Python workers (used by the demo, the tests and the bench).

The binary is built by ``scripts/install-roadrunner`` (RoadRunner's centrifuge plugin and what
it needs, from the pinned modules in roadrunner/, cached under .cache/); ``RR_BIN`` points at
another one. Its workers run ``python -m centrifugo_types worker MODULE:ROUTER``. Every
process listens on free 127.0.0.1 ports only and is stopped when its context ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .centrifugo import ROOT, free_port, stop_process


def roadrunner_binary() -> Path:
    """The RoadRunner binary, built on first use."""
    if os.environ.get("RR_BIN"):
        return Path(os.environ["RR_BIN"])
    result = subprocess.run(
        [str(ROOT / "scripts" / "install-roadrunner")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return Path(result.stdout.strip().splitlines()[-1])


def rr_config(
    router: str,
    *,
    proxy_port: int,
    rpc_port: int,
    grpc_api_port: int,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``.rr.yaml`` (as a dict; JSON is YAML) running ``router`` (``module:router``) in
    ``workers`` Python workers, RoadRunner's proxy endpoint on ``proxy_port`` (where
    Centrifugo's ``grpc://`` proxies point), its RPC on ``rpc_port``, Centrifugo's gRPC API
    on ``grpc_api_port``."""
    return {
        "version": "3",
        "rpc": {"listen": f"tcp://127.0.0.1:{rpc_port}"},
        "server": {
            "command": f"{sys.executable} -m centrifugo_types worker {router}",
            "env": {"PYTHONPATH": str(ROOT), **(env or {})},
        },
        "centrifuge": {
            "proxy_address": f"tcp://127.0.0.1:{proxy_port}",
            "grpc_api_address": f"127.0.0.1:{grpc_api_port}",
            "pool": {
                "num_workers": workers,
                "allocate_timeout": "60s",
                "destroy_timeout": "5s",
            },
        },
        "logs": {"mode": "production", "level": "info", "encoding": "console"},
    }


@dataclass
class RoadRunner:
    """A running RoadRunner."""

    process: subprocess.Popen[bytes]
    proxy_port: int
    rpc_port: int
    config: dict[str, Any]
    log_path: Path

    @property
    def proxy_endpoint(self) -> str:
        """Where Centrifugo's proxies point."""
        return f"grpc://127.0.0.1:{self.proxy_port}"

    @property
    def rpc_address(self) -> str:
        return f"tcp://127.0.0.1:{self.rpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process, timeout=15)


@contextlib.contextmanager
def run_roadrunner(
    workdir: Path,
    router: str,
    *,
    grpc_api_port: int,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[RoadRunner]:
    """Start RoadRunner serving ``router`` in Python workers; wait until its proxy endpoint
    accepts connections (its workers are up by then)."""
    proxy_port, rpc_port = free_port(), free_port()
    config = rr_config(
        router,
        proxy_port=proxy_port,
        rpc_port=rpc_port,
        grpc_api_port=grpc_api_port,
        workers=workers,
        env=env,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / ".rr.yaml"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = workdir / "roadrunner.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(roadrunner_binary()), "serve", "-c", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    server = RoadRunner(process, proxy_port, rpc_port, config, log_path)
    try:
        _wait_listening(server, timeout)
        yield server
    finally:
        server.stop()


def _wait_listening(server: RoadRunner, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise RuntimeError(f"roadrunner exited with {code}:\n{server.log()}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", server.proxy_port), timeout=1),
        ):
            return
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"roadrunner did not listen in {timeout}s:\n{server.log()}")
