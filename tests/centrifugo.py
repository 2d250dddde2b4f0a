"""A real Centrifugo for end-to-end tests: the fixtures (the process helpers live in
``examples/centrifugo.py``, shared with the demo).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from examples.centrifugo import (
    API_KEY,
    ROOT,
    Centrifugo,
    base_config,
    centrifugo_binary,
    free_port,
    merge,
    proxy_config,
    run_centrifugo,
)

__all__ = [
    "API_KEY",
    "ROOT",
    "Centrifugo",
    "StartCentrifugo",
    "base_config",
    "centrifugo",
    "centrifugo_binary",
    "free_port",
    "merge",
    "proxy_config",
    "run_centrifugo",
    "start_centrifugo",
]

StartCentrifugo = Callable[[dict[str, Any] | None], Centrifugo]


@pytest.fixture(scope="session")
def start_centrifugo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartCentrifugo]:
    """Start Centrifugo processes with extra config; all are stopped at session end."""
    with contextlib.ExitStack() as stack:

        def start(extra_config: dict[str, Any] | None = None) -> Centrifugo:
            workdir = tmp_path_factory.mktemp("centrifugo")
            return stack.enter_context(run_centrifugo(workdir, extra_config))

        yield start


@pytest.fixture(scope="session")
def centrifugo(start_centrifugo: StartCentrifugo) -> Centrifugo:
    """A Centrifugo without proxies, shared by the session."""
    return start_centrifugo(None)
