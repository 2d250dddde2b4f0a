"""Drive a handler's coroutine by hand: its first step at once, the rest in the caller's task.

Most proxy handlers reply without ever suspending. :func:`first_step` runs a coroutine up to
its first suspension (or to its end) synchronously, so the router arms its timeout only for
handlers that suspend (``scripts/bench router``: BENCHMARKS.md has the numbers). :func:`resume`
is what ``await coro`` does from there on -- pass what the coroutine waits for up to the task,
and what the task sends or throws down to it -- with one addition: a coroutine that swallows
the cancellation of an expired ``asyncio.timeout`` and suspends again is *detached*. The rest
of it runs in a task of its own (a straggler) and the caller gets the ``CancelledError`` at
once, so the timeout ends the wait at the deadline instead of whenever the coroutine gives up.

The coroutine runs in the caller's task (``asyncio.current_task()``, ``asyncio.timeout``,
task groups and context variables behave as under a plain ``await``) until it is detached.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Literal, TypeVar

T = TypeVar("T")

__all__ = ["first_step", "resume"]


def first_step(
    coro: Coroutine[Any, Any, T],
) -> tuple[Literal[True], T] | tuple[Literal[False], Any]:
    """Run ``coro`` to its first suspension: ``(True, value)`` if it returned ``value``,
    ``(False, waiting)`` if it suspended waiting for ``waiting`` (pass that to :func:`resume`).
    What it raises propagates."""
    try:
        waiting = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, waiting


@types.coroutine
def resume(
    coro: Coroutine[Any, Any, T],
    waiting: Any,
    scope: asyncio.Timeout | None = None,
    on_detach: Callable[[asyncio.Task[Any]], object] | None = None,
) -> Generator[Any, Any, T]:
    """``await`` ``coro`` whose first step already ran and yielded ``waiting``.

    When ``scope`` (the timeout this is awaited under) has expired and ``coro`` swallowed the
    cancellation but suspended again, the rest of ``coro`` becomes a task (passed to
    ``on_detach``) and the cancellation goes on to the caller.
    """
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                waiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            if scope is not None and isinstance(exc, asyncio.CancelledError) and scope.expired():
                task = asyncio.ensure_future(_rest(coro, waiting))
                if on_detach is not None:
                    on_detach(task)
                raise
        else:
            try:
                waiting = coro.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]


async def _rest(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    return await resume(coro, waiting)
