"""Every Centrifugo schema since v5.0 upgrades cleanly (issue 12): the upgrade matrix.

For each proxy.proto + api.proto pair Centrifugo released (tests/data/centrifugo-protos/, one
folder per distinct pair) and for synthetic edits of the pinned schema, in a temporary copy of
the tree:

- ``generate``: ``scripts/update-protos --from DIR VERSION`` succeeds and prints a changelog;
- ``differential``: every message of that schema survives a round trip through our binary
  codec, and upb (google.protobuf, compiled from the same pair) reads our bytes as we do and
  writes bytes we read back as the same message;
- ``mypy_generated``: ``mypy --strict centrifugo_types`` finds no error in ``_generated/``;
- ``import``, ``serve``: the whole package imports and, with an empty router, answers one
  request per event of the schema over every transport: gRPC (a real server on 127.0.0.1,
  streams included), HTTP (the ASGI app) and RoadRunner (the worker's frame handler);
- ``mypy``: ``mypy --strict centrifugo_types`` passes.

The schemas run in parallel (one thread per core, each driving subprocesses), once per session;
each stage is a separate test that reads the shared results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAIRS = Path(__file__).resolve().parent / "data" / "centrifugo-protos"

pytestmark = pytest.mark.upgrade_matrix

#: The hand-written modules the generated code imports.
GENERATED_NEEDS = (
    "_runtime.py",
    "_json_runtime.py",
    "_codec_compiler.py",
    "_json_compiler.py",
    "errors.py",
)

#: What the tree copy needs: the package, the generator, the scripts and the project files.
COPIED = ("centrifugo_types/", "codegen/", "protos/", "scripts/", "pyproject.toml", "uv.lock")


# -- synthetic edits of the pinned schema ------------------------------------------------------


def _insert_before_closing(text: str, opener: str, addition: str) -> str:
    start = text.index(opener)
    end = text.index("\n}", start)
    return text[:end] + addition + text[end:]


def _add_event(proxy: str, api: str) -> tuple[str, str]:
    proxy = _insert_before_closing(
        proxy,
        "service CentrifugoProxy {",
        "\n  rpc Custom(CustomRequest) returns (CustomResponse);",
    )
    proxy += textwrap.dedent(
        """
        message CustomRequest {
          string client = 1;
          bytes data = 2;
          string b64data = 3;
        }

        message CustomResult {
          bytes data = 1;
          string b64data = 2;
        }

        message CustomResponse {
          CustomResult result = 1;
          Error error = 2;
          Disconnect disconnect = 3;
        }
        """
    )
    return proxy, api


def _add_method(proxy: str, api: str) -> tuple[str, str]:
    api = _insert_before_closing(
        api,
        "service CentrifugoApi {",
        "\n    rpc Custom (CustomRequest) returns (CustomResponse) {}",
    )
    api += textwrap.dedent(
        """
        message CustomRequest {
          string channel = 1;
          int64 limit = 2;
        }

        message CustomResult {
          repeated string items = 1;
        }

        message CustomResponse {
          Error error = 1;
          CustomResult result = 2;
        }
        """
    )
    return proxy, api


def _add_field(proxy: str, api: str) -> tuple[str, str]:
    proxy = _insert_before_closing(proxy, "message ConnectRequest {", "\n  string extra = 99;")
    api = _insert_before_closing(api, "message PublishRequest {", "\n  repeated int64 extra = 99;")
    return proxy, api


def _remove_event(proxy: str, api: str) -> tuple[str, str]:
    lines = [line for line in proxy.splitlines() if "rpc SubRefresh(" not in line]
    assert len(lines) == len(proxy.splitlines()) - 1, "no SubRefresh rpc to remove"
    return "\n".join(lines) + "\n", api


SYNTHETIC: dict[str, Callable[[str, str], tuple[str, str]]] = {
    "pinned+event": _add_event,
    "pinned+method": _add_method,
    "pinned+field": _add_field,
    "pinned-event": _remove_event,
}


def schemas() -> list[str]:
    released = sorted(
        (p.name for p in PAIRS.iterdir() if (p / "proxy.proto").is_file()),
        key=lambda v: tuple(int(x) for x in v.split(".")),
    )
    return released + list(SYNTHETIC)


# -- the work for one schema -------------------------------------------------------------------


@dataclass
class Stage:
    ok: bool
    output: str
    seconds: float


@dataclass
class Run:
    name: str
    stages: dict[str, Stage] = field(default_factory=dict)


DIFFERENTIAL = r"""
import importlib
import sys
from pathlib import Path

from grpc_tools import protoc
from hypothesis import HealthCheck, given, settings, strategies as st

gen_root, upb_out, protos = (Path(a) for a in sys.argv[1:4])
status = protoc.main(
    ["protoc", f"-I{protos}", f"--python_out={upb_out}", "proxy.proto", "api.proto"]
)
assert status == 0, "protoc --python_out failed"
sys.path[:0] = [str(gen_root), str(upb_out)]

