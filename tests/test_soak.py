"""The short soak (CI): real Centrifugo, three backend processes on one port (or RoadRunner and
three workers), clients of both SDKs, the four faults; nothing lost. ``scripts/soak`` runs the
long one (RELIABILITY.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .e2e_backend import require_roadrunner
from .soak import FAULTS, TRANSPORTS, Options, run

pytestmark = pytest.mark.e2e

CI = Options(
    transports=[],
    backends=3,
    python_clients=8,
    js_processes=1,
    js_clients=8,
    duration=40.0,
    fault_interval=10.0,
)
"""About a minute per transport."""


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_short_soak_loses_nothing(transport: str, tmp_path: Path) -> None:
    if transport == "roadrunner":
        require_roadrunner()
    options = Options(**{**vars(CI), "transports": [transport]})
    (report,) = await run(options, tmp_path)
    assert report["lost"] == 0, report["lost_examples"]
    assert report["proxied_requests"] > 3000  # the load ran
    events: dict[str, Any] = report["events"]
    for event in ("connect", "subscribe", "publish", "rpc"):
        row = events[event]
        assert row["ok"] + row["failed"] == row["attempted"] > 0
        assert row["backend_ok"] >= row["ok"]  # every result came from a backend
    assert events["refresh"]["backend_ok"] > 0  # sessions expired and were extended
    faults = {fault["fault"]: fault for fault in report["faults"]}
    assert list(faults) == list(FAULTS)
    slow = faults["slow handler"]
    if transport == "roadrunner":
        # A worker serves one call at a time: while rpc is slow, the calls queued behind the
        # slow ones in RoadRunner's pool are timed out by Centrifugo (1 s; RoadRunner drops
        # them from its queue), the slow ones by the router (0.5 s): none waits longer.
        assert slow["ops_failed"] + slow["centrifugo_timeouts"] > 0
        assert slow["failed_p50_ms"] < 1500
        assert "drained and exited normally" in faults["backend SIGTERM drain"]["detail"]
    else:
        # The slow handler's calls were answered by the router's timeout (0.5 s; an internal
        # error), not left to Centrifugo's (1 s), and did not pile up.
        assert slow["errors"]["rpc 100"] > 0
        assert slow["failed_p50_ms"] < 900
        assert "exited (0)" in faults["backend SIGTERM drain"]["detail"]
    # Every client is connected again soon after Centrifugo came back.
    assert 0 < faults["centrifugo restart"]["recovery_s"] < 15
    # The backends that ran through the whole load: no leak beyond noise.
    for memory in report["backend_memory"].values():
        (rss_start, rss_end), (fds_start, fds_end) = memory["rss_kib"], memory["fds"]
        assert rss_end <= rss_start * 1.25
        assert fds_end <= fds_start + 16
