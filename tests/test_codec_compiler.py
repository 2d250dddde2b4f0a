"""The codecs compiled at run time from the generated field tables (``_codec_compiler``,
``_json_compiler``): compiled once, on first use, into the very function objects every table
holds, with tracebacks that show their lines. What they compute is tested against upb and Go
by test_wire.py, test_malformed.py, test_json*.py and test_wire_rules.py."""

from __future__ import annotations

import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from types import FunctionType, ModuleType
from typing import cast

import pytest

from centrifugo_types import _codec_compiler, _json_compiler, json, proxy
from centrifugo_types._generated import api, api_json, proxy_json
from centrifugo_types._generated import proxy as generated_proxy
from codegen import generate, json_codec, schema


def test_the_compilers_share_the_generators_wire_facts() -> None:
    # The package cannot import codegen (it is not installed with it): the tables are copies.
    assert _codec_compiler.WIRE_TYPES == schema.WIRE_TYPES
    assert _codec_compiler.INT_RANGES == schema.INT_RANGES


def test_a_codec_is_compiled_on_first_use_into_its_stub() -> None:
    codecs = _codec_compiler.BinaryCodecs("t", vars(generated_proxy), generated_proxy.FIELDS)
    encode, decoder = codecs.python_binary(proxy.ConnectResponse)
    decode = cast(FunctionType, decoder)
    stub_code = encode.__code__
    assert decode.__code__ is stub_code  # nothing compiled yet

    message = proxy.ConnectResponse(result=proxy.ConnectResult(user="u", channels=["a", "b"]))
    out = bytearray()
    encode(message, out)
    assert bytes(out) == bytes(message)

    # The stubs are now the compiled functions (same objects), decoder included.
    assert encode.__code__ is not stub_code and decode.__code__ is not stub_code
    assert encode.__code__.co_filename == "<centrifugo_types codec t.ConnectResponse>"
    assert encode.__kwdefaults__ is None
    assert decode(proxy.ConnectResponse, bytes(out), 0, len(out), 100) == message
    # Nested messages were compiled on their own first use, the others not yet.
    assert codecs.function("_enc_ConnectResult").__code__.co_filename == (
        "<centrifugo_types codec t.ConnectResult>"
    )
    assert codecs.function("_enc_RefreshRequest").__code__ is stub_code


def test_threads_meeting_an_uncompiled_codec_all_get_the_compiled_one() -> None:
    codecs = _codec_compiler.BinaryCodecs("t", vars(generated_proxy), generated_proxy.FIELDS)
    encode, _ = codecs.python_binary(proxy.ConnectResponse)
    message = proxy.ConnectResponse(result=proxy.ConnectResult(user="u", channels=["a"]))
    start = threading.Barrier(8)

    def work() -> bytes:
        start.wait()
        out = bytearray()
        encode(message, out)
        return bytes(out)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: work(), range(8)))
    assert results == [bytes(message)] * 8
    assert encode.__code__.co_filename == "<centrifugo_types codec t.ConnectResponse>"


def test_tracebacks_show_the_compiled_lines() -> None:
    codecs = _codec_compiler.BinaryCodecs("t", vars(generated_proxy), generated_proxy.FIELDS)
    encode, _ = codecs.python_binary(proxy.ConnectRequest)
    with pytest.raises(AttributeError) as info:
        encode(proxy.ConnectRequest(client=5), bytearray())  # type: ignore[arg-type]
    frame = traceback.extract_tb(info.value.__traceback__)[-1]
    assert frame.filename == "<centrifugo_types codec t.ConnectRequest>"
    assert frame.name == "_enc_ConnectRequest"
    assert frame.line == "b = v_client.encode()"


def test_json_tables_hold_the_compiled_functions() -> None:
    encode = proxy_json.ENCODERS[proxy.ConnectRequest]
    assert json.dumps(proxy.ConnectRequest(client="c")) == b'{"client":"c"}'
    assert proxy_json.ENCODERS[proxy.ConnectRequest] is encode
    assert encode.__code__.co_filename == (
        "<centrifugo_types json codec centrifugo_types._generated.proxy_json.ConnectRequest>"
    )


@pytest.fixture(scope="module")
def model() -> schema.Schema:
    return schema.load(generate.PROTOS, generate.MODULES)


@pytest.mark.parametrize(
    ("module", "json_module"),
    [(generated_proxy, proxy_json), (api, api_json)],
    ids=["proxy", "api"],
)
def test_every_message_compiles(
    model: schema.Schema, module: ModuleType, json_module: ModuleType
) -> None:
    (file,) = (f for f in model.files if f.module == module.__name__.rsplit(".", 1)[1])
    assert list(module.FIELDS) == [m.py_name for m in file.messages]
    _codec_compiler.BinaryCodecs("t", vars(module), module.FIELDS).compile_all()
    always = json_module.ALWAYS_PRESENT
    _json_compiler.JsonCodecs("t", vars(module), module.FIELDS, always).compile_all()
    for message in file.messages:
        assert set(always.get(message.py_name, ())) == json_codec.ALWAYS_PRESENT.get(
            message.full_name, set()
        )
