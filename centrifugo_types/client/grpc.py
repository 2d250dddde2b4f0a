"""The gRPC transport of the API clients, on grpclib (Centrifugo's ``grpc_api``).

``authorization: apikey KEY`` metadata; one HTTP/2 connection per event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as _ssl
import weakref
from typing import Any

from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from .._generated.api_methods import ApiMethod
from ..errors import (
    API_ERRORS,
    ApiError,
    ApiTimeoutError,
    AuthenticationError,
    ClientError,
    TransportError,
    UnsupportedMethodError,
)

__all__ = ["GrpcTransport"]

_TRANSPORT_MODE_STATUSES = frozenset(
    {
        Status.INTERNAL,
        Status.NOT_FOUND,
        Status.INVALID_ARGUMENT,
        Status.OUT_OF_RANGE,
        Status.ALREADY_EXISTS,
    }
)
# In the transport error mode (config ``grpc_api.error_mode: transport``) Centrifugo's gRPC API
# answers errors with a gRPC status (MapErrorToGRPCCode in errors.go) and the error's message.
_ERRORS_BY_MESSAGE = {cls.MESSAGE: cls.CODE for cls in API_ERRORS.values()}


class GrpcTransport:
    """Centrifugo's gRPC server API over grpclib.

    ``ssl``: ``True`` for TLS with the default CA store (offering ALPN ``h2``), or an
    ``ssl.SSLContext``, which is used as it is: it must offer ALPN ``h2``
    (``ctx.set_alpn_protocols(["h2"])``), as Go's gRPC server requires.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 10000,
        *,
        api_key: str | None = None,
        ssl: bool | _ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._ssl = ssl or None
        self._metadata = {"authorization": f"apikey {api_key}"} if api_key is not None else {}
        self._channels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Channel] = (
            weakref.WeakKeyDictionary()
        )

    def _channel(self) -> Channel:
        loop = asyncio.get_running_loop()
        channel = self._channels.get(loop)
        if channel is None:
            channel = self._channels[loop] = Channel(self.host, self.port, ssl=self._ssl)
        return channel

    async def handle_async_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        try:
            async with self._channel().request(
                method.grpc_path,
                Cardinality.UNARY_UNARY,
                method.request,
                method.response,
                timeout=timeout,
                metadata=self._metadata,
            ) as stream:
                await stream.send_message(request, end=True)
                response = await stream.recv_message()
        except GRPCError as exc:
            raise _grpc_error(method, exc) from exc
        except TimeoutError as exc:  # asyncio's timeout is the builtin one since 3.11
            raise ApiTimeoutError(f"{method.path}: no answer within {timeout}s") from exc
        except (OSError, StreamTerminatedError, ProtocolError) as exc:
            where = f"{self.host}:{self.port}"
            hint = ""
            if isinstance(self._ssl, _ssl.SSLContext):
                hint = " (an SSLContext of your own must offer ALPN h2)"
            raise TransportError(
                f"{method.path}: gRPC call to {where} failed: {exc!r}{hint}"
            ) from exc
        if response is None:
            raise TransportError(f"{method.path}: the stream ended without a response")
        return response

    async def aclose(self) -> None:
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            with contextlib.suppress(RuntimeError):  # of a loop that is closed already
                channel.close()


def _grpc_error(method: ApiMethod[Any, Any, Any], exc: GRPCError) -> ClientError:
    status, message = exc.status, exc.message or ""
    if status is Status.UNAUTHENTICATED:
        return AuthenticationError(f"{method.path}: API key refused ({message})")
    if status is Status.UNIMPLEMENTED:
        return UnsupportedMethodError(method.path, f"gRPC UNIMPLEMENTED: {message}")
    if status is Status.DEADLINE_EXCEEDED:
        return ApiTimeoutError(f"{method.path}: deadline exceeded ({message})")
    code = _ERRORS_BY_MESSAGE.get(message)
    if code is not None and status in _TRANSPORT_MODE_STATUSES:
        return ApiError.for_code(code, message, method.path)
    return TransportError(f"{method.path}: gRPC status {status.name}: {message}")
