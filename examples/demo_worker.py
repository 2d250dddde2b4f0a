"""The example backend as the Python workers of ``scripts/demo --roadrunner`` serve it.

RoadRunner runs ``python -m centrifugo_types worker examples.demo_worker:router`` in each
worker (``server.command`` in .rr.yaml). Every typed request and its reply is printed: a
worker's stdout carries RoadRunner's frames only, so what it prints goes to stderr, which
RoadRunner logs.
"""

from __future__ import annotations

import os

from centrifugo_types import AnyCall, CallNext

from .backend import router


@router.intercept()
async def show(request: AnyCall, call_next: CallNext) -> None:
    """Print each typed request and its reply (the outermost interceptor)."""
    print(f"worker {os.getpid()} -> {type(request).__name__}: {request.message!r}")
    try:
        await call_next(request)
    except Exception as exc:
        print(f"worker {os.getpid()} <- raised {exc!r}: the router replies with it")
        raise
    print(f"worker {os.getpid()} <- {request.reply!r}")


__all__ = ["router"]
