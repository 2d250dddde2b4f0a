"""Any asynchronous transport as a synchronous one: its calls run on an event loop in a
background thread (for :class:`~centrifugo_types.client.SyncApiClient` over gRPC)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .._generated.api_methods import ApiMethod
from ._transport import AsyncApiTransport

__all__ = ["ThreadedTransport"]


class ThreadedTransport:
    """Runs ``transport`` on one event loop in a daemon thread, started on the first call;
    any number of threads may call at once (their calls share the loop's connections)."""

    def __init__(self, transport: AsyncApiTransport) -> None:
        self.transport = transport
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="centrifugo-types-api", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def handle_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        coroutine = self.transport.handle_async_request(method, request, timeout)
        return asyncio.run_coroutine_threadsafe(coroutine, self._running_loop()).result()

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.transport.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
