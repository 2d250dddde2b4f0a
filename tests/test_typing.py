"""Handlers are typed per event: ``mypy --strict`` rejects a handler returning the wrong result.

Runs mypy (``mypy.api``) on small handler modules written to a temporary directory, with the
project's mypy cache (``scripts/test`` runs mypy first, so the package is already analysed).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent

HEADER = """\
from centrifugo_types import ConnectCall, RefreshCall, Router, RpcCall, SubscribeCall, proxy

router = Router()
"""

CORRECT = """\
@router.connect
async def connect(call: ConnectCall) -> proxy.ConnectResult:
    return proxy.ConnectResult(user="42")


@router.subscribe
async def subscribe(call: SubscribeCall) -> None:
    call.respond()


@router.rpc("time")
async def current_time(call: RpcCall) -> proxy.RpcResult | None:
    if not call.user:
        call.error(401, "unauthorized")
        return None
    return proxy.RpcResult(data=b"1")
"""

WRONG = """\
@router.connect
async def connect(call: ConnectCall) -> proxy.RpcResult:
    return proxy.RpcResult()


@router.rpc("time")
async def current_time(call: RpcCall) -> proxy.ConnectResult:
    return proxy.ConnectResult()


@router.subscribe
async def subscribe(call: ConnectCall) -> None:
    call.respond()


@router.refresh
async def refresh(call: RefreshCall) -> proxy.RefreshResult:
    if call.user:
        return proxy.RefreshResult(expire_at=1)
"""


def mypy(tmp_path: Path, body: str) -> tuple[int, str]:
    module = tmp_path / "handlers.py"
    module.write_text(HEADER + "\n\n" + textwrap.dedent(body))
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--python-version=3.11",
            "--config-file=",  # not the project's: its `files` would be checked too
            f"--cache-dir={ROOT / '.mypy_cache'}",
            "--no-error-summary",
            str(module),
        ]
    )
    return status, stdout + stderr


def test_mypy_accepts_handlers_returning_their_events_result(tmp_path: Path) -> None:
    status, output = mypy(tmp_path, CORRECT)
    assert status == 0, output


def test_mypy_rejects_a_handler_returning_another_events_result(tmp_path: Path) -> None:
    status, output = mypy(tmp_path, WRONG)
    assert status == 1, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert len(errors) == 4, output
    # the decorators are typed per event (generated: ``Routes`` in _generated/proxy_calls.py)
    assert '"connect"' in errors[0] and "RpcResult" in errors[0]
    assert "_RpcCallHandler" in errors[1] and "ConnectResult" in errors[1]
    assert '"subscribe"' in errors[2] and "Callable[[ConnectCall]" in errors[2]
    assert "Missing return statement" in errors[3]  # a path without a result


def test_request_field_views_have_the_fields_types(tmp_path: Path) -> None:
    # The views are one generated line per field (a property typed by ``_Field[T]``).
    body = """\
    def read(call: ConnectCall) -> None:
        client: str = call.client
        channels: list[str] = list(call.channels)
        data: bytes = call.data
        wrong: int = call.client
        call.client = "x"
    """
    status, output = mypy(tmp_path, body)
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 2, output
    assert 'expression has type "str", variable has type "int"' in errors[0]
    assert "client" in errors[1]
