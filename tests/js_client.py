"""The JavaScript client (centrifuge-js 5.7 in Node) driven from Python.

``tests/js/driver.mjs`` runs any number of centrifuge-js clients in one Node process and takes
one JSON command a line (see the script); :class:`JsDriver` sends those commands and awaits
their results. The SDK is installed by ``scripts/install-js`` (``JS_MODULES`` points at
another node_modules folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "js" / "driver.mjs"
WAIT = 10.0
"""Seconds to wait for an event."""


def js_modules() -> Path:
    """The node_modules folder holding centrifuge-js and ws, installed on first use."""
    if os.environ.get("JS_MODULES"):
        return Path(os.environ["JS_MODULES"])
    result = subprocess.run(
        [str(ROOT / "scripts" / "install-js")], stdout=subprocess.PIPE, text=True, check=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


class JsError(Exception):
    """A command the JavaScript client answered with an error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class JsDriver:
    """One Node process running centrifuge-js clients, named by the caller."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        """Unsolicited lines: publications, connects, disconnects, unsubscribes."""
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = json.loads(raw)
            if "id" in line:
                future = self._pending.pop(line["id"], None)
                if future is not None and not future.done():
                    future.set_result(line)
            else:
                self.events.put_nowait(line)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the JS driver exited"))

    async def send(self, op: str, **args: Any) -> dict[str, Any]:
        """Run one command; its result line (``ok`` false included, not raised)."""
        assert self.process.stdin is not None
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        self.process.stdin.write(json.dumps({"id": command_id, "op": op, **args}).encode() + b"\n")
        await self.process.stdin.drain()
        return await future

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Run one command; its result, or :class:`JsError`."""
        result = await self.send(op, **args)
        if not result["ok"]:
            raise JsError(result["code"], result["message"])
        return result

    async def next_event(self, event: str, **match: Any) -> dict[str, Any]:
        """The next event line of kind ``event`` whose fields equal ``match`` (others dropped),
        within :data:`WAIT` seconds."""
        async with asyncio.timeout(WAIT):
            while True:
                line = await self.events.get()
                if line["event"] == event and all(line.get(k) == v for k, v in match.items()):
                    return line

    async def close(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            with contextlib.suppress(ConnectionError):
                self.process.stdin.write(b'{"op": "exit"}\n')
                await self.process.stdin.drain()
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self._reader


@contextlib.asynccontextmanager
async def js_driver(modules: Path | None = None) -> AsyncIterator[JsDriver]:
    """A running driver process; closed (its clients disconnected) at the end."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(DRIVER),
        str(modules or js_modules()),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 26,
    )
    driver = JsDriver(process)
    try:
        yield driver
    finally:
        await driver.close()
