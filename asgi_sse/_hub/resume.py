"""Where a client resumes: its last event id resolved against the logs of the topics
it subscribes to, once, before its response starts.

* no id (or an empty one): from each log's head (the subscription primes the client's
  cursor with an id-only frame);
* `EARLIEST`: from the oldest event each topic still holds;
* an id: one topic's position, or a composite cursor with a position per topic (under
  the topic's cursor key; a topic the cursor does not name starts at its head,
  quietly); each position is the backend's to locate (`HubBackend.locate`). An id that
  is neither is ``malformed``: a `Reset` (`reset_frame`), then live.

Imports the SPI (backend, log) and the protocol layer's cursors; never the facade, the
subscription or the ASGI layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .._protocol.cursor import parse_cursor, parse_position
from .._protocol.reset import Reset, ResetInfo, ResetReason
from .backend import EARLIEST, HubBackend
from .log import TopicLog
from .observer import SubscriptionStart

__all__ = ("Resolved", "reset_frame", "resolve")


class Resolved(NamedTuple):
    """Where a subscription starts in each of its logs, and why not exactly, if not."""

    #: Per log: the sequence of the first event the client gets.
    starts: list[int]
    #: ``live``, ``earliest`` or ``replay`` (the subscription then says ``reset`` or
    #: ``closed`` where that is what happened).
    how: SubscriptionStart
    #: Why some topics cannot resume exactly (the first reason met), if so ...
    reset: ResetReason | None = None
    #: ... and which.
    reset_topics: tuple[str, ...] = ()


async def resolve(
    backend: HubBackend, logs: Sequence[TopicLog], last_event_id: str | None
) -> Resolved:
    """Attach the logs that are not attached, then resolve ``last_event_id`` in them.

    Raises:
        HubUnavailable: the backend cannot be reached (nothing is resolved yet).
    """
    for log in logs:
        if not log.attached:
            await backend.attach(log)
    if last_event_id is None:
        return Resolved([log.newest + 1 for log in logs], "live")
    if last_event_id == EARLIEST:
        starts = [(await backend.locate(log, EARLIEST)).start for log in logs]
        return Resolved(starts, "earliest")
    positions = positions_in(logs, last_event_id)
    if positions is None:
        names = tuple(log.name for log in logs)
        return Resolved([log.newest + 1 for log in logs], "replay", "malformed", names)
    return await _locate(backend, logs, positions)


async def _locate(
    backend: HubBackend, logs: Sequence[TopicLog], positions: list[str | None]
) -> Resolved:
    starts: list[int] = []
    reset: ResetReason | None = None
    reset_topics: list[str] = []
    for log, position in zip(logs, positions, strict=True):
        if position is None:  # not in the cursor: from the head, quietly
            start, why = log.newest + 1, None
        else:
            start, why = await backend.locate(log, position)
        if why is not None:
            reset = why if reset is None else reset
            reset_topics.append(log.name)
        starts.append(start)
    return Resolved(starts, "replay", reset, tuple(reset_topics))


def positions_in(logs: Sequence[TopicLog], last_event_id: str) -> list[str | None] | None:
    """The client's position in each log, from its id (None where a cursor names no
    position for it); None when the id is malformed."""
    if len(logs) == 1:
        return [last_event_id] if parse_position(last_event_id) is not None else None
    entries = parse_cursor(last_event_id)
    if entries is None:
        return None
    return [entries.get(log.cursor_key) for log in logs]


def reset_frame(reason: ResetReason, topics: tuple[str, ...], resume_from: str) -> bytes:
    """The `Reset` that tells a client it missed events of ``topics`` (for ``reason``),
    and that its stream goes on after ``resume_from``, the frame's own id."""
    info = ResetInfo(reason=reason, topics=list(topics), resume_from=resume_from)
    return Reset(data=info, id=resume_from).encode()
