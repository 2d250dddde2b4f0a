"""Centrifugo's JSON dialect codec (``centrifugo_types.json``) for every message type.

- Every message type round-trips through ``dumps``/``loads`` on both decoding paths (orjson
  and the standard library), and our JSON equals a reference built independently from upb's
  descriptors and the struct tags of Centrifugo's Go source.
- The dialect facts the codegen holds (always-present fields, raw JSON fields) equal those of
  Centrifugo's Go structs.
- The orjson fast path and the text path agree on any input, valid or not.
- Go encoding/json behaviours: case-insensitive keys, unknown keys, null, numbers, errors.

The end-to-end proof against a real Centrifugo is in test_e2e_json.py.
"""

from __future__ import annotations

import functools
import json as stdlib_json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import betterproto2
import orjson
import pytest
from google.protobuf import descriptor as d
from hypothesis import given, settings
from hypothesis import strategies as st

from centrifugo_types import DecodeError, EncodeError, _json_runtime, api, json, proxy
from centrifugo_types._generated import api_json, proxy_json
from centrifugo_types.json import JSONDecodeError, JSONEncodeError
from centrifugo_types.testing import json_payloads, message_types, messages
from codegen.json_codec import ALWAYS_PRESENT

from . import go_source, oracle

ALL_TYPES = message_types()
PATHS = ["orjson", "stdlib"]


def _id(cls: type[betterproto2.Message]) -> str:
    return f"{cls.__module__.rsplit('.', 1)[1]}.{cls.__name__}"


@contextmanager
def decoding_path(name: str) -> Iterator[None]:
    was_on = _json_runtime.ORJSON is not None
    json.use_orjson(name == "orjson")
    try:
        yield
    finally:
        json.use_orjson(was_on)


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    with decoding_path(request.param):
        yield request.param


def outcome(cls: type[betterproto2.Message], data: bytes | str) -> Any:
    """What ``loads`` makes of ``data``: the message, or the error's text."""
    try:
        return ("ok", oracle.canonical(json.loads(cls, data)))
    except JSONDecodeError as exc:
        return ("error", str(exc))


# -- the dialect facts, against Centrifugo's Go source -------------------------------------------

needs_go_source = pytest.mark.skipif(
    go_source.module_dir() is None, reason="Centrifugo's Go source is not in the module cache"
)


def _descriptors() -> Iterator[tuple[str, Any]]:
    for package, module in oracle.upb_modules().items():
        for message in module.DESCRIPTOR.message_types_by_name.values():
            yield package, message


@needs_go_source
def test_always_present_fields_are_those_of_centrifugos_go_structs() -> None:
    go: dict[str, frozenset[str]] = {}
    for package, message in _descriptors():
        fields = go_source.structs(package)[message.name]
        assert set(fields) == {f.name for f in message.fields}
        always = frozenset(name for name, f in fields.items() if not f.omitempty)
        if always:
            go[message.full_name] = always
        # Keys are the .proto field names.
        assert all(f.key == name for name, f in fields.items())
    assert go == ALWAYS_PRESENT


@needs_go_source
def test_raw_fields_are_the_bytes_fields() -> None:
    for package, message in _descriptors():
        fields = go_source.structs(package)[message.name]
        for field in message.fields:
            is_bytes = field.type == d.FieldDescriptor.TYPE_BYTES
            assert (fields[field.name].go_type == "Raw") == is_bytes, (message.name, field.name)


# -- round trip and the reference encoding ---------------------------------------------------------


def _always_present(full_name: str) -> frozenset[str]:
    if go_source.module_dir() is None:
        return ALWAYS_PRESENT.get(full_name, frozenset())
    package = "proxy" if ".proxy." in full_name else "api"
    fields = go_source.structs(package)[full_name.rsplit(".", 1)[1]]
    return frozenset(name for name, f in fields.items() if not f.omitempty)


