"""resumable_merge(): merge keyed sources so that one `Last-Event-ID` resumes each of them.

Two merged streams that number their events from 0 give a client ids that collide: "3"
from one source says nothing about the other. Here every source has a name and is a
function of where to start (its own last id, or None), and every event that goes out
carries a cursor of all sources' positions as its id (the format of `cursor`: a key
derived from each name, then that source's id). On reconnect the cursor is split again
and each source restarts from its own position.

A source may also yield encoded frames (bytes), as a hub `Subscription` does: their
``id:`` lines are read and rewritten (`_frames_with_cursor`), so that a hub topic merges
with streams of the app's own and still resumes exactly, its priming frame included.

Imports the protocol layer (wire, events, cursor), `merge` and `_util`; never the
server layer.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Generic, TypeVar, cast

from .._protocol.cursor import TOKEN, format_cursor, parse_cursor, source_key
from .._protocol.errors import InvalidEventError
from .._protocol.events import BaseEvent
from .._protocol.wire import ServerSentEvent
from .._util.closing import close_stream
from .merge import Merged

__all__ = ("ResumableMerge", "resumable_merge")

T = TypeVar("T")

#: An ``id:`` line of encoded frames. The encoders write every field on a line of its
#: own (a data line starts with ``data:``, a comment with ``:``), so ``id: `` at the
#: start of the bytes or after a line feed can only be the id field.
_ID_LINE = re.compile(rb"(?m)^id: ([^\n]*)\n")


class ResumableMerge(Generic[T]):
    """The merged stream returned by `resumable_merge()` (use it like `merge()`).

    Args:
        sources: Each source's name -> ``start(last_id)``, which returns its stream.
        last_event_id: The client's last event id: the cursor to resume from.
        buffer: Items each source may run ahead of the consumer.

    Raises:
        ValueError: for no source, or a ``buffer`` that is not an int >= 0.
    """

    __slots__ = ("_merged", "_positions", "_starts")

    def __init__(
        self,
        sources: Mapping[str, Callable[[str | None], AsyncIterable[T]]],
        last_event_id: str | None,
        buffer: int,
    ) -> None:
        if not sources:
            raise ValueError("resumable_merge() needs at least one source")
        # A malformed cursor is None: every source starts afresh.
        resumed = (parse_cursor(last_event_id) if last_event_id else None) or {}
        #: Each source's last id sent so far, by key: the cursor every event carries.
        self._positions: dict[str, str] = {}
        keyed = []
        for name, start in sources.items():
            key = source_key(name)
            position = resumed.get(key)
            if position is not None:
                self._positions[key] = position
            keyed.append(_keyed_items(key, start, position))
        self._merged: Merged[tuple[str, T]] = Merged(tuple(keyed), buffer)
        self._starts = {name: resumed.get(source_key(name)) for name in sources}

    @property
    def starts(self) -> dict[str, str | None]:
        """Where each source was asked to start (its last id, or None)."""
        return dict(self._starts)

    @property
    def keys(self) -> dict[str, str]:
        """Each source's key in the cursor, by name: a cursor is ``<key>~<id>`` entries
        joined by ``.``, so a client told these keys can read each source's own id."""
        return {name: source_key(name) for name in self._starts}

    async def __aenter__(self) -> ResumableMerge[T]:
        await self._merged.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return await self._merged.__aexit__(exc_type, exc, traceback)

    def __aiter__(self) -> ResumableMerge[T]:
        return self

    async def __anext__(self) -> T:
        key, item = await self._merged.__anext__()
        return self._with_cursor(key, item)

    def next_nowait(self) -> T:
        """The next item if one is ready now (see `Merged.next_nowait`)."""
        key, item = self._merged.next_nowait()
        return self._with_cursor(key, item)

    async def aclose(self) -> None:
        """Ask the merged stream to end (see `Merged.aclose`)."""
        await self._merged.aclose()

    def _with_cursor(self, key: str, item: T) -> T:
        if isinstance(item, bytes):
            return cast(T, self._frames_with_cursor(key, item))
        event_id = getattr(item, "id", None)
        if event_id is None or not isinstance(item, (BaseEvent, ServerSentEvent)):
            return item  # no position to record: sent as it is
        cursor = self._advance(key, str(event_id))
        if isinstance(item, BaseEvent):
            return item.model_copy(update={"id": cursor})
        return ServerSentEvent(  # type: ignore[return-value]
            item.data, event=item.event, id=cursor, retry=item.retry, comment=item.comment
        )

    def _frames_with_cursor(self, key: str, frames: bytes) -> bytes:
        """Encoded frames with each ``id:`` line read as the source's position and
        replaced by the cursor; frames without one go out as they are."""
        if b"id: " not in frames:  # no scan for frames without an id
            return frames

        def cursor_line(match: re.Match[bytes]) -> bytes:
            position = match.group(1).decode("utf-8", "replace")
            return b"id: " + self._advance(key, position).encode() + b"\n"

        return _ID_LINE.sub(cursor_line, frames)

    def _advance(self, key: str, position: str) -> str:
        """Record ``position`` as the source's; the cursor to send now."""
        if not TOKEN.fullmatch(position):
            raise InvalidEventError(
                f"a resumable source's event id must be letters, digits, '_' or '-' (up to "
                f"40), got {position!r}: it goes into the cursor"
            )
        self._positions[key] = position
        return format_cursor(self._positions)


