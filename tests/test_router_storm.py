"""A storm of misbehaving handlers at the router: every call is answered exactly once, in time.

2,000 calls, arriving over a second (most of them in flight together), over three unary
events and the bidirectional stream, each handler misbehaving in one of the ways a handler
can end (issue 15): it raises, is cancelled from inside (before or after suspending),
swallows its cancellation at the deadline, is slow, never replies, replies twice, returns
the wrong type, ... Every call must get exactly one reply -- the expected one -- no later
than its deadline plus a margin for a loaded machine, and nothing but the caller's own
cancellation may escape ``handle``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import betterproto2
import pytest

from centrifugo_types import (
    ConnectCall,
    ErrorReply,
    Router,
    RpcCall,
    SubscribeBidirectionalCall,
    SubscribeCall,
    proxy,
)
from centrifugo_types.calls import AnyCall

TIMEOUT = 1.0  # Centrifugo's default proxy timeout
MARGIN = 0.5
"""The event loop's lag on a loaded, shared 2-core machine: usually 10-60 ms, but other
processes have been seen to stall it for up to a second. A reply that waited for a handler
would be seconds late: slow handlers sleep 10 s, swallowers go on for ``SWALLOWER_GOES_ON``."""
SWALLOWER_GOES_ON = 2.0
CALLS = 2000
SPREAD = 1.0  # seconds over which the calls start: 2,000 calls/s, most in flight together
INTERNAL = proxy.Error(code=100, message="internal server error", temporary=True)
CONFLICT = proxy.Error(code=409, message="conflict")

Behaviour = Callable[[AnyCall], Awaitable[Any]]


def cancelled_future() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.cancel()
    return future


async def ok_return(call: AnyCall) -> Any:
    return call.event.result_type()


async def ok_respond(call: AnyCall) -> None:
    await asyncio.sleep(0)
    call.respond()


async def ok_after_a_while(call: AnyCall) -> Any:
    for _ in range(3):
        await asyncio.sleep(0)
    await asyncio.sleep(0.001)
    return call.event.result_type()


async def raises(call: AnyCall) -> None:
    await asyncio.sleep(0)
    raise RuntimeError("bug")


async def raises_at_once(call: AnyCall) -> None:
    raise LookupError("bug")


async def error_reply(call: AnyCall) -> None:
    raise ErrorReply(409, "conflict")


async def cancelled_at_once(call: AnyCall) -> None:
    await cancelled_future()


async def cancelled_later(call: AnyCall) -> None:
    await asyncio.sleep(0.001)
    await cancelled_future()


async def cancelled_while_waiting(call: AnyCall) -> None:
    shared: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.005, shared.cancel)
    await shared


async def swallows_cancellation(call: AnyCall) -> Any:
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(10)
    await asyncio.sleep(SWALLOWER_GOES_ON)  # goes on well past the deadline
    return call.event.result_type()


async def slow(call: AnyCall) -> Any:
    await asyncio.sleep(10)
    return call.event.result_type()


async def never_replies(call: AnyCall) -> None:
    await asyncio.sleep(0)


async def replies_twice(call: AnyCall) -> None:
    call.respond()
    call.respond()  # AlreadyRepliedError, after the reply: the reply stands


async def returns_after_replying(call: AnyCall) -> Any:
    call.respond()
    await asyncio.sleep(0)
    return call.event.result_type()


async def returns_wrong_type(call: AnyCall) -> Any:
    return proxy.Publication()


OK, FAILED = "ok", "failed"
BEHAVIOURS: dict[str, tuple[Behaviour, str | proxy.Error]] = {
    "ok_return": (ok_return, OK),
    "ok_respond": (ok_respond, OK),
    "ok_after_a_while": (ok_after_a_while, OK),
    "raises": (raises, INTERNAL),
    "raises_at_once": (raises_at_once, INTERNAL),
    "error_reply": (error_reply, CONFLICT),
    "cancelled_at_once": (cancelled_at_once, INTERNAL),
    "cancelled_later": (cancelled_later, INTERNAL),
    "cancelled_while_waiting": (cancelled_while_waiting, INTERNAL),
    "swallows_cancellation": (swallows_cancellation, INTERNAL),
    "slow": (slow, INTERNAL),
    "never_replies": (never_replies, INTERNAL),
    "replies_twice": (replies_twice, OK),
    "returns_after_replying": (returns_after_replying, OK),
    "returns_wrong_type": (returns_wrong_type, INTERNAL),
}


def storm_router() -> Router:
    async def by_kind(call: AnyCall) -> Any:
        kind = json.loads(call.message.data)
        return await BEHAVIOURS[kind][0](call)

    router = Router(timeout=TIMEOUT)
    for event in ("connect", "rpc", "subscribe", "subscribe_bidirectional"):
        router.add_handler(event, by_kind)
    return router


class Sink:
    def __init__(self) -> None:
        self.items: list[betterproto2.Message] = []

    async def __call__(self, item: betterproto2.Message) -> None:
        self.items.append(item)


async def one_call(router: Router, index: int, kind: str, event: str) -> dict[str, Any]:
    await asyncio.sleep(index * SPREAD / CALLS)  # calls arrive over SPREAD seconds
    data = f'"{kind}"'.encode()
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = None if index % 2 else started + TIMEOUT / 2  # a transport's shorter deadline
    limit = TIMEOUT if deadline is None else TIMEOUT / 2
    replies: list[Any]
    if event == "stream":
        sink = Sink()
        call: AnyCall = SubscribeBidirectionalCall(proxy.SubscribeRequest(data=data))
        try:
            await router.handle_stream(call, sink, deadline=deadline)  # type: ignore[arg-type]
        except Exception as exc:  # StreamError after accepting is a normal end too
            sink.items.append(exc)  # type: ignore[arg-type]
        replies = [item for item in sink.items if isinstance(item, proxy.SubscribeResponse)]
    else:
        classes: dict[str, type[AnyCall]] = {
            "connect": ConnectCall,
            "rpc": RpcCall,
            "subscribe": SubscribeCall,
        }
        cls = classes[event]
        message = cls.event.request_type(data=data)  # type: ignore[call-arg]
        call = cls(message)
        replies = [await router.handle(call, deadline=deadline)]
        assert replies[0] is call.reply
    return {
        "kind": kind,
        "event": event,
        "replies": replies,
        "took": loop.time() - started,
        "limit": limit,
    }


async def test_a_storm_of_misbehaving_handlers_gets_one_reply_each_in_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = storm_router()
    rng = random.Random(15)
    kinds = list(BEHAVIOURS)
    plan = [
        (i, rng.choice(kinds), rng.choice(["connect", "rpc", "subscribe", "stream"]))
        for i in range(CALLS)
    ]
    wall = time.monotonic()
    with caplog.at_level(logging.CRITICAL, logger="centrifugo_types.router"):
        results = await asyncio.gather(*(one_call(router, *p) for p in plan))
        wall = time.monotonic() - wall
        late = []
        missed = 0
        for result in results:
            kind, replies = result["kind"], result["replies"]
            assert len(replies) == 1, result
            reply = replies[0]
            expected = BEHAVIOURS[kind][1]
            if expected == OK and reply.error == INTERNAL:
                # a handler in time can still miss its deadline on a starved loop: then only
                # if it really ran out of time
                assert result["took"] >= result["limit"], result
                missed += 1
            elif expected == OK:
                assert reply.result is not None and reply.error is None, result
            else:
                assert reply.error == expected and reply.result is None, result
            if result["took"] > result["limit"] + MARGIN:
                late.append(result)
        assert not late, f"{len(late)} late, e.g. {late[0]}"
        # the stragglers (handlers that swallowed their cancellation) end in the background
        for _ in range(int(SWALLOWER_GOES_ON * 200)):
            if not router._stragglers:
                break
            await asyncio.sleep(0.01)
    assert not router._stragglers
    worst = max(r["took"] - r["limit"] for r in results)
    print(
        f"{CALLS} calls in {wall:.2f} s; worst: {worst * 1000:.0f} ms past the deadline; "
        f"{missed} in-time handlers timed out by the loop's lag"
    )
    assert missed < CALLS // 20
