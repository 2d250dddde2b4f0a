"""An in-process transport for tests: calls are answered by a function of yours.

::

    def handler(request):
        if isinstance(request, api.PublishRequest):
            published.append(request)
            return api.PublishResult(offset=len(published))
        raise UnknownChannelError()  # any ApiError becomes the response's error

    client = ApiClient(transport=MockTransport(handler))

The handler gets each request message (``api.PublishRequest``, ...) and returns its result
(``api.PublishResult``), the whole response message, or ``None`` for an empty result; it may be
a coroutine function (with :class:`ApiClient` only). An :class:`~centrifugo_types.ApiError` it
raises becomes the response's ``error``; any other exception propagates. A batch is answered
command by command through the same handler.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from .._generated.api_methods import (
    ApiMethod,
    batch_commands,
    batch_response,
    error_message,
)
from ..errors import ApiError, ApiTimeoutError

__all__ = ["Handler", "MockTransport"]

Handler = Callable[[Any], Any]
"""``handler(request) -> result | response | None`` (or a coroutine function returning one)."""


def _response(method: ApiMethod[Any, Any, Any], answer: Any) -> Any:
    if isinstance(answer, method.response):
        return answer
    if method.result is not None and (answer is None or isinstance(answer, method.result)):
        return method.response(result=answer)
    raise TypeError(
        f"the handler answered {method.request.__name__} with {type(answer).__qualname__}; "
        f"expected {getattr(method.result, '__name__', None)}, "
        f"{method.response.__name__} or None"
    )


class MockTransport:
    """Answers every call with ``handler`` (see the module's docstring); both an async and a
    sync transport. ``calls`` records the requests it received, batch commands included."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[Any] = []

    async def _answer_async(self, method: ApiMethod[Any, Any, Any], request: Any) -> Any:
        if method.result is None:
            answers = [(m, await self._answer_async(m, r)) for m, r in batch_commands(request)]
            return batch_response(answers)
        self.calls.append(request)
        try:
            answer = self.handler(request)
            if inspect.isawaitable(answer):
                answer = await answer
        except ApiError as exc:
            return method.response(error=error_message(exc))
        return _response(method, answer)

    def _answer(self, method: ApiMethod[Any, Any, Any], request: Any) -> Any:
        if method.result is None:
            answers = [(m, self._answer(m, r)) for m, r in batch_commands(request)]
            return batch_response(answers)
        self.calls.append(request)
        try:
            answer = self.handler(request)
        except ApiError as exc:
            return method.response(error=error_message(exc))
        if inspect.isawaitable(answer):
            if inspect.iscoroutine(answer):
                answer.close()
            raise TypeError("a coroutine function handler needs the async ApiClient")
        return _response(method, answer)

    async def handle_async_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await self._answer_async(method, request)
        except TimeoutError as exc:
            raise ApiTimeoutError(f"{method.path}: no answer within {timeout}s") from exc

    def handle_request(
        self, method: ApiMethod[Any, Any, Any], request: Any, timeout: float | None
    ) -> Any:
        return self._answer(method, request)

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        pass
