"""A gRPC transport on grpcio's asyncio API (``grpc.aio``): C-core HTTP/2, faster than grpclib
with many calls in flight (BENCHMARKS.md, "Server API clients"). Needs ``grpcio``
(``pip install centrifugo-types[grpcio]``); messages are still encoded by our codecs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as _ssl
import weakref
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

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

__all__ = ["GrpcioTransport"]

_TRANSPORT_MODE_STATUSES = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)
_ERRORS_BY_MESSAGE = {cls.MESSAGE: cls.CODE for cls in API_ERRORS.values()}


class GrpcioTransport:
    """Centrifugo's gRPC server API over a ``grpc.aio`` channel (one per event loop).

    ``ssl``: ``True`` for TLS with grpcio's default roots, or ``grpc.ChannelCredentials``
    (``grpc.ssl_channel_credentials(root_certificates=...)``); an ``ssl.SSLContext`` cannot be
    used by grpcio and is refused.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 10000,
        *,
        api_key: str | None = None,
        ssl: bool | grpc.ChannelCredentials | None = None,
    ) -> None:
        if isinstance(ssl, _ssl.SSLContext):
            raise TypeError("GrpcioTransport takes grpc.ChannelCredentials, not an SSLContext")
        self.target = f"{host}:{port}"
        self._credentials = grpc.ssl_channel_credentials() if ssl is True else (ssl or None)
        self._metadata = (("authorization", f"apikey {api_key}"),) if api_key is not None else ()
        self._channels: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[grpc.aio.Channel, dict[str, Callable[..., Any]]]
        ] = weakref.WeakKeyDictionary()

    def _callable(self, method: ApiMethod[Any, Any, Any]) -> Callable[..., Any]:
        loop = asyncio.get_running_loop()
        entry = self._channels.get(loop)
        if entry is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(self.target)
            else:
                channel = grpc.aio.secure_channel(self.target, self._credentials)
            entry = self._channels[loop] = (channel, {})
        channel, callables = entry
        call = callables.get(method.grpc_path)
        if call is None:
            call = callables[method.grpc_path] = channel.unary_unary(
                method.grpc_path,
                request_serializer=None,  # bytes already: encoded (and its errors raised) below
                response_deserializer=method.response.parse,
            )
        return call

    async def handle_async_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        call = self._callable(method)
        data = bytes(request)
        try:
            return await call(data, timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise _grpc_error(method, exc, timeout) from exc

    async def aclose(self) -> None:
        entries = list(self._channels.items())
        self._channels.clear()
        current = asyncio.get_running_loop()
        for loop, (channel, _) in entries:
            if loop is current:
                await channel.close()
            elif not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    asyncio.run_coroutine_threadsafe(channel.close(), loop)


def _grpc_error(
    method: ApiMethod[Any, Any, Any], exc: grpc.aio.AioRpcError, timeout: float | None
) -> ClientError:
    status, message = exc.code(), exc.details() or ""
    if status is grpc.StatusCode.UNAUTHENTICATED:
        return AuthenticationError(f"{method.path}: API key refused ({message})")
    if status is grpc.StatusCode.UNIMPLEMENTED:
        return UnsupportedMethodError(method.path, f"gRPC UNIMPLEMENTED: {message}")
    if status is grpc.StatusCode.DEADLINE_EXCEEDED:
        return ApiTimeoutError(f"{method.path}: no answer within {timeout}s")
    code = _ERRORS_BY_MESSAGE.get(message)
    if code is not None and status in _TRANSPORT_MODE_STATUSES:
        return ApiError.for_code(code, message, method.path)
    return TransportError(f"{method.path}: gRPC status {status.name}: {message}")
