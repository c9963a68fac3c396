"""The encoder, byte for byte: `(ServerSentEvent, expected bytes)` tables, the
validation boundary, and the helpers the typed events reuse."""

from __future__ import annotations

import copy
import enum
import pickle
import subprocess
import sys
from typing import Any

import pytest

from asgi_sse._protocol.errors import InvalidEventError, SSEError
from asgi_sse._protocol.wire import (
    ServerSentEvent,
    check_event_name,
    check_id,
    check_retry,
    encode_comment,
    encode_data,
)

ENCODED: list[tuple[ServerSentEvent, bytes]] = [
    # one field at a time
    (ServerSentEvent("hello"), b"data: hello\n\n"),
    (ServerSentEvent(event="tick"), b"event: tick\n\n"),
    (ServerSentEvent(id="42"), b"id: 42\n\n"),
    (ServerSentEvent(retry=3000), b"retry: 3000\n\n"),
    (ServerSentEvent(retry=0), b"retry: 0\n\n"),
    # order: comment, event, id, data, retry - whatever the keyword order
    (
        ServerSentEvent(retry=5, data="d", id="i", event="e", comment="c"),
        b": c\nevent: e\nid: i\ndata: d\nretry: 5\n\n",
    ),
    (ServerSentEvent("d", event="e"), b"event: e\ndata: d\n\n"),
    (ServerSentEvent("d", id=7, retry=1), b"id: 7\ndata: d\nretry: 1\n\n"),
    # int ids become their decimal digits; an empty id is sent (it resets Last-Event-ID)
    (ServerSentEvent("x", id=0), b"id: 0\ndata: x\n\n"),
    (ServerSentEvent("x", id=-12), b"id: -12\ndata: x\n\n"),
    (ServerSentEvent("x", id=10**30), b"id: " + b"1" + b"0" * 30 + b"\ndata: x\n\n"),
    (ServerSentEvent(id=""), b"id: \n\n"),
    (ServerSentEvent("x", event=""), b"event: \ndata: x\n\n"),
    # multi-line data: CRLF, CR and LF all end a line; each line is one data field
    (ServerSentEvent("a\nb"), b"data: a\ndata: b\n\n"),
    (ServerSentEvent("a\r\nb"), b"data: a\ndata: b\n\n"),
    (ServerSentEvent("a\rb"), b"data: a\ndata: b\n\n"),
    (ServerSentEvent("a\r\n\rb\n\r\nc"), b"data: a\ndata: \ndata: b\ndata: \ndata: c\n\n"),
    (ServerSentEvent("a\n\r\nb"), b"data: a\ndata: \ndata: b\n\n"),
    (ServerSentEvent("\n"), b"data: \ndata: \n\n"),
    (ServerSentEvent("\r"), b"data: \ndata: \n\n"),
    (ServerSentEvent("a\n"), b"data: a\ndata: \n\n"),  # a trailing newline survives
    (ServerSentEvent("\na"), b"data: \ndata: a\n\n"),
    # empty data is still a data line: the client dispatches an event with data ""
    (ServerSentEvent(""), b"data: \n\n"),
    # exactly one space after the colon, so leading spaces and colons survive
    (ServerSentEvent(" x"), b"data:  x\n\n"),
    (ServerSentEvent("  x\n y"), b"data:   x\ndata:  y\n\n"),
    (ServerSentEvent(":x"), b"data: :x\n\n"),
    (ServerSentEvent("data: x"), b"data: data: x\n\n"),
    (ServerSentEvent("x", id=" 1"), b"id:  1\ndata: x\n\n"),
    (ServerSentEvent("x", event=" e:f"), b"event:  e:f\ndata: x\n\n"),
    (ServerSentEvent("trailing  "), b"data: trailing  \n\n"),
    # unicode goes out as UTF-8; NUL in data is fine (only ids may not hold it)
    (ServerSentEvent("héllo 😀 你好"), "data: héllo 😀 你好\n\n".encode()),
    (ServerSentEvent("😀", event="é", id="ü"), "event: é\nid: ü\ndata: 😀\n\n".encode()),
    (ServerSentEvent("\ufeffbom"), "data: \ufeffbom\n\n".encode()),
    (ServerSentEvent("a\0b"), b"data: a\0b\n\n"),
    (ServerSentEvent("x", event="a\0b"), b"event: a\0b\ndata: x\n\n"),
    # comment-only frames are lone comment lines: no blank line (keep-alives)
    (ServerSentEvent(comment="ping"), b": ping\n"),
    (ServerSentEvent(comment=""), b":\n"),
    (ServerSentEvent(comment=" x"), b":  x\n"),
    (ServerSentEvent(comment="a\nb\r\nc\rd"), b": a\n: b\n: c\n: d\n"),
    (ServerSentEvent(comment="a\n\nb"), b": a\n:\n: b\n"),  # never a blank line
    (ServerSentEvent(comment="\n"), b":\n:\n"),
    (ServerSentEvent("x", comment="c1\nc2"), b": c1\n: c2\ndata: x\n\n"),
]


