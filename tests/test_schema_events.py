"""The proxy side follows the schema: an event proxy.proto adds is served, one it lacks is gone.

Each test copies the tree, edits ``protos/proxy.proto`` the way a Centrifugo release could,
regenerates and runs a small backend in a subprocess against the copy: the edited schema's
package must import, type-check where asked, and serve over every transport.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

NEW_EVENT_MESSAGES = """
message AuditRequest {
  string client = 1;
  string user = 2;
  bytes data = 3;
  string b64data = 4;
}

message AuditResult {
  bytes data = 1;
  string b64data = 2;
}

message AuditResponse {
  AuditResult result = 1;
  Error error = 2;
  Disconnect disconnect = 3;
}
"""


def copy_tree(dest: Path) -> Path:
    """The project's tracked files (as in a clean clone, with this checkout's edits)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def edit_service(proto: Path, *, add_rpc: str | None = None, drop_rpc: str | None = None) -> None:
    text = proto.read_text()
    if add_rpc is not None:
        text = re.sub(
            r"(service CentrifugoProxy \{.*?)(\n\})", rf"\1\n  {add_rpc}\2", text, flags=re.S
        )
        text += NEW_EVENT_MESSAGES
    if drop_rpc is not None:
        text, count = re.subn(rf"\n\s*rpc {drop_rpc}\(.*?;", "", text)
        assert count == 1, drop_rpc
    proto.write_text(text)


def run(tree: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the venv's python in ``tree``, whose package shadows the installed one."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=timeout
    )


def regenerate(tree: Path) -> None:
    done = run(tree, "-m", "codegen")
    assert done.returncode == 0, done.stderr


SERVE_EVERY_TRANSPORT = """
import asyncio
import json

import grpclib.client
import grpclib.const
import grpclib.server
import httpx

import centrifugo_types
from centrifugo_types import Router, proxy
from centrifugo_types._generated import proxy_events as events
from centrifugo_types.grpc import ProxyService
from centrifugo_types.http import ProxyApp

event = events.EVENTS["audit"]


async def over_grpc(router: Router, request: proxy.AuditRequest) -> proxy.AuditResponse:
    server = grpclib.server.Server([ProxyService(router)])
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]
    channel = grpclib.client.Channel("127.0.0.1", port)
    try:
        method = grpclib.client.UnaryUnaryMethod(
            channel, event.path, proxy.AuditRequest, proxy.AuditResponse
        )
        return await method(request)
    finally:
        channel.close()
        server.close()
        await server.wait_closed()


async def over_http(router: Router, request: proxy.AuditRequest) -> proxy.AuditResponse:
    app = ProxyApp(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        body = centrifugo_types.json.dumps(request)
        reply = await client.post(
            app.paths["audit"], content=body, headers={"content-type": "application/json"}
        )
        assert reply.status_code == 200, reply.text
        return centrifugo_types.json.loads(proxy.AuditResponse, reply.content)


async def main() -> None:
    request = proxy.AuditRequest(client="c1", user="u1", data=b'{"n": 1}')
    seen = []

    handled = Router()

    @handled.audit
    async def audit(call: centrifugo_types.AuditCall) -> proxy.AuditResult:
        seen.append((type(call).__name__, call.user, call.json()))
        return proxy.AuditResult(data=b'{"ok": true}')

    unhandled = Router()
    for transport in (over_grpc, over_http):
        reply = await transport(handled, request)
        assert reply.result == proxy.AuditResult(data=b'{"ok": true}'), reply
        reply = await transport(unhandled, request)
        assert reply.error == proxy.Error(code=108, message="not available"), reply
    assert seen == [("AuditCall", "u1", {"n": 1})] * 2, seen
    print("served", json.dumps(sorted(events.EVENTS)))


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def tree_with_new_event(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = copy_tree(tmp_path_factory.mktemp("new-event"))
    edit_service(
        tree / "protos" / "proxy.proto", add_rpc="rpc Audit(AuditRequest) returns (AuditResponse);"
    )
    regenerate(tree)
    return tree


def test_a_new_event_is_served_over_every_transport(tree_with_new_event: Path) -> None:
    done = run(tree_with_new_event, "-c", SERVE_EVERY_TRANSPORT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"audit"' in done.stdout


def test_a_new_event_type_checks(tree_with_new_event: Path) -> None:
    script = tree_with_new_event / "backend_with_audit.py"
    script.write_text(
        textwrap.dedent(
            """
            from centrifugo_types import AuditCall, Router, proxy

            router = Router()


            @router.audit
            async def audit(call: AuditCall) -> proxy.AuditResult:
                return proxy.AuditResult(data=call.data)


            @router.audit
            async def wrong(call: AuditCall) -> proxy.ConnectResult:
                return proxy.ConnectResult()
            """
        )
    )
    done = run(tree_with_new_event, "-m", "mypy", "--strict", "centrifugo_types", str(script))
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    # Only the handler returning another event's result is refused.
    assert len(errors) == 1 and "backend_with_audit.py:12" in errors[0], done.stdout


def test_a_removed_event_is_gone_from_the_api(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    edit_service(tree / "protos" / "proxy.proto", drop_rpc="SubRefresh")
    regenerate(tree)
    check = textwrap.dedent(
        """
        import centrifugo_types
        from centrifugo_types import Router
        from centrifugo_types._generated import proxy_events as events
        from centrifugo_types.grpc import ProxyService
        from centrifugo_types.http import ProxyApp

        router = Router()
        assert "sub_refresh" not in events.EVENTS
        assert not hasattr(centrifugo_types, "SubRefreshCall")
        assert not hasattr(router, "sub_refresh")
        assert "/centrifugal.centrifugo.proxy.CentrifugoProxy/SubRefresh" not in (
            ProxyService(router).__mapping__()
        )
        assert "sub_refresh" not in ProxyApp(router).paths
        print("gone")
        """
    )
    done = run(tree, "-c", check)
    assert done.returncode == 0 and "gone" in done.stdout, done.stdout + done.stderr
    script = tree / "uses_sub_refresh.py"
    script.write_text("from centrifugo_types import Router\n\nRouter().sub_refresh\n")
    typed = run(tree, "-m", "mypy", "--strict", str(script))
    assert '"Router" has no attribute "sub_refresh"' in typed.stdout, typed.stdout