def reference(upb: Any) -> dict[str, Any]:
    """The JSON value of a upb message under Go's encoding/json and Centrifugo's struct tags,
    built by walking upb's descriptors (independent of our codegen)."""
    always = _always_present(upb.DESCRIPTOR.full_name)
    out: dict[str, Any] = {}
    for field in upb.DESCRIPTOR.fields:
        value = getattr(upb, field.name)
        is_message = field.type == d.FieldDescriptor.TYPE_MESSAGE
        if is_message and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == d.FieldDescriptor.TYPE_MESSAGE:
                encoded: Any = {k: reference(v) for k, v in value.items()}
            else:
                encoded = dict(value.items())
            empty = not encoded
        elif field.is_repeated:
            encoded = [reference(v) if is_message else v for v in value]
            empty = not encoded
        elif is_message:
            empty = not upb.HasField(field.name)
            encoded = None if empty else reference(value)
        elif field.type == d.FieldDescriptor.TYPE_BYTES:
            empty = not value
            encoded = None if empty else stdlib_json.loads(value)
        else:
            encoded = value
            empty = value == 0 or value == "" or value is False
        if field.name in always or not empty:
            out[field.name] = encoded
    return out


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
@given(data=st.data())
def test_round_trip_on_both_paths_and_reference_encoding(
    cls: type[betterproto2.Message], data: st.DataObject
) -> None:
    message = data.draw(
        messages(cls, payloads=json_payloads(), allow_infinity=False), label="message"
    )
    encodings = set()
    for name in PATHS:
        with decoding_path(name):
            encoded = json.dumps(message)
            encodings.add(encoded)
            decoded = json.loads(cls, encoded)
        # Equal field by field (a double field's -0.0 comes back as 0.0: Go's omitempty leaves
        # it out as it equals 0), raw JSON values byte for byte.
        assert decoded == message
    assert len(encodings) == 1
    assert stdlib_json.loads(encoded) == reference(oracle.to_upb(message))


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
@given(data=st.data())
@settings(max_examples=30)
def test_fast_path_decodes_exactly_as_the_text_path(
    cls: type[betterproto2.Message], data: st.DataObject
) -> None:
    """On documents that are orjson's own serialisation (where the fast path is taken), the
    dict decoder gives exactly what the text decoder gives."""
    message = data.draw(messages(cls, payloads=json_payloads(), allow_infinity=False))
    document = orjson.dumps(stdlib_json.loads(json.dumps(message)))
    _, dict_decoder, _ = {**proxy_json.DECODERS, **api_json.DECODERS}[cls]
    with decoding_path("stdlib"):
        by_text = json.loads(cls, document)
    with decoding_path("orjson"):
        by_dict = dict_decoder(cls, orjson.loads(document), 100)

        def refuse(*_: Any) -> Any:
            raise AssertionError("the fast path was not taken")

        assert oracle.canonical(
            _json_runtime.loads(cls, document, refuse, dict_decoder)
        ) == oracle.canonical(by_text)
    assert oracle.canonical(by_dict) == oracle.canonical(by_text)
    assert bytes(by_dict) == bytes(by_text)


def _not_called(*_: Any) -> Any:
    raise AssertionError("a decoder that must not be called was called")


_GO_ESCAPED = st.text(alphabet=st.sampled_from(list('<>&\u2028\u2029a"\\\u00e9')), min_size=1)


@functools.cache  # one strategy object: messages() caches its strategies per payloads object
def _go_payloads() -> st.SearchStrategy[bytes]:
    """Payloads as :func:`json_payloads` draws them, and objects whose strings hold what Go's
    encoding/json escapes."""
    escaped = _GO_ESCAPED.map(
        lambda text: stdlib_json.dumps(
            {"html": text, "n": 1}, ensure_ascii=False, separators=(",", ":")
        ).encode()
    )
    return json_payloads() | escaped


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
@given(data=st.data())
@settings(max_examples=15)  # x 210 types; the plain fast path's test above draws 30
def test_go_escaped_documents_take_the_fast_path_and_decode_as_the_text_path(
    cls: type[betterproto2.Message], data: st.DataObject
) -> None:
    """Centrifugo writes <, >, &, U+2028 and U+2029 as \\u escapes (Go's encoding/json): such a
    document takes the orjson path through the Go-escaped decoder (neither the text path nor
    the plain dict decoder is called), and gives exactly what the text path gives, raw values
    with their escapes included."""
    message = data.draw(messages(cls, payloads=_go_payloads(), allow_infinity=False))
    canonical = orjson.dumps(stdlib_json.loads(json.dumps(message)))
    document = go_source.go_html_escape(canonical)
    _, plain, go = {**proxy_json.DECODERS, **api_json.DECODERS}[cls]
    refuse = _not_called
    with decoding_path("stdlib"):
        by_text = json.loads(cls, document)
    with decoding_path("orjson"):
        if document == canonical:
            by_fast = _json_runtime.loads(cls, document, refuse, plain, refuse)
        else:
            by_fast = _json_runtime.loads(cls, document, refuse, refuse, go)
        assert oracle.canonical(json.loads(cls, document)) == oracle.canonical(by_text)
    assert oracle.canonical(by_fast) == oracle.canonical(by_text)
    assert bytes(by_fast) == bytes(by_text)


