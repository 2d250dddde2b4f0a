"""Hypothesis strategies for every message type of both protocols.

Importing this module registers a strategy for every message class with hypothesis, so
``st.from_type(ConnectRequest)`` just works::

    from hypothesis import given, strategies as st
    import centrifugo_types.testing  # registers the strategies
    from centrifugo_types.proxy import ConnectRequest

    @given(st.from_type(ConnectRequest))
    def test_my_handler(request: ConnectRequest) -> None: ...

:func:`messages` gives the same strategies with knobs: ``payloads=json_payloads()`` puts
valid JSON into every ``bytes`` field (Centrifugo's JSON mode), ``allow_nan=True`` adds NaN to
``double`` fields, and ``allow_infinity=False`` keeps them finite (what JSON can carry: use it
with Centrifugo's JSON dialect, :mod:`centrifugo_types.json`). Values cover each proto3 type's
full range: int32/int64/uint32/uint64 bounds, any Unicode text (astral characters included,
surrogates excluded as UTF-8 can't carry them), arbitrary bytes, maps, repeated and nested
messages, and the recursive ``FilterNode`` to a bounded depth.

Needs the ``testing`` extra: ``pip install centrifugo-types[testing]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import betterproto2
from hypothesis import strategies as st

from ._generated import api_strategies, proxy_strategies

__all__ = ["json_payloads", "json_values", "message_types", "messages"]

M = TypeVar("M", bound=betterproto2.Message)

_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)


@cache
def json_values() -> st.SearchStrategy[Any]:
    """Python values that JSON can represent (null, bools, numbers, text, lists, objects)."""
    return st.recursive(
        _JSON_SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )


@cache
def json_payloads() -> st.SearchStrategy[bytes]:
    """Payload bytes as Centrifugo's JSON mode carries them: empty (absent) or a compact
    UTF-8 JSON document."""
    documents = json_values().map(
        lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode()
    )
    return st.just(b"") | documents


@dataclass(frozen=True)
class _Leaves:
    text: st.SearchStrategy[str]
    payload: st.SearchStrategy[bytes]
    double: st.SearchStrategy[float]
    float32: st.SearchStrategy[float]


@cache
def _strategies(
    payloads: st.SearchStrategy[bytes] | None, allow_nan: bool, allow_infinity: bool = True
) -> dict[type[Any], st.SearchStrategy[Any]]:
    leaves = _Leaves(
        text=st.text(),
        payload=st.binary() if payloads is None else payloads,
        double=st.floats(allow_nan=allow_nan, allow_infinity=allow_infinity),
        float32=st.floats(allow_nan=allow_nan, allow_infinity=allow_infinity, width=32),
    )
    return {**proxy_strategies.build(leaves), **api_strategies.build(leaves)}


def message_types() -> list[type[betterproto2.Message]]:
    """Every message class of both protocols (proxy first, then API, in .proto order)."""
    return list(_strategies(None, False))


def messages(
    message_type: type[M],
    *,
    payloads: st.SearchStrategy[bytes] | None = None,
    allow_nan: bool = False,
    allow_infinity: bool = True,
) -> st.SearchStrategy[M]:
    """A strategy for instances of ``message_type`` (any message of either protocol).

    ``payloads`` draws every ``bytes`` field (default: arbitrary bytes; pass
    :func:`json_payloads` for JSON-mode payloads). ``allow_nan`` lets ``double`` fields be NaN
    (off by default: NaN never compares equal, and JSON cannot carry it); ``allow_infinity``
    lets them be infinite (on by default; JSON cannot carry it either).
    """
    try:
        return _strategies(payloads, allow_nan, allow_infinity)[message_type]
    except KeyError:
        raise TypeError(f"{message_type!r} is not a centrifugo_types message class") from None


for _cls, _strategy in _strategies(None, False).items():
    st.register_type_strategy(_cls, _strategy)