@pytest.mark.parametrize(("event", "expected"), ENCODED, ids=repr)
def test_encode(event: ServerSentEvent, expected: bytes) -> None:
    assert event.encode() == expected
    assert event.encode() is event.encode()  # encoded once


@pytest.mark.parametrize(
    "data", ["a\x0bb", "a\x0cb", "a\x1cb", "a\x1db", "a\x1eb", "a\x85b", "a\u2028b", "a\u2029b"]
)
def test_data_is_split_on_cr_and_lf_only(data: str) -> None:
    # str.splitlines() would split all of these; the spec's line ends are CR, LF, CRLF.
    assert ServerSentEvent(data).encode() == f"data: {data}\n\n".encode()
    assert encode_comment(data) == f": {data}\n".encode()


def test_long_data() -> None:
    data = "x" * 1_000_000 + "\n" + "y" * 10
    assert (
        ServerSentEvent(data).encode() == b"data: " + b"x" * 1_000_000 + b"\ndata: yyyyyyyyyy\n\n"
    )


def test_attributes() -> None:
    event = ServerSentEvent("d", event="e", id=5, retry=10, comment="c")
    assert (event.data, event.event, event.id, event.retry, event.comment) == (
        "d",
        "e",
        "5",
        10,
        "c",
    )
    empty = ServerSentEvent(comment="c")
    assert (empty.data, empty.event, empty.id, empty.retry) == (None, None, None, None)


INVALID: list[tuple[dict[str, Any], type[Exception], str]] = [
    # no field at all
    ({}, InvalidEventError, "at least one field"),
    # the injection boundary: rejected, never stripped
    ({"event": "a\nb"}, InvalidEventError, "event name must not contain CR or LF"),
    ({"event": "a\rb"}, InvalidEventError, "CR or LF"),
    ({"event": "a\r\nb"}, InvalidEventError, "CR or LF"),
    ({"event": "\n"}, InvalidEventError, "CR or LF"),
    ({"id": "a\nb"}, InvalidEventError, r"event id must not contain CR or LF (got 'a\nb')"),
    ({"id": "a\rb"}, InvalidEventError, "CR or LF"),
    ({"id": "ab\r\n"}, InvalidEventError, "CR or LF"),
    ({"id": "a\0b"}, InvalidEventError, "event id must not contain NUL"),
    ({"id": "\0"}, InvalidEventError, "NUL"),
    ({"retry": -1}, InvalidEventError, "retry must be >= 0"),
    # text that UTF-8 cannot encode (a lone surrogate, e.g. from json.loads)
    ({"data": "a\ud800"}, InvalidEventError, "event data holds '\\ud800' at index 1"),
    ({"comment": "\udfff"}, InvalidEventError, "comment holds"),
    ({"event": "\ud800"}, InvalidEventError, "event name holds"),
    ({"id": "x\udc00"}, InvalidEventError, "event id holds"),
    # wrong types
    ({"data": b"bytes"}, TypeError, "event data must be a str (decode bytes"),
    ({"data": 1}, TypeError, "not int"),
    ({"data": {"a": 1}}, TypeError, "not dict"),
    ({"event": b"e"}, TypeError, "event name must be a str, not bytes"),
    ({"event": 1}, TypeError, "event name must be a str"),
    ({"id": True}, TypeError, "event id must be a str or an int, not bool"),
    ({"id": False}, TypeError, "not bool"),
    ({"id": 1.0}, TypeError, "not float"),
    ({"id": b"1"}, TypeError, "not bytes"),
    ({"retry": True}, TypeError, "retry must be an int number of milliseconds, not bool"),
    ({"retry": 1.5}, TypeError, "not float; use int(1.5)"),
    ({"retry": "100"}, TypeError, "not str"),
    ({"comment": b"c"}, TypeError, "comment must be a str, not bytes"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), INVALID, ids=repr)
