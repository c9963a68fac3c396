"""Where a client's last event id resumes in a topic's log, on Redis.

The log of a topic in this process holds its newest events from when the process began
to follow it. A client's id is resolved against it first:

* in the log: the event after it (a binary search by id);
* older than the log: the entries between the id and the log's oldest are read back
  from Redis (``XREVRANGE`` in pages, checked link by link) into the log
  (`TopicLog.backfill`), so the replay and the live tail are one log with no gap and
  no duplicate; a broken link, or more than the log holds, is ``gone``;
* newer than the log: if Redis holds it, this process's reader has not read it yet:
  wait for the reader; if not, ``unknown``.

The log may move while Redis answers (the reader appends, trims, loses): each answer
is checked against it, and the whole is looked at again, a few times at most.

Uses the link, the stream's entry format and the public SPI only.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from redis.exceptions import ResponseError

from asgi_sse.backends import EARLIEST, HubUnavailable, ResumePoint, TopicLog

from .entries import PREFIX, PREVIOUS, SUFFIX, is_close_marker, order, parse_id
from .link import RedisLink

__all__ = ("Locator",)

_log = logging.getLogger("asgi_sse.redis")

#: How many times a resolve looks again at a log that moved while Redis answered.
_LOOKS = 8

Entries = list[tuple[bytes, dict[bytes, bytes]]]


class Locator:
    """`HubBackend.locate` on Redis (see the module): ``key_of`` names a log's stream,
    ``page_size`` bounds each read back, ``running()`` says whether the backend runs
    (a wait for the reader ends when it stops)."""

    def __init__(
        self,
        link: RedisLink,
        *,
        key_of: Callable[[TopicLog], bytes],
        page_size: int,
        running: Callable[[], bool],
    ) -> None:
        self.link = link
        self.key_of = key_of
        self.page_size = page_size
        self.running = running

    async def locate(self, log: TopicLog, position: str) -> ResumePoint:
        try:
            if position == EARLIEST:
                return await self._earliest(log)
            return await self._at(log, position)
        except ResponseError:  # Redis refused the id after all: not an id of its
            _log.warning("topic %r: Redis refused the client's id %r", log.name, position)
            return ResumePoint(log.newest + 1, "malformed")

    async def _earliest(self, log: TopicLog) -> ResumePoint:
        for _ in range(_LOOKS):
            if await self._backfill(log, None) is not None:
                break
        return ResumePoint(log.oldest)

    async def _at(self, log: TopicLog, position: str) -> ResumePoint:
        wanted = parse_id(position.encode())
        if wanted is None:
            return ResumePoint(log.newest + 1, "malformed")
        for _ in range(_LOOKS):
            found = await self._look(log, position, wanted)
            if found is not None:
                return found
        return ResumePoint(log.newest + 1, "gone")

    async def _look(
        self, log: TopicLog, position: str, wanted: tuple[int, int]
    ) -> ResumePoint | None:
        """Where ``wanted`` resumes, or None: look again (the log moved)."""
        newest = order(log.newest_id())
        if wanted == newest:
            return ResumePoint(log.newest + 1)
        if order(log.id_at(log.oldest - 1)) <= wanted < newest:
            return self._find_in_log(log, wanted)
        if wanted < newest:
            return await self._backfill(log, position)
        return await self._ahead(log, position, wanted)

    def _find_in_log(self, log: TopicLog, wanted: tuple[int, int]) -> ResumePoint:
        """The sequence after ``wanted`` in the log (which spans it)."""

        def id_at(sequence: int) -> tuple[int, int]:
            return order(log.id_at(sequence))

        sequences = range(log.oldest - 1, log.newest + 1)
        index = bisect_left(sequences, wanted, key=id_at)
        if index < len(sequences) and id_at(sequences[index]) == wanted:
            return ResumePoint(sequences[index] + 1)
        return ResumePoint(log.newest + 1, "unknown")

    async def _ahead(
        self, log: TopicLog, position: str, wanted: tuple[int, int]
    ) -> ResumePoint | None:
        """``wanted`` is newer than the log: unknown, or not read here yet."""
        if not await self._exists(log, position):
            return ResumePoint(log.newest + 1, "unknown")
        if order(log.newest_id()) >= wanted:
            return None  # the reader got there meanwhile: look again
        if log.closed:  # read up to the close marker, which is the client's id
            return ResumePoint(log.newest + 1)
        await self._wait_for_reader(log, wanted)
        return None

    async def _exists(self, log: TopicLog, position: str) -> bool:
        async with self.link.errors():
            found = await self.link.client.xrange(self.key_of(log), position, position, count=1)
        return bool(found)

    async def _wait_for_reader(self, log: TopicLog, wanted: tuple[int, int]) -> None:
        """Wait until this process's reader has read ``wanted`` (it exists in Redis)."""
        while order(log.newest_id()) < wanted:
            if log.closed:
                return  # read up to its close marker: locate answers
            if not self.running():
                raise HubUnavailable("the hub stopped")
            await log.next_change().wait()

    # -- reading back what the log no longer holds ------------------------------------------

    async def _backfill(self, log: TopicLog, position: str | None) -> ResumePoint | None:
        """Read the entries after ``position`` (None: the oldest Redis holds) up to the
        log's oldest from Redis into the log (they are older than what it holds); None
        if the log moved meanwhile."""
        before, oldest, lost = log.id_before_oldest, log.oldest, log.lost_through
        room = log.room_for_older()
        if before is None or room <= 0 or before == "0-0":
            return _not_in_redis(log, position)
        entries = await self._read_back(log, before, position, room)
        if (log.id_before_oldest, log.oldest, log.lost_through) != (before, oldest, lost):
            return None
        if not entries or entries[0][0] != before.encode():
            return _not_in_redis(log, position)
        linked = _linked(entries, exact=position is not None)
        if linked is None or (
            position is not None and linked[-1][1].get(PREVIOUS) != position.encode()
        ):
            return ResumePoint(log.newest + 1, "gone")
        return _fill(log, linked, exact=position is not None)

    async def _read_back(
        self, log: TopicLog, before: str, position: str | None, room: int
    ) -> Entries:
        """Up to ``room`` entries from ``before`` (included) back to after ``position``
        (None: to the oldest), newest first, a page at a time."""
        key = self.key_of(log)
        entries: Entries = []
        upper = before.encode()
        lower = b"-" if position is None else b"(" + position.encode()
        while len(entries) < room:
            count = min(self.page_size, room - len(entries))
            async with self.link.errors():
                page: Any = await self.link.client.xrevrange(key, upper, lower, count=count)
            entries.extend(page)
            if len(page) < count:
                break
            upper = b"(" + page[-1][0]
        return entries


