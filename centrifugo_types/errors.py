"""Every exception of centrifugo-types, in one tree under :class:`CentrifugoTypesError`.

::

    CentrifugoTypesError
    ├── CodecError                  a message could not be read or written
    │   ├── DecodeError             (also ValueError) bytes that are no valid encoding
    │   │   └── JSONDecodeError     ... of Centrifugo's JSON dialect
    │   └── EncodeError             (also ValueError) field values that cannot be encoded
    │       └── JSONEncodeError     ... in Centrifugo's JSON dialect
    ├── HandlerReply                raised by a handler or interceptor to reply
    │   ├── ErrorReply              reply with Centrifugo's ``error``
    │   └── DisconnectReply         reply with Centrifugo's ``disconnect``
    ├── AlreadyRepliedError         (also RuntimeError) a call got a second reply
    ├── StreamError                 a subscribe stream's handler failed after accepting
    ├── StartupError                a server could not start (its lifespan failed, ...)
    └── ClientError                 the server API client
        ├── ApiError                Centrifugo answered with an ``error`` (``code``, ``message``)
        │   └── InternalError, UnknownChannelError, NotFoundError, BadRequestError,
        │       NotAvailableError, UnrecoverablePositionError, ConflictError
        ├── AuthenticationError     the API key was refused
        ├── UnsupportedMethodError  the server does not implement the method
        └── TransportError          no valid answer at all
            └── ApiTimeoutError     (also TimeoutError) no answer in time

:class:`Code` is the one table of Centrifugo's error codes: the router's own replies and the
client's :class:`ApiError` subclasses both take their codes and messages from it.

This module imports nothing else of the package, so that every part (the generated codecs
included) can import it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar

__all__ = [
    "AlreadyRepliedError",
    "ApiError",
    "ApiTimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CentrifugoTypesError",
    "ClientError",
    "Code",
    "CodecError",
    "ConflictError",
    "DecodeError",
    "DisconnectReply",
    "EncodeError",
    "ErrorReply",
    "HandlerReply",
    "InternalError",
    "JSONDecodeError",
    "JSONEncodeError",
    "NotAvailableError",
    "NotFoundError",
    "StartupError",
    "StreamError",
    "TransportError",
    "UnknownChannelError",
    "UnrecoverablePositionError",
    "UnsupportedMethodError",
]


class CentrifugoTypesError(Exception):
    """Base of every exception this package raises on purpose."""


# -- Centrifugo's codes ------------------------------------------------------------------------


class Code(IntEnum):
    """Centrifugo's own error codes (``Error.code``): below 400. Applications use 400-1999.

    ``message`` is how Centrifugo's client protocol words each one (what a proxy reply with that
    code says); ``api_message`` how its server API does (internal/apiproto/errors.go, which the
    tests read): they differ only for 104.
    """

    INTERNAL = 100
    UNAUTHORIZED = 101
    UNKNOWN_CHANNEL = 102
    PERMISSION_DENIED = 103
    NOT_FOUND = 104
    ALREADY_SUBSCRIBED = 105
    LIMIT_EXCEEDED = 106
    BAD_REQUEST = 107
    NOT_AVAILABLE = 108
    TOKEN_EXPIRED = 109
    EXPIRED = 110
    TOO_MANY_REQUESTS = 111
    UNRECOVERABLE_POSITION = 112
    CONFLICT = 113

    @property
    def message(self) -> str:
        """Centrifugo's message for this code."""
        return _MESSAGES[self]

    @property
    def api_message(self) -> str:
        """The server API's message for this code."""
        return _API_MESSAGES.get(self, _MESSAGES[self])


