"""TLS end to end, with a throwaway CA: a real Centrifugo calls our gRPC proxy server over TLS
(grpclib's, and grpcio's) and our HTTP proxy over HTTPS (both started with
``centrifugo-types serve --tls-*``), with mutual TLS and the credentials key; the API clients
call Centrifugo's gRPC and HTTP API over mutual TLS. Wrong certificates and credentials fail,
with the error saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from centrifugo_types import TransportError
from centrifugo_types.client import ApiClient
from examples.centrifugo import Centrifugo, run_centrifugo

from .cli_server import CliServer, cli_server
from .pki import Authority, Pair, make_authority
from .protocol_client import ProtocolClient, ReplyError

pytestmark = pytest.mark.e2e

BACKEND = "tests.misbehaving_backend:router"
CREDENTIALS = ("x-centrifugo", "s3cret")
INTERNAL = (100, "internal server error")


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("pki"), "good")


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """Another CA: its certificates are wrong for everyone trusting ``good``."""
    return make_authority(tmp_path_factory.mktemp("pki"), "rogue")


def client_context(ca: Path, pair: Pair | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if pair is not None:
        context.load_cert_chain(str(pair.cert), str(pair.key))
    return context


@contextlib.contextmanager
def our_servers(good: Authority, grpc: str = "grpc") -> Iterator[tuple[CliServer, CliServer]]:
    """Our gRPC (``--transport grpc``, or ``grpcio``) and HTTP proxy servers with TLS,
    requiring client certificates of ``good`` and the credentials."""
    tls = [
        "--tls-cert", str(good.server.cert), "--tls-key", str(good.server.key),
        "--tls-client-ca", str(good.cert),
        "--credentials-key", CREDENTIALS[0], "--credentials-value", CREDENTIALS[1],
    ]  # fmt: skip
    with (
        cli_server(BACKEND, "--transport", grpc, *tls) as grpc_server,
        cli_server(BACKEND, "--http", *tls) as http,
    ):
        yield grpc_server, http


def proxies(
    grpc: CliServer,
    http: CliServer,
    *,
    trust: Path,
    present: Pair,
    credentials: str = CREDENTIALS[1],
) -> dict[str, Any]:
    """Centrifugo's connect proxy over gRPC+TLS and rpc proxy over HTTPS, to our servers."""
    tls = {
        "enabled": True,
        "server_ca_pem": str(trust),
        "cert_pem": str(present.cert),
        "key_pem": str(present.key),
    }
    return {
        "client": {
            "proxy": {
                "connect": {
                    "enabled": True,
                    "endpoint": f"grpc://127.0.0.1:{grpc.port}",
                    "timeout": "3s",
                    "grpc": {
                        "tls": tls,
                        "credentials_key": CREDENTIALS[0],
                        "credentials_value": credentials,
                    },
                }
            }
        },
        "rpc": {
            "proxy": {
                "endpoint": f"https://127.0.0.1:{http.port}/centrifugo/rpc",
                "timeout": "3s",
                "http": {"tls": tls, "static_headers": {CREDENTIALS[0]: credentials}},
            },
            "without_namespace": {"proxy_enabled": True},
        },
    }


def served_tls(good: Authority) -> dict[str, Any]:
    """Centrifugo's own HTTP server and gRPC API over mutual TLS (``good``'s)."""
    tls = {
        "enabled": True,
        "cert_pem": str(good.server.cert),
        "key_pem": str(good.server.key),
        "client_ca_pem": str(good.cert),
    }
    return {"http_server": {"tls": tls}, "grpc_api": {"tls": tls}}


@contextlib.contextmanager
def centrifugo(tmp_path: Path, good: Authority, config: dict[str, Any]) -> Iterator[Centrifugo]:
    context = client_context(good.cert, good.client)
    with run_centrifugo(tmp_path, {**config, **served_tls(good)}, tls=context) as server:
        yield server


async def _connect_and_call(server: Centrifugo, good: Authority) -> Any:
    context = client_context(good.cert, good.client)
    async with ProtocolClient.connect(server.ws_url, {"user": "tls"}, ssl=context) as client:
        return await client.command("rpc", {"method": "echo", "data": {"over": "https"}})


@pytest.mark.parametrize("grpc_transport", ["grpc", "grpcio"])
async def test_centrifugo_calls_our_servers_over_mutual_tls(
    tmp_path: Path, good: Authority, grpc_transport: str
) -> None:
    with our_servers(good, grpc_transport) as (grpc, http):
        config = proxies(grpc, http, trust=good.cert, present=good.client)
        with centrifugo(tmp_path, good, config) as server:
            assert await _connect_and_call(server, good) == {"data": {"over": "https"}}


