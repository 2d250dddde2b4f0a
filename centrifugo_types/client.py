"""Typed clients of Centrifugo's server API, over gRPC and over HTTP.

Both clients have one method surface, generated from the ``CentrifugoApi`` service of
api.proto: ``await client.call(request)`` sends any request message of
:mod:`centrifugo_types.api` and returns its result message (``PublishRequest`` ->
``PublishResult``), and convenience methods cover the common calls
(``await client.publish("news", {"text": "hi"})``). Only the transport differs:

- :class:`ApiClient`: gRPC (grpclib), ``authorization: apikey KEY`` metadata, optional TLS;
- :class:`HttpApiClient`: HTTP (httpx, the ``http`` extra), ``POST <url>/<method>`` with
  ``X-API-Key``, in Centrifugo's JSON dialect (:mod:`centrifugo_types.json`).

Errors are typed the same way on both: a reply carrying ``error`` raises :class:`ApiError`
(a subclass per documented code, e.g. :class:`UnknownChannelError`); a refused API key raises
:class:`AuthenticationError`; a method the server does not implement (Centrifugo PRO methods on
the open-source server) raises :class:`UnsupportedMethodError`; no answer at all raises
:class:`TransportError` (:class:`ApiTimeoutError` on timeouts). All derive from
:class:`ClientError`.
"""

from __future__ import annotations

