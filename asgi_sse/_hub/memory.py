"""The default backend: topics live in this process's logs and nowhere else.

Ids are ``<epoch>-<sequence>`` (`asgi_sse._protocol.cursor`), the epoch chosen when a
topic's log is made, so an id from before a restart, or from a log that had the same
name before it expired, is a `Reset` ("unknown"), never the wrong events. Resolving an
id is arithmetic on the log's sequences (`resolve_memory_id`).

Written against the SPI only (the log's methods, `ResumePoint`); imports nothing async
and never the hub's facade.
"""

from __future__ import annotations

from .._protocol.cursor import format_position, parse_position
from .backend import EARLIEST, LogBounds, ResumePoint
from .log import TopicLog

__all__ = ("MemoryBackend", "resolve_memory_id")


class MemoryBackend:
    """The default backend: topics live in this process only, in the hub's logs.

    Ids are ``<epoch>-<sequence>``, with an epoch chosen when a topic's log is made,
    so an id from before a restart is a `Reset` ("unknown"), never the wrong events.
    It appends without awaiting (`Hub.publish_nowait` works), and never raises
    `HubUnavailable`.
    """

    logs_are_the_store = True
    """True: the hub's logs are where the topics live."""
    can_append_nowait = True
    """True: `Hub.publish_nowait` works."""

    async def start(self, bounds: LogBounds) -> None:
        """Nothing to start: the logs bound themselves."""

    async def stop(self) -> None:
        """Nothing to stop: the logs stay with the hub, for when it runs again."""

    async def append(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        """Add the event to ``log`` under the next ``<epoch>-<sequence>`` id and return
        that id (see `HubBackend.append`); never raises."""
        return self.append_nowait(log, prefix, suffix)

    def append_nowait(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        """`append` without awaiting (publishing from synchronous code)."""
        event_id = format_position(log.epoch, log.newest + 1)
        log.append(event_id, prefix, suffix)
        return event_id

    async def close(self, log: TopicLog) -> None:
        """Close ``log`` (`TopicLog.close`): the topic is this one log."""
        log.close()

    async def attach(self, log: TopicLog) -> None:
        """Mark ``log`` attached, as the hub makes it (without awaiting): the log is
        the topic, and its ids are ``<epoch>-<sequence>``."""
        log.attach()

    def forget(self, log: TopicLog) -> None:
        """Nothing to stop feeding: the forgotten log and its events are gone."""

    async def locate(self, log: TopicLog, position: str) -> ResumePoint:
        """Where ``position`` resumes, by arithmetic on the log's sequences: an id of
        another epoch or from the future is ``unknown``, one older than the log holds
        ``gone``, anything that is not a memory id ``malformed``."""
        return resolve_memory_id(log, position)

    async def available(self) -> None:
        """Return at once: memory is always available."""


def resolve_memory_id(log: TopicLog, position: str) -> ResumePoint:
    """Where a client at ``position`` (a memory id, or not) resumes in ``log``."""
    if position == EARLIEST:
        return ResumePoint(log.oldest)
    parsed = parse_position(position)
    if parsed is None:
        return ResumePoint(log.newest + 1, "malformed")
    epoch, sequence = parsed
    if epoch != log.epoch or sequence > log.newest:
        return ResumePoint(log.newest + 1, "unknown")
    if sequence < log.oldest - 1:
        return ResumePoint(log.newest + 1, "gone")
    return ResumePoint(sequence + 1)
