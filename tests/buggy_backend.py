"""A backend with a bug for the fuzzer to find: connect assumes its data is an object with a
``token`` (``tests/test_fuzz.py``)."""

from __future__ import annotations

from centrifugo_types import Router, proxy
from centrifugo_types.calls import ConnectCall

router = Router()


@router.connect
async def connect(request: ConnectCall) -> None:
    token = request.json()["token"]  # the bug: any other JSON crashes the handler
    request.respond(proxy.ConnectResult(user=str(token)))
