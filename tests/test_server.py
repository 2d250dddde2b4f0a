"""What every proxy server does, whatever its transport: one suite, parametrized by
transport (tests/servers.py has them: gRPC, HTTP).

Credentials, TLS, ``reuse_port``, the router's lifespan, failing and missing handlers,
malformed requests, the graceful shutdown, and the command line: serving until SIGTERM, and
bad configuration failing fast with one line. What only one transport has is in
tests/test_grpc_server.py and tests/test_http_server.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from centrifugo_types import (
    ConnectCall,
    Router,
    RpcCall,
    StartupError,
    proxy,
    server_ssl_context,
)
from centrifugo_types.__main__ import event_loop_runner, load_router, main
from centrifugo_types._call import internal_error_reply
from centrifugo_types._generated import proxy_events as events

from .centrifugo import ROOT
from .cli_routers import cli_router, failing_router
from .servers import TRANSPORTS, Refused, Transport

INTERNAL = proxy.Error(code=100, message="internal server error", temporary=True)


@pytest.fixture(params=TRANSPORTS, ids=str)
def transport(request: pytest.FixtureRequest) -> Transport:
    return request.param  # type: ignore[no-any-return]


def named_router(name: str, seen: list[Any] | None = None) -> Router:
    """Connect answers with user ``name``, noting the metadata in ``seen``."""
    router = Router(timeout=0.2)

    @router.connect
    async def connect(request: ConnectCall) -> None:
        if seen is not None:
            seen.append(dict(request.metadata))
        request.respond(proxy.ConnectResult(user=name))

    @router.rpc("raise")
    async def fail(request: RpcCall) -> None:
        raise RuntimeError("broken")

    @router.rpc("hang")
    async def hang(request: RpcCall) -> None:
        await asyncio.sleep(10)

    @router.rpc("silent")
    async def silent(request: RpcCall) -> None:
        pass

    return router


async def user(transport: Transport, port: int) -> str:
    """Who answers a connect on a new connection (the kernel picks its listener)."""
    server = transport.server(Router(), port=port)  # only to tell the client where to go
    async with transport.client(server, None) as client:
        reply = await client.call("connect", proxy.ConnectRequest())
    assert reply.result is not None
    return str(reply.result.user)


# -- calls ------------------------------------------------------------------------------------


async def test_failing_and_missing_handlers_get_one_error_reply(transport: Transport) -> None:
    async with (
        transport.server(named_router("u"), port=0) as server,
        transport.client(server, None) as client,
    ):
        for method in ("raise", "hang", "silent"):
            reply = await client.call("rpc", proxy.RpcRequest(method=method))
            assert reply == proxy.RpcResponse(error=INTERNAL), method
        reply = await client.call("rpc", proxy.RpcRequest(method="nothing"))
        assert reply.error == proxy.Error(code=104, message="method not found")
        reply = await client.call("subscribe", proxy.SubscribeRequest(channel="c"))
        assert reply.error == proxy.Error(code=108, message="not available")


@pytest.mark.parametrize("event", ["connect", "rpc", "notify_cache_empty"])
async def test_malformed_requests_get_the_failure_reply_and_the_server_keeps_serving(
    transport: Transport, event: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        transport.server(named_router("u"), port=0) as server,
        transport.client(server, None) as client,
    ):
        for body in transport.malformed:
            reply = await client.call(event, body)
            assert reply == internal_error_reply(events.EVENTS[event]), body
        reply = await client.call("connect", proxy.ConnectRequest())
        assert reply.result == proxy.ConnectResult(user="u")
    assert caplog.text.count("undecodable request") == len(transport.malformed)


async def test_credentials_are_required_and_not_passed_to_handlers(
    transport: Transport,
) -> None:
    seen: list[Any] = []
    router = named_router("u", seen)
    async with (
        transport.server(router, port=0, credentials=("X-Key", "s3cret")) as server,
        transport.client(server, None) as client,
    ):
        for metadata in ({}, {"x-key": "wrong"}, {"x-other": "s3cret"}):
            with pytest.raises(Refused):
                await client.call("connect", proxy.ConnectRequest(), metadata)
        good = {"x-key": "s3cret", "x-other": "1"}
        reply = await client.call("connect", proxy.ConnectRequest(), good)
        assert reply.result == proxy.ConnectResult(user="u")
    assert len(seen) == 1
    assert seen[0]["x-other"] == "1"
    assert "x-key" not in seen[0]


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
async def test_tls(
    transport: Transport,
    certificate: tuple[Path, Path],
    mutual: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert, key = certificate
    tls = server_ssl_context(str(cert), str(key), client_ca=str(cert) if mutual else None)

    def client_tls(*, with_certificate: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(cert))
        if with_certificate:  # the self-signed certificate is its own CA
            context.load_cert_chain(str(cert), str(key))
        return context

    async with transport.server(named_router("u"), port=0, ssl=tls) as server:
        async with transport.client(server, client_tls(with_certificate=mutual)) as client:
            reply = await client.call("connect", proxy.ConnectRequest())
            assert reply.result == proxy.ConnectResult(user="u")
        refused = [None, client_tls(with_certificate=False)] if mutual else [None]
        for context in refused:  # plain, or without a client certificate
            async with transport.client(server, context) as other:
                with pytest.raises((Refused, TimeoutError)):
                    await asyncio.wait_for(other.call("connect", proxy.ConnectRequest()), 2)
    if not transport.logs_tls_failures:
        return
    # The server says why it refused a handshake (asyncio alone is silent about it).
    failures = [r.getMessage() for r in caplog.records if r.name == "centrifugo_types.server"]
    assert any(f.startswith("TLS handshake failed: ") for f in failures), failures  # plain
    if mutual:
        assert "TLS handshake failed: PEER_DID_NOT_RETURN_A_CERTIFICATE" in failures, failures


async def test_replies_are_not_held_back_by_nagles_algorithm(transport: Transport) -> None:
    # A reply is several small writes. Without TCP_NODELAY on the accepted connection the
    # second one waits for the client's delayed ACK: >= 40 ms a call on Linux, where a call on
    # 127.0.0.1 otherwise takes well under a millisecond.
    async with (
        transport.server(named_router("u"), port=0) as server,
        transport.client(server, None) as client,
    ):
        await client.call("connect", proxy.ConnectRequest())
        loop = asyncio.get_running_loop()
        durations = []
        for _ in range(21):
            started = loop.time()
            await client.call("connect", proxy.ConnectRequest())
            durations.append(loop.time() - started)
    # The median below 35 ms: a stall makes it >= 40 ms, a loaded machine > 20 ms.
    assert sorted(durations)[10] < 0.035, durations


async def test_reuse_port_lets_servers_share_a_port(transport: Transport) -> None:
    async with transport.server(named_router("a"), port=0, reuse_port=True) as first:
        port = first.port
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            await transport.server(named_router("x"), port=port).start()
        async with transport.server(named_router("b"), port=port, reuse_port=True) as second:
            assert second.port == port
            # The kernel spreads new connections over both listeners (by a hash of the
            # client's address and port): 32 connections all to one has odds 2**-31.
            answers = {await user(transport, port) for _ in range(32)}
            assert answers == {"a", "b"}
        assert await user(transport, port) == "a"  # the other one serves on alone


# -- the lifecycle ------------------------------------------------------------------------------


async def test_close_lets_calls_in_flight_finish_and_refuses_new_ones(
    transport: Transport,
) -> None:
    router = Router(timeout=5)
    release = asyncio.Event()
    entered = asyncio.Event()

    @router.connect
    async def slow(request: ConnectCall) -> None:
        entered.set()
        await release.wait()
        request.respond(proxy.ConnectResult(user="finished"))

    server = transport.server(router, port=0, shutdown_timeout=5)
    await server.start()
    try:
        async with transport.client(server, None) as client:
            in_flight = asyncio.ensure_future(client.call("connect", proxy.ConnectRequest()))
            await asyncio.wait_for(entered.wait(), 5)
            closing = asyncio.ensure_future(server.close())
            await asyncio.sleep(0.3)
            assert not closing.done()
            with pytest.raises(Refused):
                await client.call("connect", proxy.ConnectRequest())
            release.set()
            assert (await in_flight).result == proxy.ConnectResult(user="finished")
            await asyncio.wait_for(closing, 5)
    finally:
        await server.close()


def lifespan_router(log: list[str]) -> Router:
    """A router whose lifespan and handler note what happens, in order, in ``log``."""

    @contextlib.asynccontextmanager
    async def lifespan(router: Router) -> AsyncIterator[None]:
        log.append("enter")
        await asyncio.sleep(0.01)  # a pool being opened
        log.append("entered")
        yield
        log.append("exit")

    router = Router(lifespan=lifespan)

    @router.connect
    async def connect(request: ConnectCall) -> None:
        log.append("call")
        request.respond(proxy.ConnectResult(user="u"))

    return router


async def test_the_lifespan_is_entered_once_before_the_first_call_and_left_on_close(
    transport: Transport,
) -> None:
    log: list[str] = []
    async with transport.server(lifespan_router(log), port=0) as server:
        assert log == ["enter", "entered"]
        async with transport.client(server, None) as client:
            for _ in range(2):
                await client.call("connect", proxy.ConnectRequest())
        assert log == ["enter", "entered", "call", "call"]
    assert log == ["enter", "entered", "call", "call", "exit"]


async def test_a_lifespan_failing_at_startup_stops_the_server(transport: Transport) -> None:
    server = transport.server(failing_router, port=0)
    message = "the router's lifespan failed: ConnectionRefusedError: the database is down"
    with pytest.raises(StartupError, match=message):
        await server.start()
    # Nothing is left listening.
    with socket.create_server(("127.0.0.1", server.port)):
        pass


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_cli_serves_and_shuts_down_gracefully_on_sigterm(
    transport: Transport, loop: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "centrifugo_types", "serve", "tests.cli_routers:cli_router",
        "--transport", transport.name, "--port", "0", "--reuse-port", "--loop", loop,
        "--credentials-key", "x-centrifugo", "--credentials-value", "s3cret",
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stderr is not None
    try:
        port = 0
        lines: list[str] = []
        async with asyncio.timeout(60):  # a loaded CI machine
            while not port:
                line = (await process.stderr.readline()).decode()
                assert line, f"the server exited before listening: {lines}"
                lines.append(line)
                if match := re.search(r"proxy on \w+://127\.0\.0\.1:(\d+)", line):
                    port = int(match[1])
        assert any(f"event loop: {loop}" in line for line in lines), lines
        assert "lifespan entered" in "".join(lines)  # before listening
        # --reuse-port: another SO_REUSEPORT server can bind the same port.
        async with transport.server(Router(), port=port, reuse_port=True) as server:
            pass
        async with transport.client(server, None) as client:
            key = {"x-centrifugo": "s3cret"}
            with pytest.raises(Refused):
                await client.call("rpc", proxy.RpcRequest(data=b"0"), {"x-centrifugo": "no"})
            in_flight = asyncio.ensure_future(
                client.call("rpc", proxy.RpcRequest(method="m", data=b"0.5"), key)
            )
            await asyncio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            assert (await in_flight).result == proxy.RpcResult(data=b'"done"')
        assert await asyncio.wait_for(process.wait(), 10) == 0
        rest = (await process.stderr.read()).decode()
        assert rest.index("shutting down") < rest.index("lifespan left") < rest.index("stopped")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _fails_fast(
    capsys: pytest.CaptureFixture[str], transport: Transport, *args: str, debug: bool = False
) -> str:
    """Run the command line as it fails; assert one line on stderr (a traceback before it
    with ``debug``) and exit status 1; return the line."""
    argv = ["serve", *args, "--transport", transport.name, "--loop", "asyncio"]
    assert main([*argv, "--debug"] if debug else argv) == 1
    err = capsys.readouterr().err
    assert ("Traceback (most recent call last)" in err) is debug, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("centrifugo-types: "), err
    return last.removeprefix("centrifugo-types: ")


def test_cli_bad_router_specs_fail_fast(
    transport: Transport,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = f"broken_backend_{transport.name}"
    (tmp_path / f"{broken}.py").write_text("raise RuntimeError('no config file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec, expected in [
        ("tests.no_such_module:router", "cannot import 'tests.no_such_module': No module named"),
        (f"{broken}:router", f"importing '{broken}' failed: RuntimeError: no config file"),
        ("tests.cli_routers:nothing", "'tests.cli_routers' has no attribute 'nothing'"),
    ]:
        assert _fails_fast(capsys, transport, spec).startswith(expected)
    assert "no config file" in _fails_fast(capsys, transport, f"{broken}:router", debug=True)


def test_cli_a_port_in_use_fails_fast(
    transport: Transport, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        line = _fails_fast(capsys, transport, "tests.cli_routers:cli_router", "--port", str(port))
    assert line == f"cannot listen on 127.0.0.1:{port}: Address already in use"


def test_cli_a_missing_certificate_fails_fast(
    transport: Transport, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.pem"
    args = ["tests.cli_routers:cli_router", "--port", "0", "--tls-cert", str(missing)]
    line = _fails_fast(capsys, transport, *args)
    assert line == f"cannot read {missing}: No such file or directory"


def test_cli_a_failing_lifespan_fails_fast(
    transport: Transport, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["tests.cli_routers:failing_router", "--port", "0"]
    line = _fails_fast(capsys, transport, *args)
    assert line == "the router's lifespan failed: ConnectionRefusedError: the database is down"
    _fails_fast(capsys, transport, *args, debug=True)


# -- the command line's helpers (no transport) ----------------------------------------------------


def test_load_router_reports_bad_specs() -> None:
    assert load_router("tests.cli_routers:cli_router") is cli_router
    for spec, message in [
        ("tests.cli_routers", "expected MODULE:ATTRIBUTE"),
        ("tests.test_server:INTERNAL", "not a centrifugo_types.Router"),
    ]:
        with pytest.raises(StartupError, match=message):
            load_router(spec)


def test_event_loop_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvloop

    assert event_loop_runner("asyncio") is asyncio.run
    assert event_loop_runner("uvloop") is uvloop.run
    assert event_loop_runner() is uvloop.run  # auto: uvloop, installed with the dev group
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert event_loop_runner("auto") is asyncio.run
    with pytest.raises(SystemExit, match="needs uvloop"):
        event_loop_runner("uvloop")
    with pytest.raises(ValueError, match="loop must be"):
        event_loop_runner("trio")


def test_server_ssl_context_names_the_file_it_cannot_use(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    assert server_ssl_context(str(cert), str(key)).verify_mode == ssl.CERT_NONE
    assert server_ssl_context(str(cert), str(key), client_ca=str(cert)).verify_mode == (
        ssl.CERT_REQUIRED
    )
    missing, garbage = tmp_path / "missing.pem", tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(StartupError, match=f"^cannot read {missing}: No such file"):
        server_ssl_context(str(cert), str(missing))
    with pytest.raises(StartupError, match=f"^cannot load the TLS certificate {garbage}: "):
        server_ssl_context(str(garbage))
