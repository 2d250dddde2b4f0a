"""Fuzzing as a feature: the codecs, and *your own router* through the real transports.

::

    python -m centrifugo_types.fuzz router myapp.backend:router --time 60
    python -m centrifugo_types.fuzz codec [--message ConnectRequest]
    python -m centrifugo_types.fuzz json
    python -m centrifugo_types.fuzz router myapp.backend:router --reproduce crashes/crash-<sha1>

Each target is a hypothesis test driven through ``fuzz_one_input``: with atheris installed
(the ``fuzz`` extra) coverage-guided, by libFuzzer's mutations of the bytes hypothesis draws
its inputs from; without it (or with ``--plain``) by random bytes fed to the same test. The
targets:

``codec``
    decode -> encode -> decode of every message type (or ``--message``): valid messages
    drawn from :mod:`centrifugo_types.testing` round-trip exactly; corrupted encodings of
    them (truncated, bit-flipped, spliced, overwritten) raise only
    :class:`~centrifugo_types.DecodeError` or decode to a message that round-trips.
``json``
    the same for Centrifugo's JSON dialect (:mod:`centrifugo_types.json`, ``JSONDecodeError``).
``router``
    your router (``module:attribute``), every proxy event (or ``--event``), through the real
    transport code: the gRPC service behind a grpclib server on 127.0.0.1 (a random port) and
    the ASGI :class:`~centrifugo_types.http.ProxyApp`, called in process. Requests are what
    Centrifugo sends (hypothesis-drawn messages, JSON payloads, JSON or binary mode) or
    corrupted encodings of them. Every call must get exactly one well-formed reply of the
    event's shape; a handler that raises, returns without replying or overruns its deadline
    (what the router logs as an error) is a finding too.

A finding stops the run: it is printed with the input that caused it, and written to the
``--crashes`` directory as ``crash-<sha1>`` (the fuzzer's input: ``--reproduce`` replays it)
and ``crash-<sha1>.txt`` (what was sent, what came back, the traceback). ``--corpus`` is a
directory of inputs replayed first and, under atheris, grown with the inputs that reach new
code. ``--runs`` and ``--time`` bound the run; ``--seed`` makes it repeatable. The exit
status is 0 without findings, 1 with one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import importlib.util
import logging
import os
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import betterproto2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import json as json_codec
from ._generated import proxy_events as events
from .errors import DecodeError
from .router import Router
from .testing import json_payloads, message_types, messages

__all__ = ["TARGETS", "Finding", "FuzzTarget", "main", "router_target"]

TARGETS = ("codec", "json", "router")

_SETTINGS = settings(
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


class Finding(AssertionError):
    """What a fuzz target found: ``details`` tells what was sent and what came back."""

    def __init__(self, summary: str, details: str = "") -> None:
        super().__init__(summary)
        self.summary = summary
        self.details = details


# -- corruption ------------------------------------------------------------------------------

_CORRUPTIONS = ("truncate", "flip", "overwrite", "insert", "splice", "replace")

corruptions = st.tuples(
    st.sampled_from(_CORRUPTIONS), st.integers(0, 2**16), st.binary(min_size=1, max_size=12)
)
"""A way to damage an encoding: (kind, position, bytes), applied by :func:`corrupt`."""


def corrupt(data: bytes, how: tuple[str, int, bytes]) -> bytes:
    """``data`` damaged as ``how`` (one of :data:`corruptions`) says."""
    kind, at, chunk = how
    at = at % (len(data) + 1)
    if kind == "truncate":
        return data[:at]
    if kind == "flip" and data:
        at %= len(data)
        return data[:at] + bytes((data[at] ^ (1 << (chunk[0] % 8)),)) + data[at + 1 :]
    if kind == "overwrite":
        return data[:at] + chunk + data[at + len(chunk) :]
    if kind == "insert":
        return data[:at] + chunk + data[at:]
    if kind == "splice":
        return data[:at] + data[at + chunk[0] % 16 :] + data[: at % 8]
    return chunk  # replace: arbitrary bytes


# -- targets ---------------------------------------------------------------------------------


@dataclasses.dataclass
class FuzzTarget:
    """A hypothesis test (``test``) and what to set up and tear down around a run."""

    name: str
    test: Callable[..., None]
    close: Callable[[], None] = lambda: None
    modules: Sequence[str] = ("centrifugo_types",)
    """The modules whose code coverage guides the fuzzer."""

    def one_input(self, data: bytes) -> None:
        """Run the test once on the fuzzer's bytes; raises :class:`Finding`."""
        self.test.hypothesis.fuzz_one_input(data)  # type: ignore[attr-defined]