async def _keyed_items(
    key: str, start: Callable[[str | None], AsyncIterable[T]], position: str | None
) -> AsyncIterator[tuple[str, T]]:
    source = start(position)
    iterator: AsyncIterator[T] = aiter(source)
    try:
        async for item in iterator:
            yield key, item
    finally:
        await close_stream(iterator)


def resumable_merge(
    sources: Mapping[str, Callable[[str | None], AsyncIterable[T]]],
    *,
    last_event_id: str | None = None,
    buffer: int = 0,
) -> ResumableMerge[T]:
    """Merge named sources so that a reconnecting client resumes every one of them.

    Each source is a function ``start(last_id) -> stream``: called with the id of the
    last event of that source the client received (None on a first connection), it
    returns the stream from just after it. Every event sent carries a cursor of all
    sources' ids as its own id; pass the client's `Last-Event-ID` (``request.
    last_event_id``) back as ``last_event_id``. Source ids must be letters, digits,
    ``_`` or ``-`` (up to 40 characters); events without an id go out as they are.
    A malformed cursor starts every source afresh; a cursor that misses a source
    starts that one afresh. Otherwise it behaves like `merge()`.

    A source may yield encoded frames (bytes) too, such as a hub `Subscription` of one
    topic: ``"chat": lambda last: hub.subscribe("chat", last_event_id=last)``. Each
    ``id:`` line in them (a line that starts with ``id: ``, as this package's encoders
    write it) is the source's position and is replaced by the cursor; an id-only
    frame (the hub's priming frame) records the position too, so a client that
    reconnects before the topic's first event still resumes it exactly. A
    subscription of several topics has a cursor as its id, which cannot go into
    another: merge one subscription per topic instead.

    Args:
        sources: Each source's name -> its ``start`` function. The names never go on
            the wire: a cursor holds a key derived from each.
        last_event_id: The client's last event id (``request.last_event_id``); None
            or empty: a first connection.
        buffer: Items each source may run ahead of the consumer (as in `merge()`).

    Returns:
        The merged stream, to enter with ``async with`` (or hand to a response).

    Raises:
        ValueError: no source, or a ``buffer`` that is not an int >= 0.
        InvalidEventError: while streaming, a source event's id (or a frame's ``id:``
            line) cannot go into a cursor.
        RuntimeError: as `merge()` raises it.
        Exception: the first exception raised by a source (or its ``start``), as
            `merge()` raises it.
    """
    return ResumableMerge(sources, last_event_id, buffer)
