"""The API clients without a server: the mock transport, the generated method surface, what
each transport module imports. (Against a real Centrifugo: tests/test_e2e_client.py.)"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from centrifugo_types import (
    ApiError,
    ApiTimeoutError,
    ClientError,
    NotFoundError,
    UnknownChannelError,
    api,
)
from centrifugo_types.client import (
    METHODS,
    ApiClient,
    MockTransport,
    SyncApiClient,
)
from codegen import generate

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "centrifugo_types" / "client"


# -- a user's function that publishes, tested with the mock transport ------------------------


async def notify_followers(client: ApiClient, author: str, text: str) -> int:
    """What a user's code might do: publish into each follower's channel, one batch."""
    followers = ["alice", "bob", "nobody"]
    results = await client.batch(
        [
            api.PublishRequest(channel=f"user:{name}", data=f'{{"from":"{author}"}}'.encode())
            for name in followers
        ]
    )
    await client.publish(channel="feed", data={"author": author, "text": text})
    return sum(isinstance(r, api.PublishResult) for r in results)


async def test_a_users_function_that_publishes() -> None:
    published: list[api.PublishRequest] = []

    def centrifugo(request: Any) -> Any:
        assert isinstance(request, api.PublishRequest)
        if request.channel == "user:nobody":
            raise UnknownChannelError()
        published.append(request)
        return api.PublishResult(offset=len(published), epoch="e")

    transport = MockTransport(centrifugo)
    async with ApiClient(transport=transport) as client:
        assert await notify_followers(client, "carol", "hi") == 2
    assert [(r.channel, r.data) for r in published] == [
        ("user:alice", b'{"from":"carol"}'),
        ("user:bob", b'{"from":"carol"}'),
        ("feed", b'{"author":"carol","text":"hi"}'),
    ]
    assert len(transport.calls) == 4  # the batch's three commands and the publish


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_mock_answers_results_responses_errors_and_batches(sync: bool) -> None:
    def handler(request: Any) -> Any:
        if isinstance(request, api.InfoRequest):
            return None  # an empty result
        if isinstance(request, api.PresenceStatsRequest):
            return api.PresenceStatsResponse(result=api.PresenceStatsResult(num_clients=3))
        if isinstance(request, api.HistoryRequest):
            raise ApiError(4001, "custom")
        raise NotFoundError()

    async def run(client: Any) -> list[Any]:
        async def call(name: str, *args: Any, **kwargs: Any) -> Any:
            value = getattr(client, name)(*args, **kwargs)
            return await value if inspect.isawaitable(value) else value

        outcomes: list[Any] = [
            await call("info"),
            await call("presence_stats", channel="c"),
            await call(
                "batch", [api.InfoRequest(), api.HistoryRequest(channel="c"), api.RpcRequest()]
            ),
        ]
        with pytest.raises(NotFoundError) as info:
            await call("rpc", method="m")
        outcomes.append((info.value.code, info.value.method))
        return outcomes

    client: Any = (SyncApiClient if sync else ApiClient)(transport=MockTransport(handler))
    info, stats, batch, rpc = await run(client)
    assert info == api.InfoResult()
    assert stats == api.PresenceStatsResult(num_clients=3)
    first, custom, not_found = batch
    assert first == api.InfoResult()
    assert type(custom) is ApiError and (custom.code, custom.message) == (4001, "custom")
    assert (custom.method, type(not_found)) == ("history", NotFoundError)
    assert rpc == (104, "rpc")


async def test_mock_with_an_async_handler_and_a_timeout() -> None:
    async def slow(request: Any) -> Any:
        await asyncio.sleep(10)

    async def fine(request: Any) -> Any:
        return api.PublishResult(offset=7)

    async with ApiClient(transport=MockTransport(fine)) as client:
        assert (await client.publish(channel="c")).offset == 7
    async with ApiClient(transport=MockTransport(slow), timeout=0.05) as client:
        with pytest.raises(ApiTimeoutError):
            await client.info()
        with pytest.raises(ApiTimeoutError):
            await client.info(timeout=0.01)
    with (
        SyncApiClient(transport=MockTransport(fine)) as sync_client,
        pytest.raises(TypeError, match="async ApiClient"),
    ):
        sync_client.info()


async def test_mock_rejects_an_answer_of_the_wrong_type() -> None:
    client = ApiClient(transport=MockTransport(lambda request: api.InfoResult()))
    with pytest.raises(TypeError, match="PublishRequest with InfoResult"):
        await client.publish(channel="c")


async def test_closed_clients_raise_client_error() -> None:
    client = ApiClient(transport=MockTransport(lambda request: None))
    await client.aclose()
    with pytest.raises(ClientError, match="closed"):
        await client.info()
    sync_client = SyncApiClient(transport=MockTransport(lambda request: None))
    sync_client.close()
    with pytest.raises(ClientError, match="closed"):
        sync_client.info()


# -- the generated surface ---------------------------------------------------------------------


def test_methods_take_the_requests_fields_with_the_schemas_defaults() -> None:
    for method in METHODS:
        if method.result is None:
            continue
        for cls in (ApiClient, SyncApiClient):
            parameters = inspect.signature(getattr(cls, method.py_name)).parameters
            fields = [*method.request.__dataclass_fields__, "timeout"]
            assert list(parameters)[1:] == fields
            assert all(p.kind is p.KEYWORD_ONLY for p in list(parameters.values())[1:])
            default = method.request()
            for name in fields[:-1]:
                value = parameters[name].default
                if isinstance(value, bytes):  # a payload field: JSON, or bytes as they are
                    assert value == getattr(default, name) == b""
                elif value in (None, ()):  # messages, lists and maps
                    assert getattr(default, name) in (None, [], {})
                else:
                    assert value == getattr(default, name)


async def test_payload_fields_take_json_values_or_bytes() -> None:
    seen: list[Any] = []
    client = ApiClient(transport=MockTransport(lambda request: seen.append(request)))
    await client.publish(channel="c", data={"a": [1, "é"]})
    await client.publish(channel="c", data=b"\x00raw")
    await client.publish(channel="c", data=None)
    await client.rpc(method="m", params=[1])
    assert [r.data for r in seen[:3]] == ['{"a":[1,"é"]}'.encode(), b"\x00raw", b"null"]
    assert seen[3].params == b"[1]"


# -- transports import only their own library -------------------------------------------------

OWN_LIBRARY = {
    "http.py": "httptools",
    "http_aiohttp.py": "aiohttp",
    "http_sync.py": "urllib3",
    "grpc.py": "grpclib",
    "grpcio.py": "grpc",
    "mock.py": None,
    "threaded.py": None,
    "_client.py": None,
    "_http.py": None,
    "_transport.py": None,
    "__init__.py": None,
}
NETWORK_LIBRARIES = {
    *("aiohttp", "urllib3", "grpclib", "httpx", "httpcore", "grpc", "requests", "httptools"),
}


@pytest.mark.parametrize("name", sorted(OWN_LIBRARY))
def test_each_transport_module_imports_only_its_own_library(name: str) -> None:
    tree = ast.parse((CLIENT / name).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    own = OWN_LIBRARY[name]
    assert imported & NETWORK_LIBRARIES == ({own} if own else set())


def test_importing_the_client_package_imports_no_http_library() -> None:
    code = (
        "import sys, centrifugo_types.client as c; "
        "print(sorted(m for m in ('aiohttp', 'urllib3', 'httpx', 'httptools') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


# -- a method or field added to api.proto appears after regeneration ---------------------------

ADDED = """
message EchoRequest {
    string text = 1;
    bytes data = 2;
    repeated string tags = 3;
}
message EchoResult {
    string text = 1;
}
message EchoResponse {
    Error error = 1;
    EchoResult result = 2;
}
"""


def test_a_method_and_a_field_added_to_api_proto_appear_after_regeneration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", protos)
    source = (protos / "api.proto").read_text()
    source = source.replace(
        "    rpc Publish (PublishRequest)",
        "    rpc Echo (EchoRequest) returns (EchoResponse) {}\n    rpc Publish (PublishRequest)",
    )
    start = source.index("message PublishRequest {")
    end = source.index("}", start)
    source = source[:end] + "    string mood = 99;\n" + source[end:] + ADDED
    (protos / "api.proto").write_text(source)

    package = tmp_path / "tree" / "centrifugo_types"
    shutil.copytree(
        ROOT / "centrifugo_types",
        package,
        ignore=shutil.ignore_patterns("_generated", "__pycache__"),
    )
    generate.write(package / "_generated", generate.sources(protos))

    check = textwrap.dedent(
        """
        import inspect
        from centrifugo_types import api
        from centrifugo_types.client import ApiClient, MockTransport, SyncApiClient

        echo = inspect.signature(ApiClient.echo)
        print(list(echo.parameters)[1:], echo.return_annotation.__name__)
        print(inspect.signature(ApiClient.publish).parameters["mood"])
        def handler(request):
            if isinstance(request, api.EchoRequest):
                return api.EchoResult(text=request.text + request.data.decode())
            return api.PublishResult(epoch=request.mood)
        client = SyncApiClient(transport=MockTransport(handler))
        print(client.echo(text="hi", data={"x": 1}).text, client.publish(mood="sunny").epoch)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(package.parent)}
    out = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    signature, mood, calls = out.stdout.splitlines()
    assert signature == "['text', 'data', 'tags', 'timeout'] EchoResult"
    assert mood == "mood: str = ''"
    assert calls == 'hi{"x":1} sunny'


