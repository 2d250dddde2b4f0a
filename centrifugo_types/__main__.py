"""The command line: load a router and serve it.

::

    centrifugo-types serve myapp.backend:router --host 127.0.0.1 --port 30000
    centrifugo-types serve myapp.backend:router --http    # Centrifugo's HTTP proxy (uvicorn)
    centrifugo-types serve myapp.backend:router --transport grpcio  # gRPC on grpcio's C core
    centrifugo-types worker myapp.backend:router          # a RoadRunner worker (.rr.yaml)
    centrifugo-types fuzz router myapp.backend:router     # fuzz the router (see fuzz --help)
    python -m centrifugo_types serve myapp.backend:router

The transport only picks the server class; every option is every server's (see
:class:`centrifugo_types._server.Server`), but ``--prefix`` and ``--max-body-size`` (HTTP's).
What stops the server from starting (an unknown router, a router module that fails to import, a
port in use, a missing certificate, a failing lifespan) is one line on stderr and exit status 1;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from . import __version__, grpc, http
from ._server import Server, ServerOptions, describe, server_ssl_context
from .errors import StartupError
from .http import DEFAULT_MAX_BODY_SIZE, DEFAULT_PREFIX
from .router import Router


def _grpcio_server(router: Router, **options: Any) -> Server:
    """``--transport grpcio``: grpcio is an optional extra, imported only when chosen."""
    try:
        from .grpcio import ProxyServer
    except ImportError as exc:
        raise StartupError(
            f"--transport grpcio needs grpcio: pip install 'centrifugo-types[grpcio]' ({exc})"
        ) from None
    return ProxyServer(router, **options)


SERVERS: dict[str, Callable[..., Server]] = {
    "grpc": grpc.ProxyServer,
    "grpcio": _grpcio_server,
    "http": http.ProxyServer,
}
"""The server class of each ``--transport``."""

CREDENTIALS_ENV = "CENTRIFUGO_TYPES_CREDENTIALS_VALUE"
LOOPS = ("auto", "asyncio", "uvloop")


def event_loop_runner(loop: str = "auto") -> Callable[[Coroutine[Any, Any, None]], None]:
    """What runs the server: ``asyncio.run``, or ``uvloop.run`` for ``loop="uvloop"``.

    ``"auto"`` picks uvloop when it is installed (``pip install 'centrifugo-types[uvloop]'``),
    else asyncio's own loop.
    """
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise SystemExit(
                    "--loop uvloop needs uvloop: pip install 'centrifugo-types[uvloop]'"
                ) from None
        else:
            return uvloop.run
    return asyncio.run


def load_router(spec: str) -> Router:
    """The :class:`Router` named by ``module:attribute`` (imported from the current dir too).

    Raises :class:`~centrifugo_types.StartupError` saying what is wrong with ``spec``.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise StartupError(f"expected MODULE:ATTRIBUTE, got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise StartupError(f"cannot import {module_name!r}: {exc}") from exc
    except Exception as exc:  # the module itself failed
        raise StartupError(f"importing {module_name!r} failed: {describe(exc)}") from exc
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise StartupError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, Router):
        raise StartupError(f"{spec} is a {type(target).__name__}, not a centrifugo_types.Router")
    return target


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="centrifugo-types", description="Typed Centrifugo proxy backends."
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "serve",
        help="serve a router as Centrifugo's gRPC proxy (or HTTP proxy: --http)",
        description="Serve a router as Centrifugo's gRPC proxy, or with --http as its HTTP "
        "proxy (under uvicorn), until SIGTERM or SIGINT, then finish the calls in flight and "
        "exit.",
    )
    run.add_argument("router", metavar="MODULE:ROUTER", help="e.g. myapp.backend:router")
    run.add_argument(
        "--transport",
        choices=SERVERS,
        default="grpc",
        help="grpc: Centrifugo's gRPC proxy (grpc:// endpoints, the default; grpclib, pure "
        "Python); grpcio: the same on grpcio's C core (faster; needs the grpcio extra); http: "
        "its HTTP proxy (http:// endpoints; needs the http extra, uvicorn)",
    )
    run.add_argument(
        "--http",
        dest="transport",
        action="store_const",
        const="http",
        help="the same as --transport http",
    )
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    run.add_argument("--port", type=int, default=30000, help="port (30000; 0: any free port)")
    run.add_argument(
        "--prefix",
        help=f"--http: the path of each event is PREFIX/<event> ({DEFAULT_PREFIX})",
    )
    run.add_argument(
        "--max-body-size",
        type=int,
        help=f"--http: the largest request body in bytes ({DEFAULT_MAX_BODY_SIZE})",
    )
    run.add_argument(
        "--credentials-key",
        help="metadata key (gRPC: grpc.credentials_key) or header (HTTP: one of "
        "http.static_headers) Centrifugo sends; calls without it are refused",
    )
    run.add_argument(
        "--credentials-value",
        help=f"its expected value (or ${CREDENTIALS_ENV})",
    )
    run.add_argument("--tls-cert", help="serve TLS with this certificate chain (PEM)")
    run.add_argument("--tls-key", help="the certificate's private key (PEM)")
    run.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    run.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds to let calls in flight finish on shutdown (10)",
    )
    run.add_argument(
        "--reuse-port",
        action="store_true",
        help="set SO_REUSEPORT: run several processes on one port to use several cores",
    )
    run.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop (auto: uvloop when installed, else asyncio)",
    )
    run.add_argument("--log-level", default="info", help="logging level (info)")
    run.add_argument(
        "--debug", action="store_true", help="show the traceback of what stops the server"
    )
    _worker_arguments(
        commands.add_parser(
            "worker",
            help="serve a router as a RoadRunner worker (.rr.yaml's server.command)",
            description=WORKER_DESCRIPTION,
        )
    )
    return root


