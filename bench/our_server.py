"""This project's side of ``scripts/bench server`` and ``scripts/bench http``: our servers.

A :class:`~centrifugo_types.Router` with the benchmark's trivial connect logic -- accept, with
the user taken from a request field, as :mod:`bench.grpcio_server` does::

    ConnectResponse(result=ConnectResult(user=request.client))

served by the command line itself, in this process::

    centrifugo-types serve bench.our_server:router --host 127.0.0.1 --port PORT --reuse-port

(:meth:`centrifugo_types.grpc.ProxyServer.serve`: the health service, the graceful shutdown,
uvloop when installed unless ``--loop asyncio``); with ``--grpcio`` the same router is served
by ``--transport grpcio`` (:class:`centrifugo_types.grpcio.ProxyServer`, grpcio's C core).
With ``--reuse-port`` N processes share one port (HTTP too). A process stops on
SIGTERM/SIGINT, and by itself after ``--max-seconds`` (it sends itself SIGTERM).

With ``--http`` the same router is served as Centrifugo's HTTP proxy instead::

    centrifugo-types serve bench.our_server:router --http --host 127.0.0.1 --port PORT --reuse-port

(:class:`~centrifugo_types.http.ProxyApp` under uvicorn,
:meth:`centrifugo_types.http.ProxyServer.serve`).
uvicorn parses HTTP with httptools when it is installed, else with h11; ``--no-httptools``
hides httptools from this process, as if it were not installed (see :func:`parser`).
``--http --loop uvloop`` runs it on uvloop.
``--no-orjson`` turns the JSON codec's orjson path off (as without the ``fast`` extra).

    python -m bench.our_server --port PORT [--max-seconds S] [--loop auto|asyncio|uvloop]
        [--grpcio]
    python -m bench.our_server --port PORT --http [--no-httptools] [--loop uvloop]
        [--no-orjson] [--max-seconds S]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import threading

from centrifugo_types import Router, json, proxy
from centrifugo_types.__main__ import LOOPS, event_loop_runner
from centrifugo_types.__main__ import main as cli
from centrifugo_types.calls import ConnectCall
from centrifugo_types.http import ProxyApp, ProxyServer

router = Router()


@router.connect
async def connect(request: ConnectCall) -> None:
    """The benchmark's connect logic (the same as the baseline's)."""
    request.respond(proxy.ConnectResult(user=request.client))


def parser(httptools: bool) -> str:
    """Make uvicorn's automatic choice of HTTP parser httptools (which must be installed) or,
    with ``httptools=False``, h11, by hiding httptools from this process; returns the name.
    Call before uvicorn is imported."""
    if "uvicorn" in sys.modules:
        raise RuntimeError("choose the HTTP parser before uvicorn is imported")
    if not httptools:
        sys.modules["httptools"] = None  # type: ignore[assignment]  # import fails
        return "h11"
    if importlib.util.find_spec("httptools") is None:
        raise SystemExit("httptools is not installed (the dev group installs it)")
    return "httptools"


def serve_http_on(loop: str, port: int, app: ProxyApp | None = None) -> None:
    """The HTTP proxy server of :data:`router` (or of ``app`` under the same server) on
    127.0.0.1:``port`` until a signal, in the event loop ``loop`` (see
    :data:`centrifugo_types.__main__.LOOPS`)."""

    async def serve() -> None:
        server = ProxyServer(router, port=port, reuse_port=True)
        if app is not None:
            server.app = app
        await server.serve()

    event_loop_runner(loop)(serve())


def stop_after(seconds: float) -> None:
    """Send this process SIGTERM after ``seconds`` (it then shuts down gracefully)."""
    stop = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    stop.daemon = True
    stop.start()


def main(argv: list[str] | None = None) -> int:
    parser_ = argparse.ArgumentParser(prog="python -m bench.our_server")
    parser_.add_argument("--port", type=int, required=True)
    parser_.add_argument("--max-seconds", type=float, default=300.0, help="stop after this")
    parser_.add_argument("--loop", choices=LOOPS, default="auto")
    parser_.add_argument("--http", action="store_true", help="serve the HTTP proxy")
    parser_.add_argument("--grpcio", action="store_true", help="gRPC on grpcio's C core")
    parser_.add_argument("--no-httptools", action="store_true", help="--http: parse with h11")
    parser_.add_argument(
        "--no-orjson", action="store_true", help="JSON codec on the standard library path"
    )
    args = parser_.parse_args(argv)
    stop_after(args.max_seconds)
    if args.no_orjson:
        json.use_orjson(False)
    if args.http:
        parser(httptools=not args.no_httptools)
        # As users run it: the command line, one process; on asyncio's loop unless --loop.
        loop = "asyncio" if args.loop == "auto" else args.loop
        return cli(
            [
                "serve",
                "bench.our_server:router",
                "--http",
                "--host",
                "127.0.0.1",
                "--port",
                str(args.port),
                "--reuse-port",
                "--loop",
                loop,
                "--log-level",
                "warning",
            ]
        )
    return cli(
        [
            "serve",
            "bench.our_server:router",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--reuse-port",
            "--transport",
            "grpcio" if args.grpcio else "grpc",
            "--loop",
            args.loop,
            "--log-level",
            "warning",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