class Leaves:
    text = st.text(max_size=8)
    payload = st.sampled_from([b"", b"{}", b'{"a":[1,2]}', b'"x"', b"\x00\xff"])
    double = st.floats(allow_nan=False)
    float32 = st.floats(allow_nan=False, width=32)

checked = 0
for module in ("proxy", "api"):
    ours = importlib.import_module(f"gen._generated.{module}")
    upb = importlib.import_module(f"{module}_pb2")
    strategies = importlib.import_module(f"gen._generated.{module}_strategies").build(Leaves())
    for cls, strategy in strategies.items():
        upb_cls = getattr(upb, cls.__name__, None)
        if upb_cls is None:  # betterproto2 renames a few (RPCRequest -> RpcRequest)
            upb_cls = next(
                getattr(upb, n) for n in upb.DESCRIPTOR.message_types_by_name
                if n.lower() == cls.__name__.lower()
            )

        def checker(cls, upb_cls):
            def check(message):
                data = bytes(message)
                assert cls.parse(data) == message, "our round trip"
                theirs = upb_cls.FromString(data)
                again = theirs.SerializeToString(deterministic=True)
                assert cls.parse(again) == message, "upb's bytes of our message"
            return check

        run = settings(
            max_examples=4, database=None, deadline=None, suppress_health_check=list(HealthCheck)
        )(given(strategy)(checker(cls, upb_cls)))
        run()
        checked += 1
print(f"{checked} messages checked")
"""

SERVE = r"""
import asyncio
import dataclasses
import json

import grpclib.client

from centrifugo_types import Router, grpc, http, roadrunner
from centrifugo_types import json as cjson
from centrifugo_types._generated import proxy_events
from centrifugo_types._goridge import Flag, Frame, read_frame

EVENTS = proxy_events.EVENTS
router = Router()
service = grpc.ProxyService(router)
assert set(service.__mapping__()) == {e.path for e in EVENTS.values()}
app = http.ProxyApp(router)
worker = roadrunner.Worker(router)


def check(transport, event, reply):
    # An empty router answers every event as unhandled: the event's reply, with error 108
    # where the reply has an error field.
    assert isinstance(reply, event.response_type), (transport, event.name, reply)
    if event.with_error is not None:
        assert reply.error.code == 108, (transport, event.name, reply)


async def over_http(event):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": app.paths[event.name], "root_path": "",
        "headers": [(b"content-type", b"application/json")],
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 200, (event.name, sent)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return cjson.loads(event.response_type, body)


async def over_roadrunner(event):
    [type_name] = [k for k, e in roadrunner.EVENT_TYPES.items() if e is event]
    context = json.dumps({"type": [type_name]}).encode()
    body = bytes(event.request_type())
    reader = asyncio.StreamReader()
    reader.feed_data(await worker.answer(Frame(Flag.PROTO, context + body, (len(context),))))
    reader.feed_eof()
    reply = await read_frame(reader)
    assert reply is not None and not reply.is_error, (event.name, reply)
    return event.response_type.parse(reply.payload)


def first_input(event):
    # What the first message of the call carries: the request, wrapped for a stream of them.
    if event.unwrap_input is None:
        return event.input_type()
    for field in dataclasses.fields(event.input_type):
        message = event.input_type(**{field.name: event.request_type()})
        if event.unwrap_input(message)[0] is not None:
            return message
    raise AssertionError(f"no field of {event.input_type} carries {event.request_type}")


async def over_grpc(channel, event):
    request = first_input(event)
    if event.cardinality == "unary_unary":
        method = grpclib.client.UnaryUnaryMethod(
            channel, event.path, event.input_type, event.output_type
        )
        return await method(request)
    cls = (
        grpclib.client.UnaryStreamMethod
        if event.cardinality == "unary_stream"
        else grpclib.client.StreamStreamMethod
    )
    async with cls(channel, event.path, event.input_type, event.output_type).open() as stream:
        await stream.send_message(request, end=True)
        first = await stream.recv_message()
        assert await stream.recv_message() is None, event.name  # unhandled: one reply, the end
    return first


async def main():
    counts = {"gRPC": 0, "HTTP": 0, "RoadRunner": 0}
    async with grpc.ProxyServer(router, host="127.0.0.1", port=0) as server:
        channel = grpclib.client.Channel("127.0.0.1", server.port)
        try:
            for event in EVENTS.values():
                reply = await over_grpc(channel, event)
                if event.wrap_output is not None:  # a stream: the reply comes wrapped
                    assert isinstance(reply, event.output_type), (event.name, reply)
                    replies = vars(reply).values()
                    reply = next(v for v in replies if isinstance(v, event.response_type))
                check("gRPC", event, reply)
                counts["gRPC"] += 1
        finally:
            channel.close()
    for event in EVENTS.values():
        if event.name in app.paths:
            check("HTTP", event, await over_http(event))
            counts["HTTP"] += 1
        if event in roadrunner.EVENT_TYPES.values():
            check("RoadRunner", event, await over_roadrunner(event))
            counts["RoadRunner"] += 1
    assert counts["gRPC"] == len(EVENTS), counts
    print(", ".join(f"{n} {t} events answered" for t, n in counts.items()))

