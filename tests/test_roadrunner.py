"""The RoadRunner worker transport and RPC client, without RoadRunner: goridge frames checked
against bytes made by goridge itself (Go), a worker fed through in-memory pipes, and the CLI
worker as RoadRunner runs it (a subprocess on pipes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrifugo_types import (
    ClientError,
    ConnectCall,
    ErrorReply,
    Router,
    RpcCall,
    StartupError,
    TransportError,
    UnsupportedMethodError,
    api,
    proxy,
)
from centrifugo_types import _goridge as goridge
from centrifugo_types._generated import proxy_events as events
from centrifugo_types._generated.api_methods import BY_REQUEST, METHODS
from centrifugo_types._goridge import Flag, Frame
from centrifugo_types.roadrunner import (
    EVENT_TYPES,
    ROADRUNNER_API_METHODS,
    RoadRunnerApiClient,
    RoadRunnerNotReadyError,
    RpcTransport,
    Worker,
    WorkerProtocolError,
    check_environment,
)

from .centrifugo import ROOT, free_port

WAIT = 5.0

# -- frames ---------------------------------------------------------------------------------

# Made by goridge v3.8.3's own frame package (Go): NewFrame, WriteVersion(1), WriteFlags,
# WriteOptions, WritePayloadLen, WritePayload, WriteCRC, Bytes.
GORIDGE_FRAMES = [
    # PROTO, options [7, 3], payload "abcdef"
    (Flag.PROTO, (7, 3), b"abcdef", "158006000000c5dd547600000700000003000000616263646566"),
    # CONTROL|JSON, no options, {"stop":true}
    (
        Flag.CONTROL | Flag.JSON,
        (),
        b'{"stop":true}',
        "13090d0000003a6bfacb00007b2273746f70223a747275657d",
    ),
]


@pytest.mark.parametrize(("flags", "options", "payload", "wire"), GORIDGE_FRAMES)
async def test_frames_match_goridge(
    flags: int, options: tuple[int, ...], payload: bytes, wire: str
) -> None:
    assert goridge.encode(flags, payload, options).hex() == wire
    assert await _read(bytes.fromhex(wire)) == Frame(flags, payload, options)


async def _read(data: bytes) -> Frame | None:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await goridge.read_frame(reader)


@given(
    flags=st.integers(0, 255),
    options=st.lists(st.integers(0, 2**32 - 1), max_size=goridge.MAX_OPTIONS),
    payload=st.binary(max_size=300),
    stream_flags=st.integers(0, 15),
)
def test_frames_round_trip(
    flags: int, options: list[int], payload: bytes, stream_flags: int
) -> None:
    data = goridge.encode(flags, payload, options, stream_flags)
    assert asyncio.run(_read(data)) == Frame(flags, payload, tuple(options), stream_flags)


@given(data=st.binary(min_size=1, max_size=60))
def test_any_bytes_give_a_frame_or_a_frame_error(data: bytes) -> None:
    try:
        frame = asyncio.run(_read(data))
    except goridge.FrameError:
        return
    assert frame is not None


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: bytes([0x20 | (b[0] & 0x0F)]) + b[1:], "version"),  # version 2
        (lambda b: bytes([0x12]) + b[1:], "header length"),  # HL 2 < 3
        (lambda b: b[:6] + bytes([b[6] ^ 1]) + b[7:], "CRC"),
        (lambda b: b[:2] + bytes([b[2] ^ 1]) + b[3:], "CRC"),  # a length the CRC does not cover
        (lambda b: b[:20], "ended"),  # cut inside the payload
        (lambda b: b[:5], "ended"),  # cut inside the header
    ],
)
async def test_bad_frames_raise_typed_errors(mutate: Any, error: str) -> None:
    wire = bytes.fromhex(GORIDGE_FRAMES[0][3])
    with pytest.raises(goridge.FrameError, match=error):
        await _read(mutate(wire))


async def test_a_stream_ending_between_frames_is_not_an_error() -> None:
    assert await _read(b"") is None


def test_too_many_options_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 10"):
        goridge.encode(0, b"", [0] * 11)


# -- the worker on in-memory pipes ------------------------------------------------------------


class Pipes:
    """RoadRunner's side of a worker's pipes."""

    def __init__(self, to_worker: int, reader: asyncio.StreamReader, worker: Worker) -> None:
        self.to_worker = to_worker
        self.reader = reader
        self.worker = worker

    def send(self, data: bytes) -> None:
        os.write(self.to_worker, data)

    def request(self, context: dict[str, Any] | bytes, body: bytes) -> None:
        ctx = context if isinstance(context, bytes) else json.dumps(context).encode()
        self.send(goridge.encode(Flag.PROTO, ctx + body, (len(ctx),)))

    async def frame(self) -> Frame:
        frame = await asyncio.wait_for(goridge.read_frame(self.reader), WAIT)
        assert frame is not None, "the worker closed its output"
        return frame

    async def reply(self, event: events.Event[Any, Any]) -> Any:
        """The reply to one request of ``event``: a PROTO frame with an empty context."""
        frame = await self.frame()
        assert frame.flags == Flag.PROTO
        assert frame.options == (0,)
        return event.response_type.parse(frame.payload)

    async def nothing_more(self) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.reader.read(1), 0.2)

    def stop(self) -> None:
        self.send(goridge.encode(Flag.CONTROL | Flag.JSON, b'{"stop":true}'))


@contextlib.asynccontextmanager
async def worker_pipes(
    router: Router, *, handshake: bool = True
) -> AsyncIterator[tuple[Pipes, asyncio.Task[None]]]:
    """A :class:`Worker` serving ``router`` in this loop over two OS pipes."""
    loop = asyncio.get_running_loop()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(out_r, "rb", buffering=0)
    )
    try:
        async with Worker(router, input_fd=in_r, output_fd=out_w) as worker:
            pipes = Pipes(in_w, reader, worker)
            task = asyncio.ensure_future(worker.serve())
            if handshake:
                pipes.send(goridge.encode(Flag.CONTROL | Flag.JSON, b'{"pid":1}'))
                hello = await pipes.frame()
                assert hello.is_control
                assert json.loads(hello.payload) == {"pid": os.getpid()}
            try:
                yield pipes, task
            finally:
                if not task.done():
                    task.cancel()
                with contextlib.suppress(BaseException):
                    await task
    finally:
        transport.close()
        for fd in (in_r, in_w, out_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def test_event_types_cover_what_the_plugin_sends() -> None:
    # the types RoadRunner's centrifuge plugin v5.1.9 puts in the context (proxy.go)
    sent = ["connect", "refresh", "subscribe", "publish", "rpc", "subrefresh"]
    sent.append("notifychannelstate")
    for name in sent:
        assert name in EVENT_TYPES
    assert EVENT_TYPES["subrefresh"] is events.SUB_REFRESH


def make_router() -> Router:
    router = Router(timeout=0.2)

    @router.connect
    async def connect(request: ConnectCall) -> None:
        metadata = [[k, v] for k, v in request.metadata.items()]
        request.respond(
            proxy.ConnectResult(user=request.client, data=json.dumps(metadata).encode())
        )

    @router.rpc("raise")
    async def raising(request: RpcCall) -> None:
        raise RuntimeError("broken")

    @router.rpc("refuse")
    async def refuse(request: RpcCall) -> None:
        raise ErrorReply(422, "refused")

    @router.rpc("hang")
    async def hang(request: RpcCall) -> None:
        await asyncio.sleep(3600)

    @router.rpc("noreply")
    async def noreply(request: RpcCall) -> None:
        pass

    @router.rpc("twice")
    async def twice(request: RpcCall) -> None:
        request.respond()
        request.respond()

    return router


CONNECT = {"type": ["connect"]}


async def test_a_request_gets_its_reply_with_the_metadata() -> None:
    async with worker_pipes(make_router()) as (pipes, _):
        context = {
            ":authority": ["127.0.0.1:30000"],
            "content-type": ["application/grpc"],
            "user-agent": ["grpc-go/1.75.1"],
            "x-static": ["e2e"],
            "x-multi": ["one", "two"],
            "Authorization": ["Bearer t"],
            "type": ["forwarded", "connect"],
        }
        pipes.request(context, bytes(proxy.ConnectRequest(client="c1")))
        reply = await pipes.reply(events.CONNECT)
        assert reply.result.user == "c1"
        assert json.loads(reply.result.data) == [
            ["x-static", "e2e"],
            ["x-multi", "one"],
            ["x-multi", "two"],
            ["authorization", "Bearer t"],
            ["type", "forwarded"],
        ]
        await pipes.nothing_more()


@pytest.mark.parametrize("type_name", sorted(EVENT_TYPES))
async def test_every_event_type_gets_a_reply_of_its_event(type_name: str) -> None:
    event = EVENT_TYPES[type_name]
    async with worker_pipes(Router()) as (pipes, _):  # no handlers: "not available"
        pipes.request({"type": [type_name]}, bytes(event.request_type()))
        reply = await pipes.reply(event)
        assert isinstance(reply, event.response_type)
        if event.with_error is not None:
            assert reply.error.code == 108


@pytest.mark.parametrize(
    ("method", "code"),
    [("raise", 100), ("hang", 100), ("noreply", 100), ("refuse", 422), ("twice", None)],
)
async def test_handler_failures_get_the_events_error_reply(method: str, code: int | None) -> None:
    async with worker_pipes(make_router()) as (pipes, _):
        started = time.monotonic()
        pipes.request({"type": ["rpc"]}, bytes(proxy.RpcRequest(method=method)))
        reply = await pipes.reply(events.RPC)
        if code is None:  # the first reply stands
            assert reply.result is not None
        else:
            assert reply.error.code == code
        assert time.monotonic() - started < 1.0
        await pipes.nothing_more()
        # and the worker goes on serving
        pipes.request(CONNECT, bytes(proxy.ConnectRequest(client="next")))
        assert (await pipes.reply(events.CONNECT)).result.user == "next"


@pytest.mark.parametrize(
    ("options", "payload", "why"),
    [
        ((), b'{"type":["connect"]}', "one option"),
        ((2, 0), b'{"type":["connect"]}', "one option"),
        ((500,), b'{"type":["connect"]}', "one option"),
        ((5,), b"{nope", "not JSON"),
        ((2,), b"[]", "not a JSON object"),
        ((2,), b"{}", "no proxy event"),
        ((17,), b'{"type":["nope"]}', "no proxy event"),
        ((22,), b'{"type":["subscribe_unidirectional"]}'[:22], "not JSON"),
        ((13,), b'{"type":[42]}', "no proxy event"),
    ],
)
async def test_an_unanswerable_request_gets_an_error_frame(
    options: tuple[int, ...], payload: bytes, why: str
) -> None:
    async with worker_pipes(make_router()) as (pipes, _):
        pipes.send(goridge.encode(Flag.PROTO, payload, options))
        frame = await pipes.frame()
        assert frame.is_error
        assert why in frame.payload.decode()
        await pipes.nothing_more()
        pipes.request(CONNECT, bytes(proxy.ConnectRequest(client="next")))
        assert (await pipes.reply(events.CONNECT)).result.user == "next"


@pytest.mark.parametrize(
    ("context", "body"),
    [
        (CONNECT, b"\xff\xff\xff"),  # not a ConnectRequest
        (CONNECT, b"\x0a\x05ab"),  # truncated
        ({"type": ["connect"], "x-a": "not an array"}, b""),
        ({"type": ["connect"], "x-a": [1]}, b""),
    ],
)
async def test_an_undecodable_request_of_a_known_event_gets_the_failure_reply(
    context: dict[str, Any], body: bytes
) -> None:
    async with worker_pipes(make_router()) as (pipes, _):
        pipes.request(context, body)
        reply = await pipes.reply(events.CONNECT)
        assert (reply.error.code, reply.error.message, reply.error.temporary) == (
            100,
            "internal server error",
            True,
        )
        await pipes.nothing_more()


def _one_reply(data: bytes) -> Frame:
    """The single frame in ``data`` (a reply of :meth:`Worker.answer`)."""
    frame = asyncio.run(_read(data))
    assert frame is not None
    assert len(goridge.encode(frame.flags, frame.payload, frame.options)) == len(data)
    return frame


@given(
    options=st.lists(st.integers(0, 2**32 - 1), max_size=3),
    context=st.one_of(
        st.binary(max_size=40),
        st.builds(
            lambda t: json.dumps({"type": [t]}).encode(),
            st.sampled_from(sorted(EVENT_TYPES)) | st.text(max_size=8),
        ),
    ),
    body=st.binary(max_size=60),
    exact=st.booleans(),
)
def test_any_request_frame_gets_exactly_one_reply(
    options: list[int], context: bytes, body: bytes, exact: bool
) -> None:
    if exact:  # the context length right, as RoadRunner sends it
        options = [len(context)]
    frame = Frame(Flag.PROTO, context + body, tuple(options))
    reply = _one_reply(asyncio.run(Worker(make_router()).answer(frame)))
    if reply.is_error:
        assert reply.payload  # a message RoadRunner passes on
        return
    assert (reply.flags, reply.options) == (Flag.PROTO, (0,))
    event = EVENT_TYPES[json.loads(context)["type"][-1]]
    assert isinstance(event.response_type.parse(reply.payload), event.response_type)


@given(
    metadata=st.dictionaries(
        st.from_regex(r"x-[a-z0-9-]{1,10}", fullmatch=True),
        st.lists(st.text(max_size=10), min_size=1, max_size=3),
        max_size=4,
    )
)
def test_the_context_metadata_reaches_the_handler_with_every_value(
    metadata: dict[str, list[str]],
) -> None:
    context = json.dumps({**metadata, "type": ["connect"]}).encode()
    body = bytes(proxy.ConnectRequest(client="c"))
    frame = Frame(Flag.PROTO, context + body, (len(context),))
    reply = _one_reply(asyncio.run(Worker(make_router()).answer(frame)))
    result = proxy.ConnectResponse.parse(reply.payload).result
    assert result is not None
    seen = json.loads(result.data)
    assert seen == [[key, value] for key, values in metadata.items() for value in values]


async def test_the_worker_runs_the_routers_lifespan_around_serving() -> None:
    events_seen: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(router: Router) -> AsyncIterator[None]:
        events_seen.append("startup")
        yield
        events_seen.append("shutdown")

    router = Router(lifespan=lifespan)

    @router.connect
    async def connect(call: ConnectCall) -> None:
        events_seen.append("connect")
        call.respond(proxy.ConnectResult(user="u"))

    async with worker_pipes(router) as (pipes, task):
        assert events_seen == ["startup"]  # before the handshake
        pipes.request(CONNECT, bytes(proxy.ConnectRequest()))
        await pipes.reply(events.CONNECT)
        pipes.stop()
        await asyncio.wait_for(task, 1.0)
    assert events_seen == ["startup", "connect", "shutdown"]


async def test_a_failing_lifespan_is_a_startup_error() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(router: Router) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        with pytest.raises(StartupError, match="no database"):
            async with Worker(Router(lifespan=lifespan), input_fd=in_r, output_fd=out_w):
                pass
    finally:
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)


async def test_the_stop_frame_ends_serving() -> None:
    async with worker_pipes(make_router()) as (pipes, task):
        pipes.request(CONNECT, bytes(proxy.ConnectRequest(client="c")))
        await pipes.reply(events.CONNECT)
        pipes.stop()
        await asyncio.wait_for(task, 1.0)
        assert task.result() is None


async def test_a_stopping_worker_hands_requests_back_to_roadrunner() -> None:
    """stop() (SIGTERM) while a request runs: that request is answered; a request that comes
    after (RoadRunner sent it before it knew) gets the stop reply, which makes RoadRunner
    retry it on another worker; then the worker leaves by itself."""
    release = asyncio.Event()
    router = Router()

    @router.rpc
    async def rpc(call: RpcCall) -> proxy.RpcResult:
        await release.wait()
        return proxy.RpcResult(data=b'"done"')

    async with worker_pipes(router) as (pipes, task):
        worker = pipes.worker
        pipes.request({"type": ["rpc"]}, bytes(proxy.RpcRequest(method="m")))
        await asyncio.sleep(0.05)
        worker.stop()  # mid-request
        pipes.request({"type": ["rpc"]}, bytes(proxy.RpcRequest(method="m")))
        release.set()
        reply = await pipes.reply(events.RPC)
        assert reply.result == proxy.RpcResult(data=b'"done"')
        stop = await pipes.frame()
        assert (stop.flags, stop.options, stop.payload) == (Flag.PROTO, (13,), b'{"stop":true}')
        await asyncio.wait_for(task, worker.stop_grace + WAIT)
        assert worker.requests == 1


async def test_an_idle_worker_stops_after_the_grace() -> None:
    async with worker_pipes(make_router()) as (pipes, task):
        worker = pipes.worker
        worker.stop()
        worker.stop()  # twice is once
        pipes.request(CONNECT, bytes(proxy.ConnectRequest(client="c")))  # on its way already
        stop = await pipes.frame()
        assert stop.payload == b'{"stop":true}'
        started = time.monotonic()
        await asyncio.wait_for(task, WAIT)
        assert time.monotonic() - started < worker.stop_grace + 0.5
        await pipes.nothing_more()


async def test_the_pipe_closing_ends_serving() -> None:
    async with worker_pipes(make_router()) as (pipes, task):
        os.close(pipes.to_worker)
        await asyncio.wait_for(task, 1.0)
        assert task.result() is None


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # not a frame: wrong version
        bytes.fromhex(GORIDGE_FRAMES[0][3])[:6] + b"\0\0\0\0" + b"\0\0",  # bad CRC
    ],
)
async def test_bytes_that_are_not_frames_end_the_worker_with_an_error(garbage: bytes) -> None:
    async with worker_pipes(make_router()) as (pipes, task):
        pipes.send(garbage)
        with pytest.raises(WorkerProtocolError):
            await asyncio.wait_for(task, 1.0)


async def test_a_frame_cut_short_ends_the_worker_with_an_error() -> None:
    async with worker_pipes(make_router()) as (pipes, task):
        pipes.send(goridge.encode(Flag.PROTO, b"x" * 100, (0,))[:40])
        os.close(pipes.to_worker)
        with pytest.raises(WorkerProtocolError, match="ended"):
            await asyncio.wait_for(task, 1.0)


async def test_a_first_frame_that_is_not_the_handshake_is_an_error() -> None:
    async with worker_pipes(make_router(), handshake=False) as (pipes, task):
        pipes.request(CONNECT, b"")
        with pytest.raises(WorkerProtocolError, match="handshake"):
            await asyncio.wait_for(task, 1.0)


async def test_requests_are_answered_one_at_a_time_in_order() -> None:
    async with worker_pipes(make_router()) as (pipes, _):
        for n in range(20):  # all written before the first is read
            pipes.request(CONNECT, bytes(proxy.ConnectRequest(client=str(n))))
        users = [(await pipes.reply(events.CONNECT)).result.user for _ in range(20)]
        assert users == [str(n) for n in range(20)]
        await pipes.nothing_more()


@pytest.mark.parametrize(
    ("environ", "refused"),
    [
        ({}, None),
        ({"RR_MODE": "centrifuge", "RR_RELAY": "pipes"}, None),
        ({"RR_MODE": "http", "RR_RELAY": "pipes"}, "RR_MODE"),
        ({"RR_MODE": "centrifuge", "RR_RELAY": "tcp://127.0.0.1:7000"}, "RR_RELAY"),
    ],
)
def test_the_worker_refuses_other_plugins_and_relays(
    environ: dict[str, str], refused: str | None
) -> None:
    if refused is None:
        check_environment(environ)
    else:
        with pytest.raises(WorkerProtocolError, match=refused):
            check_environment(environ)


# -- the CLI worker, as RoadRunner runs it ----------------------------------------------------


@contextlib.contextmanager
def cli_worker() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "centrifugo_types", "worker", "tests.roadrunner_app:router"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout, process.stderr):
            assert pipe is not None
            pipe.close()


def _read_frame(stream: Any) -> Frame:
    header = stream.read(goridge.HEADER_SIZE)
    count, flags, length, stream_flags = goridge.decode_header(header)
    body = stream.read(4 * count + length)
    options = tuple(int.from_bytes(body[4 * i : 4 * i + 4], "little") for i in range(count))
    return Frame(flags, body[4 * count :], options, stream_flags)


def test_the_cli_worker_keeps_stdout_for_frames_and_stops_on_the_stop_frame() -> None:
    with cli_worker() as process:
        stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
        assert stdin is not None and stdout is not None and stderr is not None
        stdin.write(goridge.encode(Flag.CONTROL | Flag.JSON, b'{"pid":1}'))
        stdin.flush()
        hello = _read_frame(stdout)
        assert hello.is_control and json.loads(hello.payload) == {"pid": process.pid}
        context = b'{"type":["rpc"]}'
        body = bytes(proxy.RpcRequest(method="print"))
        stdin.write(goridge.encode(Flag.PROTO, context + body, (len(context),)))
        stdin.flush()
        reply = proxy.RpcResponse.parse(_read_frame(stdout).payload)
        assert reply.result is not None and json.loads(reply.result.data) == "printed"
        stdin.write(goridge.encode(Flag.CONTROL | Flag.JSON, b'{"stop":true}'))
        stdin.flush()
        started = time.monotonic()
        assert process.wait(timeout=2) == 0
        assert time.monotonic() - started < 1.0
        assert stdout.read() == b""  # nothing but the two frames
        err = stderr.read().decode()
        assert "a stray print from a handler" in err
        assert "and a write to sys.stdout" in err
        assert "and a write to file descriptor 1" in err
        assert "stop frame received" in err


def test_the_cli_worker_exits_with_a_message_on_garbage() -> None:
    with cli_worker() as process:
        assert process.stdin is not None and process.stderr is not None
        process.stdin.write(b"this is not a goridge frame\n")
        process.stdin.flush()
        assert process.wait(timeout=60) == 1  # a slow start on a busy machine included
        assert "not a goridge frame" in process.stderr.read().decode()


# -- the API through RoadRunner's RPC ----------------------------------------------------------


def test_roadrunners_table_names_the_plugins_34_methods() -> None:
    # RoadRunner's copy of api.proto is older than Centrifugo 6.9.1's: a method only it has
    # (RateLimit) is harmless, no request type leads to it.
    assert len(ROADRUNNER_API_METHODS) == 34
    assert all(name.isidentifier() and name[0].isupper() for name in ROADRUNNER_API_METHODS)
    for request in (api.PublishRequest, api.HistoryRequest, api.BatchRequest):
        assert BY_REQUEST[request].name in ROADRUNNER_API_METHODS


@pytest.mark.parametrize(
    "method", [m for m in METHODS if m.name not in ROADRUNNER_API_METHODS], ids=lambda m: m.name
)
async def test_methods_roadrunner_lacks_fail_without_a_round_trip(method: Any) -> None:
    closed = f"tcp://127.0.0.1:{free_port()}"  # nothing listens: a round trip would fail
    with pytest.raises(UnsupportedMethodError, match="RoadRunner"):
        await RpcTransport(closed).handle_async_request(method, method.request(), 1.0)


async def test_an_unreachable_roadrunner_is_a_transport_error() -> None:
    async with RoadRunnerApiClient(f"tcp://127.0.0.1:{free_port()}") as client:
        with pytest.raises(TransportError, match="cannot reach"):
            await client.info()


@contextlib.asynccontextmanager
async def fake_rpc(answer: Any) -> AsyncIterator[str]:
    """A server speaking goridge RPC: ``answer(method, body)`` gives ``(flags, payload)``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (frame := await goridge.read_frame(reader)) is not None:
            sequence, length = frame.options
            method = frame.payload[:length]
            flags, payload = answer(method.decode(), frame.payload[length:])
            writer.write(goridge.encode(flags, method + payload, (sequence, length)))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        server.close()


