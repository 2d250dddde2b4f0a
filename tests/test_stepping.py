"""The router's coroutine driver: a first step at once, the rest as a plain ``await`` would,
and a coroutine that swallows an expired timeout's cancellation detached."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from centrifugo_types._stepping import first_step, resume

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def returns_at_once() -> str:
    return "now"


async def raises_at_once() -> str:
    raise KeyError("first step")


async def test_a_coroutine_that_does_not_suspend_finishes_in_its_first_step() -> None:
    assert first_step(returns_at_once()) == (True, "now")
    with pytest.raises(KeyError, match="first step"):
        first_step(raises_at_once())


async def test_the_rest_behaves_as_a_plain_await() -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    seen: list[Any] = []

    async def work() -> str:
        VAR.set("set in the first step")
        future: asyncio.Future[str] = loop.create_future()
        loop.call_soon(future.set_result, "value")
        seen.append(await future)
        seen.append(asyncio.current_task() is task)
        await asyncio.sleep(0)
        failed: asyncio.Future[None] = loop.create_future()
        loop.call_soon(failed.set_exception, ValueError("thrown in"))
        try:
            await failed
        except ValueError as exc:
            seen.append(str(exc))
        async with asyncio.timeout(0.01):  # the task's timeout, across suspensions
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                seen.append("own timeout")
                raise
        return "done"

    coro = work()
    done, waiting = first_step(coro)
    assert not done
    with pytest.raises(TimeoutError):
        await resume(coro, waiting)
    assert seen == ["value", True, "thrown in", "own timeout"]
    assert VAR.get() == "set in the first step"  # the caller's context

    coro = returns_after_a_sleep()
    done, waiting = first_step(coro)
    assert not done and await resume(coro, waiting) == "slept"


async def returns_after_a_sleep() -> str:
    await asyncio.sleep(0)
    return "slept"


async def test_cancelling_the_caller_cancels_the_coroutine() -> None:
    cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def caller() -> None:
        coro = work()
        done, waiting = first_step(coro)
        assert not done
        await resume(coro, waiting)

    task = asyncio.ensure_future(caller())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


async def test_closing_the_driver_closes_the_coroutine() -> None:
    closed = []

    async def work() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            closed.append(True)

    coro = work()
    _, waiting = first_step(coro)
    driver = resume(coro, waiting)
    driver.send(None)
    driver.close()
    assert closed == [True]
    assert isinstance(waiting, asyncio.Future)
    waiting.cancel()


async def test_a_coroutine_swallowing_an_expired_timeout_is_detached() -> None:
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    detached: list[asyncio.Task[Any]] = []

    async def stubborn() -> str:
        while True:
            try:
                await asyncio.sleep(0.2)
                break
            except asyncio.CancelledError:
                continue  # ignores every cancellation
        finished.set_result(True)
        return "late"

    coro = stubborn()
    _, waiting = first_step(coro)
    started = loop.time()
    scope = asyncio.timeout(0.05)
    with pytest.raises(TimeoutError):
        async with scope:
            await resume(coro, waiting, scope, detached.append)
    assert loop.time() - started < 0.15, "the wait ends at the deadline"
    assert len(detached) == 1 and not finished.done()
    assert await detached[0] == "late"


async def test_a_coroutine_that_handles_the_cancellation_and_returns_is_not_detached() -> None:
    detached: list[asyncio.Task[Any]] = []

    async def tidy() -> str:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            return "tidied"
        return "slept"

    coro = tidy()
    _, waiting = first_step(coro)
    scope = asyncio.timeout(0.01)
    async with scope:
        value = await resume(coro, waiting, scope, detached.append)
    assert value == "tidied" and detached == []
