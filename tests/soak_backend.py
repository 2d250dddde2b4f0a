"""The soak's backend: a small router that logs every reply it gives.

Served by the soak as ``python -m centrifugo_types serve tests.soak_backend:router
--reuse-port`` (several processes on one port). Each process appends one line per reply to
``$SOAK_DIR/<pid>.log``: ``event<TAB>key<TAB>ok|error<TAB>unix time``, written before the
reply leaves, so a process killed afterwards still counts the calls it answered. The key
names the call: the client's name (connect, refresh), the channel (subscribe) or the id in
the client's data (publish, rpc).

Also served as RoadRunner's workers (``centrifugo-types worker tests.soak_backend:router``):
the log is its own file, never stdout (a worker's stdout carries goridge frames). A process
that exits normally (its exit hooks run) leaves ``$SOAK_DIR/<pid>.exit``: how the soak tells a
drained RoadRunner worker, which is not its child, from a dead one.

SIGUSR1 makes rpc slow (each call sleeps past the router's timeout), SIGUSR2 makes it fast
again: the soak's "slow handler" fault.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import time
from typing import Any

from centrifugo_types import (
    AnyCall,
    CallNext,
    ConnectCall,
    PublishCall,
    RefreshCall,
    Router,
    RpcCall,
    SubscribeCall,
    proxy,
)

HANDLER_TIMEOUT = 0.5
"""The router's timeout: below Centrifugo's proxy timeout (1 s) in the soak's config."""
SESSION_SECONDS = 2
"""How long a refresh extends a session by."""
SLOW_SECONDS = 2.0
"""How long an rpc takes while slow (longer than ``HANDLER_TIMEOUT``)."""

router = Router(timeout=HANDLER_TIMEOUT)
_log = os.open(
    os.path.join(os.environ.get("SOAK_DIR", "."), f"{os.getpid()}.log"),
    os.O_WRONLY | os.O_APPEND | os.O_CREAT,
    0o644,
)
_slow = False


@atexit.register
def _exited() -> None:
    path = os.path.join(os.environ.get("SOAK_DIR", "."), f"{os.getpid()}.exit")
    with open(path, "w") as file:
        file.write(f"{time.time():.3f}\n")


def _set_slow(signum: int, frame: Any) -> None:
    global _slow
    _slow = signum == signal.SIGUSR1


signal.signal(signal.SIGUSR1, _set_slow)
signal.signal(signal.SIGUSR2, _set_slow)


def _data(request: PublishCall | RpcCall | ConnectCall) -> dict[str, Any]:
    data = request.json()
    return data if isinstance(data, dict) else {}


def _key(request: AnyCall) -> str:
    if isinstance(request, ConnectCall):
        return str(_data(request).get("user", ""))
    if isinstance(request, PublishCall | RpcCall):
        return str(_data(request).get("id", ""))
    if isinstance(request, SubscribeCall):
        return request.channel
    return str(getattr(request, "user", ""))


@router.intercept()
async def log(request: AnyCall, call_next: CallNext) -> None:
    """One line per call once its handler is done (a call the router timed out is logged
    as an error: its reply comes from the router, after this line)."""
    try:
        await call_next(request)
    finally:
        reply = request.reply
        ok = "ok" if reply is not None and getattr(reply, "error", None) is None else "error"
        line = f"{request.event.name}\t{_key(request)}\t{ok}\t{time.time():.3f}\n"
        os.write(_log, line.encode())


@router.connect
async def connect(request: ConnectCall) -> None:
    """Accept as the user the client names; sessions expire after ``expire`` seconds."""
    data = _data(request)
    expire = int(data.get("expire", 0))
    request.respond(
        proxy.ConnectResult(
            user=str(data.get("user", "")),
            expire_at=int(time.time()) + expire if expire else 0,
        )
    )


@router.refresh
async def refresh(request: RefreshCall) -> None:
    request.respond(proxy.RefreshResult(expire_at=int(time.time()) + SESSION_SECONDS))


@router.subscribe
async def subscribe(request: SubscribeCall) -> None:
    request.respond()


@router.publish
async def publish(request: PublishCall) -> None:
    request.respond()


@router.rpc("echo")
async def echo(request: RpcCall) -> None:
    if _slow:
        await asyncio.sleep(SLOW_SECONDS)
    request.respond(proxy.RpcResult(data=json.dumps(_data(request)).encode()))
