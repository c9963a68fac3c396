"""The typed event's fast paths, one test per hazard: the per-class %-formats, the id
union tried int first, the id scan without a regex, data instances not revalidated."""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from asgi_sse import BaseEvent, InvalidEventError, ServerSentEvent
from asgi_sse._protocol.events import ITEM_ENCODERS
from asgi_sse._protocol.stream import encode_item
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


# -- the response's encoder per exact class (encode_item) -------------------------------


def test_a_subclass_made_after_its_parent_encoded_gets_its_own_encoder() -> None:
    class Parent(BaseEvent[int], event="parent"):
        pass

    for _ in range(2):
        assert encode_item(Parent(data=1, id=1)) == b"event: parent\nid: 1\ndata: 1\n\n"

    class Child(Parent, event="child"):
        pass

    for _ in range(2):  # its own name, through its own encoder the second time
        assert encode_item(Child(data=2, id=2)) == b"event: child\nid: 2\ndata: 2\n\n"
        assert encode_item(Child(data=3)) == b"event: child\ndata: 3\n\n"
    assert ITEM_ENCODERS[Child] is not ITEM_ENCODERS[Parent]
    assert "encode" not in vars(Child)  # nothing is set on the class
    assert encode_item(Parent(data=4)) == b"event: parent\ndata: 4\n\n"


def test_every_field_combination_goes_through_the_per_class_encoder() -> None:
    class Fresh(BaseEvent[int], event="fresh"):
        pass

    encode_item(Fresh(data=0))
    assert Fresh in ITEM_ENCODERS
    for event_id in (None, 7, "a-7"):
        for retry in (None, 0, 1500):
            wire_id = None if event_id is None else str(event_id)
            expected = _wire("fresh", b"5", wire_id, retry)
            assert Fresh(data=5, id=event_id, retry=retry).encode() == expected
            assert encode_item(Fresh(data=5, id=event_id, retry=retry)) == expected


def test_unencodable_data_through_the_per_class_encoder_names_the_class_and_id() -> None:
    class Loose(BaseEvent[str]):
        pass

    assert encode_item(Loose(data="fine")) == b'event: loose\ndata: "fine"\n\n'
    assert Loose in ITEM_ENCODERS  # what follows goes through the per-class encoder
    with pytest.raises(InvalidEventError, match=r"Loose \(id 3\) cannot be encoded"):
        encode_item(Loose(data="\ud800", id=3))
    with pytest.raises(InvalidEventError, match="Loose cannot be encoded"):
        encode_item(Loose(data="\ud800"))


def test_a_users_own_encode_is_kept_and_can_call_the_shared_one() -> None:
    class Base(BaseEvent[int], event="base"):
        pass

    Base(data=0).encode()  # Base has its own encoder now

    class Signed(Base, event="signed"):
        def encode(self) -> bytes:
            return b": signed\n" + super().encode()

    class Later(Signed, event="later"):
        pass

    for _ in range(2):  # the second time through encode_item's per-type table
        assert Signed(data=1).encode() == b": signed\nevent: signed\ndata: 1\n\n"
        assert encode_item(Signed(data=1)) == b": signed\nevent: signed\ndata: 1\n\n"
        # A subclass of a class with its own encode inherits it: never replaced.
        assert encode_item(Later(data=2)) == b": signed\nevent: later\ndata: 2\n\n"
    assert vars(Signed)["encode"] is Signed.encode
    assert "encode" not in vars(Later)


def test_encode_item_handles_every_kind_of_item_twice() -> None:
    class Raw(bytes):
        pass

    class Words(str):
        pass

    items: list[tuple[object, bytes]] = [
        (b"data: x\n\n", b"data: x\n\n"),
        (Raw(b"data: r\n\n"), b"data: r\n\n"),
        (bytearray(b"data: b\n\n"), b"data: b\n\n"),
        ("two\nlines", b"data: two\ndata: lines\n\n"),
        (Words("w"), b"data: w\n\n"),
        (ServerSentEvent(data="s", event="e"), b"event: e\ndata: s\n\n"),
        (Tick(data=P, id=1), b"event: tick\nid: 1\ndata: " + JSON + b"\n\n"),
    ]
    for _ in range(2):
        for item, expected in items:
            frame = encode_item(item)
            assert frame == expected
            assert type(frame) is bytes
    with pytest.raises(TypeError, match="yielded 'int'"):
        encode_item(1)
    with pytest.raises(TypeError, match="yielded 'int'"):
        encode_item(1)


def test_setting_or_deleting_any_class_encode_empties_the_table() -> None:
    class Watched(BaseEvent[int]):
        pass

    encode_item(Watched(data=1))
    assert Watched in ITEM_ENCODERS

    def loud(self: BaseEvent[Any]) -> bytes:
        return b"data: loud\n\n"

    Watched.encode = loud  # type: ignore[method-assign]
    assert Watched not in ITEM_ENCODERS
    assert encode_item(Watched(data=2)) == b"data: loud\n\n"
    assert Watched not in ITEM_ENCODERS  # not BaseEvent's encode: called every time
    del Watched.encode
    assert encode_item(Watched(data=3)) == b"event: watched\ndata: 3\n\n"
    assert encode_item(Watched(data=4)) == b"event: watched\ndata: 4\n\n"
    assert Watched in ITEM_ENCODERS
