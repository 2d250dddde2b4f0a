"""The router: a handler per proxy event, interceptors around them, exactly one reply.

::

    router = Router()

    @router.connect
    async def connect(request: ConnectCall) -> None:
        request.respond(ConnectResult(user="42"))

The router is transport-neutral: a transport builds a typed request and awaits
:meth:`Router.handle` (or :meth:`Router.handle_stream` for the subscribe streams), which always
ends with exactly one reply. A handler that raises, returns without replying or overruns the
deadline gets Centrifugo's ``error`` 100 "internal server error" (logged); one that raises
:class:`~centrifugo_types.ProxyError` or :class:`~centrifugo_types.Disconnect` gets that reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from types import CoroutineType
from typing import Any, TypeAlias, TypeVar

import betterproto2

from ._call import AnyCall, ProxyCall, StreamCall, StreamSend
from ._generated import proxy_events as events
from ._generated.proxy_calls import ROUTE_FIELDS, Routes
from .errors import Code, DisconnectReply, ErrorReply, StreamError

__all__ = ["ALL_EVENTS", "CallNext", "Handler", "Interceptor", "Lifespan", "Router"]

logger = logging.getLogger("centrifugo_types.router")

R = TypeVar("R", bound=AnyCall)
ResponseT = TypeVar("ResponseT", bound=betterproto2.Message)

Handler: TypeAlias = Callable[[R], Awaitable[Any]]
"""An event handler: takes the typed call and replies through it."""
UnidirectionalHandler: TypeAlias = Callable[[Any], AsyncIterator[Any]]
"""A unidirectional stream handler: an async generator of the stream's items."""
CallNext: TypeAlias = Callable[[AnyCall], Awaitable[None]]
"""What an interceptor awaits to run the rest of the chain (inner interceptors, handler)."""
Interceptor: TypeAlias = Callable[[Any, CallNext], Awaitable[None]]
"""``async def interceptor(request, call_next) -> None``."""
_I = TypeVar("_I", bound=Interceptor)

Lifespan: TypeAlias = Callable[["Router"], contextlib.AbstractAsyncContextManager[Any]]
"""``lifespan(router)``: an async context manager factory run around serving, as in starlette
(open a database pool or an API client on enter, close it on exit)."""

ALL_EVENTS = "*"
"""Register an interceptor for every event."""


_Call: TypeAlias = Callable[[AnyCall], Awaitable[None]]


