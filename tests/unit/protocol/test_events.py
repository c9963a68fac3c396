"""Typed events: names, encoding to bytes, validation at the boundary, the decorator."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from asgi_sse import (
    BaseEvent,
    EventStreamParser,
    InvalidEventError,
    ParsedEvent,
    ServerSentEvent,
    event_stream,
)
from asgi_sse._protocol.events import event_name_for


class EchoPayload(BaseModel):
    message: str
    created_at: float


class Echo(BaseEvent[EchoPayload]):
    pass


class ReverseEcho(BaseEvent[EchoPayload]):
    pass


class HTTPError(BaseEvent[str]):
    pass


class Tick(BaseEvent[int], event="clock.tick"):
    pass


class Item(BaseModel):
    name: str


class Items(BaseEvent[list[Item]]):
    pass


class Stamp(BaseEvent[dt.datetime]):
    pass


class Mapping_(BaseEvent[dict[str, int]], event="mapping"):
    pass


@pytest.mark.parametrize(
    ("class_name", "expected"),
    [
        ("Echo", "echo"),
        ("ReverseEcho", "reverse_echo"),
        ("HTTPError", "http_error"),
        ("Echo2", "echo2"),
        ("ABC", "abc"),
        ("getURLForID", "get_url_for_id"),
        ("already_snake", "already_snake"),
    ],
)
def test_event_name_derivation(class_name: str, expected: str) -> None:
    assert event_name_for(class_name) == expected


def test_class_event_names() -> None:
    assert Echo.event_name == "echo"
    assert ReverseEcho.event_name == "reverse_echo"
    assert HTTPError.event_name == "http_error"
    assert Tick.event_name == "clock.tick"
    assert BaseEvent[int].event_name is None


def test_explicit_event_name_with_newline_is_rejected_at_class_creation() -> None:
    with pytest.raises(InvalidEventError, match="CR or LF"):

        class Bad(BaseEvent[int], event="a\nb"):
            pass


PAYLOAD = EchoPayload(message="hello", created_at=1.5)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            Echo(data=PAYLOAD),
            b'event: echo\ndata: {"message":"hello","created_at":1.5}\n\n',
        ),
        (
            Echo(data=PAYLOAD, id="0"),
            b'event: echo\nid: 0\ndata: {"message":"hello","created_at":1.5}\n\n',
        ),
        (
            ReverseEcho(data=PAYLOAD, id="a-1", retry=3000),
            b"event: reverse_echo\nid: a-1\n"
            b'data: {"message":"hello","created_at":1.5}\nretry: 3000\n\n',
        ),
        (Tick(data=7), b"event: clock.tick\ndata: 7\n\n"),
        (BaseEvent[int](data=1), b"data: 1\n\n"),
        (
            HTTPError(data="line1\nline2\r\n"),
            b'event: http_error\ndata: "line1\\nline2\\r\\n"\n\n',
        ),
        (
            Items(data=[Item(name="a"), Item(name="b")]),
            b'event: items\ndata: [{"name":"a"},{"name":"b"}]\n\n',
        ),
        (
            Stamp(data=dt.datetime(2024, 7, 13, 12, 0, tzinfo=dt.timezone.utc)),
            b'event: stamp\ndata: "2024-07-13T12:00:00Z"\n\n',
        ),
        (Mapping_(data={"a": 1}), b'event: mapping\ndata: {"a":1}\n\n'),
        (
            HTTPError(data="\u2028 emoji \U0001f600"),
            'event: http_error\ndata: "\u2028 emoji \U0001f600"\n\n'.encode(),
        ),
    ],
)
def test_encode(event: BaseEvent[Any], expected: bytes) -> None:
    assert event.encode() == expected


@pytest.mark.parametrize(
    "event",
    [
        Echo(data=PAYLOAD, id=12),
        HTTPError(data="a\r\nb\rc\nd  "),
        Items(data=[]),
        Tick(data=-1, id="", retry=5),
    ],
)
def test_encode_parses_back(event: BaseEvent[Any]) -> None:
    (parsed,) = EventStreamParser().feed(event.encode())
    assert isinstance(parsed, ParsedEvent)
    assert parsed.event == (type(event).event_name or "message")
    expected_id = None if event.id in (None, "") else str(event.id)
    assert type(event).decode(parsed.data, id=parsed.id) == event.model_copy(
        update={"retry": None, "id": expected_id}
    )


@pytest.mark.parametrize("bad_id", ["a\nb", "a\rb", "a\0b", True])
def test_invalid_id_rejected(bad_id: object) -> None:
    with pytest.raises(ValidationError) as info:
        Echo(data=PAYLOAD, id=bad_id)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad_retry", [-1, True, 1.5, "10"])
def test_invalid_retry_rejected(bad_retry: object) -> None:
    with pytest.raises(ValidationError):
        Echo(data=PAYLOAD, retry=bad_retry)  # type: ignore[arg-type]


def test_payload_is_validated() -> None:
    with pytest.raises(ValidationError):
        Echo(data={"message": 1})  # type: ignore[arg-type]
    assert Echo(data={"message": "x", "created_at": 2}).data == EchoPayload(  # type: ignore[arg-type]
        message="x", created_at=2.0
    )


def test_int_id_is_sent_as_decimal() -> None:
    event = Echo(data=PAYLOAD, id=5)
    assert event.id == 5
    assert event.encode().startswith(b"event: echo\nid: 5\n")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, b'event: echo\ndata: {"message":"hello","created_at":1.5}\n\n'),
        ({"id": 3}, b'event: echo\nid: 3\ndata: {"message":"hello","created_at":1.5}\n\n'),
        ({"id": "x"}, b'event: echo\nid: x\ndata: {"message":"hello","created_at":1.5}\n\n'),
        (
            {"id": "", "retry": 10},
            b'event: echo\nid: \ndata: {"message":"hello","created_at":1.5}\nretry: 10\n\n',
        ),
        ({"retry": 0}, b'event: echo\ndata: {"message":"hello","created_at":1.5}\nretry: 0\n\n'),
    ],
)
def test_frame_is_encode_without_the_object(kwargs: dict[str, Any], expected: bytes) -> None:
    assert Echo.frame(PAYLOAD, **kwargs) == expected
    assert Echo(data=PAYLOAD, **kwargs).encode() == expected


def test_frame_validates_like_construction() -> None:
    # a dict is validated into the payload model, as the constructor does
    assert Echo.frame({"message": "hello", "created_at": 1.5}) == Echo(data=PAYLOAD).encode()  # type: ignore[arg-type]
    assert Tick.frame(True) == b"event: clock.tick\ndata: 1\n\n"  # lax int, as pydantic
    with pytest.raises(ValidationError):
        Echo.frame({"message": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError, match="CR or LF"):
        Echo.frame(PAYLOAD, id="a\nb")
    with pytest.raises(InvalidEventError):
        Echo.frame(PAYLOAD, id="a\0b")
    with pytest.raises(InvalidEventError):
        Echo.frame(PAYLOAD, retry=-1)
    with pytest.raises(TypeError):
        Echo.frame(PAYLOAD, id=True)
    with pytest.raises(InvalidEventError):
        Echo.frame(PAYLOAD, id="\ud800")  # a lone surrogate cannot be UTF-8
    with pytest.raises(ValidationError):
        Echo(data=PAYLOAD, id="\ud800")


def test_generic_subclass_keeps_its_name() -> None:
    from typing import Generic, TypeVar

    T = TypeVar("T")

    class Wrapped(BaseEvent[T], Generic[T]):
        pass

    assert Wrapped[int].event_name == "wrapped"
    assert Wrapped[int](data=3).encode() == b"event: wrapped\ndata: 3\n\n"


@pytest.mark.anyio
async def test_event_stream_numbers_ids_from_zero() -> None:
    @event_stream
    async def echoes(message: str) -> AsyncIterator[Echo]:
        for _ in range(3):
            yield Echo(data=EchoPayload(message=message, created_at=0))
        yield Echo(data=EchoPayload(message=message, created_at=0), id="custom")
        yield Echo(data=EchoPayload(message=message, created_at=0))

    ids = [event.id async for event in echoes("hi")]
    assert ids == [0, 1, 2, "custom", 4]


@pytest.mark.anyio
async def test_event_stream_close_runs_inner_cleanup() -> None:
    cleaned = anyio.Event()

    @event_stream
    async def forever() -> AsyncIterator[Tick]:
        try:
            while True:
                yield Tick(data=1)
        finally:
            cleaned.set()

    stream = forever()
    assert (await stream.__anext__()).id == 0
    await stream.aclose()
    assert cleaned.is_set()


@pytest.mark.anyio
async def test_event_stream_rejects_other_items() -> None:
    @event_stream
    async def wrong() -> AsyncIterator[Any]:
        yield "not an event"

    with pytest.raises(TypeError, match="BaseEvent"):
        async for _ in wrong():
            pass


class IdProbe(BaseEvent[str]):
    pass


def _accepts(make: Callable[[], object]) -> bool:
    try:
        make()
    except ValueError:  # InvalidEventError and pydantic's ValidationError both are
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        st.one_of(
            st.sampled_from("\r\n\x00\ud800\udfff\u2028 é"),
            st.characters(blacklist_categories=()),  # surrogates included
        ),
        max_size=8,
    )
)
def test_the_id_rule_is_one_rule_everywhere(value: str) -> None:
    """ServerSentEvent, BaseEvent and BaseEvent.frame accept exactly the same ids, and
    put the same `id:` line on the wire."""
    wire = _accepts(lambda: ServerSentEvent("x", id=value))
    model = _accepts(lambda: IdProbe(data="x", id=value))
    frame = _accepts(lambda: IdProbe.frame("x", id=value))
    assert wire == model == frame, (value, wire, model, frame)
    if wire:
        id_line = b"id: " + value.encode() + b"\n"
        assert id_line in ServerSentEvent("x", id=value).encode()
        assert IdProbe(data="x", id=value).encode() == IdProbe.frame("x", id=value)
        assert id_line in IdProbe.frame("x", id=value)