# -- the HTTP/1.1 transport's connection handling, against a scripted server -------------------


async def _scripted_server(
    answers: list[bytes], close_after_each: bool
) -> tuple[asyncio.Server, list[int]]:
    """A server answering each request with the next of ``answers``; ``connections`` counts
    the connections it accepted. With ``close_after_each`` it closes the connection after
    answering (as a server closing idle keep-alive connections does), without telling."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(answers.pop(0))
                await writer.drain()
                if close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, connections


def _http_answer(body: bytes, extra: bytes = b"", chunked: bool = False) -> bytes:
    if chunked:
        half = len(body) // 2
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:half], body[half:]))
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n%s\r\n%s0\r\n\r\n" % (
            extra,
            chunks,
        )
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@pytest.mark.parametrize(
    ("close_after_each", "pause"),
    [(False, 0.05), (True, 0.05), (True, 0.0)],
    ids=["keep-alive", "idle-close", "close-racing-the-next-call"],
)
async def test_h1_transport_reuses_connections_and_survives_idle_closes(
    close_after_each: bool, pause: float
) -> None:
    from centrifugo_types.client.http import HttpTransport

    answers = [
        _http_answer(b'{"result":{"offset":1}}'),
        _http_answer(b'{"result":{"offset":2}}', chunked=True),
        _http_answer(b'{"result":{"offset":3}}', extra=b"Connection: close\r\n"),
        _http_answer(b'{"error":{"code":102,"message":"unknown channel"}}'),
    ]
    server, connections = await _scripted_server(answers, close_after_each)
    port = server.sockets[0].getsockname()[1]
    transport = HttpTransport(f"http://127.0.0.1:{port}/api", api_key="k", connections=2)
    try:
        async with ApiClient(transport=transport, timeout=5) as client:
            offsets = []
            for _ in range(3):
                offsets.append((await client.publish(channel="c")).offset)
                await asyncio.sleep(pause)  # let an idle close reach the client, or not
            with pytest.raises(UnknownChannelError):
                await client.publish(channel="c")
    finally:
        server.close()
        await server.wait_closed()
    assert offsets == [1, 2, 3]
    # One connection, replaced after "Connection: close"; or one per call when the server
    # closes each (never an error).
    assert len(connections) == (4 if close_after_each else 2)