class Router(Routes):
    """Maps proxy events to handlers and runs interceptors around them.

    ``timeout`` is the longest a handler may take to reply, in seconds (``None``: no limit of
    the router's own). Match Centrifugo's proxy ``timeout`` (1 s by default): past it
    Centrifugo answers the client with error 100 itself. Transports that know Centrifugo's
    deadline (gRPC sends it) shorten the limit so that the reply still arrives in time.
    """

    def __init__(self, *, timeout: float | None = 1.0, lifespan: Lifespan | None = None) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive or None")
        self.timeout = timeout
        self.lifespan = lifespan
        self._handlers: dict[str, _Call] = {}
        self._keyed: dict[str, dict[str, _Call]] = {}
        self._interceptors: dict[str, list[Interceptor]] = {}
        self._chains: dict[str, _Call] = {}

    # -- lifespan ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan_context(self) -> AsyncIterator[None]:
        """Run the router's ``lifespan`` around serving: every server enters this once before
        its first call and leaves it on shutdown. What the lifespan raises at startup stops the
        server (:class:`~centrifugo_types.StartupError`)."""
        if self.lifespan is None:
            yield
            return
        async with self.lifespan(self):
            yield

    # -- registration -----------------------------------------------------------------------

    def add_handler(
        self, event: str, handler: Callable[..., Any], *, key: str | None = None
    ) -> None:
        """Register ``handler`` for ``event`` (an event name such as ``"connect"``); the
        decorators ``router.connect``, ``router.rpc``, ... call this.

        ``key`` registers it for one value of the event's routing field only (an rpc
        ``method``). A unidirectional stream's handler is an async generator of its items.
        """
        spec = _check_event(event)
        if spec.cardinality == "unary_stream":
            handler = _unidirectional(handler)
        if key is None:
            self._handlers[event] = handler
        elif event in ROUTE_FIELDS:
            self._keyed.setdefault(event, {})[key] = handler
        else:
            raise ValueError(f"{event} handlers cannot be registered per key")
        self._chains.clear()

    def add_interceptor(self, interceptor: Interceptor, *events_: str) -> None:
        """Run ``interceptor`` around the handlers of ``events_`` (none or ``"*"``: all).

        Interceptors for all events run outside per-event ones; within each group the first
        registered is the outermost. An interceptor awaits ``call_next(request)`` to go on,
        or replies (or raises) without calling it to short-circuit.
        """
        for event in events_ or (ALL_EVENTS,):
            if event != ALL_EVENTS:
                _check_event(event)
            self._interceptors.setdefault(event, []).append(interceptor)
        self._chains.clear()

    def intercept(self, *events_: str) -> Callable[[_I], _I]:
        """Decorator form of :meth:`add_interceptor`: ``@router.intercept("connect")``."""

        def register(interceptor: _I) -> _I:
            self.add_interceptor(interceptor, *events_)
            return interceptor

        return register

    def handles(self, event: str) -> bool:
        """Whether a handler is registered for ``event``."""
        return event in self._handlers or bool(self._keyed.get(event))

    # -- dispatch ---------------------------------------------------------------------------

    def _deadline(self, deadline: float | None) -> float | None:
        """The loop time by which the handler must reply (``None``: no limit)."""
        if self.timeout is None:
            return deadline
        own = asyncio.get_running_loop().time() + self.timeout
        return own if deadline is None else min(own, deadline)

    def _chain(self, event: str) -> _Call:
        chain = self._chains.get(event)
        if chain is None:
            chain = self._terminal(event)
            interceptors = self._interceptors.get(ALL_EVENTS, []) + self._interceptors.get(
                event, []
            )
            for interceptor in reversed(interceptors):
                chain = _wrap(interceptor, chain)
            self._chains[event] = chain
        return chain

    def _terminal(self, event: str) -> _Call:
        handler = self._handlers.get(event)
        keyed = self._keyed.get(event)
        if keyed:
            return _keyed_dispatch(ROUTE_FIELDS[event], dict(keyed), handler)
        if handler is None:
            return _unhandled
        return handler

    async def handle(
        self, request: ProxyCall[Any, ResponseT, Any], *, deadline: float | None = None
    ) -> ResponseT:
        """Run the chain for ``request`` and return its response message.

        Never raises for what a handler does (only if the caller is cancelled): exceptions
        become replies, as described in the module. ``deadline`` (a loop time, see
        :meth:`asyncio.loop.time`) shortens the router's ``timeout``, e.g. to the transport's.
        """
        req = request
        when = self._deadline(deadline)
        scope: asyncio.Timeout | None = None
        try:
            awaitable = self._chain(req.event.name)(req)
            if when is None:
                await awaitable
            elif type(awaitable) is not CoroutineType:
                scope = asyncio.timeout_at(when)
                async with scope:
                    await awaitable
            else:
                # Most handlers reply without ever suspending: run the first step at once
                # and arm the timeout only if there is a second one. (A timeout can only
                # interrupt an await anyway; the deadline stays the same, it is absolute.)
                try:
                    waiting = awaitable.send(None)
                except StopIteration:
                    pass
                else:
                    scope = asyncio.timeout_at(when)
                    async with scope:
                        await _resume(awaitable, waiting)
        except Exception as exc:
            _on_exception(req, exc, timed_out=scope is not None and scope.expired())
        reply = req.reply
        if reply is None:
            logger.error("%s handler returned without replying", req.event.name)
            req._fail_internal()
            reply = req.reply
            assert reply is not None
        return reply

    async def handle_stream(
        self, request: StreamCall[Any, Any, Any], send: StreamSend, *, deadline: float | None = None
    ) -> None:
        """Serve a subscribe stream: send the reply, then the handler's publications.

        ``send`` is the transport's sink; it gets the ``SubscribeResponse`` first (as soon as
        the handler replies, or the failure reply), then :class:`~centrifugo_types.proxy.
        Publication` messages. Returns when the stream should end normally; raises
        :class:`StreamError` when the handler failed after accepting (the transport ends the
        stream with an error, and Centrifugo resubscribes the client).
        """
        request._bind(send)
        when = self._deadline(deadline)
        limit = None if when is None else max(0.0, when - asyncio.get_running_loop().time())
        name = request.event.name
        task = asyncio.ensure_future(self._chain(name)(request))
        replied = asyncio.ensure_future(request._replied.wait())
        try:
            await asyncio.wait({task, replied}, timeout=limit, return_when="FIRST_COMPLETED")
            if not request.replied:
                if task.done():
                    exc = task.exception()
                    if exc is not None:
                        _on_exception(request, exc, timed_out=False)
                    if not request.replied:
                        logger.error("%s handler returned without replying", name)
                else:
                    logger.error("%s handler did not reply in time", name)
                if not request.replied:
                    request._fail_internal()
            async with request._lock:
                await request._flush()
            if not request.accepted:
                return
            try:
                await task
            except Exception as exc:
                logger.exception("%s handler failed after accepting the subscription", name)
                raise StreamError(f"{name} handler failed: {exc!r}") from exc
        finally:
            replied.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting: Any) -> Generator[Any, Any, None]:
    """Await ``coro`` whose first step already ran and yielded ``waiting``.

    What ``await coro`` does from the second step on: pass what the coroutine waits for up
    to the task, and what the task sends or throws (a cancellation) down to the coroutine.
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
            except StopIteration:
                return
        else:
            try:
                waiting = coro.send(sent)
            except StopIteration:
                return


def _check_event(event: str) -> events.Event[Any, Any]:
    spec = events.EVENTS.get(event)
    if spec is None:
        raise ValueError(f"unknown proxy event {event!r}; known: {', '.join(events.EVENTS)}")
    return spec


def _wrap(interceptor: Interceptor, inner: _Call) -> _Call:
    async def call(request: AnyCall) -> None:
        async def call_next(next_request: AnyCall) -> None:
            await inner(next_request)
            if next_request is not request and next_request.replied and not request.replied:
                request._set_reply(next_request.reply)

        await interceptor(request, call_next)

    return call


async def _unhandled(request: AnyCall) -> None:
    logger.warning("no handler for proxy event %r: replying not available", request.event.name)
    request._fail(Code.NOT_AVAILABLE, Code.NOT_AVAILABLE.message)


def _keyed_dispatch(field: str, handlers: dict[str, _Call], fallback: _Call | None) -> _Call:
    """The handler of the call's ``field`` value (an rpc's ``method``), else ``fallback``,
    else error 104 "method not found"."""

    async def dispatch(request: AnyCall) -> None:
        key = getattr(request.message, field)
        handler = handlers.get(key)
        if handler is not None:
            await handler(request)
        elif fallback is not None:
            await fallback(request)
        else:
            logger.info("no %s handler for %s %r", request.event.name, field, key)
            request._fail(Code.NOT_FOUND, Code.NOT_FOUND.message)

    return dispatch


def _unidirectional(handler: UnidirectionalHandler) -> _Call:
    async def run(request: AnyCall) -> None:
        assert isinstance(request, StreamCall)
        publications = handler(request)
        try:
            async for publication in publications:
                await request.send(publication)
        finally:
            aclose = getattr(publications, "aclose", None)
            if aclose is not None:
                await aclose()

    return run


def _on_exception(request: AnyCall, exc: BaseException, *, timed_out: bool) -> None:
    """Turn what a handler raised into the reply (unless it already replied)."""
    name = request.event.name
    if timed_out and isinstance(exc, TimeoutError):
        logger.error("%s handler did not reply in time", name)
        if not request.replied:
            request._fail_internal()
        return
    if request.replied:
        logger.error("%s handler raised after replying; the reply stands", name, exc_info=exc)
        return
    if isinstance(exc, ErrorReply):
        request._fail(exc.code, exc.message, temporary=exc.temporary)
    elif isinstance(exc, DisconnectReply):
        if not request._disconnect_or_fail(exc.code, exc.reason):
            logger.error("%s has no disconnect reply; replying internal server error", name)
            request._fail_internal()
    else:
        logger.error("%s handler failed", name, exc_info=exc)
        request._fail_internal()