def _types(name: str | None) -> list[type[betterproto2.Message]]:
    types = message_types()
    if name is None:
        return types
    chosen = [t for t in types if name in (t.__name__, f"{t.__module__}.{t.__qualname__}")]
    if not chosen:
        raise SystemExit(f"no message type {name!r} (e.g. ConnectRequest, PublishRequest)")
    return chosen


def codec_target(message: str | None = None) -> FuzzTarget:
    """decode -> encode -> decode of protobuf messages (one type, or every one)."""
    drawn = st.one_of([st.tuples(st.just(t), messages(t)) for t in _types(message)])

    @_SETTINGS
    @given(drawn, st.none() | corruptions)
    def codec(drawn: tuple[type[betterproto2.Message], Any], how: Any) -> None:
        cls, original = drawn
        wire = bytes(original)
        if how is None:
            decoded = cls.parse(wire)
            if decoded != original:
                raise Finding(f"{cls.__name__}: decode(encode(m)) != m", f"{original!r}\n{wire!r}")
            return
        damaged = corrupt(wire, how)
        try:
            decoded = cls.parse(damaged)
        except DecodeError:
            return
        again = bytes(decoded)  # compared as bytes: a decoded NaN is not equal to itself
        if bytes(cls.parse(again)) != again:
            raise Finding(f"{cls.__name__}: a decoded message does not round-trip", repr(damaged))

    return FuzzTarget("codec", codec)


def json_target(message: str | None = None) -> FuzzTarget:
    """loads -> dumps -> loads in Centrifugo's JSON dialect (one type, or every one)."""
    drawn = st.one_of(
        [
            st.tuples(st.just(t), messages(t, payloads=json_payloads(), allow_infinity=False))
            for t in _types(message)
        ]
    )

    @_SETTINGS
    @given(drawn, st.none() | corruptions)
    def json_dialect(drawn: tuple[type[betterproto2.Message], Any], how: Any) -> None:
        cls, original = drawn
        document = json_codec.dumps(original)
        if how is None:
            decoded = json_codec.loads(cls, document)
            if decoded != original:
                raise Finding(
                    f"{cls.__name__}: loads(dumps(m)) != m", f"{original!r}\n{document!r}"
                )
            return
        damaged = corrupt(document, how)
        try:
            decoded = json_codec.loads(cls, damaged)
        except json_codec.JSONDecodeError:
            return
        again = json_codec.dumps(decoded)
        if json_codec.dumps(json_codec.loads(cls, again)) != again:
            raise Finding(f"{cls.__name__}: a decoded document does not round-trip", repr(damaged))

    return FuzzTarget("json", json_dialect)


# -- the router target -------------------------------------------------------------------------


def centrifugo_request(message: Any, binary: bool) -> Any:
    """``message`` as Centrifugo sends it: JSON or binary mode, payloads in one field of
    each raw/``b64`` pair (the raw one in JSON mode, the ``b64`` twin in binary mode)."""
    if not dataclasses.is_dataclass(message):
        return message
    names = {f.name for f in dataclasses.fields(message)}
    for name in names:
        value = getattr(message, name)
        twin = "b64" + name
        if isinstance(value, bytes) and twin in names:
            if binary:
                setattr(message, twin, base64.b64encode(value).decode() if value else "")
                setattr(message, name, b"")
            else:
                setattr(message, twin, "")
        elif isinstance(value, list):
            setattr(message, name, [centrifugo_request(v, binary) for v in value])
        elif isinstance(value, dict):
            setattr(message, name, {k: centrifugo_request(v, binary) for k, v in value.items()})
        elif dataclasses.is_dataclass(value):
            setattr(message, name, centrifugo_request(value, binary))
    if "encoding" in names:
        setattr(message, "encoding", "binary" if binary else "json")  # noqa: B010
    return message


class _Errors(logging.Handler):
    """Collects the error records of the package's loggers during one call."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def report(self) -> str:
        lines = []
        for record in self.records:
            lines.append(f"{record.name}: {record.getMessage()}")
            if record.exc_info and record.exc_info[1] is not None:
                lines.append("".join(traceback.format_exception(record.exc_info[1])))
        return "\n".join(lines)


class _Raw:
    """A "message" whose encoding is the bytes to send (for corrupted gRPC requests)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data

    def __bytes__(self) -> bytes:
        return self.data

    @classmethod
    def FromString(cls, data: bytes) -> _Raw:
        return cls(data)

    @classmethod
    def parse(cls, data: bytes) -> _Raw:
        return cls(data)


