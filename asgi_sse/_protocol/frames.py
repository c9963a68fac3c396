"""Frames whose id is filled in later: the hub's storage format.

The hub (and any backend) encodes an event once, without its id, and sets the id line
when the event is stored: `split_at_id` cuts the encoded frame where the wire's field
order puts the ``id:`` line (after the comment and event lines, before the data),
`frame_with_id` joins the two parts around an id line and says where that line is, and
`with_other_id` swaps it for another (a multi-topic subscriber's composite cursor) with
no other copy of the frame's bytes. Every ``id:`` line the hub and its backends write
is written here; the encoders (`ServerSentEvent`, `BaseEvent`) format theirs inline, in
the one f-string or %-format that builds the whole frame, and a test pins their bytes
to `id_line`'s.

Sans-IO, like the rest of the protocol layer: imports the wire and events modules only.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from .errors import InvalidEventError
from .events import BaseEvent
from .wire import ServerSentEvent, encode_comment

__all__ = (
    "IdFrame",
    "frame_id",
    "frame_with_id",
    "id_line",
    "priming_frame",
    "split_at_id",
    "with_other_id",
)

IdFrame: TypeAlias = tuple[bytes, int, int]
"""A frame with its ``id:`` line, and where that line starts and ends in it:
``(frame, start, end)``, ``frame[start:end]`` being ``b"id: <event id>\\n"``; what a
`TopicLog` holds per event (`TopicLog.frames`, `TopicLog.frame_at`)."""

_ID_FIELD = b"id: "


def id_line(event_id: str) -> bytes:
    """The ``id:`` line of ``event_id`` (checked by whoever made the id)."""
    return _ID_FIELD + event_id.encode() + b"\n"


def priming_frame(event_id: str) -> bytes:
    """An id-only frame: clients set their last event id and dispatch nothing."""
    return id_line(event_id) + b"\n"


def frame_with_id(head: bytes, event_id: str, tail: bytes) -> IdFrame:
    """The frame ``head + id line + tail``, with where its id line is."""
    line = id_line(event_id)
    return head + line + tail, len(head), len(head) + len(line)


def frame_id(frame: IdFrame) -> str:
    """The event id an `IdFrame` carries."""
    data, start, end = frame
    return data[start + len(_ID_FIELD) : end - 1].decode()


def with_other_id(frame: IdFrame, event_id: str) -> bytes:
    """The same frame under another id."""
    data, start, end = frame
    return data[:start] + id_line(event_id) + data[end:]


def split_at_id(item: BaseEvent[Any] | ServerSentEvent | str) -> tuple[bytes, bytes]:
    """The frame of ``item`` cut where its id line goes: ``(head, tail)``.

    Raises:
        InvalidEventError: the item has an id already, or no data.
        TypeError: the item is not a `BaseEvent`, a `ServerSentEvent` or a str.
    """
    if isinstance(item, BaseEvent):
        if item.id is not None:
            raise InvalidEventError(
                f"the hub assigns event ids; publish the {type(item).__name__} without id="
            )
        encoded = item.encode()
        prefix = type(item)._sse_prefix
        return prefix, encoded[len(prefix) :]
    if isinstance(item, str):
        item = ServerSentEvent(item)
    if not isinstance(item, ServerSentEvent):
        msg = f"publish a BaseEvent, a ServerSentEvent or a str, not {type(item).__name__}"
        raise TypeError(msg)
    if item.id is not None:
        raise InvalidEventError("the hub assigns event ids; publish the event without id=")
    if item.data is None:
        raise InvalidEventError("publish an event with data: clients dispatch nothing else")
    head = b"" if item.comment is None else encode_comment(item.comment)
    if item.event is not None:
        head += b"event: " + item.event.encode() + b"\n"
    encoded = item.encode()
    return encoded[: len(head)], encoded[len(head) :]
