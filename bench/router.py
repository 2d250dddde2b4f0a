"""``scripts/bench router``: what ``Router.handle`` costs per call, three ways of running a handler.

Whether the router's manual first step (:mod:`centrifugo_types._stepping`) pays for itself:

- ``stepping``: ``Router.handle`` as shipped: the handler's first step runs at once, the
  timeout is armed only if it suspends, and the rest runs in the caller's task (a handler
  that swallows its cancellation at the deadline is detached);
- ``timeout``: the plain alternative: ``await`` the handler under ``asyncio.timeout_at``
  every time (it cannot reply at the deadline for a handler that swallows its cancellation:
  a lower bound of what a plain design costs);
- ``task``: the handler in a task of its own, ``asyncio.wait`` with the timeout (what
  replying at the deadline costs without stepping).

Handlers: ``returns`` returns its result at once; ``responds`` calls ``call.respond`` at once;
``suspends`` awaits ``asyncio.sleep(0)`` once, then returns its result (a handler that
awaits a database or a cache). One call is ``await router.handle(call)`` on a fresh
``ConnectCall`` (made before the clock starts), in a running event loop (asyncio's; uvloop
too when installed); every implementation's reply is checked before timing. Times are CPU
time of the benchmark process (see :class:`AsyncTimer`); processes, rounds and the report
follow :mod:`bench.harness`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from centrifugo_types import ConnectCall, Router, proxy
from centrifugo_types.calls import ProxyCall
from centrifugo_types.router import ResponseT, _on_exception, _returned

from . import harness
from .harness import Case, Settings, quartiles, us

IMPLS = ("stepping", "timeout", "task")
HANDLERS = ("returns", "responds", "suspends")
RESULT = proxy.ConnectResult(user="42")

add_arguments = harness.add_arguments


class TimeoutRouter(Router):
    """``handle`` as a plain ``await`` under ``asyncio.timeout_at``."""

    async def handle(
        self, request: ProxyCall[Any, ResponseT, Any], *, deadline: float | None = None
    ) -> ResponseT:
        call = request
        value = None
        scope = asyncio.timeout_at(self._deadline(deadline))
        try:
            async with scope:
                value = await self._chain(call.event.name)(call)
        except BaseException as exc:
            _on_exception(call, exc)
        if value is not None:
            _returned(call, value)
        if call.reply is None:
            call._fail_internal()
        assert call.reply is not None
        return call.reply


class TaskRouter(Router):
    """``handle`` with the handler in a task of its own, waited for with the timeout."""

    async def handle(
        self, request: ProxyCall[Any, ResponseT, Any], *, deadline: float | None = None
    ) -> ResponseT:
        call = request
        value = None
        when = self._deadline(deadline)
        limit = None if when is None else when - asyncio.get_running_loop().time()
        task = asyncio.ensure_future(self._chain(call.event.name)(call))
        try:
            done, _ = await asyncio.wait({task}, timeout=limit)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if done:
            try:
                value = task.result()
            except BaseException as exc:
                _on_exception(call, exc)
        else:
            task.cancel()
        if value is not None:
            _returned(call, value)
        if call.reply is None:
            call._fail_internal()
        assert call.reply is not None
        return call.reply


ROUTERS: dict[str, Callable[[], Router]] = {
    "stepping": Router,
    "timeout": TimeoutRouter,
    "task": TaskRouter,
}


def build(impl: str, handler: str) -> Router:
    router = ROUTERS[impl]()

    if handler == "returns":

        @router.connect
        async def returns(call: ConnectCall) -> proxy.ConnectResult:
            return RESULT

    elif handler == "responds":

        @router.connect
        async def responds(call: ConnectCall) -> None:
            call.respond(RESULT)

    else:

        @router.connect
        async def suspends(call: ConnectCall) -> proxy.ConnectResult:
            await asyncio.sleep(0)
            return RESULT

    return router


class AsyncTimer(timeit.Timer):
    """``timeit(number)``: ``number`` sequential ``router.handle`` calls in ``loop``, timed
    inside the loop in CPU time of the process (``time.process_time``: the machine is shared,
    and wall time would count other processes' turns), garbage collection off as ``timeit``
    does."""

    def __init__(self, loop: asyncio.AbstractEventLoop, router: Router) -> None:
        super().__init__()
        self.loop = loop
        self.router = router

    def timeit(self, number: int = 1) -> float:
        return self.loop.run_until_complete(self._batch(number))

    async def _batch(self, number: int) -> float:
        message = proxy.ConnectRequest(client="c1")
        calls = [ConnectCall(message) for _ in range(number)]
        handle = self.router.handle
        enabled = gc.isenabled()
        gc.disable()
        try:
            started = time.process_time()
            for call in calls:
                await handle(call)
            return time.process_time() - started
        finally:
            if enabled:
                gc.enable()


def loops() -> dict[str, asyncio.AbstractEventLoop]:
    out = {"asyncio": asyncio.new_event_loop()}
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the dev group installs it
        return out
    out["uvloop"] = uvloop.new_event_loop()
    return out


def _cases(only: str | None) -> list[Case]:
    cases = []
    for loop_name, loop in loops().items():
        for handler in HANDLERS:
            label = f"{handler} ({loop_name})"
            if only and only.lower() not in label.lower():
                continue
            for impl in IMPLS:
                router = build(impl, handler)
                reply = loop.run_until_complete(router.handle(ConnectCall(proxy.ConnectRequest())))
                if reply != proxy.ConnectResponse(result=RESULT):
                    raise AssertionError(f"{impl} replies {reply!r} for {label}")
                cases.append(Case(label, "handle", impl, AsyncTimer(loop, router)))
    return cases


def worker(settings: Settings, only: str | None, seed: int) -> dict[str, Any]:
    return {"cases": harness.measure(_cases(only), settings, seed)}


def report(results: list[dict[str, Any]], info: dict[str, Any], settings: Settings) -> str:
    samples = harness.samples_by_case(results)
    labels = list(dict.fromkeys(key[0] for key in samples))
    lines = [
        *harness.header(info, settings),
        "",
        f"{'handler (loop)':<22} {'stepping':>14} {'timeout':>14} {'task':>14}"
        f" {'timeout/stepping':>17} {'task/stepping':>14}",
    ]
    for label in labels:
        med = {}
        cells = []
        for impl in IMPLS:
            q1, q2, q3 = quartiles(samples[label, "handle", impl])
            med[impl] = q2
            cells.append(f"{us(q2)} {(q3 - q1) / q2:4.0%}")
        lines.append(
            f"{label:<22} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14}"
            f" {med['timeout'] / med['stepping']:16.2f}x {med['task'] / med['stepping']:13.2f}x"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    settings = Settings.from_args(args)
    if args.worker is not None:
        json.dump(worker(settings, args.only, args.seed), sys.stdout)
        return 0
    info = harness.machine()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="centrifugo-types-bench-") as tmp:
        results = harness.run_workers("router", args, settings, Path(tmp))
    if results is None:
        return 1
    info["loadavg_end"] = os.getloadavg()
    info["seconds"] = round(time.monotonic() - started, 1)
    print(report(results, info, settings))
    print(f"\n({info['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    return 0
