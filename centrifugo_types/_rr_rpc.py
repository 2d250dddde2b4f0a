"""Centrifugo's server API through RoadRunner's RPC (imported lazily by
:mod:`centrifugo_types.roadrunner`, so that a worker that does not call the API does not load
the API client): see :class:`RpcTransport` and :class:`RoadRunnerApiClient`."""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any, Final

from . import _goridge as goridge
from ._generated.api_methods import ApiMethod
from ._goridge import Flag, Frame, FrameError
from .client import DEFAULT_TIMEOUT, ApiClient
from .errors import (
    ApiTimeoutError,
    AuthenticationError,
    DecodeError,
    TransportError,
    UnsupportedMethodError,
)

__all__ = [
    "DEFAULT_RPC_ADDRESS",
    "ROADRUNNER_API_METHODS",
    "RoadRunnerApiClient",
    "RoadRunnerNotReadyError",
    "RpcTransport",
]

DEFAULT_RPC_ADDRESS = "tcp://127.0.0.1:6001"
"""Where RoadRunner's RPC listens unless ``RR_RPC`` says otherwise (the PHP worker's default)."""

ROADRUNNER_API_METHODS: Final = frozenset(
    [
        "Batch",
        "Publish",
        "Broadcast",
        "Subscribe",
        "Unsubscribe",
        "Disconnect",
        "Presence",
        "PresenceStats",
        "History",
        "HistoryRemove",
        "Info",
        "RPC",
        "Refresh",
        "Channels",
        "Connections",
        "UpdateUserStatus",
        "GetUserStatus",
        "DeleteUserStatus",
        "BlockUser",
        "UnblockUser",
        "RevokeToken",
        "InvalidateUserTokens",
        "DeviceRegister",
        "DeviceUpdate",
        "DeviceRemove",
        "DeviceList",
        "DeviceTopicList",
        "DeviceTopicUpdate",
        "UserTopicList",
        "UserTopicUpdate",
        "SendPushNotification",
        "UpdatePushStatus",
        "CancelPush",
        "RateLimit",
    ]
)
"""The API methods RoadRunner's centrifuge plugin (v5.1.9) forwards, as ``centrifuge.<Name>``."""

NOT_READY = "RoadRunner is not ready yet"


class RoadRunnerNotReadyError(TransportError):
    """RoadRunner has not connected to Centrifugo's gRPC API yet: retry in a few seconds."""

    retryable = True