_MESSAGES = {
    Code.INTERNAL: "internal server error",
    Code.UNAUTHORIZED: "unauthorized",
    Code.UNKNOWN_CHANNEL: "unknown channel",
    Code.PERMISSION_DENIED: "permission denied",
    Code.NOT_FOUND: "method not found",
    Code.ALREADY_SUBSCRIBED: "already subscribed",
    Code.LIMIT_EXCEEDED: "limit exceeded",
    Code.BAD_REQUEST: "bad request",
    Code.NOT_AVAILABLE: "not available",
    Code.TOKEN_EXPIRED: "token expired",
    Code.EXPIRED: "expired",
    Code.TOO_MANY_REQUESTS: "too many requests",
    Code.UNRECOVERABLE_POSITION: "unrecoverable position",
    Code.CONFLICT: "conflict",
}
_API_MESSAGES = {Code.NOT_FOUND: "not found"}

_UINT32_MAX = 2**32 - 1


def check_code(code: int) -> int:
    """``code`` if it fits the uint32 of Centrifugo's ``Error.code`` / ``Disconnect.code``."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"a code must be an int, got {type(code).__name__}")
    if not 0 <= code <= _UINT32_MAX:
        raise ValueError(f"a code must be in 0..{_UINT32_MAX}, got {code}")
    return int(code)


# -- codecs ------------------------------------------------------------------------------------


class CodecError(CentrifugoTypesError):
    """A message could not be decoded or encoded. ``message_type`` is the type at hand,
    ``reason`` says what is wrong."""

    def __init__(self, reason: str, message_type: type[Any] | None = None) -> None:
        self.reason = reason
        self.message_type = message_type
        super().__init__(f"{self._where()}{reason}")

    def _where(self) -> str:
        return ""


class DecodeError(CodecError, ValueError):
    """Bytes that are not a valid encoding of the message type they were parsed as."""

    def _where(self) -> str:
        t = self.message_type
        return f"cannot decode {t.__qualname__}: " if t is not None else ""


class EncodeError(CodecError, ValueError):
    """A message whose field values cannot be encoded (wrong type, out of range, bad text)."""

    def _where(self) -> str:
        t = self.message_type
        return f"cannot encode {t.__qualname__}: " if t is not None else ""


class JSONDecodeError(DecodeError):
    """JSON that is not a valid encoding of the message type in Centrifugo's JSON dialect.

    ``path`` says where in the message the problem is (``"result.publications[2].offset"``,
    empty for the document itself) and ``position`` the character offset in the input when
    the JSON text itself is malformed.
    """

    def __init__(
        self,
        reason: str,
        message_type: type[Any] | None = None,
        path: str = "",
        position: int | None = None,
    ) -> None:
        detail = f"{path}: {reason}" if path else reason
        if position is not None:
            detail += f" (at char {position})"
        super().__init__(detail, message_type)
        self.path = path
        self.position = position


class JSONEncodeError(EncodeError):
    """A message that cannot be written in Centrifugo's JSON dialect: a value of the wrong type
    or out of range, a double that is NaN or infinite, a raw JSON field that holds no valid
    JSON. ``path`` says which field (``"data"``, ``"commands[0].publish.tags"``)."""

    def __init__(self, reason: str, message_type: type[Any] | None = None, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason, message_type)
        self.path = path


# -- handlers ----------------------------------------------------------------------------------


class HandlerReply(CentrifugoTypesError):
    """Raised by a handler (or an interceptor) to end the call with a reply: the router
    catches it and replies. Not an error of the package: a way to say "reply this"."""


class ErrorReply(HandlerReply):
    """Raise to reply with Centrifugo's ``error``.

    ``raise ErrorReply(403, "forbidden")`` is the same as ``call.error(403, "forbidden")``
    followed by ``return``. Centrifugo reserves codes below 400 for its own errors
    (:class:`Code`); application codes are 400-1999. ``temporary`` tells the client SDK that
    retrying may succeed.
    """

    def __init__(self, code: int, message: str, *, temporary: bool = False) -> None:
        super().__init__(code, message)
        self.code = check_code(code)
        self.message = message
        self.temporary = temporary

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class DisconnectReply(HandlerReply):
    """Raise to reply with Centrifugo's ``disconnect``.

    ``raise DisconnectReply(4501, "banned")`` is the same as ``call.disconnect(4501,
    "banned")`` followed by ``return``. Codes 4000-4499 let the client reconnect, 4500-4999
    are terminal. For an event whose reply has no ``disconnect``, the router replies error 100.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = check_code(code)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class AlreadyRepliedError(CentrifugoTypesError, RuntimeError):
    """A call got a second reply (``respond``, ``error`` or ``disconnect``)."""


