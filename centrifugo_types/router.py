"""The router: a handler per proxy event, interceptors around them, exactly one reply.

::

    router = Router()

    @router.connect
    async def connect(call: ConnectCall) -> ConnectResult:
        return ConnectResult(user="42")

The router is transport-neutral: a transport builds a typed call and awaits
:meth:`Router.handle` (or :meth:`Router.handle_stream` for the subscribe streams), which always
ends with exactly one reply. A handler replies by returning its event's ``*Result`` (the same
as ``call.respond(result)``), through the call (``respond``, ``error``, ``disconnect``), or by
raising :class:`~centrifugo_types.ErrorReply` or :class:`~centrifugo_types.DisconnectReply`.
Whatever else ends it -- it raises, is cancelled from inside, returns ``None`` without
replying, returns the wrong type or overruns the deadline -- gets Centrifugo's ``error`` 100
"internal server error" (logged). Only the server's own cancellation of the call (shutdown)
propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from types import CoroutineType
from typing import Any, TypeAlias, TypeVar

import betterproto2

from ._call import AnyCall, ProxyCall, StreamCall, StreamSend
from ._generated import proxy_events as events
from ._generated.proxy_calls import ROUTE_FIELDS, Routes
from ._stepping import first_step, resume
from .errors import Code, DisconnectReply, ErrorReply, StartupError, StreamError

__all__ = ["ALL_EVENTS", "CallNext", "Handler", "Interceptor", "Lifespan", "Router"]

logger = logging.getLogger("centrifugo_types.router")

C = TypeVar("C", bound=AnyCall)
R = TypeVar("R", bound=betterproto2.Message)
ResponseT = TypeVar("ResponseT", bound=betterproto2.Message)

Handler: TypeAlias = Callable[[C], Awaitable[R | None]]
"""An event handler, ``Handler[ConnectCall, proxy.ConnectResult]``: takes the typed call and
returns the event's result (or ``None`` after replying through the call). The decorators
(``router.connect``, ...) are typed so per event."""
UnidirectionalHandler: TypeAlias = Callable[[Any], AsyncIterator[Any]]
"""A unidirectional stream handler: an async generator of the stream's items."""
CallNext: TypeAlias = Callable[[AnyCall], Awaitable[None]]
"""What an interceptor awaits to run the rest of the chain (inner interceptors, handler).
A result the rest returns is the call's reply by the time ``call_next`` returns."""
Interceptor: TypeAlias = Callable[[Any, CallNext], Awaitable[Any]]
"""``async def interceptor(call, call_next)``; it may return a result, as a handler does."""
_I = TypeVar("_I", bound=Interceptor)

Lifespan: TypeAlias = Callable[["Router"], contextlib.AbstractAsyncContextManager[Any]]
"""``lifespan(router)``: an async context manager factory run around serving, as in starlette
(open a database pool or an API client on enter, close it on exit)."""

ALL_EVENTS = "*"
"""Register an interceptor for every event."""


_Call: TypeAlias = Callable[[AnyCall], Awaitable[Any]]


