"""A backend whose rpc handlers misbehave in every way a handler can end, for the TLS and the
storm end-to-end tests (served through the command line: ``tests.misbehaving_backend:router``).

The rpc ``method`` picks the behaviour; connect accepts everyone (the user is the connect
data's ``user``).
"""

from __future__ import annotations

import asyncio
import contextlib

from centrifugo_types import ErrorReply, Router, proxy
from centrifugo_types.calls import ConnectCall, RpcCall

TIMEOUT = 0.3
"""The router's deadline, in seconds (Centrifugo's proxy timeout in the tests is longer)."""

router = Router(timeout=TIMEOUT)


@router.connect
async def connect(request: ConnectCall) -> None:
    payload = request.json()
    user = payload.get("user") if isinstance(payload, dict) else None
    request.respond(proxy.ConnectResult(user=str(user or "anonymous")))


@router.rpc("echo")
async def echo(request: RpcCall) -> None:
    request.respond(proxy.RpcResult(data=request.data))


@router.rpc("refuse")
async def refuse(request: RpcCall) -> None:
    raise ErrorReply(4000, "refused")


@router.rpc("raise")
async def crash(request: RpcCall) -> None:
    raise RuntimeError("handler bug")


async def _victim() -> None:
    await asyncio.sleep(3600)


@router.rpc("cancel")
async def cancelled_inside(request: RpcCall) -> None:
    """Awaits a task that another task cancels: CancelledError reaches the handler."""
    shared = asyncio.ensure_future(_victim())
    asyncio.get_running_loop().call_later(0.01, shared.cancel)
    await shared


@router.rpc("swallow")
async def swallow(request: RpcCall) -> None:
    """Ignores its cancellation at the deadline and goes on a while."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(TIMEOUT)


@router.rpc("sleep")
async def sleep_past_deadline(request: RpcCall) -> None:
    await asyncio.sleep(TIMEOUT * 3)
    request.respond(proxy.RpcResult(data=b'"late"'))


@router.rpc("never")
async def never_replies(request: RpcCall) -> None:
    return


@router.rpc("twice")
async def replies_twice(request: RpcCall) -> None:
    request.respond(proxy.RpcResult(data=b'"first"'))
    request.respond(proxy.RpcResult(data=b'"second"'))