async def test_rpc_requests_and_replies() -> None:
    seen = []

    def answer(method: str, body: bytes) -> tuple[int, bytes]:
        seen.append((method, api.PublishRequest.parse(body)))
        return Flag.PROTO, bytes(api.PublishResponse(result=api.PublishResult(offset=7)))

    async with fake_rpc(answer) as address, RoadRunnerApiClient(address) as client:
        results = await asyncio.gather(
            *(client.publish(channel="ch", data={"n": n}) for n in range(5))
        )
        assert [r.offset for r in results] == [7] * 5
    assert {method for method, _ in seen} == {"centrifuge.Publish"}
    assert sorted(json.loads(request.data)["n"] for _, request in seen) == list(range(5))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("RoadRunner is not ready yet, try in a few seconds", RoadRunnerNotReadyError),
        ("rpc error: code = Unimplemented desc = unknown method", UnsupportedMethodError),
        ("rpc error: code = Unavailable desc = connection refused", TransportError),
    ],
)
async def test_rpc_errors_are_typed(text: str, error: type[Exception]) -> None:
    def answer(method: str, body: bytes) -> tuple[int, bytes]:
        return Flag.PROTO | Flag.ERROR, text.encode()

    async with fake_rpc(answer) as address, RoadRunnerApiClient(address) as client:
        with pytest.raises(error) as raised:
            await client.info()
    assert isinstance(raised.value, TransportError) == (error is not UnsupportedMethodError)
    if error is RoadRunnerNotReadyError:
        assert raised.value.retryable  # type: ignore[attr-defined]