def parse_address(address: str) -> tuple[str, int] | str:
    """``tcp://host:port`` as ``(host, port)``, ``unix:///path`` as the path."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme == "unix":
        return rest
    if scheme != "tcp":
        raise ValueError(
            f"RoadRunner RPC address must be tcp://host:port or unix://path: {address!r}"
        )
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"RoadRunner RPC address needs a host and a port: {address!r}")
    return host.strip("[]"), int(port)


class _Connection:
    """One RPC connection: calls multiplexed by sequence number (Go's net/rpc)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.loop = asyncio.get_running_loop()
        self.pending: dict[int, asyncio.Future[Frame]] = {}
        self.sequence = itertools.count(1)
        self.reading = asyncio.ensure_future(self._read())
        self.error: BaseException | None = None

    async def _read(self) -> None:
        try:
            while True:
                frame = await goridge.read_frame(self.reader)
                if frame is None:
                    raise ConnectionResetError("RoadRunner closed the RPC connection")
                if len(frame.options) != 2:
                    raise FrameError(f"an RPC reply with options {list(frame.options)}")
                future = self.pending.pop(frame.options[0], None)
                if future is not None and not future.done():
                    future.set_result(frame)
        except (OSError, FrameError, asyncio.CancelledError) as exc:
            self.error = exc
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(TransportError(f"RoadRunner RPC connection: {exc!r}"))
            self.pending.clear()
            self.writer.close()

    @property
    def usable(self) -> bool:
        return self.error is None and not self.writer.is_closing()

    async def call(self, name: str, body: bytes) -> Frame:
        sequence = next(self.sequence) & 0xFFFF_FFFF
        future: asyncio.Future[Frame] = self.loop.create_future()
        self.pending[sequence] = future
        method = name.encode()
        try:
            self.writer.write(goridge.encode(Flag.PROTO, method + body, (sequence, len(method))))
            await self.writer.drain()
            return await future
        finally:
            self.pending.pop(sequence, None)

    def close(self) -> None:
        self.reading.cancel()
        self.writer.close()


class RpcTransport:
    """Centrifugo's server API through RoadRunner's RPC (``rpc.listen`` in ``.rr.yaml``).

    ``address``: ``tcp://host:port`` or ``unix:///path``; default ``RR_RPC`` (which
    RoadRunner sets in its workers' environment), else ``tcp://127.0.0.1:6001``.
    :meth:`handle_async_request` is the whole interface (the API clients' transport protocol):
    a method of the API, its request, a timeout.
    The connection opens on the first call, in the running event loop (a call from another
    loop opens its own), and calls share it concurrently.

    Methods RoadRunner does not forward (see :data:`ROADRUNNER_API_METHODS`) raise
    :class:`~centrifugo_types.client.UnsupportedMethodError` without a round trip;
    "RoadRunner is not ready yet" raises :class:`RoadRunnerNotReadyError`.
    """

    def __init__(self, address: str | None = None) -> None:
        self.address = address or os.environ.get("RR_RPC") or DEFAULT_RPC_ADDRESS
        self._target = parse_address(self.address)
        self._connection: _Connection | None = None
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    async def _connect(self) -> _Connection:
        connection = self._connection
        loop = asyncio.get_running_loop()
        if connection is not None and connection.usable and connection.loop is loop:
            return connection
        lock = self._locks.get(loop)
        if lock is None:
            self._locks = {loop: (lock := asyncio.Lock())}  # forget closed loops
        async with lock:
            connection = self._connection
            if connection is not None and connection.usable and connection.loop is loop:
                return connection
            if connection is not None and connection.loop is loop:
                connection.close()
            target = self._target
            try:
                if isinstance(target, str):
                    reader, writer = await asyncio.open_unix_connection(target)
                else:
                    reader, writer = await asyncio.open_connection(*target)
            except OSError as exc:
                raise TransportError(
                    f"cannot reach RoadRunner's RPC at {self.address}: {exc}"
                ) from exc
            self._connection = _Connection(reader, writer)
            return self._connection

    async def handle_async_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, seconds: float | None
    ) -> Any:
        """Call ``method`` with ``request`` within ``seconds`` (``None``: no limit); its
        response message. Raises the API clients' errors."""
        if method.name not in ROADRUNNER_API_METHODS:
            raise UnsupportedMethodError(method.path, "RoadRunner's centrifuge plugin lacks it")
        name = f"centrifuge.{method.name}"
        body = bytes(request)
        try:
            async with asyncio.timeout(seconds):
                connection = await self._connect()
                frame = await connection.call(name, body)
        except TimeoutError as exc:
            raise ApiTimeoutError(f"{method.path}: no answer within {seconds}s") from exc
        except OSError as exc:
            raise TransportError(f"{method.path}: RoadRunner RPC failed: {exc!r}") from exc
        skip = frame.options[1]
        if frame.is_error:
            raise _rpc_error(method, frame.payload[skip:].decode(errors="replace"))
        try:
            return method.response.parse(frame.payload[skip:])
        except DecodeError as exc:
            raise TransportError(
                f"{method.path}: undecodable reply from RoadRunner: {exc}"
            ) from exc

    async def aclose(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _rpc_error(method: ApiMethod[Any, Any, Any], text: str) -> TransportError | Exception:
    if NOT_READY in text:
        return RoadRunnerNotReadyError(f"{method.path}: {text}")
    if "code = Unauthenticated" in text:
        return AuthenticationError(f"{method.path}: Centrifugo refused RoadRunner ({text})")
    if "code = Unimplemented" in text or "can't find" in text:
        return UnsupportedMethodError(method.path, text)
    if "code = DeadlineExceeded" in text:
        return ApiTimeoutError(f"{method.path}: {text}")
    return TransportError(f"{method.path}: RoadRunner RPC error: {text}")


class RoadRunnerApiClient(ApiClient):
    """The server API client over :class:`RpcTransport` (from inside a RoadRunner worker).

    ::

        async with RoadRunnerApiClient() as api:      # RR_RPC, or tcp://127.0.0.1:6001
            await api.publish(channel="news", data={"text": "hi"})

    The same methods and typed errors as :class:`~centrifugo_types.client.ApiClient` (it is
    one, on this transport); Centrifugo's ``grpc_api`` must accept RoadRunner's calls (it
    sends no API key).
    """

    __slots__ = ()

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        transport: RpcTransport | None = None,
    ) -> None:
        super().__init__(timeout=timeout, transport=transport or RpcTransport(address))