def test_a_body_centrifugo_wrote_decodes_on_the_fast_path_with_its_escapes() -> None:
    """The body Centrifugo v6.9.1 sent to an HTTP connect proxy for a client whose data was
    ``{"token": "a b", "html": "<b>&", "n": 1.50}`` (captured): compacted, HTML-escaped."""
    body = (
        b'{"client":"cb344bce-f979-4941-a309-88bf9c56de46","transport":"websocket",'
        b'"protocol":"json","encoding":"json","data":{"token":"a b",'
        b'"html":"\\u003cb\\u003e\\u0026","n":1.5},"name":"python"}'
    )
    _, _, go = proxy_json.DECODERS[proxy.ConnectRequest]
    with decoding_path("orjson"):
        fast = _json_runtime.loads(proxy.ConnectRequest, body, _not_called, _not_called, go)
    with decoding_path("stdlib"):
        text = json.loads(proxy.ConnectRequest, body)
    assert fast == text
    assert fast.data == b'{"token":"a b","html":"\\u003cb\\u003e\\u0026","n":1.5}'
    assert fast.name == "python"


_MUTATION_CHARS = st.sampled_from(list('{}[],:"\\ 0123456789-+.eEtrufalsn\u00e9\ud800x'))


@st.composite
def mutated(draw: st.DrawFn, cls: type[betterproto2.Message]) -> str:
    message = draw(messages(cls, payloads=json_payloads(), allow_infinity=False))
    document = orjson.dumps(stdlib_json.loads(json.dumps(message))).decode()
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(document)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(_MUTATION_CHARS)
        if op == "insert":
            document = document[:pos] + char + document[pos:]
        elif op == "delete":
            document = document[:pos] + document[pos + 1 :]
        else:
            document = document[:pos] + char + document[pos + 1 :]
    return document


MUTATED_TYPES = [
    proxy.ConnectRequest,
    proxy.ConnectResponse,
    proxy.SubscribeRequest,
    proxy.PublishRequest,
    proxy.RpcResponse,
    proxy.SharedPollRefreshResponse,
    api.HistoryResponse,
    api.PresenceResponse,
    api.BatchRequest,
    api.InfoResponse,
    api.ConnectionsResponse,
    api.SubscribeRequest,
]


@pytest.mark.parametrize("cls", MUTATED_TYPES, ids=_id)
@given(data=st.data())
def test_both_paths_agree_on_corrupted_documents(
    cls: type[betterproto2.Message], data: st.DataObject
) -> None:
    document = data.draw(mutated(cls), label="document")
    results = []
    for name in PATHS:
        with decoding_path(name):
            results.append(outcome(cls, document))
            if "\ud800" not in document:
                assert outcome(cls, document.encode()) == results[-1]
    assert results[0] == results[1]


# -- encoding -------------------------------------------------------------------------------------


def test_raw_fields_are_embedded_and_zero_values_left_out(path: str) -> None:
    reply = proxy.ConnectResponse(
        result=proxy.ConnectResult(user="42", data=b'{"a": [1, 2.50]}', expire_at=0)
    )
    assert json.dumps(reply) == b'{"result":{"user":"42","data":{"a": [1, 2.50]}}}'
    assert json.dumps(proxy.ConnectResult()) == b"{}"
    assert json.dumps(proxy.RpcResult(data=b"null")) == b'{"data":null}'


def test_always_present_fields_are_written_when_zero(path: str) -> None:
    assert json.dumps(proxy.RefreshRequest()) == b'{"user":""}'
    assert json.dumps(api.PresenceStatsResult()) == b'{"num_clients":0,"num_users":0}'
    assert json.dumps(api.HistoryResult()) == b'{"publications":[],"epoch":"","offset":0}'
    assert json.dumps(api.ClientInfo(client="c")) == b'{"user":"","client":"c"}'
    assert json.dumps(api.PresenceResult()) == b'{"presence":{}}'


def test_int64_are_numbers_and_binary_mode_fields_strings(path: str) -> None:
    request = api.PublishRequest(channel="c", b64data="AAE=", version=2**64 - 1)
    assert stdlib_json.loads(json.dumps(request)) == {
        "channel": "c",
        "b64data": "AAE=",
        "version": 2**64 - 1,
    }
    assert json.dumps(api.Process(rss=-(2**63))) == b'{"rss":-9223372036854775808}'


