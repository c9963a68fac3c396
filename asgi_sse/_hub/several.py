"""Several topics in one subscription: they take turns, and every frame goes out under a
composite cursor.

A composite cursor holds a position per topic, under the topic's cursor key
(`asgi_sse._protocol.cursor`), so the client's Last-Event-ID resumes every topic
exactly. The frame, the same bytes every single-topic subscriber sends, is copied with
that cursor as its id (`asgi_sse._protocol.frames.with_other_id`). The subscriber waits
on an event of its own, which each of its logs sets at its next change.

A one-topic subscription has none of this (its cursor is the log's own id), so the
common case pays nothing for it. Imports the log and the protocol layer; never the
subscription (which holds one of these) or the ASGI layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from .._protocol.cursor import format_cursor
from .._protocol.frames import with_other_id
from .log import TopicLog

__all__ = ("SeveralTopics",)


class SeveralTopics:
    """The turns, the composite cursor and the wake-up of a subscription to ``logs``."""

    __slots__ = ("cursor", "logs", "turn", "waiter")

    def __init__(self, logs: tuple[TopicLog, ...]) -> None:
        self.logs = logs
        self.cursor: dict[str, str] = {}  # cursor key -> the position sent last
        self.turn = 0  # the index of the topic whose turn it is
        self.waiter: anyio.Event | None = None

    def start_at(self, starts: Sequence[int]) -> None:
        """The cursor before the first event of each log (``starts``: sequences)."""
        for log, start in zip(self.logs, starts, strict=True):
            self.cursor[log.cursor_key] = log.id_at(start - 1)

    def skip_to_newest(self, log: TopicLog) -> None:
        """``log`` goes on from its newest event (after a Reset)."""
        self.cursor[log.cursor_key] = log.newest_id()

    def current_id(self) -> str:
        return format_cursor(self.cursor)

    def ready(self, next_sequences: Sequence[int]) -> int | None:
        """The index of the first log, from the one whose turn it is, that has an event
        at or after its next sequence; None if none has."""
        count = len(self.logs)
        for offset in range(count):
            index = (self.turn + offset) % count
            if next_sequences[index] <= self.logs[index].newest:
                return index
        return None

    def take(self, index: int, sequence: int) -> bytes:
        """The frame at ``sequence`` of log ``index``, under the cursor that includes
        it; the next turn is the next log's."""
        log = self.logs[index]
        self.turn = index + 1
        self.cursor[log.cursor_key] = log.id_at(sequence)
        return with_other_id(log.frame_at(sequence), format_cursor(self.cursor))

    async def wait(self) -> None:
        """Until one of the logs changes (or `wake`)."""
        self.waiter = waiter = anyio.Event()
        for log in self.logs:
            log.add_waiter(waiter)
        try:
            await waiter.wait()
        finally:
            for log in self.logs:
                log.remove_waiter(waiter)
            self.waiter = None

    def wake(self) -> None:
        """End a `wait` in progress (the subscription was dropped or closed)."""
        if self.waiter is not None:
            self.waiter.set()

    def release(self) -> None:
        """Stop waiting on the logs (the subscription is closed); a `wait` in progress
        (another task's) ends now."""
        waiter = self.waiter
        if waiter is not None:
            for log in self.logs:
                log.remove_waiter(waiter)
            waiter.set()