import json as stdlib_json
import ssl as _ssl
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import betterproto2
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from . import api
from . import json as dialect
from ._generated.api_methods import BY_REQUEST, ApiMethod, ApiMethods
from .errors import (
    API_ERRORS,
    ApiError,
    ApiTimeoutError,
    AuthenticationError,
    ClientError,
    TransportError,
    UnsupportedMethodError,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["ApiClient", "BaseApiClient", "HttpApiClient"]

DEFAULT_TIMEOUT = 10.0
"""Seconds a call may take unless the client or the call says otherwise."""


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


def _api_error(error: api.Error, method: str) -> ApiError:
    """The exception for an ``Error`` of a reply."""
    return ApiError.for_code(error.code, error.message, method)


# -- the shared surface ------------------------------------------------------------------------


def _payload(value: Any) -> bytes:
    """Application data as JSON bytes: bytes-like values are taken as JSON already, anything
    else is serialised (compact, UTF-8)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return stdlib_json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


def _optional_payload(value: Any) -> bytes:
    return b"" if value is None else _payload(value)


class BaseApiClient(ApiMethods):
    """The method surface both clients share: :meth:`call` for every request type of the
    server API, and convenience methods for the common calls. Use it in type hints to accept
    either client."""

    async def _send(
        self, method: ApiMethod[Any, Any, Any], request: Any, seconds: float | None
    ) -> Any:
        """Send ``request`` over the transport and return the response message."""
        raise NotImplementedError

    async def _call(
        self, method: ApiMethod[Any, Any, Any], request: Any, seconds: float | None
    ) -> Any:
        response = await self._send(method, request, seconds)
        if method.result is None:  # Batch: one reply per command, errors inside
            return response
        if response.error is not None:
            raise _api_error(response.error, method.path)
        result = response.result
        return method.result() if result is None else result

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections of this client."""

    # -- convenience methods ---------------------------------------------------------------

    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        skip_history: bool = False,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str = "",
        delta: bool = False,
        version: int = 0,
        version_epoch: str = "",
    ) -> api.PublishResult:
        """Publish ``data`` into ``channel``. ``data`` is any JSON-serialisable value, or
        bytes that hold JSON already (over gRPC, any bytes for binary clients)."""
        return await self.call(
            api.PublishRequest(
                channel=channel,
                data=_payload(data),
                skip_history=skip_history,
                tags=dict(tags or {}),
                idempotency_key=idempotency_key,
                delta=delta,
                version=version,
                version_epoch=version_epoch,
            )
        )

    async def broadcast(
        self,
        channels: Sequence[str],
        data: Any,
        *,
        skip_history: bool = False,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str = "",
        delta: bool = False,
    ) -> api.BroadcastResult:
        """Publish ``data`` into each of ``channels``. The result holds one response per
        channel, each with its own ``error`` or ``result`` (not raised)."""
        return await self.call(
            api.BroadcastRequest(
                channels=list(channels),
                data=_payload(data),
                skip_history=skip_history,
                tags=dict(tags or {}),
                idempotency_key=idempotency_key,
                delta=delta,
            )
        )

    async def subscribe(
        self,
        user: str,
        channel: str,
        *,
        client: str = "",
        session: str = "",
        info: Any = None,
        data: Any = None,
        expire_at: int = 0,
        recover_since: api.StreamPosition | None = None,
        override: api.SubscribeOptionOverride | None = None,
    ) -> api.SubscribeResult:
        """Subscribe the connections of ``user`` (or only ``client``/``session``) to
        ``channel`` (server-side subscription)."""
        return await self.call(
            api.SubscribeRequest(
                channel=channel,
                user=user,
                client=client,
                session=session,
                info=_optional_payload(info),
                data=_optional_payload(data),
                expire_at=expire_at,
                recover_since=recover_since,
                override=override,
            )
        )

    async def unsubscribe(
        self, user: str, channel: str, *, client: str = "", session: str = ""
    ) -> api.UnsubscribeResult:
        """Unsubscribe the connections of ``user`` (or only ``client``/``session``) from
        ``channel``."""
        return await self.call(
            api.UnsubscribeRequest(channel=channel, user=user, client=client, session=session)
        )

    async def disconnect(
        self,
        user: str,
        *,
        client: str = "",
        session: str = "",
        whitelist: Sequence[str] = (),
        code: int = 0,
        reason: str = "",
    ) -> api.DisconnectResult:
        """Disconnect the connections of ``user`` (or only ``client``/``session``), except
        the client IDs in ``whitelist``; ``code``/``reason`` default to Centrifugo's."""
        disconnect = api.Disconnect(code=code, reason=reason) if code or reason else None
        return await self.call(
            api.DisconnectRequest(
                user=user,
                client=client,
                session=session,
                whitelist=list(whitelist),
                disconnect=disconnect,
            )
        )

    async def refresh(
        self,
        user: str,
        *,
        client: str = "",
        session: str = "",
        expired: bool = False,
        expire_at: int = 0,
        info: Any = None,
    ) -> api.RefreshResult:
        """Refresh (or expire) the connections of ``user``."""
        return await self.call(
            api.RefreshRequest(
                user=user,
                client=client,
                session=session,
                expired=expired,
                expire_at=expire_at,
                info=_optional_payload(info),
            )
        )

    async def presence(self, channel: str) -> api.PresenceResult:
        """The clients subscribed to ``channel``: ``result.presence`` maps client ID to
        ``ClientInfo``."""
        return await self.call(api.PresenceRequest(channel=channel))

    async def presence_stats(self, channel: str) -> api.PresenceStatsResult:
        """How many clients and distinct users are subscribed to ``channel``."""
        return await self.call(api.PresenceStatsRequest(channel=channel))

    async def history(
        self,
        channel: str,
        *,
        limit: int = 0,
        since: api.StreamPosition | None = None,
        reverse: bool = False,
    ) -> api.HistoryResult:
        """The publications kept in ``channel``'s history (``limit=0``: only the current
        stream position; ``limit=-1``: all of them)."""
        return await self.call(
            api.HistoryRequest(channel=channel, limit=limit, since=since, reverse=reverse)
        )

    async def history_remove(self, channel: str) -> api.HistoryRemoveResult:
        """Remove the history of ``channel``."""
        return await self.call(api.HistoryRemoveRequest(channel=channel))

    async def channels(self, pattern: str = "") -> api.ChannelsResult:
        """The active channels (with at least one subscriber), filtered by ``pattern``."""
        return await self.call(api.ChannelsRequest(pattern=pattern))

    async def info(self) -> api.InfoResult:
        """The nodes of the Centrifugo cluster."""
        return await self.call(api.InfoRequest())

    async def rpc(self, method: str, params: Any = None) -> api.RpcResult:
        """Call a server-side RPC extension ``method``."""
        return await self.call(api.RpcRequest(method=method, params=_optional_payload(params)))

    async def batch(
        self, requests: Iterable[betterproto2.Message], *, parallel: bool = False
    ) -> list[betterproto2.Message | ApiError]:
        """Send several requests in one call. Returns, in order, each request's result or
        its :class:`ApiError` (returned, not raised: the other commands still ran)."""
        methods: list[ApiMethod[Any, Any, Any]] = []
        commands = []
        for request in requests:
            method = BY_REQUEST.get(type(request))
            if method is None or not method.command:
                raise TypeError(f"{type(request).__qualname__} cannot be sent in a batch")
            methods.append(method)
            command = api.Command()
            setattr(command, method.command, request)
            commands.append(command)
        response = await self.call(api.BatchRequest(commands=commands, parallel=parallel))
        if len(response.replies) != len(commands):
            raise TransportError(
                f"batch: {len(response.replies)} replies to {len(commands)} commands"
            )
        out: list[betterproto2.Message | ApiError] = []
        for method, reply in zip(methods, response.replies, strict=True):
            if reply.error is not None:
                out.append(_api_error(reply.error, method.path))
            else:
                result = getattr(reply, method.command)
                if result is None and method.result is not None:
                    result = method.result()
                out.append(result)
        return out

    async def map_publish(
        self,
        channel: str,
        key: str,
        data: Any,
        *,
        stream_data: Any = None,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str = "",
        delta: bool = False,
        version: int = 0,
        version_epoch: str = "",
        score: int = 0,
        key_mode: str = "",
    ) -> api.MapPublishResult:
        """Set ``key`` of map channel ``channel`` to ``data``."""
        return await self.call(
            api.MapPublishRequest(
                channel=channel,
                key=key,
                data=_payload(data),
                stream_data=_optional_payload(stream_data),
                tags=dict(tags or {}),
                idempotency_key=idempotency_key,
                delta=delta,
                version=version,
                version_epoch=version_epoch,
                score=score,
                key_mode=key_mode,
            )
        )

    async def map_remove(
        self, channel: str, key: str, *, idempotency_key: str = ""
    ) -> api.MapRemoveResult:
        """Remove ``key`` from map channel ``channel``."""
        return await self.call(
            api.MapRemoveRequest(channel=channel, key=key, idempotency_key=idempotency_key)
        )

    async def map_read_state(
        self,
        channel: str,
        *,
        cursor: str = "",
        limit: int = 0,
        key: str = "",
        asc: bool = False,
        revision_offset: int = 0,
        revision_epoch: str = "",
    ) -> api.MapReadStateResult:
        """Read the current entries of map channel ``channel`` (a page from ``cursor``)."""
        return await self.call(
            api.MapReadStateRequest(
                channel=channel,
                cursor=cursor,
                limit=limit,
                key=key,
                asc=asc,
                revision_offset=revision_offset,
                revision_epoch=revision_epoch,
            )
        )

    async def map_read_stream(
        self,
        channel: str,
        *,
        since_offset: int = 0,
        since_epoch: str = "",
        limit: int = 0,
        reverse: bool = False,
    ) -> api.MapReadStreamResult:
        """Read the change stream of map channel ``channel``."""
        return await self.call(
            api.MapReadStreamRequest(
                channel=channel,
                since_offset=since_offset,
                since_epoch=since_epoch,
                limit=limit,
                reverse=reverse,
            )
        )

    async def map_stats(self, channel: str) -> api.MapStatsResult:
        """How many keys map channel ``channel`` holds."""
        return await self.call(api.MapStatsRequest(channel=channel))

    async def map_clear(self, channel: str) -> api.MapClearResult:
        """Remove every key of map channel ``channel``."""
        return await self.call(api.MapClearRequest(channel=channel))

    async def shared_poll_publish(
        self, channel: str, key: str, data: Any, *, version: int = 0, epoch: str = ""
    ) -> api.SharedPollPublishResult:
        """Push new ``data`` for ``key`` of shared poll channel ``channel``."""
        return await self.call(
            api.SharedPollPublishRequest(
                channel=channel, key=key, data=_payload(data), version=version, epoch=epoch
            )
        )