class _Transports:
    """The gRPC server on a random local port and the ASGI app, on one event loop."""

    def __init__(self, router: Router, timeout: float) -> None:
        from grpclib.client import Channel

        from .grpc import ProxyServer
        from .http import ProxyApp

        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)  # grpclib's server looks the loop up
        self.app = ProxyApp(router)
        self.server = ProxyServer(router, port=0, shutdown_timeout=1)
        self.loop.run_until_complete(self.server.start())

        async def connect() -> Channel:  # a channel binds the loop it is made on
            return Channel("127.0.0.1", self.server.port)

        self.channel = self.loop.run_until_complete(connect())

    def close(self) -> None:
        self.channel.close()
        self.loop.run_until_complete(self.server.close())
        self.loop.close()
        asyncio.set_event_loop(None)

    async def grpc(self, event: events.Event[Any, Any], payload: Any) -> Any:
        from grpclib.const import Cardinality

        kind = {
            "unary_unary": Cardinality.UNARY_UNARY,
            "unary_stream": Cardinality.UNARY_STREAM,
            "stream_stream": Cardinality.STREAM_STREAM,
        }[event.cardinality]
        sent_type = _Raw if isinstance(payload, _Raw) else event.input_type
        stream = self.channel.request(
            event.path, kind, sent_type, event.output_type, timeout=self.timeout
        )
        async with stream:
            await stream.send_message(payload, end=event.cardinality != "stream_stream")
            reply = await stream.recv_message()
            if event.cardinality == "unary_unary":
                await stream.recv_trailing_metadata()  # raises unless the status is OK
            else:  # a subscribe stream: its first message is the reply; the rest is not ours
                with contextlib.suppress(Exception):  # unless the server ended it already
                    await stream.cancel()
        return reply

    async def http(self, path: str, body: bytes) -> tuple[int, bytes]:
        sent: list[MutableMapping[str, Any]] = []
        chunks = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if chunks:
                return chunks.pop()
            await asyncio.sleep(3600)  # the client stays connected
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
        }
        async with asyncio.timeout(self.timeout):
            await self.app(scope, receive, send)
        starts = [m for m in sent if m["type"] == "http.response.start"]
        bodies = [m for m in sent if m["type"] == "http.response.body"]
        if len(starts) != 1 or not bodies or bodies[-1].get("more_body", False):
            raise Finding("not exactly one complete HTTP response", repr(sent))
        return starts[0]["status"], b"".join(m.get("body", b"") for m in bodies)


def router_target(
    router: Router,
    *,
    event: str | None = None,
    transport: str | None = None,
    timeout: float | None = None,
    instrument: Sequence[str] = (),
) -> FuzzTarget:
    """Every event of ``router`` (or ``event``) through the gRPC server and the ASGI app
    (or the one ``transport``), valid and corrupted requests: exactly one well-formed reply
    each, and no error logged by the router (a handler that raised, did not reply, ran late).

    ``timeout``: seconds a call may take (default: the router's timeout + 2);
    ``instrument``: the modules of your code whose coverage guides atheris."""
    chosen = list(events.EVENTS.values())
    if event is not None:
        if event not in events.EVENTS:
            raise SystemExit(f"no proxy event {event!r}; known: {', '.join(events.EVENTS)}")
        chosen = [events.EVENTS[event]]
    wanted = ("grpc", "http") if transport is None else (transport,)
    if timeout is None:
        timeout = (router.timeout or 1.0) + 2.0
    transports = _Transports(router, timeout)
    paths = dict(transports.app.paths)

    def requests(e: events.Event[Any, Any]) -> st.SearchStrategy[Any]:
        modes = st.sampled_from(wanted if e.name in paths else ("grpc",))
        drawn = messages(e.request_type, payloads=json_payloads(), allow_infinity=False)
        return st.tuples(st.just(e), modes, drawn, st.booleans())

    calls = st.one_of([requests(e) for e in chosen])
    errors = _Errors()
    package_logger = logging.getLogger("centrifugo_types")
    if package_logger.getEffectiveLevel() > logging.ERROR:  # the router's errors are findings
        package_logger.setLevel(logging.ERROR)

    async def call(e: events.Event[Any, Any], mode: str, message: Any, how: Any) -> str:
        if mode == "http":
            body = json_codec.dumps(message)
            if how is not None:
                body = corrupt(body, how)
            sent = f"POST {paths[e.name]}\n{body!r}"
            status, reply = await transports.http(paths[e.name], body)
            if status != 200:
                raise Finding(f"{e.name}: HTTP {status} to a proxy call", f"{sent}\n{reply!r}")
            try:
                json_codec.loads(e.response_type, reply)
            except json_codec.JSONDecodeError as exc:
                raise Finding(
                    f"{e.name}: the HTTP reply is not a {e.response_type.__name__}",
                    f"{sent}\n{reply!r}\n{exc}",
                ) from None
            return f"{sent}\n-> {reply!r}"
        payload: Any = message
        if e.cardinality == "stream_stream":
            payload = e.input_type(subscribe_request=message)  # type: ignore[call-arg]
        wire = bytes(payload)
        if how is not None:
            payload = _Raw(corrupt(wire, how))
            wire = payload.data
        sent = f"gRPC {e.path}\n{wire!r}"
        reply = await transports.grpc(e, payload)
        if not isinstance(reply, e.output_type):
            raise Finding(f"{e.name}: no {e.output_type.__name__} over gRPC", f"{sent}\n{reply!r}")
        if e.cardinality != "unary_unary" and getattr(reply, "subscribe_response", None) is None:
            raise Finding(f"{e.name}: the stream's first message is no reply", f"{sent}\n{reply!r}")
        return f"{sent}\n-> {reply!r}"

    @_SETTINGS
    @given(calls, st.none() | corruptions)
    def router_calls(drawn: tuple[Any, str, Any, bool], how: Any) -> None:
        e, mode, message, binary = drawn
        message = centrifugo_request(message, binary)
        errors.records.clear()
        package_logger.addHandler(errors)
        try:
            outcome = transports.loop.run_until_complete(call(e, mode, message, how))
        except Finding:
            raise
        except Exception as exc:
            raise Finding(
                f"{e.name} over {mode}: {type(exc).__name__}: {exc}",
                f"request: {message!r}\ncorruption: {how!r}\n{traceback.format_exc()}",
            ) from exc
        finally:
            package_logger.removeHandler(errors)
        if errors.records:
            first = errors.records[0].getMessage()
            raise Finding(
                f"{e.name} over {mode}: {first}",
                f"request: {message!r}\ncorruption: {how!r}\n{outcome}\n{errors.report()}",
            )

    modules = ("centrifugo_types", *instrument)
    return FuzzTarget("router", router_calls, transports.close, modules)


