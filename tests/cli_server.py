"""Our proxy servers started the way users start them: ``centrifugo-types serve``."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from examples.centrifugo import ROOT, free_port

CLI = Path(sys.executable).parent / "centrifugo-types"


@dataclass
class CliServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def cli_server(spec: str, *options: str, timeout: float = 30.0) -> Iterator[CliServer]:
    """``centrifugo-types serve SPEC --port P OPTIONS...`` until it listens; SIGTERM at exit."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(CLI), "serve", spec, "--port", str(port), *options],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = CliServer(port, process, log_path)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the server exited:\n{server.log()}")
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=1),
                ):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not listen in {timeout}s:\n{server.log()}")
                time.sleep(0.05)
            yield server
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
