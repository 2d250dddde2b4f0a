"""The README's Python examples run as written.

Every fenced block tagged ``python`` is executed in a fresh namespace, in order. A block
preceded by the line ``<!-- not-tested -->`` is skipped (keep those rare). Blocks that define
``async def main()`` have it run with asyncio; a block may use the fixtures' values the test
puts in its namespace (``CENTRIFUGO`` is the session's running Centrifugo).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from .centrifugo import Centrifugo

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"(<!-- not-tested -->\n)?```python\n(.*?)```", re.DOTALL)


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    out = []
    for match in _BLOCK.finditer(text):
        if match.group(1):
            continue
        line = text.count("\n", 0, match.start(2)) + 1
        out.append((line, match.group(2)))
    return out


BLOCKS = _blocks()


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_readme_example_runs(line: int, code: str, request: pytest.FixtureRequest) -> None:
    namespace: dict[str, Any] = {"__name__": f"readme_line_{line}"}
    if "CENTRIFUGO" in code:
        centrifugo: Centrifugo = request.getfixturevalue("centrifugo")
        namespace["CENTRIFUGO"] = centrifugo
    exec(compile(code, f"README.md:{line}", "exec"), namespace)
    main = namespace.get("main")
    if main is not None and asyncio.iscoroutinefunction(main):
        asyncio.run(main())
