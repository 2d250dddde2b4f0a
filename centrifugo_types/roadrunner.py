"""RoadRunner: Python workers behind its centrifuge plugin, and Centrifugo's API through its RPC.

RoadRunner's ``centrifuge`` plugin is the gRPC proxy endpoint Centrifugo calls; it hands each
request to a pool of worker processes over pipes (goridge frames). :class:`Worker` is such a
worker, serving a :class:`~centrifugo_types.Router`; ``.rr.yaml``'s ``server.command`` runs it::

    server:
      command: "python -m centrifugo_types worker myapp.backend:router"

or, from your own script::

    from centrifugo_types.roadrunner import serve

    asyncio.run(serve(router))       # until RoadRunner stops the worker

A worker serves one request at a time and answers each exactly once: what the handler replies,
the event's failure reply when the handler fails or the request does not decode, or (for a
frame it cannot tie to an event at all) an ``ERROR`` frame, which RoadRunner reports to
Centrifugo as an error and keeps the worker. Stdout carries frames only: while serving, what
the process prints goes to stderr, which RoadRunner logs.

:class:`RpcTransport` and :class:`RoadRunnerApiClient` call Centrifugo's server API through
RoadRunner's RPC socket (``rpc.listen``; ``RR_RPC`` in a worker's environment), as the PHP
bridge does: the same typed methods and errors as the other API clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import stat
import sys
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _goridge as goridge
from ._call import AnyCall, internal_error_reply
from ._generated import proxy_events as events
from ._goridge import Flag, Frame, FrameError
from .calls import CALL_CLASSES
from .errors import DecodeError, EncodeError
from .router import Router

if TYPE_CHECKING:
    from ._rr_rpc import (
        DEFAULT_RPC_ADDRESS,
        ROADRUNNER_API_METHODS,
        RoadRunnerApiClient,
        RoadRunnerNotReadyError,
        RpcTransport,
    )

__all__ = [
    "DEFAULT_RPC_ADDRESS",
    "EVENT_TYPES",
    "ROADRUNNER_API_METHODS",
    "RoadRunnerApiClient",
    "RoadRunnerNotReadyError",
    "RpcTransport",
    "Worker",
    "WorkerProtocolError",
    "serve",
]

logger = logging.getLogger("centrifugo_types.roadrunner")

# -- the worker ------------------------------------------------------------------------------

EVENT_TYPES: Mapping[str, events.Event[Any, Any]] = {
    name.replace("_", ""): event
    for name, event in events.EVENTS.items()
    if event.cardinality == "unary_unary"
}
"""The event of each ``type`` RoadRunner's plugin puts in a request's context: the event's
name without underscores (``connect``, ``subrefresh``, ``notifychannelstate``, ...)."""

STOP_REPLY = goridge.encode(Flag.PROTO, b'{"stop":true}', (len(b'{"stop":true}'),))
"""The reply a worker leaving gives a request: RoadRunner retries the request on another
worker and replaces this one."""

RR_MODE = "centrifuge"
"""``RR_MODE`` of the workers of RoadRunner's centrifuge plugin."""
RR_RELAY = "pipes"
"""``RR_RELAY`` when RoadRunner talks to its workers over stdin and stdout."""

TRANSPORT_METADATA_PREFIXES = (":", "grpc-")
TRANSPORT_METADATA = frozenset({"te", "content-type", "user-agent"})
"""Metadata of the gRPC call from Centrifugo to RoadRunner itself, not forwarded by Centrifugo
(the same keys grpclib keeps out of the gRPC transport's metadata)."""


class WorkerProtocolError(FrameError):
    """RoadRunner's side of the pipe broke the protocol: a frame that is not one, or a first
    frame that is not the handshake. The worker cannot continue."""


class _Writer(asyncio.Protocol):
    """The write end of the pipe: lets a writer wait while the pipe is full."""

    def __init__(self) -> None:
        self._can_write = asyncio.Event()
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._can_write.set()

    async def drain(self) -> None:
        await self._can_write.wait()


