"""An example Centrifugo backend: every proxy event typed, served by one router.

Serve it on its own with ``centrifugo-types serve examples.backend:router --port 30000``
(point Centrifugo's proxies at ``grpc://127.0.0.1:30000``); ``scripts/demo`` runs it
together with a real Centrifugo and a real client.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from centrifugo_types import (
    CallNext,
    ConnectCall,
    ErrorReply,
    PublishCall,
    RefreshCall,
    Router,
    RpcCall,
    SubRefreshCall,
    SubscribeCall,
    SubscribeUnidirectionalCall,
    proxy,
)

SESSION_SECONDS = 2
"""How long a session lasts before Centrifugo asks ``refresh`` to extend it (short for the
demo)."""

TOKENS = {"secret-alice": "alice", "secret-bob": "bob"}
"""Connection tokens and their users (a real backend checks a session or a JWT)."""

router = Router(timeout=0.5)


@router.intercept("publish", "rpc")
async def require_user(request: PublishCall | RpcCall, call_next: CallNext) -> None:
    """Anonymous connections may read but not write (an interceptor around two events)."""
    if not request.user:
        raise ErrorReply(401, "unauthorized")
    await call_next(request)


@router.connect
async def connect(request: ConnectCall) -> proxy.ConnectResult:
    """Authenticate with the token the client sends as connect data."""
    try:
        payload = request.json()
    except ValueError:  # not JSON: a client of Centrifugo's protobuf protocol may send anything
        payload = None
    token = payload.get("token") if isinstance(payload, dict) else None
    user = TOKENS.get(str(token))
    if user is None:
        raise ErrorReply(401, "unauthorized")
    return proxy.ConnectResult(
        user=user,
        expire_at=int(time.time()) + SESSION_SECONDS,
        info=json.dumps({"name": user.title()}).encode(),
    )


@router.refresh
async def refresh(request: RefreshCall) -> proxy.RefreshResult:
    """Extend the session of users still known."""
    if request.user not in TOKENS.values():
        return proxy.RefreshResult(expired=True)
    return proxy.RefreshResult(expire_at=int(time.time()) + SESSION_SECONDS)


@router.subscribe
async def subscribe(request: SubscribeCall) -> proxy.SubscribeResult | None:
    """``news`` is public, ``personal:<user>`` only for its user (with a short-lived grant)."""
    if request.channel == "news":
        return proxy.SubscribeResult()
    if request.channel == f"personal:{request.user}":
        return proxy.SubscribeResult(expire_at=int(time.time()) + SESSION_SECONDS)
    request.error(403, "permission denied")  # replying through the call works too
    return None


@router.sub_refresh
async def sub_refresh(request: SubRefreshCall) -> proxy.SubRefreshResult:
    return proxy.SubRefreshResult(expire_at=int(time.time()) + SESSION_SECONDS)


@router.publish
async def publish(request: PublishCall) -> proxy.PublishResult:
    """Messages need a non-empty ``text`` of at most 200 characters; we stamp the author."""
    try:
        message = request.json()
    except ValueError:
        message = None
    text = message.get("text") if isinstance(message, dict) else None
    if not isinstance(text, str) or not 0 < len(text) <= 200:
        raise ErrorReply(400, "a message needs a text of 1 to 200 characters")
    stamped = {"text": text, "author": request.user}
    return proxy.PublishResult(data=json.dumps(stamped).encode())


@router.rpc("time")
async def current_time(request: RpcCall) -> proxy.RpcResult:
    return proxy.RpcResult(data=json.dumps({"unix": int(time.time())}).encode())


@router.subscribe_unidirectional
async def ticker(request: SubscribeUnidirectionalCall) -> AsyncIterator[proxy.Publication]:
    """``ticker:<n>``: a stream of n ticks served by the backend itself."""
    count = request.channel.partition(":")[2]
    if not (count.isascii() and count.isdigit()) and count:
        request.error(400, "ticker:<n> needs a number")
        return
    request.respond()
    for tick in range(1, int(count or 3) + 1):
        yield proxy.Publication(data=json.dumps({"tick": tick}).encode())
