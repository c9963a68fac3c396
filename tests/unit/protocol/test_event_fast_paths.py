"""The typed event's fast paths, one test per hazard: the per-class %-formats, the id
union tried int first, the id scan without a regex, data instances not revalidated."""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from asgi_sse import BaseEvent, InvalidEventError, ServerSentEvent
from asgi_sse._protocol.wire import ID_FORBIDDEN, ID_PATTERN, check_id


class Payload(BaseModel):
    seq: int
    text: str

    validations: ClassVar[int] = 0

    @field_validator("seq")
    @classmethod
    def _count(cls, value: int) -> int:
        Payload.validations += 1
        return value


class LoudPayload(Payload):
    extra: str = "not in the declared type"


class Tick(BaseEvent[Payload]):
    pass


class Sale(BaseEvent[int], event="50% off"):
    pass


class Color(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    pass


P = Payload(seq=1, text="hi")
JSON = b'{"seq":1,"text":"hi"}'


def _wire(event: str | None, data: bytes, id: str | None, retry: int | None) -> bytes:
    head = b"" if event is None else b"event: " + event.encode() + b"\n"
    id_line = b"" if id is None else b"id: " + id.encode() + b"\n"
    retry_line = b"" if retry is None else b"retry: %d\n" % retry
    return head + id_line + b"data: " + data + b"\n" + retry_line + b"\n"


@pytest.mark.parametrize("retry", [None, 0, 2500])
@pytest.mark.parametrize("id", [None, 0, 7, -1, 2**70, "", "x", "é"])
def test_every_format_gives_the_wire_bytes(id: str | int | None, retry: int | None) -> None:
    text_id = None if id is None else str(id)
    expected = _wire("tick", JSON, text_id, retry)
    assert Tick(data=P, id=id, retry=retry).encode() == expected
    assert Tick.frame(P, id=id, retry=retry) == expected
    # The same bytes as the untyped encoder writes.
    assert ServerSentEvent(JSON.decode(), event="tick", id=id, retry=retry).encode() == expected
    # BaseEvent[T] used directly: no event line.
    assert BaseEvent[Payload](data=P, id=id, retry=retry).encode() == _wire(
        None, JSON, text_id, retry
    )
    assert BaseEvent[Payload].frame(P, id=id, retry=retry) == _wire(None, JSON, text_id, retry)


@pytest.mark.parametrize("id", [None, 5, "x"])
def test_an_event_name_with_a_percent_sign_is_not_a_format(id: str | int | None) -> None:
    expected = _wire("50% off", b"3", None if id is None else str(id), 9)
    assert Sale(data=3, id=id, retry=9).encode() == expected
    assert Sale.frame(3, id=id, retry=9) == expected


def test_an_int_id_stays_an_int_and_a_str_id_a_str() -> None:
    assert type(Tick(data=P, id=5).id) is int
    assert type(Tick(data=P, id="5").id) is str
    assert Tick(data=P, id=5) != Tick(data=P, id="5")
    assert Tick(data=P, id=5) == Tick(data=P, id=5)
    assert Tick(data=P, id=5).model_dump() == {
        "data": {"seq": 1, "text": "hi"},
        "id": 5,
        "retry": None,
    }


def test_a_str_subclass_id_is_stored_as_a_plain_str() -> None:
    for value, text in [(Text("a1"), "a1"), (Color.RED, "red")]:
        event = Tick(data=P, id=value)
        assert type(event.id) is str
        assert event.id == text
        assert event.encode() == _wire("tick", JSON, text, None)
        assert Tick.frame(P, id=value) == event.encode()


def test_an_int_enum_id_is_sent_as_its_digits() -> None:
    event = Tick(data=P, id=Level.HIGH)
    assert type(event.id) is int
    assert event.encode() == _wire("tick", JSON, "3", None)
    assert Tick.frame(P, id=Level.HIGH) == event.encode()


@pytest.mark.parametrize("bad", [True, 1.5, [1], b"\xff"])
def test_other_id_types_are_rejected(bad: object) -> None:
    with pytest.raises(ValidationError):
        Tick(data=P, id=bad)  # type: ignore[arg-type]


def test_every_forbidden_char_is_rejected_everywhere() -> None:
    assert ID_FORBIDDEN == "\r\n\0"  # the three scans in check_id and frame()
    for char in ID_FORBIDDEN:
        for value in (char, f"a{char}", f"{char}b", f"a{char}b"):
            with pytest.raises(ValidationError) as info:
                Tick(data=P, id=value)
            assert isinstance(info.value, ValueError)
            with pytest.raises(InvalidEventError):
                Tick.frame(P, id=value)
            with pytest.raises(InvalidEventError):
                Tick.frame(P, id=Text(value))
            with pytest.raises(InvalidEventError):
                check_id(value)
            with pytest.raises(InvalidEventError):
                ServerSentEvent("x", id=value)


def test_the_message_names_the_first_forbidden_char() -> None:
    with pytest.raises(InvalidEventError, match="NUL"):
        check_id("a\0b\n")
    with pytest.raises(InvalidEventError, match="CR or LF"):
        check_id("a\rb\0")
    with pytest.raises(InvalidEventError, match="NUL"):
        Tick.frame(P, id="\0")
    with pytest.raises(InvalidEventError, match="CR or LF"):
        Tick.frame(P, id="\r")


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "é\ud83d"])
def test_a_lone_surrogate_id_is_rejected_everywhere(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        Tick(data=P, id=value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidEventError, match="surrogate"):
        Tick.frame(P, id=value)
    with pytest.raises(InvalidEventError, match="surrogate"):
        ServerSentEvent("x", id=value)


def test_the_json_schema_keeps_the_id_pattern() -> None:
    schema = Tick.model_json_schema()
    choices = schema["properties"]["id"]["anyOf"]
    assert {"type": "string", "pattern": ID_PATTERN} in choices
    assert {"type": "integer"} in choices
    assert {"type": "null"} in choices


def test_a_data_instance_is_not_revalidated() -> None:
    payload = Payload(seq=2, text="x")
    before = Payload.validations
    event = Tick(data=payload, id=1)
    assert event.data is payload
    assert Tick.frame(payload, id=1) == event.encode()
    assert Payload.validations == before


def test_a_dict_for_data_is_validated() -> None:
    before = Payload.validations
    event = Tick(data={"seq": "3", "text": "x"}, id=1)  # type: ignore[arg-type]
    assert event.data == Payload(seq=3, text="x")
    assert Payload.validations == before + 2
    assert Tick.frame({"seq": "3", "text": "x"}, id=1) == event.encode()  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Tick(data={"seq": "three", "text": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Tick.frame({"seq": "three", "text": "x"})  # type: ignore[arg-type]


def test_a_subclass_instance_is_sent_as_the_declared_type() -> None:
    loud = LoudPayload(seq=1, text="hi")
    event = Tick(data=loud, id=4)
    assert event.data is loud  # kept as given, like any model instance
    expected = _wire("tick", JSON, "4", None)  # the declared fields only
    assert event.encode() == expected
    assert Tick.frame(loud, id=4) == expected


def test_model_construct_ids_are_encoded_as_before() -> None:
    # No validation through model_construct: encode() still writes what it holds.
    cases: list[tuple[Any, bytes]] = [(Text("t"), b"t"), (Level.HIGH, b"3"), (8, b"8")]
    for value, sent in cases:
        event = Tick.model_construct(data=P, id=value)
        assert event.encode() == b"event: tick\nid: " + sent + b"\ndata: " + JSON + b"\n\n"


def test_a_subclass_gets_its_own_formats() -> None:
    class Tock(Tick, event="tock"):
        pass

    assert Tick(data=P, id=1).encode().startswith(b"event: tick\nid: 1\n")
    assert Tock(data=P, id=1).encode().startswith(b"event: tock\nid: 1\n")
    assert Tock.frame(P, id=1) == Tock(data=P, id=1).encode()


def test_unencodable_data_names_the_class_and_id() -> None:
    class Words(BaseEvent[str]):
        pass

    with pytest.raises(InvalidEventError, match=r"Words \(id 3\)"):
        Words(data="\ud800", id=3).encode()
    with pytest.raises(InvalidEventError, match=r"Words \(id 'k'\)"):
        Words.frame("\ud800", id="k")