class Worker:
    """A RoadRunner worker serving ``router`` over a pair of pipes (stdin and stdout).

    ::

        async with Worker(router) as worker:
            await worker.serve()    # returns when RoadRunner stops the worker

    ``input_fd`` / ``output_fd``: the pipes to read requests from and write replies to
    (RoadRunner's: 0 and 1). When ``output_fd`` is the process's stdout, it is kept for
    frames only: from :meth:`start` to :meth:`close`, file descriptor 1 and ``sys.stdout``
    point at stderr, so that a stray ``print`` cannot corrupt the stream.
    """

    def __init__(
        self,
        router: Router,
        *,
        input_fd: int = 0,
        output_fd: int = 1,
        max_payload: int = 64 * 1024 * 1024,
        stop_grace: float = 0.5,
    ) -> None:
        self.router = router
        self.input_fd = input_fd
        self.output_fd = output_fd
        self.max_payload = max_payload
        self.stop_grace = stop_grace
        """How long a stopping worker answers requests still coming with the stop reply."""
        self.requests = 0
        """Requests answered so far."""
        self._reader: asyncio.StreamReader | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self._writer: asyncio.WriteTransport | None = None
        self._protocol: _Writer | None = None
        self._stack = contextlib.AsyncExitStack()
        self._restore_stdout: Callable[[], None] | None = None
        self._handshaken = False
        self._stopping = False
        self._busy = False

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the pipes (and keep stdout for frames; see the class)."""
        loop = asyncio.get_running_loop()
        for fd, name in ((self.input_fd, "input"), (self.output_fd, "output")):
            if stat.S_ISREG(os.fstat(fd).st_mode):
                raise WorkerProtocolError(
                    f"the worker's {name} (fd {fd}) is a regular file: RoadRunner's relay is "
                    "pipes (server.relay: pipes)"
                )
        out_fd = self._guard_stdout() if self.output_fd == 1 else self.output_fd
        try:
            # The transports own duplicates of the descriptors (and close them): the caller's
            # stay open, and fd 1 can be given back.
            reader = asyncio.StreamReader(limit=2**16, loop=loop)
            read_pipe = os.fdopen(os.dup(self.input_fd), "rb", buffering=0)
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), read_pipe
            )
            self._transports.append(transport)
            write_pipe = os.fdopen(os.dup(out_fd), "wb", buffering=0)
            writer, protocol = await loop.connect_write_pipe(_Writer, write_pipe)
            self._transports.append(writer)
            self._reader, self._writer, self._protocol = reader, writer, protocol
            # The router's lifespan: before the handshake, so that the worker is ready when
            # RoadRunner counts it in (it waits pool.allocate_timeout for the handshake).
            await self._stack.enter_async_context(self.router.lifespan_context())
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pipes and give stdout back."""
        try:
            await self._stack.aclose()
        finally:
            writer, protocol = self._writer, self._protocol
            if writer is not None and protocol is not None and writer.get_write_buffer_size():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(protocol.drain(), 1.0)
            for transport in self._transports:
                transport.close()
            self._transports.clear()
            self._reader = self._writer = self._protocol = None
            if self._restore_stdout is not None:
                self._restore_stdout()
                self._restore_stdout = None

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _guard_stdout(self) -> int:
        """Keep fd 1 for frames on a duplicate; point fd 1 and ``sys.stdout`` at stderr."""
        sys.stdout.flush()
        frames = os.dup(1)
        saved_stdout = sys.stdout
        os.dup2(2, 1)
        sys.stdout = sys.stderr

        def restore() -> None:
            sys.stdout.flush()
            os.dup2(frames, 1)
            os.close(frames)
            sys.stdout = saved_stdout

        self._restore_stdout = restore
        return frames

    def stop(self) -> None:
        """Leave: after the request in progress, or at once when idle, the worker answers
        every request still coming with RoadRunner's stop reply (RoadRunner retries it on
        another worker and replaces this one) for :attr:`stop_grace` seconds, then returns
        from :meth:`serve`. Call it in the worker's event loop (``serve()`` calls it on
        SIGTERM and SIGINT)."""
        if self._stopping:
            return
        self._stopping = True
        if not self._busy:
            self._leave_soon()

    def _leave_soon(self) -> None:
        """End the input ``stop_grace`` seconds from now: what RoadRunner sent before it
        learnt of the stop (a request on its way as the signal came) still gets a reply."""
        reader, transports = self._reader, self._transports
        if reader is None:
            return

        def leave() -> None:
            if transports:
                transports[0].close()  # the read pipe: nothing more is fed to the reader
            if not reader.at_eof():
                reader.feed_eof()

        asyncio.get_running_loop().call_later(self.stop_grace, leave)

    # -- serving ----------------------------------------------------------------------------

    async def serve(self) -> None:
        """Answer RoadRunner's handshake, then its requests, one at a time, until it sends
        the stop frame or closes the pipe (or :meth:`stop` is called).

        Raises :class:`WorkerProtocolError` when the input is not goridge frames.
        """
        reader = self._reader
        if reader is None:
            raise RuntimeError("start() the worker first (or use `async with`)")
        if not self._handshaken:
            await self._handshake(reader)
        while True:
            try:
                frame = await self._read(reader)
            except WorkerProtocolError:
                if self._stopping:  # the input ended inside a frame as the grace ran out
                    break
                raise
            if frame is None:
                if self._stopping:
                    break
                logger.info("RoadRunner closed the pipe; exiting")
                return
            if frame.is_control:
                if self._control(frame):
                    logger.info("stop frame received; exiting")
                    return
                continue
            if self._stopping:
                logger.info("stopping: a request goes back to RoadRunner for another worker")
                await self._write(STOP_REPLY)
                continue
            self._busy = True
            try:
                reply = await self.answer(frame)
                await self._write(reply)
            except ConnectionError:
                logger.info("RoadRunner closed the pipe; exiting")
                return
            finally:
                self._busy = False
            self.requests += 1
            if self._stopping:  # stop() came during the request
                self._leave_soon()
        logger.info("stopped")

    async def _read(self, reader: asyncio.StreamReader) -> Frame | None:
        try:
            return await goridge.read_frame(reader, max_payload=self.max_payload)
        except FrameError as exc:
            raise WorkerProtocolError(f"not a goridge frame from RoadRunner: {exc}") from exc

    async def _handshake(self, reader: asyncio.StreamReader) -> None:
        frame = await self._read(reader)
        if frame is None:
            raise WorkerProtocolError("the pipe closed before RoadRunner's handshake")
        if not frame.is_control:
            raise WorkerProtocolError(
                f"the first frame is not RoadRunner's handshake (flags {frame.flags:#04x})"
            )
        logger.debug("handshake from RoadRunner: %r", frame.payload)
        payload = json.dumps({"pid": os.getpid()}).encode()
        await self._write(goridge.encode(Flag.CONTROL | Flag.JSON, payload))
        self._handshaken = True

    def _control(self, frame: Frame) -> bool:
        """Handle a control frame between requests; whether it asks the worker to stop."""
        try:
            command = json.loads(frame.payload)
        except ValueError:
            command = None
        if isinstance(command, dict) and command.get("stop"):
            return True
        logger.warning("ignoring a control frame from RoadRunner: %r", frame.payload[:200])
        return False

    async def _write(self, data: bytes) -> None:
        writer, protocol = self._writer, self._protocol
        assert writer is not None and protocol is not None
        if writer.is_closing():
            raise BrokenPipeError("RoadRunner closed the pipe")
        writer.write(data)
        if writer.get_write_buffer_size():
            await protocol.drain()

    async def answer(self, frame: Frame) -> bytes:
        """The reply frame (bytes) to a request frame: always exactly one."""
        if len(frame.options) != 1 or frame.options[0] > len(frame.payload):
            return _error_frame(
                f"a request frame has one option (the context length) within the payload; "
                f"got options {list(frame.options)} for {len(frame.payload)} bytes"
            )
        split = frame.options[0]
        payload = frame.payload
        try:
            context = json.loads(payload[:split]) if split else {}
        except ValueError as exc:
            return _error_frame(f"the request context is not JSON: {exc}")
        if not isinstance(context, dict):
            return _error_frame("the request context is not a JSON object")
        event = _event_of(context)
        if event is None:
            return _error_frame(f"no proxy event for the context's type {context.get('type')!r}")
        response = await self._respond(event, context, payload[split:])
        try:
            body = bytes(response)
        except EncodeError as exc:
            logger.error("%s: the reply does not encode: %s", event.name, exc)
            body = bytes(internal_error_reply(event))
        return goridge.encode(Flag.PROTO, body, (0,))

    async def _respond(
        self, event: events.Event[Any, Any], context: dict[str, Any], body: bytes
    ) -> Any:
        try:
            metadata = _metadata(context)
            message = event.request_type.parse(body)
        except (DecodeError, TypeError, ValueError) as exc:
            logger.warning("%s: undecodable request: %s", event.name, exc)
            return internal_error_reply(event)
        call: AnyCall = CALL_CLASSES[event.name](message, metadata)
        try:
            return await self.router.handle(call)
        except Exception:  # the router turns handler failures into replies; this is a bug
            logger.exception("%s: the router failed", event.name)
            return internal_error_reply(event)