class Router(Routes):
    """Maps proxy events to handlers and runs interceptors around them.

    ``timeout`` is the longest a handler may take to reply, in seconds (``None``: no limit of
    the router's own). Match Centrifugo's proxy ``timeout`` (1 s by default): past it
    Centrifugo answers the client with error 100 itself. Transports that know Centrifugo's
    deadline (gRPC sends it) shorten the limit so that the reply still arrives in time.
    ``lifespan`` runs around serving (see :meth:`lifespan_context`).
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
        self._included: list[Router] = []
        self._from_included: set[str] = set()  # what included routers handle: _what()
        self._stragglers: set[asyncio.Task[Any]] = set()
        self._lifespan_users = 0
        self._lifespan_started: asyncio.Future[None] | None = None
        self._lifespan_stack: contextlib.AsyncExitStack | None = None

    # -- lifespan ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan_context(self) -> AsyncIterator[None]:
        """Run the router's ``lifespan``, then those of the routers it includes (in include
        order; they exit in reverse), around serving.

        Every server enters this once before its first call and leaves it on shutdown. It is
        shared: entered again while running (two servers of one router in a process), it
        waits for the startup and runs the lifespans once; the last one out runs the
        shutdown. What a lifespan raises at startup is raised as
        :class:`~centrifugo_types.StartupError` (its ``__cause__``): the server stops.
        """
        if self._lifespan_users:
            self._lifespan_users += 1
            try:
                assert self._lifespan_started is not None
                await asyncio.shield(self._lifespan_started)
                yield
            finally:
                await self._leave_lifespan()
            return
        self._lifespan_users = 1
        started = self._lifespan_started = asyncio.get_running_loop().create_future()
        stack = self._lifespan_stack = contextlib.AsyncExitStack()
        try:
            try:
                await self._enter_lifespans(stack)
            except StartupError as exc:  # an included router's
                started.set_exception(exc)
                started.exception()  # retrieved: the other users get it through shield
                raise
            except Exception as exc:
                message = str(exc)
                detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
                failure = StartupError(f"the router's lifespan failed: {detail}")
                started.set_exception(failure)
                started.exception()
                raise failure from exc
            except BaseException:
                started.cancel()
                raise
            started.set_result(None)
            yield
        finally:
            await self._leave_lifespan()

    async def _enter_lifespans(self, stack: contextlib.AsyncExitStack) -> None:
        if self.lifespan is not None:
            await stack.enter_async_context(self.lifespan(self))
        for router in self._included:
            await stack.enter_async_context(router.lifespan_context())

    async def _leave_lifespan(self) -> None:
        self._lifespan_users -= 1
        if self._lifespan_users:
            return
        stack, self._lifespan_stack = self._lifespan_stack, None
        self._lifespan_started = None
        if stack is not None:
            await stack.aclose()

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
        if key is not None and event not in ROUTE_FIELDS:
            raise ValueError(f"{event} handlers cannot be registered per key")
        what = _what(event, key)
        if what in self._from_included:
            raise ValueError(f"{what} is handled by an included router")
        if spec.cardinality == "unary_stream":
            handler = _unidirectional(handler)
        if key is None:
            self._handlers[event] = handler
        else:
            self._keyed.setdefault(event, {})[key] = handler
        self._chains.clear()

    def add_interceptor(self, interceptor: Interceptor, *events_: str) -> None:
        """Run ``interceptor`` around the handlers of ``events_`` (none or ``"*"``: all).

        Interceptors for all events run outside per-event ones; within each group the first
        registered is the outermost. An interceptor awaits ``call_next(call)`` to go on,
        or replies (or raises, or returns a result) without calling it to short-circuit.
        They also wrap the handlers of routers included with :meth:`include`.
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

    def include(self, other: Router) -> None:
        """Serve ``other``'s handlers and rpc methods from this router too.

        ``other``'s interceptors wrap only its own handlers; this router's wrap everything.
        ``other``'s lifespan runs within this router's (:meth:`lifespan_context`). What
        ``other`` registers after this call is not included; this router's ``timeout``
        applies. Raises :class:`ValueError` when both routers handle the same event or rpc
        method.
        """
        if other in self._included:
            raise ValueError("this router already includes that one")
        if other._reaches(self):
            raise ValueError("a router cannot include itself, or a router that includes it")
        handlers = {event: other._intercepted(event, h) for event, h in other._handlers.items()}
        keyed = {
            event: {key: other._intercepted(event, h) for key, h in by_key.items()}
            for event, by_key in other._keyed.items()
        }
        clashes = [_what(event) for event in handlers if event in self._handlers]
        clashes += [
            _what(event, key)
            for event, by_key in keyed.items()
            for key in by_key
            if key in self._keyed.get(event, {})
        ]
        if clashes:
            raise ValueError(f"both routers handle {', '.join(clashes)}")
        self._handlers.update(handlers)
        self._from_included.update(_what(event) for event in handlers)
        for event, by_key in keyed.items():
            self._keyed.setdefault(event, {}).update(by_key)
            self._from_included.update(_what(event, key) for key in by_key)
        self._included.append(other)
        self._chains.clear()

    def _reaches(self, router: Router) -> bool:
        return router is self or any(inner._reaches(router) for inner in self._included)

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

    def _intercepted(self, event: str, terminal: _Call) -> _Call:
        """``terminal`` wrapped in this router's interceptors for ``event``."""
        chain = terminal
        interceptors = self._interceptors.get(ALL_EVENTS, []) + self._interceptors.get(event, [])
        for interceptor in reversed(interceptors):
            chain = _wrap(interceptor, chain)
        return chain

    def _chain(self, event: str) -> _Call:
        chain = self._chains.get(event)
        if chain is None:
            chain = self._chains[event] = self._intercepted(event, self._terminal(event))
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
        """Run the chain for the call ``request`` and return its response message.

        Never raises for what a handler does; only the caller's own cancellation propagates
        (after the handler saw it). ``deadline`` (a loop time, see
        :meth:`asyncio.loop.time`) shortens the router's ``timeout``, e.g. to the transport's.
        A handler that ignores its cancellation at the deadline is left running in the
        background (logged); the reply does not wait for it.
        """
        call = request
        when = self._deadline(deadline)  # counted from now, even if the first step blocks
        try:
            awaitable = self._chain(call.event.name)(call)
            coro = awaitable if type(awaitable) is CoroutineType else _await(awaitable)
            # Most handlers reply without ever suspending: run the first step at once and
            # arm the timeout only if there is a second one (the deadline is absolute).
            done, value = first_step(coro)
        except BaseException as exc:  # the first step runs synchronously: never our cancel
            _on_exception(call, exc)
            value = None
        else:
            if not done:
                value = await self._rest(call, coro, value, when)
        if value is not None:
            _returned(call, value)
        reply = call.reply
        if reply is None:
            logger.error("%s handler returned without replying", call.event.name)
            call._fail_internal()
            reply = call.reply
            assert reply is not None
        return reply

    async def _rest(
        self, call: AnyCall, coro: Coroutine[Any, Any, Any], waiting: Any, when: float | None
    ) -> Any:
        """Await the rest of a handler that suspended, until ``when``; its result, or
        ``None`` once what ended it became the reply. Raises only the caller's cancellation."""
        task = asyncio.current_task()
        assert task is not None
        cancels = task.cancelling()
        scope = asyncio.timeout_at(when)
        try:
            async with scope:
                return await resume(coro, waiting, scope, self._detached(call))
        except asyncio.CancelledError as exc:
            if task.cancelling() > cancels:
                raise  # the server's own cancellation (shutdown): the handler saw it, go on
            _on_exception(call, exc)  # cancelled from inside: it awaited a cancelled future
        except TimeoutError as exc:
            if not scope.expired():
                _on_exception(call, exc)
            else:
                logger.error("%s handler did not reply in time", call.event.name)
                if not call.replied:
                    call._fail_internal()
        except BaseException as exc:
            _on_exception(call, exc)
        return None

    def _detached(self, call: AnyCall) -> Callable[[asyncio.Task[Any]], None]:
        def detached(task: asyncio.Task[Any]) -> None:
            logger.warning(
                "%s handler goes on after its deadline (it ignores its cancellation or "
                "awaits something while handling it); the reply does not wait for it",
                call.event.name,
            )
            self._straggle(call.event.name, task)

        return detached

    def _straggle(self, name: str, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` (a handler left running after its reply) until it ends, then log
        how."""
        self._stragglers.add(task)
        since = asyncio.get_running_loop().time()

        def done(task: asyncio.Task[Any]) -> None:
            self._stragglers.discard(task)
            late = task.get_loop().time() - since
            if task.cancelled():
                logger.debug("%s handler left running after its reply ended cancelled", name)
            elif (exc := _failure(task)) is not None:
                logger.error("%s handler left running after its reply failed", name, exc_info=exc)
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    task.get_loop().call_soon(_reraise, exc)
            else:
                logger.warning(
                    "%s handler ignored its cancellation and ended %.2f s later; "
                    "its result is dropped",
                    name,
                    late,
                )

        task.add_done_callback(done)

    async def handle_stream(
        self, request: StreamCall[Any, Any, Any], send: StreamSend, *, deadline: float | None = None
    ) -> None:
        """Serve a subscribe stream: send the reply, then the handler's publications.

        ``send`` is the transport's sink; it gets the ``SubscribeResponse`` first (as soon as
        the handler replies, or the failure reply), then :class:`~centrifugo_types.proxy.
        Publication` messages. Returns when the stream should end normally; raises
        :class:`StreamError` when the handler failed after accepting (the transport ends the
        stream with an error, and Centrifugo resubscribes the client). As in :meth:`handle`,
        only the caller's own cancellation propagates, and a handler that does not reply by
        the deadline gets error 100 then, whether or not it stops when cancelled.
        """
        call = request
        call._bind(send)
        when = self._deadline(deadline)
        limit = None if when is None else max(0.0, when - asyncio.get_running_loop().time())
        name = call.event.name
        task = asyncio.ensure_future(_exits_caught(self._chain(name)(call)))
        replied = asyncio.ensure_future(call._replied.wait())
        try:
            await asyncio.wait({task, replied}, timeout=limit, return_when="FIRST_COMPLETED")
            if not call.replied:
                if task.done():
                    _stream_ended(call, task)
                    if not call.replied:
                        logger.error("%s handler returned without replying", name)
                else:
                    logger.error("%s handler did not reply in time", name)
                    self._abandon(name, task)
                if not call.replied:
                    call._fail_internal()
            async with call._lock:
                await call._flush()
            if not call.accepted:
                if not task.done():
                    self._abandon(name, task)
                return
            await asyncio.wait({task})
            failure = _failure(task)
            if failure is not None:
                if isinstance(failure, (KeyboardInterrupt, SystemExit)):
                    asyncio.get_running_loop().call_soon(_reraise, failure)
                logger.error(
                    "%s handler failed after accepting the subscription", name, exc_info=failure
                )
                raise StreamError(f"{name} handler failed: {failure!r}") from failure
            if (value := task.result()) is not None:
                _returned(call, value)  # after the reply: logged, the reply stands
        finally:
            replied.cancel()
            if not task.done() and task not in self._stragglers:
                task.cancel()
                await asyncio.wait({task})  # as a plain await would (a second cancel: stop)

    def _abandon(self, name: str, task: asyncio.Task[Any]) -> None:
        """Cancel a stream handler past its deadline without waiting for it."""
        task.cancel()
        self._straggle(name, task)


def _check_event(event: str) -> events.Event[Any, Any]:
    spec = events.EVENTS.get(event)
    if spec is None:
        raise ValueError(f"unknown proxy event {event!r}; known: {', '.join(events.EVENTS)}")
    return spec


def _what(event: str, key: str | None = None) -> str:
    """How errors name an event's handler, or that of one key (``rpc method 'time'``)."""
    return f"event {event!r}" if key is None else f"{event} {ROUTE_FIELDS[event]} {key!r}"


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _wrap(interceptor: Interceptor, inner: _Call) -> _Call:
    async def call(request: AnyCall) -> Any:
        async def call_next(next_request: AnyCall) -> None:
            value = await inner(next_request)
            if value is not None:
                _returned(next_request, value)
            if next_request is not request and next_request.replied and not request.replied:
                request._set_reply(next_request.reply)

        return await interceptor(request, call_next)

    return call


async def _unhandled(request: AnyCall) -> None:
    logger.warning("no handler for proxy event %r: replying not available", request.event.name)
    request._fail(Code.NOT_AVAILABLE, Code.NOT_AVAILABLE.message)


def _keyed_dispatch(field: str, handlers: dict[str, _Call], fallback: _Call | None) -> _Call:
    """The handler of the call's ``field`` value (an rpc's ``method``), else ``fallback``,
    else error 104 "method not found"."""

    async def dispatch(request: AnyCall) -> Any:
        key = getattr(request.message, field)
        handler = handlers.get(key)
        if handler is not None:
            return await handler(request)
        if fallback is not None:
            return await fallback(request)
        logger.info("no %s handler for %s %r", request.event.name, field, key)
        request._fail(Code.NOT_FOUND, Code.NOT_FOUND.message)
        return None

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


def _returned(call: AnyCall, value: Any) -> None:
    """Reply with the result a handler (or interceptor) returned."""
    name = call.event.name
    if call.replied:
        logger.error("%s handler returned a result after replying; the reply stands", name)
        return
    try:
        call.respond(value)
    except Exception as exc:
        logger.error("%s handler returned %r: %s", name, value, exc)
        call._fail_internal()


class _Exit(Exception):
    """A ``KeyboardInterrupt`` or ``SystemExit`` a stream handler raised, carried out of its
    task (asyncio would re-raise it out of the event loop at once, before the reply)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(repr(exc))
        self.exc = exc


async def _exits_caught(awaitable: Awaitable[Any]) -> Any:
    try:
        return await awaitable
    except (KeyboardInterrupt, SystemExit) as exc:
        raise _Exit(exc) from exc


def _failure(task: asyncio.Task[Any]) -> BaseException | None:
    """What ended a finished handler task (its own cancellation included)."""
    if task.cancelled():
        return asyncio.CancelledError("the handler was cancelled from inside")
    exc = task.exception()
    return exc.exc if isinstance(exc, _Exit) else exc


def _stream_ended(call: AnyCall, task: asyncio.Task[Any]) -> None:
    """The reply of a stream handler that ended before replying: what it returned or raised."""
    failure = _failure(task)
    if failure is not None:
        _on_exception(call, failure)
    elif (value := task.result()) is not None:
        _returned(call, value)


def _reraise(exc: BaseException) -> None:
    raise exc


def _on_exception(request: AnyCall, exc: BaseException) -> None:
    """Turn what a handler raised into the reply (unless it already replied).

    ``KeyboardInterrupt`` and ``SystemExit`` get their reply too, then are raised again from
    the event loop (they stop it, as asyncio does with them), so the process still exits.
    """
    name = request.event.name
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        asyncio.get_running_loop().call_soon(_reraise, exc)
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
