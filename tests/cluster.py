"""Several Centrifugo nodes: a Redis for their engine, and a load balancer in front of them.

Redis comes from Debian's ``redis-server`` (``scripts/install-redis``; ``REDIS_BIN`` points at
another binary) and runs on a free loopback port without persistence. :class:`Balancer` is
the few lines of a TCP load balancer a test needs: each connection goes to the first node that
accepts it, so when a node dies its clients reconnect to the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from examples.centrifugo import ROOT, free_port


def redis_binary() -> Path:
    """The redis-server to run, installed on first use."""
    if os.environ.get("REDIS_BIN"):
        return Path(os.environ["REDIS_BIN"])
    result = subprocess.run(
        [str(ROOT / "scripts" / "install-redis")], stdout=subprocess.PIPE, text=True, check=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class Redis:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextlib.contextmanager
def run_redis(workdir: Path, *, timeout: float = 10.0) -> Iterator[Redis]:
    """A redis-server on a free 127.0.0.1 port, nothing persisted; stopped at the end."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "redis.log").open("wb") as log:
        command = [str(redis_binary()), "--bind", "127.0.0.1", "--port", str(port)]
        command += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    redis = Redis(process, port)
    try:
        deadline = time.monotonic() + timeout
        while not redis.ping():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis did not start: {(workdir / 'redis.log').read_text()}")
            time.sleep(0.05)
        yield redis
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def redis_engine(redis: Redis, prefix: str) -> dict[str, Any]:
    """Centrifugo config for the Redis engine (broker and presence), keys under ``prefix``."""
    return {"engine": {"type": "redis", "redis": {"address": [redis.url], "prefix": prefix}}}


@dataclass
class Balancer:
    """A TCP load balancer on a free loopback port: each connection goes to the first of
    ``upstreams`` (ports) that accepts it."""

    upstreams: list[int]
    port: int = 0
    connections: list[int] = field(default_factory=list)
    """The upstream port each connection went to, in order."""
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        for port in self.upstreams:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self.connections.append(port)
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            self._writers -= {writer, up_writer}
            return
        writer.close()
        self._writers.discard(writer)

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[Balancer]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for writer in self._writers:
                writer.close()
            await server.wait_closed()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/connection/websocket"
