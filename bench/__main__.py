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
"""

from __future__ import annotations

import argparse
import sys

from . import codec, json_codec, profile, server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=(__doc__ or "").split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    codec.add_arguments(commands.add_parser("codec", help="message encode/decode speed"))
    json_codec.add_arguments(commands.add_parser("json", help="JSON dumps/loads speed"))
    profile.add_arguments(commands.add_parser("profile", help="where the codec time goes"))
    server.add_arguments(commands.add_parser("server", help="gRPC proxy server throughput"))
    args = parser.parse_args(argv)
    if args.command == "codec":
        return codec.main(args)
    if args.command == "json":
        return json_codec.main(args)
    if args.command == "profile":
        return profile.main(args)
    return server.main(args)


if __name__ == "__main__":
    sys.exit(main())