def test_text_is_utf8_with_json_escapes(path: str) -> None:
    request = api.PublishRequest(channel='é "\\\n\x00\U0001f680', tags={"k\t": "<&>"})
    encoded = json.dumps(request)
    assert encoded == ('{"channel":"é \\"\\\\\\n\\u0000\U0001f680","tags":{"k\\t":"<&>"}}'.encode())
    assert json.loads(api.PublishRequest, encoded) == request


@pytest.mark.parametrize(
    ("message", "where", "what"),
    [
        (proxy.ConnectResult(data=b"{"), "data", "raw JSON value is not valid JSON"),
        (proxy.ConnectResult(data=b"{} {}"), "data", "extra data"),
        (proxy.ConnectResult(data=b"NaN"), "data", "raw JSON value is not valid JSON"),
        (proxy.ConnectResult(data=b" "), "data", "empty"),
        (proxy.ConnectResult(data=b'"\xff"'), "data", "not valid UTF-8"),
        (proxy.ConnectResult(data="{}"), "data", "expected bytes"),  # type: ignore[arg-type]
        (proxy.ConnectResult(expire_at=2**63), "expire_at", "out of range for int64"),
        (api.PublishRequest(version=-1), "version", "out of range for uint64"),
        (api.PublishRequest(channel=1), "channel", "str"),  # type: ignore[arg-type]
        (api.Metrics(interval=math.inf), "interval", "cannot be written in JSON"),
        (api.Metrics(items={"x": math.nan}), 'items["x"]', "cannot be written in JSON"),
        (api.BroadcastRequest(channels=["a", 2]), "channels[1]", "str"),  # type: ignore[list-item]
        (
            api.BatchRequest(
                commands=[api.Command(), api.Command(publish=api.PublishRequest(data=b"x"))]
            ),
            "commands[1].publish.data",
            "not valid JSON",
        ),
        (
            api.PublishResponse(result=api.Error()),  # type: ignore[arg-type]
            "result",
            "expected PublishResult, got Error",
        ),
    ],
)
def test_values_that_cannot_be_written_raise_encode_error(
    path: str, message: betterproto2.Message, where: str, what: str
) -> None:
    with pytest.raises(JSONEncodeError) as info:
        json.dumps(message)
    assert info.value.path == where
    assert what in str(info.value)
    assert isinstance(info.value, EncodeError)


def test_lone_surrogates_cannot_be_written(path: str) -> None:
    with pytest.raises(JSONEncodeError, match="lone surrogate"):
        json.dumps(api.PublishRequest(channel="\ud800"))


def test_dumps_rejects_what_is_not_a_message() -> None:
    with pytest.raises(TypeError, match="not a centrifugo_types message"):
        json.dumps(object())  # type: ignore[arg-type]


# -- decoding: Go encoding/json behaviours -------------------------------------------------------


def test_keys_match_case_insensitively_as_in_go(path: str) -> None:
    # Go folds keys with Unicode simple folding: U+212A (Kelvin sign) is k, U+017F (long s) s.
    document = '{"CHANNEL":"a","Data":{"x":1},"\u017fKIP_HI\u017fTORY":true,"\u212aEY":"k"}'
    assert json.loads(api.PublishRequest, document) == api.PublishRequest(
        channel="a", data=b'{"x":1}', skip_history=True
    )
    assert json.loads(api.MapRemoveRequest, '{"\u212aey":"k"}') == api.MapRemoveRequest(key="k")
    # ... but no other Unicode look-alikes: dotless i is not i.
    assert json.loads(api.PresenceRequest, '{"channel":"a","\u0131d":1}').channel == "a"
    assert json.loads(api.HistoryRequest, '{"L\u0131MIT":5}') == api.HistoryRequest()


def test_escaped_keys_match(path: str) -> None:
    assert json.loads(api.PresenceRequest, '{"\\u0063hannel":"a"}') == api.PresenceRequest("a")


def test_unknown_keys_are_ignored(path: str) -> None:
    document = '{"channel":"a","future":{"deep":[1,{"x":null}]},"data":{"k":"v"},"n":1e5}'
    assert json.loads(api.PublishRequest, document) == api.PublishRequest(
        channel="a", data=b'{"k":"v"}'
    )
    assert json.loads(api.InfoRequest, '{"anything": [1, 2]}') == api.InfoRequest()