def _error_frame(message: str) -> bytes:
    """An ``ERROR`` frame: RoadRunner answers Centrifugo with an error, keeps the worker."""
    logger.error("unanswerable request: %s", message)
    return goridge.encode(Flag.ERROR, message.encode())


def _event_of(context: Mapping[str, Any]) -> events.Event[Any, Any] | None:
    """The event a context's ``type`` names (RoadRunner appends it: the last value)."""
    types = context.get("type")
    if isinstance(types, list) and types and isinstance(types[-1], str):
        return EVENT_TYPES.get(types[-1])
    return None


def _metadata(context: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The call's metadata from a context (JSON object of arrays), without RoadRunner's
    ``type`` and the gRPC call's own headers; every value of a repeated key is kept."""
    pairs: list[tuple[str, str]] = []
    for key, values in context.items():
        if (
            key.startswith(TRANSPORT_METADATA_PREFIXES)
            or key in TRANSPORT_METADATA
            or key.endswith("-bin")
        ):
            continue
        if not isinstance(values, list):
            raise TypeError(f"metadata {key!r} is not an array")
        if key == "type":
            values = values[:-1]  # RoadRunner's own, appended to any forwarded "type"
        for value in values:
            if not isinstance(value, str):
                raise TypeError(f"metadata {key!r} has a value that is not a string")
            pairs.append((key, value))
    return pairs


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse a RoadRunner environment this worker cannot serve (see :func:`serve`)."""
    mode, relay = environ.get("RR_MODE"), environ.get("RR_RELAY")
    if mode is not None and mode != RR_MODE:
        raise WorkerProtocolError(
            f"RoadRunner started this worker for its {mode!r} plugin (RR_MODE): "
            f"`centrifugo-types worker` serves the {RR_MODE!r} plugin only"
        )
    if relay is not None and relay != RR_RELAY:
        raise WorkerProtocolError(
            f"RoadRunner's relay is {relay!r} (RR_RELAY): the worker speaks over pipes "
            "(server.relay: pipes, the default)"
        )


async def serve(router: Router, *, input_fd: int = 0, output_fd: int = 1) -> None:
    """Serve ``router`` as a RoadRunner worker until RoadRunner stops it.

    SIGTERM or SIGINT stop the worker (:meth:`Worker.stop`: the request in progress is
    answered, requests still coming go back to RoadRunner for another worker). Started by
    RoadRunner for another plugin (``RR_MODE``) or over another relay than pipes
    (``RR_RELAY``), it refuses with :class:`WorkerProtocolError` instead of answering requests
    it cannot read.
    """
    check_environment(os.environ)
    loop = asyncio.get_running_loop()
    async with Worker(router, input_fd=input_fd, output_fd=output_fd) as worker:
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            loop.add_signal_handler(sig, worker.stop)
        try:
            await worker.serve()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)


# -- the API through RoadRunner's RPC (centrifugo_types._rr_rpc, loaded on first use) ----------

_RPC_NAMES = frozenset(
    (
        "DEFAULT_RPC_ADDRESS",
        "ROADRUNNER_API_METHODS",
        "RoadRunnerApiClient",
        "RoadRunnerNotReadyError",
        "RpcTransport",
    )
)


def __getattr__(name: str) -> Any:
    if name in _RPC_NAMES:
        from . import _rr_rpc

        return getattr(_rr_rpc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