class StreamError(CentrifugoTypesError):
    """A subscribe stream handler failed after its subscription was accepted."""


class StartupError(CentrifugoTypesError):
    """A server could not start: the router's lifespan failed at startup, the address is in
    use, a certificate cannot be read. The message says which."""


# -- the server API client ---------------------------------------------------------------------


class ClientError(CentrifugoTypesError):
    """Base of every error the API clients raise (besides :class:`EncodeError` for requests
    holding values that cannot be encoded)."""


class ApiError(ClientError):
    """Centrifugo answered the call with an error: ``code`` and ``message`` as it sent them,
    ``method`` the API method (``"publish"``). A subclass is raised for each error that
    Centrifugo's server API defines (``CODE`` and ``MESSAGE`` come from :class:`Code`); other
    codes raise ``ApiError`` itself."""

    code: int
    CODE: ClassVar[int] = 0
    MESSAGE: ClassVar[str] = ""

    def __init__(self, code: int, message: str, method: str = "") -> None:
        self.code = code
        self.message = message
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code} {message}")

    def __init_subclass__(cls, code: Code | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.CODE = int(code)
            cls.MESSAGE = code.api_message
            API_ERRORS[cls.CODE] = cls

    @staticmethod
    def for_code(code: int, message: str, method: str = "") -> ApiError:
        """The exception for an error reply: the subclass of ``code``, else ``ApiError``."""
        return API_ERRORS.get(code, ApiError)(code, message, method)


API_ERRORS: dict[int, type[ApiError]] = {}
"""The :class:`ApiError` subclass of each code the server API defines."""


class InternalError(ApiError, code=Code.INTERNAL):
    """100 internal server error: something went wrong inside Centrifugo."""


class UnknownChannelError(ApiError, code=Code.UNKNOWN_CHANNEL):
    """102 unknown channel: the channel's namespace is not configured."""


class NotFoundError(ApiError, code=Code.NOT_FOUND):
    """104 not found: e.g. an unknown RPC method, or a batch command this server lacks."""


class BadRequestError(ApiError, code=Code.BAD_REQUEST):
    """107 bad request: Centrifugo refused the request's values."""


class NotAvailableError(ApiError, code=Code.NOT_AVAILABLE):
    """108 not available: the feature is not enabled (e.g. presence or history off)."""


class UnrecoverablePositionError(ApiError, code=Code.UNRECOVERABLE_POSITION):
    """112 unrecoverable position: the stream no longer holds the requested position."""


class ConflictError(ApiError, code=Code.CONFLICT):
    """113 conflict."""


class AuthenticationError(ClientError):
    """Centrifugo refused the API key (HTTP 401, gRPC UNAUTHENTICATED)."""


class UnsupportedMethodError(ClientError):
    """The server does not implement the method: a Centrifugo PRO method called on the
    open-source server, or a method newer than the server (gRPC UNIMPLEMENTED, HTTP 404)."""

    def __init__(self, method: str, detail: str) -> None:
        self.method = method
        super().__init__(f"{method}: not implemented by this Centrifugo ({detail})")


class TransportError(ClientError):
    """No valid answer: the server could not be reached, the connection failed, or the answer
    was not a reply of the server API (an unexpected HTTP status, an undecodable body)."""


class ApiTimeoutError(TransportError, TimeoutError):
    """The call took longer than its timeout."""
