"""Routers the command-line tests serve (``tests.cli_routers:cli_router``): a module that
imports little, so that the server process starts fast."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from centrifugo_types import Router, RpcCall, proxy

logger = logging.getLogger("centrifugo_types.tests")


@contextlib.asynccontextmanager
async def _logged_lifespan(router: Router) -> AsyncIterator[None]:
    logger.info("lifespan entered")
    yield
    logger.info("lifespan left")


cli_router = Router(lifespan=_logged_lifespan)
"""An rpc that sleeps as long as its data says, then answers ``"done"``; its lifespan logs
when it is entered and left."""


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