def test_raw_fields_keep_the_exact_bytes_of_their_value(path: str) -> None:
    document = b'{"client":"c","data" : {"b": 1.50,\n "a":"\\u00e9<"} , "name":"n"}'
    request = json.loads(proxy.ConnectRequest, document)
    assert request.data == b'{"b": 1.50,\n "a":"\\u00e9<"}'
    assert json.loads(proxy.ConnectRequest, b'{"data":"text"}').data == b'"text"'
    assert json.loads(proxy.ConnectRequest, b'{"data":123456789012345678901234567890}').data == (
        b"123456789012345678901234567890"
    )


def test_null(path: str) -> None:
    # null into a raw field is the literal null; into anything else it leaves the zero value.
    assert json.loads(proxy.RpcResult, '{"data":null}') == proxy.RpcResult(data=b"null")
    assert json.loads(api.PublishRequest, '{"channel":null,"tags":null,"version":null}') == (
        api.PublishRequest()
    )
    assert json.loads(api.PublishResponse, '{"result":null}') == api.PublishResponse()
    assert json.loads(api.BroadcastRequest, '{"channels":["a",null]}').channels == ["a", ""]
    history = json.loads(api.HistoryResult, '{"publications":[null]}')
    assert history.publications == [api.Publication()]
    # Go leaves a struct untouched when the whole document is null.
    assert json.loads(api.PublishResponse, " null ") == api.PublishResponse()


def test_duplicate_keys_last_one_wins(path: str) -> None:
    assert json.loads(api.PresenceRequest, '{"channel":"a","channel":"b"}').channel == "b"
    assert json.loads(api.PresenceRequest, '{"channel":"a","Channel":"b"}').channel == "b"


def test_numbers(path: str) -> None:
    assert json.loads(api.Process, '{"cpu":1,"rss":-9223372036854775808}') == api.Process(
        cpu=1.0, rss=-(2**63)
    )
    assert json.loads(api.Metrics, '{"interval":1e-3,"items":{"a":-0.5}}') == api.Metrics(
        interval=0.001, items={"a": -0.5}
    )
    assert json.loads(api.PublishRequest, '{"version":18446744073709551615}').version == 2**64 - 1


@pytest.mark.parametrize(
    ("cls", "document", "where", "what"),
    [
        (api.PublishRequest, '{"version":"1"}', "version", "expected an integer (uint64)"),
        (api.PublishRequest, '{"version":1.0}', "version", "expected an integer (uint64), got 1.0"),
        (api.PublishRequest, '{"version":1e2}', "version", "expected an integer (uint64)"),
        (api.PublishRequest, '{"version":-1}', "version", "-1 is out of range for uint64"),
        (api.PublishRequest, '{"version":18446744073709551616}', "version", "out of range"),
        (api.HistoryRequest, '{"limit":2147483648}', "limit", "out of range for int32"),
        (api.HistoryRequest, '{"limit":-2147483649}', "limit", "out of range for int32"),
        (api.Process, '{"rss":9223372036854775808}', "rss", "out of range for int64"),
        (api.PresenceStatsResult, '{"num_users":4294967296}', "num_users", "uint32"),
        (api.Process, '{"cpu":"1"}', "cpu", "expected a number, got a string"),
        (api.Process, '{"cpu":1e400}', "cpu", "out of range"),
        (api.PublishRequest, '{"skip_history":1}', "skip_history", "expected true or false"),
        (api.PublishRequest, '{"skip_history":"true"}', "skip_history", "true or false"),
        (api.PublishRequest, '{"channel":5}', "channel", "expected a string, got 5"),
        (api.PublishRequest, '{"tags":{"a":1}}', 'tags["a"]', "expected a string"),
        (api.PublishRequest, '{"tags":[]}', "tags", "expected an object, got an array"),
        (api.BroadcastRequest, '{"channels":"a"}', "channels", "expected an array"),
        (api.BroadcastRequest, '{"channels":["a",1]}', "channels[1]", "expected a string"),
        (api.PublishResponse, '{"result":[]}', "result", "expected an object, got an array"),
        (api.HistoryResult, '{"publications":[{"offset":-2}]}', "publications[0].offset", "-2"),
        (api.HistoryResult, '{"publications":[1]}', "publications[0]", "expected an object"),
        (api.PresenceResult, '{"presence":{"c":{"user":1}}}', 'presence["c"].user', "string"),
        (api.PresenceResult, '{"presence":{"c":true}}', 'presence["c"]', "expected an object"),
        (api.PresenceResult, '{"presence":[]}', "presence", "expected an object"),
        (api.PublishRequest, '{"data":NaN}', "data", "NaN is not a JSON value"),
        (api.PublishRequest, '{"data":{"a":Infinity}}', "data", "Infinity"),
        (api.PublishRequest, '{"data":}', "data", "expected a value"),
        (api.PublishRequest, '{"data":{"a":1}', "", "expected ',' or '}'"),
        (api.PublishRequest, '{"channel":"a",}', "", "expected a string key"),
        (api.PublishRequest, '{"channel" "a"}', "", "invalid JSON"),
        (api.PublishRequest, "{'channel':'a'}", "", "expected a string key"),
        (api.PublishRequest, '{"channel":"a\nb"}', "channel", "Invalid control character"),
        (api.PublishRequest, '{"channel":"a"} {}', "", "extra data after the object"),
        (api.PublishRequest, '{"channel":"a"', "", "invalid JSON"),
        (api.PublishRequest, "", "", "empty input"),
        (api.PublishRequest, "[]", "", "expected a JSON object, got an array"),
        (api.PublishRequest, '"x"', "", "expected a JSON object, got a string"),
        (api.PublishRequest, "\ufeff{}", "", "invalid JSON"),
        (api.PublishRequest, "nul", "", "invalid JSON"),
    ],
)
def test_invalid_documents_raise_decode_error_saying_where(
    path: str, cls: type[betterproto2.Message], document: str, where: str, what: str
) -> None:
    with pytest.raises(JSONDecodeError) as info:
        json.loads(cls, document)
    assert info.value.path == where
    assert what in str(info.value)
    assert isinstance(info.value, DecodeError)
    assert info.value.message_type is cls


