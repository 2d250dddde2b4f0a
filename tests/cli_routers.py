"""Routers the command-line tests serve (``tests.cli_routers:cli_router``): a module that
imports little, so that the server process starts fast."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from centrifugo_types import Router, RpcCall, proxy

cli_router = Router()
"""An rpc that sleeps as long as its data says, then answers ``"done"``."""


@cli_router.rpc
async def _slow_rpc(request: RpcCall) -> None:
    await asyncio.sleep(float(request.json()))
    request.respond(proxy.RpcResult(data=b'"done"'))


@contextlib.asynccontextmanager
async def _failing_lifespan(router: Router) -> AsyncIterator[None]:
    raise ConnectionRefusedError("the database is down")
    yield  # pragma: no cover


failing_router = Router(lifespan=_failing_lifespan)
"""A router whose lifespan fails at startup."""
