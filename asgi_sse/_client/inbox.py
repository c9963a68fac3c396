"""The events received and not yet taken: the body's bytes parsed into frames, queued
until the consumer takes them, with the last event id each one leaves behind.

Sans-IO: bytes in, `ParsedEvent` out. Must not import anyio, httpx, pydantic or any
layer above the protocol's parser.
"""

from __future__ import annotations

from collections import deque

from .._protocol.parser import Comment, EventStreamParser, ParsedEvent

__all__ = ("Inbox",)


class Inbox:
    """The parsed events of the current connection, oldest first.

    A new connection parses its body afresh (`reconnected`); events not taken yet stay
    (there are none: a source reconnects only once its inbox is empty).
    """

    __slots__ = ("_parser", "_ready")

    def __init__(self, last_event_id: str = "") -> None:
        self._parser = EventStreamParser(last_event_id)
        self._ready: deque[ParsedEvent] = deque()

    def __bool__(self) -> bool:
        """Whether an event waits to be taken."""
        return bool(self._ready)

    def reconnected(self, last_event_id: str) -> None:
        """A new connection, resumed from ``last_event_id``: its body is a new stream."""
        self._parser = EventStreamParser(last_event_id)

    def feed(self, chunk: bytes) -> bool:
        """Parse a chunk of the body; True if an event now waits. Comments (keep-alives)
        are dropped."""
        for item in self._parser.feed(chunk):
            if not isinstance(item, Comment):
                self._ready.append(item)
        return bool(self._ready)

    @property
    def retry(self) -> float | None:
        """The reconnection delay the stream set (``retry:``), in seconds, or None."""
        milliseconds = self._parser.retry
        return None if milliseconds is None else milliseconds / 1000

    @property
    def last_event_id(self) -> str:
        """The stream's last event id, as parsed so far (WHATWG HTML 9.2.6: an ``id:``
        sets it when its frame ends, even if no event is dispatched)."""
        return self._parser.last_event_id

    def take(self) -> tuple[ParsedEvent, str]:
        """The oldest event waiting, and the last event id once it is taken.

        That is the id of the event taken, not of the last one parsed, while others
        wait: a consumer may save it and resume from it without a loss.
        """
        parsed = self._ready.popleft()
        return parsed, (parsed.id if self._ready else self._parser.last_event_id)
