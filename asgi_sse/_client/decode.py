"""Decoding received frames into typed events: a frame's event name picks the class,
the class's own `BaseEvent.decode` validates its data.

`Reset` is always known (a hub may send one on any stream), so a consumer can refetch
its state when it comes. Sans-IO: must not import anyio, httpx or the server or hub
layers; only the protocol layer and pydantic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import ValidationError

from .._protocol.events import BaseEvent
from .._protocol.parser import ParsedEvent
from .._protocol.reset import Reset
from .errors import InvalidEventData, UnknownEvent

__all__ = ("EventClasses", "decode", "event_classes")

#: Event name (``message`` for a class without one) -> the class its frames decode into.
EventClasses = dict[str, type[BaseEvent[Any]]]


def event_classes(events: Iterable[type[BaseEvent[Any]]]) -> EventClasses:
    """The classes by event name, `Reset` included (a class of the same name overrides
    it; of two classes with one name, the last given wins).

    Raises:
        TypeError: something that is not a `BaseEvent` subclass.
    """
    classes: EventClasses = {"reset": Reset}
    for cls in events:
        if not (isinstance(cls, type) and issubclass(cls, BaseEvent)):
            raise TypeError(f"events are BaseEvent subclasses, not {cls!r}")
        classes[cls.event_name or "message"] = cls
    return classes


def decode(
    parsed: ParsedEvent,
    classes: EventClasses,
    *,
    on_unknown: Literal["raw", "raise"],
    on_invalid: Literal["raise", "raw"],
) -> BaseEvent[Any] | ParsedEvent:
    """The frame as an instance of its class, or as it was parsed (a name no class has
    with ``on_unknown="raw"``, data that does not validate with ``on_invalid="raw"``).

    Raises:
        UnknownEvent: a name no class has, with ``on_unknown="raise"``.
        InvalidEventData: data that does not validate as its class, with
            ``on_invalid="raise"`` (chained from pydantic's error).
    """
    cls = classes.get(parsed.event)
    if cls is None:
        if on_unknown == "raise":
            raise UnknownEvent(f"an event named {parsed.event!r}: no class given", parsed)
        return parsed
    try:
        return cls.decode(parsed.data, id=parsed.id)
    except ValidationError as exc:
        if on_invalid == "raw":
            return parsed
        where = f" (id {parsed.id!r})" if parsed.id else ""
        raise InvalidEventData(
            f"the data of a {parsed.event!r} event{where} is not a valid {cls.__name__}: {exc}",
            parsed,
        ) from exc
