"""The baseline of ``scripts/bench server``: a hand-written grpcio aio servicer on upb messages.

It answers ``CentrifugoProxy.Connect`` with the benchmark's trivial connect logic -- accept,
with the user taken from a request field::

    ConnectResponse(result=ConnectResult(user=request.client))

and leaves every other method unimplemented. One process serves one event loop; start N of
them on the same port to use N cores (grpcio sets SO_REUSEPORT on its listening sockets).

    python -m bench.grpcio_server --modules DIR --port PORT [--max-seconds S]

``DIR`` holds ``proxy_pb2.py`` and ``proxy_pb2_grpc.py`` (see :func:`bench.impls.build`).
The server listens on 127.0.0.1 only and stops by itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import sys
from pathlib import Path
from typing import Any


def connect_logic(proxy_pb2: Any, request: Any) -> Any:
    """The reply both servers of the benchmark give to a Connect request."""
    return proxy_pb2.ConnectResponse(result=proxy_pb2.ConnectResult(user=request.client))


async def serve(modules: Path, port: int, max_seconds: float) -> None:
    import grpc

    sys.path.insert(0, str(modules))
    proxy_pb2 = importlib.import_module("proxy_pb2")
    proxy_pb2_grpc = importlib.import_module("proxy_pb2_grpc")

    class Servicer(proxy_pb2_grpc.CentrifugoProxyServicer):  # type: ignore[name-defined,misc]
        async def Connect(self, request: Any, context: Any) -> Any:
            return connect_logic(proxy_pb2, request)

    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    proxy_pb2_grpc.add_CentrifugoProxyServicer_to_server(Servicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_for_termination(), max_seconds)
    finally:
        await server.stop(None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpcio_server")
    parser.add_argument("--modules", type=Path, required=True, help="dir of proxy_pb2*.py")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop after this")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.modules, args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
