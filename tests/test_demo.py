"""``scripts/demo`` works: the example backend behind a real Centrifugo, a real client."""

from __future__ import annotations

import pytest

from examples import demo

pytestmark = pytest.mark.e2e


async def test_demo_runs_every_event(capsys: pytest.CaptureFixture[str]) -> None:
    assert await demo.main() == 0
    out = capsys.readouterr().out
    for typed in (
        "ConnectCall",
        "SubscribeCall",
        "PublishCall",
        "RpcCall",
        "RefreshCall",
        "SubRefreshCall",
        "SubscribeUnidirectionalCall",
    ):
        assert f"-> {typed}:" in out, typed
    assert out.rstrip().endswith("demo: OK")
