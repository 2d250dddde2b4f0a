"""The floor of ``scripts/bench http``: the least an ASGI app can do, under the same uvicorn.

:class:`FloorApp` reads the request body and answers every request with one constant JSON
body -- the very reply :mod:`bench.our_server` gives to the benchmark's Connect request, so
the bytes on the wire are the same. It does no routing, no header checks, no JSON decoding
or encoding and no router call: what it costs is what uvicorn and the event loop cost per
request.

It is served exactly as ``centrifugo-types serve --http`` serves a :class:`ProxyApp` --
:meth:`centrifugo_types.http.ProxyServer.serve` under ``asyncio.run``, hence the same uvicorn
options (keep-alive, no access log, no lifespan, no server header), listening socket and
event loop -- which is why it subclasses :class:`ProxyApp` (the server's ``app``) while
replacing all of what it does. ``--loop uvloop`` runs the same on uvloop.

    python -m bench.asgi_floor --port PORT [--no-httptools] [--loop uvloop] [--max-seconds S]
"""

from __future__ import annotations

import argparse
import sys

from centrifugo_types import Router, proxy
from centrifugo_types import json as dialect
from centrifugo_types.http import ProxyApp, Receive, Scope, Send

from .messages import connect_request
from .our_server import parser, serve_http_on, stop_after


def reply() -> bytes:
    """What our server answers to the benchmark's Connect request."""
    result = proxy.ConnectResult(user=connect_request().client)
    return dialect.dumps(proxy.ConnectResponse(result=result))


class FloorApp(ProxyApp):
    """Reads the body, answers :func:`reply` with HTTP 200."""

    def __init__(self) -> None:
        super().__init__(Router())
        self.body = reply()
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(self.body)),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; nothing else comes
            return
        while (await receive()).get("more_body", False):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def main(argv: list[str] | None = None) -> int:
    args_ = argparse.ArgumentParser(prog="python -m bench.asgi_floor")
    args_.add_argument("--port", type=int, required=True)
    args_.add_argument("--max-seconds", type=float, default=300.0, help="stop after this")
    args_.add_argument("--no-httptools", action="store_true", help="parse HTTP with h11")
    args_.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = args_.parse_args(argv)
    parser(httptools=not args.no_httptools)
    stop_after(args.max_seconds)
    serve_http_on(args.loop, args.port, FloorApp())
    return 0


if __name__ == "__main__":
    sys.exit(main())