WORKER_DESCRIPTION = (
    "Serve a router as a worker of RoadRunner's centrifuge plugin: goridge frames on stdin "
    "and stdout, logs on stderr, until RoadRunner stops it."
)


def _worker_arguments(worker: argparse.ArgumentParser) -> argparse.ArgumentParser:
    worker.add_argument("router", metavar="MODULE:ROUTER", help="e.g. myapp.backend:router")
    worker.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop (auto: uvloop when installed, else asyncio)",
    )
    worker.add_argument("--log-level", default="info", help="logging level (info)")
    return worker


def _worker(args: argparse.Namespace) -> int:
    """Serve as a RoadRunner worker, then leave the process at once (see below)."""
    from .errors import StartupError
    from .roadrunner import WorkerProtocolError
    from .roadrunner import serve as serve_worker

    code = 0
    try:
        router = load_router(args.router)
        event_loop_runner(args.loop)(_logging_loop(serve_worker(router)))
    except (WorkerProtocolError, StartupError) as exc:
        logging.getLogger("centrifugo_types.roadrunner").error("%s; exiting", exc)
        code = 1
    # The interpreter's own teardown of every loaded module takes up to a second or more on a
    # busy machine, while RoadRunner waits for the stopped worker: run the exit hooks, flush,
    # and end the process now (measured: 0.5-1.7 s down to 0.03 s with a load average of 14).
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def _logging_loop(server: Coroutine[Any, Any, None]) -> None:
    """Run ``server``, first logging which event loop runs it (``asyncio`` or ``uvloop``)."""
    loop_module = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    logging.getLogger("centrifugo_types").info("event loop: %s", loop_module)
    await server


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["worker"]:  # without building the full parser (which loads the servers)
        worker = _worker_arguments(
            argparse.ArgumentParser(prog="centrifugo-types worker", description=WORKER_DESCRIPTION)
        )
        args = worker.parse_args(argv[1:])
        _configure_logging(args.log_level)
        return _worker(args)
    if argv[:1] == ["fuzz"]:  # its own command line: python -m centrifugo_types.fuzz --help
        from .fuzz import main as fuzz

        return fuzz(argv[1:])
    cli = parser()
    args = cli.parse_args(argv)
    http_options: dict[str, Any] = {}
    if args.prefix is not None:
        http_options["prefix"] = args.prefix
    if args.max_body_size is not None:
        http_options["max_body_size"] = args.max_body_size
    if http_options and args.transport != "http":
        cli.error("--prefix and --max-body-size are options of --http")
    _configure_logging(args.log_level)
    credentials = None
    if args.credentials_key:
        value = args.credentials_value or os.environ.get(CREDENTIALS_ENV)
        if not value:
            cli.error("--credentials-key needs --credentials-value")
        credentials = (args.credentials_key, value)
    run = event_loop_runner(args.loop)
    try:
        router = load_router(args.router)
        options: ServerOptions = {
            "host": args.host,
            "port": args.port,
            "credentials": credentials,
            "reuse_port": args.reuse_port,
            "shutdown_timeout": args.shutdown_timeout,
        }
        if args.tls_cert:
            options["ssl"] = server_ssl_context(
                args.tls_cert, args.tls_key, client_ca=args.tls_client_ca
            )
        try:
            server = SERVERS[args.transport](router, **options, **http_options)
        except ValueError as exc:  # an option the server refuses (a path, ...)
            raise StartupError(str(exc)) from exc
        run(_logging_loop(server.serve()))
    except StartupError as exc:
        if args.debug:
            traceback.print_exception(exc)
        print(f"centrifugo-types: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
