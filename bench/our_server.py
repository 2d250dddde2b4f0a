"""This project's side of ``scripts/bench server``: the gRPC proxy server users run.

A :class:`~centrifugo_types.Router` with the benchmark's trivial connect logic -- accept, with
the user taken from a request field, as :mod:`bench.grpcio_server` does::

    ConnectResponse(result=ConnectResult(user=request.client))

served by :func:`centrifugo_types.grpc.serve` (the code behind ``centrifugo-types serve``:
:class:`~centrifugo_types.grpc.ProxyServer`, the health service, the graceful shutdown) with
``reuse_port=True``, so that N processes share one port of 127.0.0.1. One process serves one
event loop; it stops on SIGTERM/SIGINT, and by itself after ``--max-seconds``.

    python -m bench.our_server --port PORT [--max-seconds S] [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from centrifugo_types import Router, proxy
from centrifugo_types.grpc import serve
from centrifugo_types.requests import ConnectRequest

router = Router()


@router.connect
async def connect(request: ConnectRequest) -> None:
    """The benchmark's connect logic (the same as the baseline's)."""
    request.respond(proxy.ConnectResult(user=request.client))


async def run(port: int, max_seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        # Past max_seconds, wait_for cancels serve(), which then shuts down gracefully.
        await asyncio.wait_for(serve(router, "127.0.0.1", port, reuse_port=True), max_seconds)


def _runner(loop: str) -> Callable[[Coroutine[Any, Any, None]], None]:
    if loop == "uvloop":
        import uvloop

        return uvloop.run
    return asyncio.run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.our_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop after this")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    _runner(args.loop)(run(args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
