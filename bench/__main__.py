"""``python -m bench`` (``scripts/bench``): the benchmarks of centrifugo-types.

scripts/bench codec [--fast]    encode/decode of representative messages: ours, plain
                                betterproto2 and google.protobuf (upb), with ratios
scripts/bench json [--fast]     JSON dumps/loads of the same messages: ours (Centrifugo's
                                dialect, with and without orjson), plain betterproto2 and
                                google.protobuf's json_format (both protojson)
scripts/bench profile           where our codecs' time goes: bytecodes executed, Python
                                calls and the share of time spent interpreting bytecode
scripts/bench server [--fast]   unary Connect throughput and p99 over gRPC on 127.0.0.1:
                                a grpcio aio + upb servicer versus this project's server
scripts/bench router [--fast]   Router.handle per call: the manual first step versus a plain
                                await under a timeout and a task per call
scripts/bench http [--fast]     the same for the HTTP proxy (ProxyApp under uvicorn, with
                                and without httptools) versus our gRPC server and a
                                minimal ASGI app under the same uvicorn
scripts/bench api [--rounds N]  the server API clients (ours over each transport and HTTP
                                stack, async and sync) against cent, on one real Centrifugo
scripts/bench import [--callgrind]
                                import time (-X importtime, warm .pyc), CPU, resident memory
                                (and instructions) of the package's modules; what dominates
scripts/bench roadrunner [--fast]
                                Connect through RoadRunner's centrifuge plugin to 1 and 2
                                Python workers, beside our gRPC server and HTTP proxy
scripts/bench targets [--fast]  every benchmark with a target (codec, server, http, import),
                                then each target's ratio, from one run
"""

from __future__ import annotations

import argparse
import sys

from . import api, codec, imports, json_codec, profile, router, server, targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=(__doc__ or "").split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    codec.add_arguments(commands.add_parser("codec", help="message encode/decode speed"))
    json_codec.add_arguments(commands.add_parser("json", help="JSON dumps/loads speed"))
    profile.add_arguments(commands.add_parser("profile", help="where the codec time goes"))
    router.add_arguments(commands.add_parser("router", help="Router.handle cost per call"))
    server.add_arguments(
        commands.add_parser("server", help="gRPC proxy server throughput"), server.SERVER
    )
    server.add_arguments(
        commands.add_parser("http", help="HTTP proxy server throughput"), server.HTTP
    )
    api.add_arguments(commands.add_parser("api", help="server API clients vs cent"))
    server.add_arguments(
        commands.add_parser("roadrunner", help="Connect through RoadRunner's Python workers"),
        server.ROADRUNNER,
    )
    imports.add_arguments(commands.add_parser("import", help="import time and memory"))
    targets.add_arguments(commands.add_parser("targets", help="every target, from one run"))
    args = parser.parse_args(argv)
    if args.command == "targets":
        return targets.main(args)
    if args.command == "import":
        return imports.main(args)
    if args.command == "api":
        return api.main(args)
    if args.command == "codec":
        return codec.main(args)
    if args.command == "json":
        return json_codec.main(args)
    if args.command == "profile":
        return profile.main(args)
    if args.command == "router":
        return router.main(args)
    return server.main(args, server.SUITES[args.command])


if __name__ == "__main__":
    sys.exit(main())
