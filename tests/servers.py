"""Every proxy server transport, as the parametrized server suite (tests/test_server.py) sees
it: the server class, a client that makes one call the way Centrifugo does, and what is
malformed in the transport's encoding. ``grpcio`` is the gRPC proxy on grpcio's C core, with
the same client as ``grpc``.

Adding a transport (RoadRunner, ...) is adding a :class:`Transport` to :data:`TRANSPORTS`;
the suite's tests then run over it too.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import betterproto2
import httpx
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.exceptions import StreamTerminatedError

from centrifugo_types import grpc, grpcio, http, json
from centrifugo_types._generated import proxy_events as events
from centrifugo_types._server import Server


class Refused(Exception):
    """The call got no reply: the transport refused it (credentials, shutting down) or could
    not reach the server."""


class Garbage:
    """A gRPC "message" whose encoding is whatever bytes we want to send."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data

    @classmethod
    def FromString(cls, data: bytes) -> Garbage:
        return cls(data)


Send = Callable[[str, "betterproto2.Message | bytes", Mapping[str, str]], Awaitable[Any]]


@dataclass(frozen=True)
class Client:
    """Makes calls the way Centrifugo does, over one transport."""

    send: Send

    async def call(
        self,
        event: str,
        request: betterproto2.Message | bytes,
        metadata: Mapping[str, str] | None = None,
    ) -> Any:
        """The reply to one call of ``event`` (``request``: a message, or a body of raw
        bytes in the transport's encoding); raises :class:`Refused` when there is none."""
        return await self.send(event, request, metadata or {})


@contextlib.asynccontextmanager
async def grpc_client(server: Server, tls: ssl.SSLContext | None) -> AsyncIterator[Client]:
    if tls is not None:
        tls.set_alpn_protocols(["h2"])
    channel = Channel("127.0.0.1", server.port, ssl=tls)

    async def send(name: str, request: Any, metadata: Mapping[str, str]) -> Any:
        event = events.EVENTS[name]
        body = Garbage(request if isinstance(request, bytes) else bytes(request))
        call = Cardinality.UNARY_UNARY
        try:
            async with channel.request(
                event.path, call, Garbage, event.output_type, timeout=5, metadata=dict(metadata)
            ) as stream:
                await stream.send_message(body, end=True)
                return await stream.recv_message()
        except (GRPCError, StreamTerminatedError, OSError) as exc:
            raise Refused(str(exc)) from exc

    try:
        yield Client(send)
    finally:
        channel.close()


@contextlib.asynccontextmanager
async def http_client(server: Server, tls: ssl.SSLContext | None) -> AsyncIterator[Client]:
    assert isinstance(server, http.ProxyServer)
    paths = server.app.paths
    base = server.url.replace("https://", "http://") if tls is None else server.url
    async with httpx.AsyncClient(base_url=base, verify=tls or True, timeout=5) as client:

        async def send(name: str, request: Any, metadata: Mapping[str, str]) -> Any:
            body = request if isinstance(request, bytes) else json.dumps(request)
            headers = {"content-type": "application/json", **metadata}
            try:
                reply = await client.post(paths[name], content=body, headers=headers)
            except httpx.TransportError as exc:
                raise Refused(str(exc)) from exc
            if reply.status_code != 200:
                raise Refused(f"HTTP {reply.status_code}: {reply.text}")
            return json.loads(events.EVENTS[name].response_type, reply.content)

        yield Client(send)


@dataclass(frozen=True)
class Transport:
    name: str
    server: Callable[..., Server]
    client: Callable[
        [Server, ssl.SSLContext | None], contextlib.AbstractAsyncContextManager[Client]
    ]
    """A client of a started server (over TLS with that client context)."""
    malformed: tuple[bytes, ...]
    """Bodies that are no request in the transport's encoding."""
    logs_tls_failures: bool = True
    """Whether a refused TLS handshake is logged by our server's logger (grpcio's core does
    the TLS, and logs those itself, on stderr)."""

    def __str__(self) -> str:
        return self.name


TRANSPORTS = (
    Transport(
        "grpc",
        grpc.ProxyServer,
        grpc_client,
        malformed=(b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x01\xc3"),
    ),
    Transport(
        "grpcio",
        grpcio.ProxyServer,
        grpc_client,
        malformed=(b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x01\xc3"),
        logs_tls_failures=False,
    ),
    Transport(
        "http",
        http.ProxyServer,
        http_client,
        malformed=(
            b"",
            b"{",
            b"[]",
            b'{"a": 01}',
            b'{"a": 1,}',
            b'{"data": nope}',
            b"\xff\xfe",
            b'"text"',
            b"{}{}",
        ),
    ),
)
