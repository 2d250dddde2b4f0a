"""The e2e suite's router as RoadRunner's Python workers serve it.

``.rr.yaml``'s ``server.command`` runs ``python -m centrifugo_types worker
tests.roadrunner_app:router`` (tests/e2e_backend.py, ``roadrunner_backend``). The router is
``e2e_router``, recording to the file named by ``CENTRIFUGO_TYPES_E2E_RECORD``, plus rpc
methods that only make sense in a worker:

- ``pid``: the worker's process id;
- ``api``: publishes ``{"n": N}`` to the channel given, through RoadRunner's RPC, then returns
  that channel's history (the API client inside a worker);
- ``print``: prints to stdout (which must not reach RoadRunner's pipe) and answers;
- ``slow``: answers after 50 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from centrifugo_types import RpcCall, proxy
from centrifugo_types.roadrunner import RoadRunnerApiClient

from .e2e_backend import RECORD_ENV, FileRecorder, Recorder, e2e_router

_records = os.environ.get(RECORD_ENV)
router = e2e_router(FileRecorder(Path(_records)) if _records else Recorder())
_api = RoadRunnerApiClient(timeout=0.4)  # RR_RPC: set by RoadRunner (rpc.listen)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@router.rpc("pid")
async def pid(request: RpcCall) -> None:
    request.respond(proxy.RpcResult(data=_json({"pid": os.getpid()})))


@router.rpc("api")
async def api(request: RpcCall) -> None:
    params = request.json()
    published = await _api.publish(channel=params["channel"], data={"n": params["n"]})
    history = await _api.history(channel=params["channel"], limit=10)
    request.respond(
        proxy.RpcResult(
            data=_json(
                {
                    "offset": published.offset,
                    "history": [json.loads(pub.data) for pub in history.publications],
                }
            )
        )
    )


@router.rpc("print")
async def stray_print(request: RpcCall) -> None:
    print("a stray print from a handler")
    sys.stdout.write("and a write to sys.stdout\n")
    os.write(1, b"and a write to file descriptor 1\n")
    request.respond(proxy.RpcResult(data=_json("printed")))


@router.rpc("slow")
async def slow(request: RpcCall) -> None:
    await asyncio.sleep(0.05)
    request.respond(proxy.RpcResult(data=_json("slow")))
