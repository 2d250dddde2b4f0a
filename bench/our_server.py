"""This project's side of ``scripts/bench server``: the gRPC proxy server users run.

A :class:`~centrifugo_types.Router` with the benchmark's trivial connect logic -- accept, with
the user taken from a request field, as :mod:`bench.grpcio_server` does::

    ConnectResponse(result=ConnectResult(user=request.client))

served by the command line itself, in this process::

    centrifugo-types serve bench.our_server:router --host 127.0.0.1 --port PORT --reuse-port

(:func:`centrifugo_types.grpc.serve`: :class:`~centrifugo_types.grpc.ProxyServer`, the health
service, the graceful shutdown, uvloop when installed unless ``--loop asyncio``). With
``--reuse-port`` N processes share one port. A process stops on SIGTERM/SIGINT, and by itself
after ``--max-seconds`` (it sends itself SIGTERM).

    python -m bench.our_server --port PORT [--max-seconds S] [--loop auto|asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from centrifugo_types import Router, proxy
from centrifugo_types.__main__ import LOOPS
from centrifugo_types.__main__ import main as cli
from centrifugo_types.requests import ConnectRequest

router = Router()


@router.connect
async def connect(request: ConnectRequest) -> None:
    """The benchmark's connect logic (the same as the baseline's)."""
    request.respond(proxy.ConnectResult(user=request.client))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.our_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop after this")
    parser.add_argument("--loop", choices=LOOPS, default="auto")
    args = parser.parse_args(argv)
    stop = threading.Timer(args.max_seconds, os.kill, (os.getpid(), signal.SIGTERM))
    stop.daemon = True
    stop.start()
    return cli(
        [
            "serve",
            "bench.our_server:router",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--reuse-port",
            "--loop",
            args.loop,
            "--log-level",
            "warning",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
