"""Importing the package is cheap: the root module and the JSON facade load what a name needs
on first use, and every public name still resolves (and type-checks: tests/test_typing.py).
Each check that looks at ``sys.modules`` runs in a fresh interpreter."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import centrifugo_types
from centrifugo_types import errors
from centrifugo_types.calls import CALL_CLASSES

from .centrifugo import ROOT


def fresh(code: str) -> object:
    """What ``code`` (a fresh interpreter's statements) leaves in ``result``, through JSON."""
    program = f"import json, sys\n{code}\nprint(json.dumps(result))"
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


HEAVY = [
    "centrifugo_types.router",
    "centrifugo_types._generated.proxy",
    "centrifugo_types._generated.api",
    "betterproto2",
    "grpclib",
]


def test_import_loads_nothing_heavy_until_a_name_is_used() -> None:
    loaded = fresh(
        f"import centrifugo_types\nheavy = {HEAVY!r}\n"
        "before = [m for m in heavy if m in sys.modules]\n"
        "centrifugo_types.DecodeError, centrifugo_types.CENTRIFUGO_VERSION\n"
        "errors_only = [m for m in heavy if m in sys.modules]\n"
        "centrifugo_types.Router\n"
        "result = [before, errors_only, [m for m in heavy if m in sys.modules]]"
    )
    # The router needs the proxy messages, not grpclib (the service classes load apart).
    assert loaded == [[], [], [m for m in HEAVY if "api" not in m and m != "grpclib"]]


def test_every_public_name_resolves() -> None:
    names = centrifugo_types.__all__
    assert {cls.__name__ for cls in CALL_CLASSES.values()} <= set(names)
    assert set(errors.__all__) <= set(names)
    for name in names:
        assert getattr(centrifugo_types, name) is not None, name
    assert set(names) <= set(dir(centrifugo_types))
    star: dict[str, object] = {}
    exec("from centrifugo_types import *", star)
    assert set(names) <= set(star)
    assert centrifugo_types.proxy.ConnectRequest is not None  # submodules too
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        centrifugo_types.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_the_names_type_checkers_see_are_the_runtime_names() -> None:
    """The root module lists its names twice (the imports under TYPE_CHECKING, the lazy table):
    they agree."""
    tree = ast.parse(Path(centrifugo_types.__file__).read_text())
    static: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.names[0].name != "*":
                    static |= {alias.asname or alias.name for alias in statement.names}
                if isinstance(statement, ast.AnnAssign) and ast.unparse(statement.target) == (
                    "__all__"
                ):
                    assert statement.value is not None
                    listed = set(ast.literal_eval(statement.value))
    calls = {cls.__name__ for cls in CALL_CLASSES.values()}
    runtime = set(centrifugo_types.__all__)
    assert runtime == listed | set(errors.__all__) | calls
    assert static == listed - {"CENTRIFUGO_VERSION", "__version__"}


def test_json_loads_a_schemas_codec_on_first_use() -> None:
    loaded = fresh(
        "from centrifugo_types import json as cj\n"
        "from centrifugo_types.proxy import ConnectResult\n"
        "proxy_only = cj.dumps(ConnectResult(user='u')).decode()\n"
        "api_loaded = 'centrifugo_types._generated.api_json' in sys.modules\n"
        "result = [proxy_only, api_loaded, 'centrifugo_types._generated.api' in sys.modules]"
    )
    assert loaded == ['{"user":"u"}', False, False]


def test_json_codecs_load_once_under_concurrent_first_use() -> None:
    replies = fresh(
        "import threading\n"
        "from centrifugo_types import json as cj\n"
        "from centrifugo_types.api import PublishRequest\n"
        "result, start = [], threading.Barrier(8)\n"
        "def use():\n"
        "    start.wait()\n"
        '    result.append(cj.loads(PublishRequest, b\'{"channel":"c"}\').channel)\n'
        "threads = [threading.Thread(target=use) for _ in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]"
    )
    assert replies == ["c"] * 8


@pytest.mark.parametrize("module", ["api", "proxy"])
def test_messages_load_without_grpclib_and_the_service_classes_on_first_use(module: str) -> None:
    """The gRPC service classes live in a generated module of their own (``*_grpc.py``): the
    messages do not import grpclib, and the public module still offers the classes."""
    loaded = fresh(
        f"import centrifugo_types.{module} as m\n"
        "before = 'grpclib' in sys.modules\n"
        "names = list(m.SERVICE_CLASSES)\n"
        "star = {}\n"
        f"exec('from centrifugo_types.{module} import *', star)\n"
        "classes = [getattr(m, n).__name__ for n in names]\n"
        "result = [before, names, classes, 'grpclib' in sys.modules,\n"
        "          all(n in star and n in dir(m) for n in names)]"
    )
    assert isinstance(loaded, list)
    before, names, classes, after, everywhere = loaded
    assert before is False
    assert names  # both protos declare a service: a stub and a base each
    assert classes == names
    assert after is True
    assert everywhere is True
    missing = f"module 'centrifugo_types.{module}' has no attribute 'NoSuchStub'"
    with pytest.raises(AttributeError, match=missing):
        getattr(importlib.import_module(f"centrifugo_types.{module}"), "NoSuchStub")  # noqa: B009