# -- running ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Stats:
    executions: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.executions / elapsed if elapsed else 0.0
        return f"{self.executions} executions in {elapsed:.0f} s ({rate:.0f}/s)"


def _report(target: FuzzTarget, data: bytes, exc: BaseException, crashes: Path) -> Path:
    crashes.mkdir(parents=True, exist_ok=True)
    name = "crash-" + hashlib.sha1(data).hexdigest()
    (crashes / name).write_bytes(data)
    if isinstance(exc, Finding):
        summary, details = exc.summary, exc.details
    else:
        summary = f"{type(exc).__name__}: {exc}"
        details = "".join(traceback.format_exception(exc))
    text = f"target: {target.name}\nfinding: {summary}\n\n{details}\n"
    (crashes / f"{name}.txt").write_text(text)
    print(f"FINDING ({target.name}): {summary}", file=sys.stderr)
    print(details, file=sys.stderr)
    print(f"reproducer: {crashes / name} (details in {name}.txt)", file=sys.stderr)
    return crashes / name


def _corpus(corpus: Path | None) -> Iterator[bytes]:
    if corpus is not None and corpus.is_dir():
        for path in sorted(corpus.iterdir()):
            if path.is_file():
                yield path.read_bytes()


def run_plain(
    target: FuzzTarget,
    *,
    runs: int | None,
    seconds: float | None,
    seed: int,
    corpus: Path | None,
    crashes: Path,
    stats: Stats,
) -> int:
    """Feed the corpus, then random inputs, to the target (hypothesis only, no coverage)."""
    rng = random.Random(seed)

    def inputs() -> Iterator[bytes]:
        yield from _corpus(corpus)
        while True:
            yield rng.randbytes(rng.randint(0, rng.choice((64, 512, 4096))))

    deadline = None if seconds is None else time.monotonic() + seconds
    report_at = time.monotonic() + 10
    for data in inputs():
        if runs is not None and stats.executions >= runs:
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        try:
            target.one_input(data)
        except Exception as exc:
            _report(target, data, exc, crashes)
            return 1
        stats.executions += 1
        if time.monotonic() >= report_at:
            print(f"#{stats.line()}", file=sys.stderr, flush=True)
            report_at += 10
    return 0


