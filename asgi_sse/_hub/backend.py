"""The hub's backend SPI: the protocol a backend implements, and the values it takes and
returns (`asgi_sse.backends` is its public face).

Strategy, after httpx's transports: the hub talks to one small protocol and never asks
which backend it holds. What differs between backends is declared here, as attributes
every backend has (`HubBackend.logs_are_the_store`, `HubBackend.can_append_nowait`),
not found out with ``isinstance`` or ``getattr``. A backend changes a `TopicLog` only
through the log's methods.

Imports the log and the protocol layer's reset reasons; never the hub's facade or
subscriptions (which import this), never the ASGI layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from .._protocol.reset import ResetReason
from .log import TopicLog

__all__ = ("EARLIEST", "HubBackend", "LogBounds", "ResumePoint")

EARLIEST = "earliest"
"""A last event id (``?lastEventId=earliest``, `Hub.EARLIEST`) that asks for everything
a topic still holds, then live; what `HubBackend.locate` is asked for then."""


@dataclass(frozen=True)
class LogBounds:
    """How much each topic's log holds (the hub's ``history`` and ``history_bytes``):
    a backend may keep as much, so that a resume follows the same rule everywhere."""

    max_events: int
    """Events per log."""
    max_bytes: int
    """Bytes of frames per log (at least one event is always kept)."""


class ResumePoint(NamedTuple):
    """Where a client resumes in a `TopicLog` (`HubBackend.locate`)."""

    start: int
    """The sequence of the first event it gets (``log.newest + 1``: only new ones)."""
    reset: ResetReason | None = None
    """Why that is not right after the position it gave, if it is not: the client is sent a
    `Reset` with this reason."""


class HubBackend(Protocol):
    """Where a hub's events are kept and their ids come from.

    The hub encodes each event once and fans it out from one `TopicLog` per topic in
    this process; a backend assigns the event's id, keeps the event where other
    processes see it (`asgi_sse.redis.RedisStreamsBackend`) or not (`MemoryBackend`),
    feeds the logs this process serves (`TopicLog.append`), and says where a client's
    last event id resumes (`locate`).

    An event id is ``<word>-<number>``: 1 to 16 lower-case letters or digits, a dash,
    1 to 18 digits (Redis's ``<ms>-<seq>`` and the memory backend's
    ``<epoch>-<sequence>`` both are); ids increase along a topic.

    A backend that cannot reach its store raises `HubUnavailable` from `append`,
    `close`, `attach` and `locate`; a subscription that meets it while it resolves a
    client's id waits for `available` and tries again, its response already open.

    Subclassing this protocol is optional; a subclass inherits the defaults of the
    attributes below, `append_nowait` (not supported) and `available` (always).
    """

    logs_are_the_store: bool = False
    """True: the logs are where this backend keeps the topics (the memory backend). A log then
    follows its topic from the moment it is made (an event published before any subscriber
    is in it), and the hub keeps its logs over a stop. False: a log is this process's copy
    of a topic kept elsewhere, fed from `attach` on; the hub drops the logs when it stops,
    and reads them afresh when it runs again."""
    can_append_nowait: bool = False
    """True: `append_nowait` stores an event without awaiting, which `Hub.publish_nowait`
    needs; False: `Hub.publish_nowait` raises `TypeError` and never calls it."""

    async def start(self, bounds: LogBounds) -> None:
        """The hub is entered; its logs hold ``bounds``.

        Raises:
            HubUnavailable: the store cannot be reached (the app must not start).
        """
        ...

    async def stop(self) -> None:
        """The hub stops: end what `start` began. The hub may be entered again."""
        ...

    async def append(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        """Store one event of ``log``'s topic and return its id. ``prefix`` and
        ``suffix`` are its frame, cut where the ``id:`` line goes; the event reaches
        ``log`` and every attached log of its topic (`TopicLog.append`), now or later.

        Raises:
            TopicClosed: the topic was closed (in any process).
            HubUnavailable: the store cannot be reached; nothing was stored.
        """
        ...

    def append_nowait(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        """`append` without awaiting, called only when `can_append_nowait` is true.

        Raises:
            NotImplementedError: this backend appends asynchronously only.
        """
        msg = f"{type(self).__name__} appends asynchronously only"
        raise NotImplementedError(msg)

    async def close(self, log: TopicLog) -> None:
        """End ``log``'s topic for good, after the events appended already: the logs
        that serve it are closed (`TopicLog.close`), now or later. Closing a closed
        topic does nothing.

        Raises:
            HubUnavailable: the store cannot be reached.
        """
        ...

    async def attach(self, log: TopicLog) -> None:
        """Make ``log`` follow its topic's new events from now on (`TopicLog.attach`):
        its first subscriber in this process is about to read it. Called only for a log
        that is not attached.

        Raises:
            HubUnavailable: the store cannot be reached.
        """
        ...

    def forget(self, log: TopicLog) -> None:
        """``log`` is no longer held by the hub (an idle topic expired, or made room):
        stop feeding it (`TopicLog.detach`)."""
        ...

    async def locate(self, log: TopicLog, position: str) -> ResumePoint:
        """Where a client at ``position`` (an id this backend gave, or maybe not)
        resumes in ``log``, which is attached. `EARLIEST`: the oldest event the topic
        still holds, within the log's bounds; a backend may read older events back into
        the log (`TopicLog.backfill`) to resume exactly.

        Raises:
            HubUnavailable: the store cannot be reached.
        """
        ...

    async def available(self) -> None:
        """Return once the store answers again (at once if it does, or if the backend
        is stopping)."""
        return
