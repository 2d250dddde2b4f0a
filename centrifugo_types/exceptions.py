"""Exceptions a proxy handler raises to reply, and the errors of the request layer."""

from __future__ import annotations

__all__ = ["AlreadyRepliedError", "Disconnect", "ProxyError"]

_UINT32_MAX = 2**32 - 1


def check_code(code: int) -> int:
    """``code`` if it fits the uint32 of Centrifugo's ``Error.code`` / ``Disconnect.code``."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"a code must be an int, got {type(code).__name__}")
    if not 0 <= code <= _UINT32_MAX:
        raise ValueError(f"a code must be in 0..{_UINT32_MAX}, got {code}")
    return code


class ProxyError(Exception):
    """Raise in a handler (or an interceptor) to reply with Centrifugo's ``error``.

    ``raise ProxyError(403, "forbidden")`` is the same as ``request.error(403, "forbidden")``
    followed by ``return``. Centrifugo reserves codes below 400 for its own errors (100
    internal, 101 unauthorized, 103 permission denied, ...); application codes are 400-1999.
    ``temporary`` tells the client SDK that retrying may succeed.
    """

    def __init__(self, code: int, message: str, *, temporary: bool = False) -> None:
        super().__init__(code, message)
        self.code = check_code(code)
        self.message = message
        self.temporary = temporary

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Disconnect(Exception):
    """Raise in a handler (or an interceptor) to reply with Centrifugo's ``disconnect``.

    ``raise Disconnect(4501, "banned")`` is the same as ``request.disconnect(4501, "banned")``
    followed by ``return``. Codes 4000-4499 let the client reconnect, 4500-4999 are terminal.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = check_code(code)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class AlreadyRepliedError(RuntimeError):
    """A request got a second reply (``respond``, ``error`` or ``disconnect``)."""