def _instrument(atheris: Any, prefixes: Sequence[str]) -> None:
    """Coverage-instrument the functions of the modules under ``prefixes`` (already
    imported), not the whole interpreter: atheris's ``instrument_all`` takes minutes."""
    import gc
    import types

    def wanted(obj: object) -> bool:
        if not isinstance(obj, types.FunctionType):
            return False
        module = getattr(obj, "__module__", None) or ""
        return any(module == p or module.startswith(p + ".") for p in prefixes)

    functions = [obj for obj in gc.get_objects() if wanted(obj)]
    print(f"instrumenting {len(functions)} functions of {', '.join(prefixes)}", file=sys.stderr)
    for function in functions:
        with contextlib.suppress(Exception):
            atheris.instrument_func(function)


def run_atheris(
    target: FuzzTarget,
    *,
    runs: int | None,
    seconds: float | None,
    seed: int,
    corpus: Path | None,
    crashes: Path,
    stats: Stats,
    extra: Sequence[str] = (),
) -> int:
    """Coverage-guided run under atheris (libFuzzer); exits the process when it ends."""
    import atheris  # type: ignore[import-untyped]

    _instrument(atheris, target.modules)
    args = [sys.argv[0], f"-seed={seed}", f"-artifact_prefix={crashes}{os.sep}"]
    if runs is not None:
        args.append(f"-runs={runs}")
    if seconds is not None:
        args.append(f"-max_total_time={max(1, round(seconds))}")
    args.extend(extra)
    if corpus is not None:
        corpus.mkdir(parents=True, exist_ok=True)
        args.append(str(corpus))
    crashes.mkdir(parents=True, exist_ok=True)

    def one_input(data: bytes) -> None:
        try:
            target.one_input(data)
        except Exception as exc:
            _report(target, data, exc, crashes)
            target.close()
            os._exit(1)
        stats.executions += 1

    atheris.Setup(args, one_input)
    try:
        atheris.Fuzz()
    finally:  # libFuzzer exits the process through atexit handlers when done
        print(f"#{stats.line()}", file=sys.stderr, flush=True)
    return 0


def build_target(args: argparse.Namespace) -> FuzzTarget:
    if args.target == "codec":
        return codec_target(args.message)
    if args.target == "json":
        return json_target(args.message)
    if not args.router:
        raise SystemExit("the router target needs MODULE:ATTRIBUTE (e.g. myapp.backend:router)")
    from .__main__ import load_router

    module = args.router.partition(":")[0]
    return router_target(
        load_router(args.router),
        event=args.event,
        transport=args.transport,
        instrument=[module.partition(".")[0]],
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m centrifugo_types.fuzz",
        description="Fuzz the codecs, or your own router through the real transports.",
    )
    p.add_argument("target", choices=TARGETS)
    p.add_argument("router", nargs="?", help="MODULE:ATTRIBUTE of the router (router target)")
    p.add_argument("--message", help="one message type (codec, json), e.g. ConnectRequest")
    p.add_argument("--event", help="one proxy event (router), e.g. connect")
    p.add_argument("--transport", choices=("grpc", "http"), help="one transport (router)")
    p.add_argument("--runs", type=int, help="stop after this many executions")
    p.add_argument("--time", type=float, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus", type=Path, help="a directory of inputs (kept and grown)")
    p.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"), help="where findings go")
    p.add_argument("--plain", action="store_true", help="hypothesis only, even with atheris")
    p.add_argument("--reproduce", type=Path, help="replay one input file and report")
    p.add_argument("--log-level", default="critical", help="of the package's own log output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (``python -m centrifugo_types.fuzz --help``)."""
    args, extra = parser().parse_known_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    target = build_target(args)
    stats = Stats()
    try:
        if args.reproduce is not None:
            data = args.reproduce.read_bytes()
            try:
                target.one_input(data)
            except Exception as exc:
                _report(target, data, exc, args.crashes)
                return 1
            print(f"{args.reproduce}: no finding", file=sys.stderr)
            return 0
        if args.runs is None and args.time is None:
            args.time = 60.0
        options: dict[str, Any] = {
            "runs": args.runs,
            "seconds": args.time,
            "seed": args.seed,
            "corpus": args.corpus,
            "crashes": args.crashes,
            "stats": stats,
        }
        use_atheris = not args.plain
        if use_atheris and importlib.util.find_spec("atheris") is None:
            print("atheris is not installed: plain hypothesis fuzzing", file=sys.stderr)
            use_atheris = False
        if use_atheris:
            return run_atheris(target, extra=extra, **options)
        status = run_plain(target, **options)
        if status == 0:
            print(f"{target.name}: no findings, {stats.line()}", file=sys.stderr)
        return status
    finally:
        with contextlib.suppress(Exception):
            target.close()


if __name__ == "__main__":
    sys.exit(main())