async def test_api_clients_over_mutual_tls(tmp_path: Path, good: Authority) -> None:
    context = client_context(good.cert, good.client)
    with centrifugo(tmp_path, good, {}) as server:
        async with (
            ApiClient(
                f"grpcs://127.0.0.1:{server.grpc_api_port}",
                api_key=server.api_key,
                ssl=h2(client_context(good.cert, good.client)),
            ) as grpc,
            ApiClient(f"{server.http_url}/api", api_key=server.api_key, ssl=context) as http,
        ):
            over_grpc, over_http = await grpc.info(), await http.info()
        assert over_grpc.nodes[0].version.startswith("6.9.1")
        assert [n.uid for n in over_http.nodes] == [n.uid for n in over_grpc.nodes]


@pytest.mark.parametrize("wrong", ["server-ca", "client-cert", "credentials"])
async def test_wrong_certificates_or_credentials_fail_clearly(
    tmp_path: Path, good: Authority, rogue: Authority, wrong: str
) -> None:
    """Centrifugo trusting another CA, presenting another CA's client certificate, or sending
    other credentials: the client gets error 100 and Centrifugo's log says why."""
    trust = rogue.cert if wrong == "server-ca" else good.cert
    present = rogue.client if wrong == "client-cert" else good.client
    credentials = "wrong" if wrong == "credentials" else CREDENTIALS[1]
    expected = {
        # Go's verification of our server's certificate.
        "server-ca": "certificate signed by unknown authority",
        # Under TLS 1.3 Go learns of the refusal only as our server closes the connection
        # (our servers log why: below).
        "client-cert": "code = Unavailable",
        # Our gRPC server's status (UNAUTHENTICATED, its message).
        "credentials": "invalid credentials",
    }[wrong]
    with our_servers(good) as (grpc, http):
        config = proxies(grpc, http, trust=trust, present=present, credentials=credentials)
        with centrifugo(tmp_path, good, config) as server:
            context = client_context(good.cert, good.client)
            with pytest.raises(ReplyError) as refused:
                async with ProtocolClient.connect(server.ws_url, {"user": "x"}, ssl=context):
                    pass
            assert (refused.value.code, refused.value.message) == INTERNAL
            for _ in range(50):
                if expected in server.log():
                    break
                await asyncio.sleep(0.1)
            assert expected in server.log()
        if wrong == "client-cert":  # our side (the connect proxy's) says what it refused, and why
            assert "TLS handshake failed: CERTIFICATE_VERIFY_FAILED" in grpc.log(), grpc.log()


@pytest.mark.parametrize("wrong", ["untrusted-server", "no-client-cert"])
async def test_api_clients_with_wrong_certificates_fail_clearly(
    tmp_path: Path, good: Authority, rogue: Authority, wrong: str
) -> None:
    """What a client sees of a certificate Centrifugo refuses or it cannot verify."""
    expected: dict[str, tuple[str, ...]]
    if wrong == "untrusted-server":
        context = functools.partial(client_context, rogue.cert, good.client)
        expected = {"grpc": ("CERTIFICATE_VERIFY_FAILED",), "http": ("CERTIFICATE_VERIFY_FAILED",)}
    else:
        context = functools.partial(client_context, good.cert)
        # Under TLS 1.3 Centrifugo refuses the client after the handshake, with an alert that
        # the client reads only if it has not written yet: the error names the alert or just
        # the connection's end (grpclib never reads it).
        ended = ("certificate required", "broken pipe", "connection lost", "connection reset")
        expected = {"grpc": ("connection lost",), "http": ended}
    with centrifugo(tmp_path, good, {}) as server:
        grpc = ApiClient(
            f"grpcs://127.0.0.1:{server.grpc_api_port}",
            api_key=server.api_key,
            ssl=h2(context()),
            timeout=5,
        )
        http = ApiClient(f"{server.http_url}/api", api_key=server.api_key, ssl=context(), timeout=5)
        async with grpc, http:
            for name, client in (("grpc", grpc), ("http", http)):
                with pytest.raises(TransportError) as failed:
                    await client.info()
                message = _chain(failed.value)
                assert message.startswith("TransportError: info: "), message
                assert any(e.lower() in message.lower() for e in expected[name]), message


def _chain(exc: BaseException | None) -> str:
    """The messages of an exception and of its causes."""
    parts = []
    while exc is not None:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


def h2(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context`` offering HTTP/2 by ALPN, as a gRPC client's context must."""
    context.set_alpn_protocols(["h2"])
    return context