def test_one_client_works_under_successive_event_loops_and_after_close() -> None:
    """Its connection belongs to one loop: a call from another loop opens its own; a closed
    client refuses calls with a ClientError, as every API client does."""

    def answer(method: str, body: bytes) -> tuple[int, bytes]:
        return Flag.PROTO, bytes(api.InfoResponse(result=api.InfoResult()))

    ready: queue.Queue[str] = queue.Queue()
    stop = threading.Event()

    def server() -> None:
        async def run() -> None:
            async with fake_rpc(answer) as address:
                ready.put(address)
                await asyncio.to_thread(stop.wait)

        asyncio.run(run())

    thread = threading.Thread(target=server)
    thread.start()
    try:
        client = RoadRunnerApiClient(ready.get(timeout=WAIT), timeout=WAIT)
        for _ in range(2):
            assert asyncio.run(client.info()) == api.InfoResult()

        async def close_then_call() -> None:
            await client.aclose()
            with pytest.raises(ClientError, match="closed"):
                await client.info()

        asyncio.run(close_then_call())
    finally:
        stop.set()
        thread.join()


async def test_the_rpc_address_defaults_to_rr_rpc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RR_RPC", "tcp://127.0.0.1:1234")
    assert RpcTransport().address == "tcp://127.0.0.1:1234"
    monkeypatch.delenv("RR_RPC")
    assert RpcTransport().address == "tcp://127.0.0.1:6001"