def _not_in_redis(log: TopicLog, position: str | None) -> ResumePoint:
    """Nothing to read back: the earliest is the log's oldest; an id is gone."""
    return ResumePoint(log.oldest) if position is None else ResumePoint(log.newest + 1, "gone")


def _linked(entries: Entries, *, exact: bool) -> Entries | None:
    """``entries`` (newest first) up to the first broken link (where events were lost),
    which is None when ``exact``."""
    for index in range(len(entries) - 1):
        if entries[index][1].get(PREVIOUS) != entries[index + 1][0]:
            return None if exact else entries[: index + 1]
    return entries


def _fill(log: TopicLog, entries: Entries, *, exact: bool) -> ResumePoint | None:
    """Put ``entries`` (newest first, linked) into the log, before its oldest."""
    events = [
        (entry_id.decode(), fields[PREFIX], fields.get(SUFFIX, b""))
        for entry_id, fields in entries
        if not is_close_marker(fields)
    ]
    previous = entries[-1][1].get(PREVIOUS, b"0-0").decode()
    outcome = log.backfill(events, previous_id=previous, trim_to_fit=not exact)
    if outcome == "no_room":
        return None  # the reader appended while Redis answered: look again
    if outcome == "too_big":
        return ResumePoint(log.newest + 1, "gone")
    return ResumePoint(log.oldest)