asyncio.run(main())
"""


def _copy_tree(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *COPIED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (dest / ".venv").symlink_to(ROOT / ".venv")


def _pair(name: str, dest: Path) -> tuple[Path, str]:
    """The proto folder to upgrade from, and its version."""
    if name in SYNTHETIC:
        proxy, api = SYNTHETIC[name](
            (ROOT / "protos" / "proxy.proto").read_text(),
            (ROOT / "protos" / "api.proto").read_text(),
        )
        dest.mkdir()
        (dest / "proxy.proto").write_text(proxy)
        (dest / "api.proto").write_text(api)
        return dest, "99.0.0"
    return PAIRS / name, name


def run_schema(name: str, work: Path, mypy_cache: Path) -> Run:
    run = Run(name)
    tree = work / "tree"
    tree.mkdir(parents=True)
    _copy_tree(tree)
    python = str(ROOT / ".venv" / "bin" / "python")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(work)}
    env.pop("PYTHONPATH", None)

    def stage(stage_name: str, args: list[str], cwd: Path = tree) -> bool:
        start = time.perf_counter()
        result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
        output = result.stdout + result.stderr
        run.stages[stage_name] = Stage(result.returncode == 0, output, time.perf_counter() - start)
        return result.returncode == 0

    protos, version = _pair(name, work / "protos")
    if not stage(
        "generate", [str(tree / "scripts" / "update-protos"), "--from", str(protos), version]
    ):
        return run
    # The generated package with only the modules it imports (its runtimes and their errors),
    # without the rest of the hand-written layer: importable as ``gen._generated``.
    gen_root = work / "gen_root"
    package = gen_root / "gen"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in ("_generated", *GENERATED_NEEDS):
        (package / name).symlink_to(tree / "centrifugo_types" / name)
    upb_out = work / "upb"
    upb_out.mkdir()
    stage(
        "differential",
        [python, "-c", DIFFERENTIAL, str(gen_root), str(upb_out), str(tree / "protos")],
        cwd=work,
    )
    if stage("import", [python, "-c", "import centrifugo_types.client, centrifugo_types.testing"]):
        stage("serve", [python, "-c", SERVE])
    # One mypy run over the package; its errors in _generated/ fail the codegen-only stage.
    stage(
        "mypy",
        [python, "-m", "mypy", "--strict", "--cache-dir", str(mypy_cache), "centrifugo_types"],
    )
    checked = run.stages["mypy"]
    generated = [
        line
        for line in checked.output.splitlines()
        if line.startswith("centrifugo_types/_generated/")
    ]
    run.stages["mypy_generated"] = Stage(not generated, "\n".join(generated), checked.seconds)
    return run


@pytest.fixture(scope="session")
def matrix() -> Iterator[dict[str, Run]]:
    """Run every schema, in parallel; ``{schema: Run}``."""
    names = schemas()
    workers = max(1, min(len(names), os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="upgrade-matrix-") as tmp:
        base = Path(tmp)

        def one(index_name: tuple[int, str]) -> Run:
            index, name = index_name
            # One mypy cache per worker thread slot: third-party stubs are checked once.
            cache = base / f"mypy-cache-{index % workers}"
            return run_schema(name, base / name, cache)

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            runs = list(pool.map(one, enumerate(names)))
        elapsed = time.perf_counter() - start
        sys.stderr.write(f"\nupgrade matrix: {len(names)} schemas in {elapsed:.0f} s\n")
        yield {run.name: run for run in runs}


def _check(matrix: dict[str, Run], name: str, stage_name: str) -> None:
    run = matrix[name]
    if stage_name not in run.stages:
        failed = next((s for s, r in run.stages.items() if not r.ok), "?")
        pytest.fail(f"{name}: {stage_name} did not run because {failed} failed")
    result = run.stages[stage_name]
    assert result.ok, f"{name}: {stage_name} failed:\n{result.output[-4000:]}"


def _cases(stages: tuple[str, ...]) -> list[object]:
    return [pytest.param(name, s, id=f"{name}-{s}") for name in schemas() for s in stages]


@pytest.mark.parametrize(
    ("name", "stage_name"),
    _cases(("generate", "differential", "mypy_generated", "import", "serve", "mypy")),
)
def test_stage(matrix: dict[str, Run], name: str, stage_name: str) -> None:
    """Every schema passes every stage: generated code, the whole package's mypy --strict
    (the hand-written layer follows the schema), import and a served request per event."""
    _check(matrix, name, stage_name)


def test_generate_prints_a_changelog(matrix: dict[str, Run]) -> None:
    output = matrix["5.0.0"].stages["generate"].output
    assert "### Centrifugo schema: v6.9.1 -> v5.0.0" in output
    assert "- added `api.Command.MethodType`" in output
    assert "- removed `MapPublish`" in output  # the proxy event v5.0.0 lacks