def test_messages_nested_too_deeply_are_rejected(path: str) -> None:
    node = '{"op":"and","nodes":[%s]}'
    document = '{"op":"x"}'
    for _ in range(150):
        document = node % document
    with pytest.raises(JSONDecodeError, match="nested too deeply"):
        json.loads(api.FilterNode, document)
    shallow = '{"op":"x"}'
    for _ in range(50):
        shallow = node % shallow
    assert json.loads(api.FilterNode, shallow).op == "and"


def test_invalid_utf8_and_lone_surrogates_become_replacement_characters(path: str) -> None:
    # As in Go's encoding/json: invalid UTF-8 and lone surrogate escapes decode to U+FFFD...
    assert json.loads(api.PresenceRequest, b'{"channel":"a\xffb"}').channel == "a\ufffdb"
    assert json.loads(api.PresenceRequest, '{"channel":"a\\ud800b"}').channel == "a\ufffdb"
    assert json.loads(api.PublishRequest, '{"tags":{"\\udfff":"\\ud83d"}}').tags == {
        "\ufffd": "\ufffd"
    }
    # ... while surrogate pairs are characters, and raw values are kept as they were.
    assert json.loads(api.PresenceRequest, '{"channel":"\\ud83d\\ude80"}').channel == "\U0001f680"
    assert json.loads(api.RpcRequest, '{"params":"\\ud800"}').params == b'"\\ud800"'


def test_loads_accepts_bytes_like_and_text(path: str) -> None:
    document = '{"channel":"é"}'
    expected = api.PresenceRequest(channel="é")
    for data in (document, document.encode(), bytearray(document.encode())):
        assert json.loads(api.PresenceRequest, data) == expected
    assert json.loads(api.PresenceRequest, memoryview(document.encode())) == expected
    with pytest.raises(TypeError):
        json.loads(api.PresenceRequest, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a centrifugo_types message"):
        json.loads(dict, "{}")  # type: ignore[type-var]


def test_subclasses_use_their_base_codec(path: str) -> None:
    class Mine(api.PresenceRequest):
        pass

    decoded = json.loads(Mine, '{"channel":"x"}')
    assert type(decoded) is Mine and decoded.channel == "x"
    assert json.dumps(decoded) == b'{"channel":"x"}'


def test_decoded_messages_are_ordinary_messages(path: str) -> None:
    reply = json.loads(api.HistoryResponse, '{"result":{"publications":[{"data":{"a":1}}]}}')
    assert reply.result is not None
    assert api.HistoryResponse.parse(bytes(reply)) == reply
    assert reply.to_dict()["result"]["publications"][0]["data"]


def test_orjson_is_the_default_when_installed() -> None:
    assert json.use_orjson(True) is True
    assert _json_runtime.ORJSON is orjson
