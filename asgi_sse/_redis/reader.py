"""One blocking ``XREAD`` over a group of topics' streams, feeding their logs.

A reader reads each stream from the last id it read (never ``$``, so nothing appended
while it was away is skipped), and its own wake stream, on which an entry ends a
blocking read at once when a topic joins the group. What it reads goes into the topics'
logs as they are (`TopicLog.append`); an entry whose previous id is not the last one
read is a gap (`on_gap`), and the close marker closes the log.

Faults: Redis unreachable - the reader backs off and reads on from where it was, then
checks that no stream lost what it read (a restart without data); a key that holds
another type than a stream - left out of the read (its topic gets a gap) until it is a
stream again, so one bad key does not stall the group's other topics.

Uses the link and the public SPI only; never the backend's or the hub's internals.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from time import monotonic
from typing import Any

from asgi_sse.backends import TopicLog

from .entries import PREFIX, PREVIOUS, SUFFIX, is_stream, parse_id, published_at
from .link import DOWN, RedisLink

__all__ = ("Reader",)

_log = logging.getLogger("asgi_sse.redis")


class Reader:
    """Reads the streams of the topics added to it (``key -> log``) in one blocking
    ``XREAD`` at a time, on ``link``; ``on_gap(log, id)`` is told when a topic lost
    entries before ``id`` (the id of the entry before the next one)."""

    def __init__(
        self,
        link: RedisLink,
        *,
        wake_key: bytes,
        read_count: int,
        on_gap: Callable[[TopicLog, bytes], None],
    ) -> None:
        self.link = link
        self.wake_key = wake_key
        self.wake_id = b"0-0"
        self.read_count = read_count
        self.on_gap = on_gap
        self.logs: dict[bytes, TopicLog] = {}
        self.last_read: dict[bytes, bytes] = {}  # stream key -> the last id read
        # Keys that hold something else than a stream: left out of the XREAD (so that
        # the other topics are read on) until they are a stream again, checked once per
        # `block` seconds.
        self.skipped: set[bytes] = set()
        self.skipped_checked_at = 0.0

    async def add(self, key: bytes, log: TopicLog, newest: bytes) -> None:
        """Read ``key`` into ``log`` from after ``newest`` on."""
        self.logs[key] = log
        self.last_read[key] = newest
        # The reader may be blocked in an XREAD without this key: an entry on its wake
        # stream ends that XREAD (or the next one at once, if it is not sent yet).
        async with self.link.errors():
            pipe = self.link.client.pipeline(transaction=False)
            pipe.xadd(self.wake_key, {b"w": b"1"}, maxlen=1, approximate=False)
            pipe.pexpire(self.wake_key, 86_400_000)
            await pipe.execute()

    def remove(self, key: bytes) -> None:
        self.logs.pop(key, None)
        self.last_read.pop(key, None)
        self.skipped.discard(key)

    async def run(self) -> None:
        """Read until cancelled."""
        link = self.link
        delay = link.reconnect_min
        failed = False
        while True:
            try:
                if failed:
                    await self.find_lost_streams()
                if self.skipped and monotonic() - self.skipped_checked_at >= link.block:
                    await self.recheck_skipped()
                # The logs this XREAD reads for: a topic forgotten and followed again
                # meanwhile has a new log, which this reply is not for.
                logs = dict(self.logs)
                reply = await self.read()
            except Exception as exc:
                if isinstance(exc, DOWN):
                    link.went_down(exc)
                else:  # a refused command (a topic's key of another type...): go on
                    _log.exception("reading the topics' streams failed")
                    with contextlib.suppress(Exception):
                        await self.skip_non_streams()
                failed = True
                delay = await link.pause(delay)
                continue
            if failed:
                link.reconnects += 1
                failed = False
                delay = link.reconnect_min
            link.came_up()
            if reply:
                self.feed(reply.items() if isinstance(reply, dict) else reply, logs)

    async def read(self) -> Any:
        """One blocking XREAD of every stream not skipped, and of the wake stream."""
        streams: dict[Any, Any] = {
            key: last for key, last in self.last_read.items() if key not in self.skipped
        }
        streams[self.wake_key] = self.wake_id
        block_ms = max(1, int(self.link.block * 1000))
        return await self.link.client.xread(streams, count=self.read_count, block=block_ms)

    def feed(self, reply: Iterable[Any], logs: dict[bytes, TopicLog] | None = None) -> None:
        """Put what an XREAD returned into the logs it was sent for (``logs``: a
        snapshot of `logs` taken then; None: the current ones)."""
        for key, entries in reply:
            if key == self.wake_key:
                self.wake_id = entries[-1][0]
                continue
            log = self.logs.get(key)
            if log is None or (logs is not None and logs.get(key) is not log):
                continue  # forgotten meanwhile (and maybe followed again, afresh)
            try:
                self.last_read[key] = self._feed_log(log, self.last_read[key], entries)
            except Exception:
                # Whatever failed, it must not end the reader: every topic it reads would
                # go silent while publishes still succeed. What this read brought for
                # the topic is skipped (never appended twice) and told as a gap: its
                # subscribers get a Reset, the topic goes on from the next entry.
                _log.exception("feeding %r from its stream failed; skipped as a gap", log.name)
                self.last_read[key] = entries[-1][0]
                self.on_gap(log, entries[-1][0])

    def _feed_log(self, log: TopicLog, last: bytes, entries: list[Any]) -> bytes:
        """Append ``entries`` (read after ``last``) to ``log``, a log's worth at most;
        returns the id of the last one taken."""
        size = 0
        timed = log.lag_every != 0  # the observer's, now: a change applies to the next read
        for count, (entry_id, fields) in enumerate(entries):
            event_id = entry_id.decode()
            prefix: bytes | None = fields.get(PREFIX)
            suffix: bytes = fields.get(SUFFIX, b"")
            frame_size = log.frame_size(event_id, prefix or b"", suffix)
            if count and (count == log.max_events or size + frame_size > log.max_bytes):
                # More than the log holds in one batch would push out subscribers that
                # keep up: the rest comes with the next read, after their turn.
                break
            size += frame_size
            previous = fields.get(PREVIOUS, b"")
            if previous != last:
                self.on_gap(log, previous)
            last = entry_id
            if prefix is None:  # the close marker
                log.close()
                continue
            when = published_at(entry_id) if timed else None
            log.append(event_id, prefix, suffix, published_at=when)
        return last

    async def skip_non_streams(self) -> None:
        """Leave the keys that are no streams (nor absent) out of the XREAD: their
        topics get a gap (what they held is gone), the reader's other topics are read
        on; once such a key is a stream again, it is read from its start."""
        keys = [key for key in self.last_read if key not in self.skipped]
        for key, kind in await self.key_types(keys):
            if is_stream(kind):
                continue
            _log.error("key %r holds a %s, not a stream: left unread until it is one", key, kind)
            self.skipped.add(key)
            self.skipped_checked_at = monotonic()
            self.last_read[key] = b"0-0"
            log = self.logs.get(key)
            if log is not None:
                self.on_gap(log, b"0-0")

    async def recheck_skipped(self) -> None:
        """The skipped keys that are a stream (or absent) again are read again."""
        self.skipped_checked_at = monotonic()
        for key, kind in await self.key_types(list(self.skipped)):
            if is_stream(kind):
                _log.warning("key %r is a stream again: read from its start", key)
                self.skipped.discard(key)

    async def key_types(self, keys: list[bytes]) -> list[tuple[bytes, Any]]:
        """(key, TYPE) of each key, in one round trip."""
        pipe = self.link.client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        return list(zip(keys, await pipe.execute(), strict=True))

    async def find_lost_streams(self) -> None:
        """After a reconnect: a stream that lost what this reader read (Redis restarted
        without its data) is a gap now, not at its next publish."""
        keys = [key for key in self.last_read if key not in self.skipped]
        if not keys:
            return
        pipe = self.link.client.pipeline(transaction=False)
        for key in keys:
            pipe.xrevrange(key, count=1)
        replies = await pipe.execute()
        for key, newest in zip(keys, replies, strict=True):
            log = self.logs.get(key)
            if log is None:
                continue
            now = newest[0][0] if newest else b"0-0"
            if (parse_id(now) or (0, 0)) < (parse_id(self.last_read[key]) or (0, 0)):
                self.on_gap(log, now)
                self.last_read[key] = now