def test_invalid(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        ServerSentEvent(**kwargs)
    assert message in str(info.value)
    if error is InvalidEventError:
        assert isinstance(info.value, SSEError)
        assert isinstance(info.value, ValueError)


def test_invalid_message_teaches_the_fix() -> None:
    with pytest.raises(InvalidEventError) as info:
        ServerSentEvent("x", id="a\nb")
    assert str(info.value) == (
        "event id must not contain CR or LF (got 'a\\nb'): a newline would start a new field "
        "on the wire; encode the value (e.g. JSON or base64) instead"
    )


def _helper_call(kwargs: dict[str, Any]) -> object:
    """The module-level helper that validates the one field in `kwargs`."""
    ((field, value),) = kwargs.items()
    helper: Any = {
        "event": check_event_name,
        "id": check_id,
        "retry": check_retry,
        "data": encode_data,
        "comment": encode_comment,
    }[field]
    return helper(value)


@pytest.mark.parametrize(("kwargs", "error", "message"), INVALID[1:], ids=repr)
def test_helpers_reject_what_the_class_rejects(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        _helper_call(kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(("event", "expected"), ENCODED, ids=repr)
def test_helpers_encode_what_the_class_encodes(event: ServerSentEvent, expected: bytes) -> None:
    rebuilt = b"" if event.comment is None else encode_comment(event.comment)
    if event.event is not None:
        rebuilt += b"event: " + check_event_name(event.event).encode() + b"\n"
    if event.id is not None:
        rebuilt += b"id: " + check_id(event.id).encode() + b"\n"
    if event.data is not None:
        rebuilt += encode_data(event.data)
    if event.retry is not None:
        rebuilt += b"retry: %d\n" % check_retry(event.retry)
    if (event.data, event.event, event.id, event.retry) != (None, None, None, None):
        rebuilt += b"\n"
    assert rebuilt == expected


class Color(enum.IntEnum):
    RED = 7


class Name(str, enum.Enum):
    TICK = "tick"


@pytest.mark.parametrize(
    ("value", "expected"), [("abc", "abc"), ("", ""), (3, "3"), (-3, "-3"), (Color.RED, "7")]
)
def test_check_id(value: str | int, expected: str) -> None:
    assert check_id(value) == expected
    assert type(check_id(value)) is str
    assert ServerSentEvent(id=value).id == expected


def test_str_subclasses_are_stored_as_plain_str() -> None:
    event = ServerSentEvent(Name.TICK, event=Name.TICK, id=Name.TICK, comment=Name.TICK)
    assert event.encode() == b": tick\nevent: tick\nid: tick\ndata: tick\n\n"
    for value in (event.data, event.event, event.id, event.comment, check_event_name(Name.TICK)):
        assert type(value) is str
    assert encode_data(Name.TICK) == b"data: tick\n"
    assert encode_comment(Name.TICK) == b": tick\n"


def test_check_retry() -> None:
    assert check_retry(0) == 0
    assert check_retry(15_000) == 15_000
    assert type(check_retry(Color.RED)) is int
    assert ServerSentEvent(retry=Color.RED).encode() == b"retry: 7\n\n"


def test_encode_data_and_comment() -> None:
    assert encode_data("") == b"data: \n"
    assert encode_data("a\r\nb\rc") == b"data: a\ndata: b\ndata: c\n"
    assert encode_data(" 😀") == "data:  😀\n".encode()
    assert encode_comment("") == b":\n"
    assert encode_comment("keep\r\nalive") == b": keep\n: alive\n"


@pytest.mark.parametrize("field", ["data", "event", "id", "retry", "comment", "other"])
def test_immutable(field: str) -> None:
    event = ServerSentEvent("x", event="e", id=1, retry=2, comment="c")
    with pytest.raises(AttributeError):
        setattr(event, field, "y")
    with pytest.raises(AttributeError):
        delattr(event, field)
    assert not hasattr(event, "__dict__")
    assert event.encode() == b": c\nevent: e\nid: 1\ndata: x\nretry: 2\n\n"


def test_equality_and_hash() -> None:
    a = ServerSentEvent("x", event="e", id=1)
    assert a == ServerSentEvent("x", event="e", id="1")  # an int id is its str
    assert hash(a) == hash(ServerSentEvent("x", event="e", id="1"))
    assert a != ServerSentEvent("x", event="e")
    assert a != ServerSentEvent("x", event="e", id=1, comment="")
    assert ServerSentEvent("") != ServerSentEvent(comment="")
    assert ServerSentEvent(id="") != ServerSentEvent(event="")
    assert a != "data: x"
    assert len({a, ServerSentEvent("x", event="e", id="1"), ServerSentEvent("y")}) == 2


@pytest.mark.parametrize(("event", "expected"), ENCODED, ids=repr)
def test_repr_round_trips(event: ServerSentEvent, expected: bytes) -> None:
    assert eval(repr(event)) == event


def test_repr() -> None:
    assert repr(ServerSentEvent("x", id=3)) == "ServerSentEvent(data='x', id='3')"
    assert repr(ServerSentEvent(comment="")) == "ServerSentEvent(comment='')"


def test_pickle_and_copy() -> None:
    event = ServerSentEvent("x\ny", event="e", id=1, retry=2, comment="c")
    for clone in (pickle.loads(pickle.dumps(event)), copy.copy(event), copy.deepcopy(event)):
        assert clone == event
        assert clone.encode() == event.encode()


@pytest.mark.parametrize("event_id", ["0", "42", "3fa9c2d1-7", "k7d2mq4x~3fa9c2d1-42", "é"])
def test_every_encoder_writes_the_id_line_of_the_frames_module(event_id: str) -> None:
    """The encoders format their `id:` line inline (one format operation per event);
    the hub splices ids with `frames.id_line`. Both must give the same bytes."""
    from asgi_sse._protocol.events import BaseEvent
    from asgi_sse._protocol.frames import id_line, priming_frame

    class Note(BaseEvent[str]):
        pass

    line = id_line(event_id)
    assert ServerSentEvent(id=event_id).encode() == priming_frame(event_id)
    assert line in ServerSentEvent("d", event="e", id=event_id).encode()
    assert line in Note(data="d", id=event_id).encode()
    assert line in Note.frame("d", id=event_id)


def test_wire_layer_imports_nothing_async() -> None:
    # A stand-in package object keeps asgi_sse/__init__.py (which imports every layer)
    # out of the measurement: only what _wire and _parser import themselves counts.
    code = (
        "import importlib.util, sys, types\n"
        "spec = importlib.util.find_spec('asgi_sse')\n"
        "stub = types.ModuleType('asgi_sse')\n"
        "stub.__path__ = list(spec.submodule_search_locations)\n"
        "sys.modules['asgi_sse'] = stub\n"
        "import asgi_sse._protocol.wire, asgi_sse._protocol.parser\n"
        "print(' '.join(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(out.stdout.split())
    assert {"asgi_sse._protocol.wire", "asgi_sse._protocol.parser"} <= loaded
    assert not loaded & {"anyio", "asgiref", "pydantic", "pydantic_core", "trio", "asyncio"}