# -- gRPC ----------------------------------------------------------------------------------------


class ApiClient(BaseApiClient):
    """Centrifugo's server API over gRPC (``grpc_api`` in Centrifugo's config).

    ``ssl``: ``True`` for TLS with the default CA store, or an ``ssl.SSLContext`` (its ALPN
    protocols are set to ``h2``, which gRPC servers require).
    ``timeout``: default seconds per call (``None``: no limit). The connection is opened on the
    first call, inside the running event loop; close it with ``aclose()`` or ``async with``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 10000,
        *,
        api_key: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        ssl: bool | _ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        if isinstance(ssl, _ssl.SSLContext):
            ssl.set_alpn_protocols(["h2"])
        self._ssl = ssl
        self._metadata = {"authorization": f"apikey {api_key}"} if api_key is not None else {}
        self._channel: Channel | None = None
        self._stub: api.CentrifugoApiStub | None = None

    def _get_stub(self) -> api.CentrifugoApiStub:
        if self._stub is None:
            self._channel = Channel(self.host, self.port, ssl=self._ssl or None)
            self._stub = api.CentrifugoApiStub(self._channel)
        return self._stub

    async def _send(
        self, method: ApiMethod[Any, Any, Any], request: Any, seconds: float | None
    ) -> Any:
        stub = self._get_stub()
        limit = self.timeout if seconds is None else seconds
        try:
            return await method.stub(stub, request, timeout=limit, metadata=self._metadata)
        except GRPCError as exc:
            raise _grpc_error(method, exc) from exc
        except TimeoutError as exc:  # asyncio's timeout is the builtin one since 3.11
            raise ApiTimeoutError(f"{method.path}: no answer within {limit}s") from exc
        except (OSError, StreamTerminatedError, ProtocolError) as exc:
            where = f"{self.host}:{self.port}"
            raise TransportError(f"{method.path}: gRPC call to {where} failed: {exc!r}") from exc

    async def aclose(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._stub = None


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


# -- HTTP ------------------------------------------------------------------------------------------


class HttpApiClient(BaseApiClient):
    """Centrifugo's server API over HTTP: ``POST <url>/<method>`` with ``X-API-Key``, bodies in
    Centrifugo's JSON dialect. Needs httpx (``pip install centrifugo-types[http]``).

    ``url`` is the API's base URL (Centrifugo's ``http_api.handler_prefix``, ``/api`` by
    default). ``timeout``: default seconds per call (``None``: no limit). ``client``: an
    ``httpx.AsyncClient`` to use (for TLS settings, proxies, ...; it is not closed by
    ``aclose()``); by default the client makes its own.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000/api",
        *,
        api_key: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError:  # pragma: no cover - exercised without the extra
            raise ImportError(
                "HttpApiClient needs httpx: pip install 'centrifugo-types[http]'"
            ) from None
        self._httpx = httpx
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json"}
        if api_key is not None:
            self._headers["X-API-Key"] = api_key
        self._own_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()

    async def _send(
        self, method: ApiMethod[Any, Any, Any], request: Any, seconds: float | None
    ) -> Any:
        httpx = self._httpx
        body = dialect.dumps(request)
        limit = self.timeout if seconds is None else seconds
        url = f"{self.url}/{method.path}"
        try:
            reply = await self._client.post(url, content=body, headers=self._headers, timeout=limit)
        except httpx.TimeoutException as exc:
            raise ApiTimeoutError(f"{method.path}: no answer within {limit}s") from exc
        except (httpx.HTTPError, _ssl.SSLError) as exc:
            # httpx lets a TLS alert read after the handshake (TLS 1.3: the server refusing
            # our client certificate) escape as it is.
            raise TransportError(f"{method.path}: HTTP request to {url} failed: {exc!r}") from exc
        status = reply.status_code
        if status == 200:
            try:
                return dialect.loads(method.response, reply.content)
            except dialect.JSONDecodeError as exc:
                raise TransportError(f"{method.path}: undecodable reply: {exc}") from exc
        if status == 401:
            raise AuthenticationError(f"{method.path}: API key refused (HTTP 401)")
        if status == 404 and not reply.content.startswith(b"{"):
            raise UnsupportedMethodError(
                method.path, f"HTTP 404 for POST {url}; a Centrifugo PRO method, or a wrong url"
            )
        # Centrifugo's transport error mode (http_api.error_mode: transport) answers errors
        # with an HTTP status and the error as the body.
        try:
            error = dialect.loads(api.Error, reply.content)
        except dialect.JSONDecodeError:
            error = None
        if error is not None and error.code:
            raise _api_error(error, method.path)
        text = reply.text.strip()[:200]
        raise TransportError(f"{method.path}: HTTP {status} from {url}: {text!r}")

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()
