"""Module attributes imported on first use (PEP 562), for the public message modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_attributes(
    namespace: dict[str, Any], source: str, names: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__`` that take ``names`` from module ``source``
    (absolute) on first use: the gRPC service classes of ``centrifugo_types.api`` and
    ``.proxy``, which would otherwise import grpclib with the messages."""
    lazy = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name not in lazy:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        namespace[name] = value  # the next lookup does not come here
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *lazy})

    return __getattr__, __dir__
