"""The optional C codec of the generated messages (``_speedups.c``; see ``_codec_compiler``)."""

from collections.abc import Callable
from typing import Any

K_MESSAGE: int

class Message:
    """The C codec of one message class; ``py_enc``/``py_dec`` take every call it does not."""

    def __init__(
        self,
        cls: type[Any],
        py_enc: Callable[..., Any],
        py_dec: Callable[..., Any],
        py_bytes: Callable[..., Any],
        init: Callable[[], None],
    ) -> None: ...
    @property
    def state(self) -> str: ...
    def encode(self, m: Any, out: bytearray, /) -> None: ...
    def to_bytes(self, m: Any, /) -> bytes: ...
    def decode(self, cls: type[Any], data: bytes, pos: int, end: int, depth: int, /) -> Any: ...
    def setup(self, fields: Any, zero: Any, recursive: bool, /) -> None: ...
