"""Hub: publish an event once, fan it out to every subscriber, resume after Last-Event-ID.

Strategy: one bounded log of encoded frames per topic, and a subscriber is a cursor into
it plus a wake-up - no queue per subscriber, so a frozen client costs a cursor, never a
backlog, and publishing never waits on anybody.

* `publish` encodes the event once, with the `id:` line the hub assigns
  (``<epoch>-<sequence>``, see `_cursor`), appends the frame to the topic's log, trims
  the log (by count and by bytes) and wakes the topic's waiting subscribers. Every
  subscriber of that one topic sends the very same bytes object.
* A `Subscription` resolves the client's last event id against the log once, before
  the response starts (`prepare_stream`, which is how a closed topic answers 204), then
  hands out frames: `next_nowait()` while its cursor is behind the head (the response
  sends a run of them in one write), and waits for the next publish otherwise. Replay
  and live are one read of the same log, so there is no gap and no duplicate between
  them.
* Several topics in one subscription get a composite cursor as their event id (a
  position per topic, under a key derived from the topic's name); the frame is then
  copied per subscriber with that id.

Imports the wire, events and cursor layers and anyio; never the ASGI layer.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from time import monotonic, time
from types import TracebackType
from typing import Any, Literal, Protocol

import anyio
import anyio.from_thread
import anyio.lowlevel

from .._protocol.cursor import (
    format_cursor,
    format_position,
    new_epoch,
    parse_cursor,
    parse_position,
    source_key,
)
from .._protocol.errors import HubFull, HubUnavailable, TopicClosed
from .._protocol.events import BaseEvent
from .._protocol.frames import (
    IdFrame,
    frame_id,
    frame_with_id,
    priming_frame,
    split_at_id,
    with_other_id,
)
from .._protocol.reset import Reset, ResetInfo, ResetReason
from .._protocol.wire import ServerSentEvent
from .._util.asgi import AnyReceive, AnyScope, AnySend, ASGIApp
from .._util.lifespan import answer_lifespan

__all__ = (
    "EARLIEST",
    "Hub",
    "HubBackend",
    "HubObserver",
    "HubStats",
    "MemoryBackend",
    "Reset",
    "ResetInfo",
    "Subscription",
    "TopicLog",
)

_log = logging.getLogger("asgi_sse")

#: `last_event_id=EARLIEST` (or ``?lastEventId=earliest``): everything the log still
#: holds, then live.
EARLIEST = "earliest"

OverflowPolicy = Literal["reset", "disconnect"]


@dataclass
class HubStats:
    """The hub's counters, as plain numbers (`Hub.stats()`)."""

    topics: int = 0
    subscribers: int = 0
    published: int = 0
    delivered_events: int = 0
    delivered_bytes: int = 0
    replays: int = 0
    resets: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)


class HubObserver:
    """Hooks for metrics, called per publish and per subscription, never per event per
    subscriber. Subclass and override what you need; every method does nothing here."""

    def on_publish(self, topic: str, event_id: str, size: int) -> None:
        """An event was appended to ``topic``'s log (``size`` bytes of frame)."""

    def on_subscribe(self, topics: tuple[str, ...], how: str) -> None:
        """A subscription started: ``how`` is ``live``, ``replay``, ``earliest``,
        ``reset`` or ``closed`` (answered 204)."""

    def on_reset(self, topics: tuple[str, ...], reason: str) -> None:
        """A `Reset` was sent."""

    def on_end(self, topics: tuple[str, ...], reason: str, events: int, size: int) -> None:
        """A subscription ended (``reason``: ``end``, ``closed``, ``overflow``,
        ``stopped``, ``dropped``) after delivering ``events`` frames of ``size`` bytes
        in all."""

    #: Every how many events a delivery lag is measured (`on_lag`); 0: never.
    lag_every: int = 0

    def on_lag(self, topic: str, seconds: float) -> None:
        """A sampled event (one in ``lag_every`` of a topic's) was taken by a subscriber
        ``seconds`` after it was published (on Redis: after the time in its id, the
        publishing Redis server's clock)."""


#: `TopicLog.gap` of a log that never lost an event.
NO_GAP = -(1 << 62)


class TopicLog:
    """One topic's log in this process: frames ``first .. head`` (sequence numbers),
    oldest first, bounded by count and bytes; plus what its subscribers wait on.

    Sequences are local to this process. With the memory backend they are the ids
    (``<epoch>-<sequence>``); a backend with ids of its own (Redis) sets ``floor`` to
    the id before ``frames[0]`` and every frame carries its id in its ``id:`` line.
    """

    __slots__ = (
        "attached",
        "changed",
        "closed",
        "epoch",
        "first",
        "floor",
        "frames",
        "gap",
        "head",
        "key",
        "limit",
        "limit_bytes",
        "name",
        "sampled",
        "size",
        "subscribers",
        "touched",
        "waiters",
    )

    def __init__(self, name: str, *, limit: int, limit_bytes: int) -> None:
        self.name = name
        self.key = source_key(name)
        self.epoch = new_epoch()
        self.limit = limit
        self.limit_bytes = limit_bytes
        # (frame, where its id line starts, where it ends)
        self.frames: deque[IdFrame] = deque()
        self.first = 1  # the sequence of frames[0] (head + 1 when empty)
        self.head = 0  # the sequence of the newest event; 0: none yet
        self.size = 0  # bytes in frames
        self.closed = False
        self.subscribers = 0
        self.touched = monotonic()
        # The id of the event before frames[0] (backends with ids of their own), and
        # whether the backend feeds this log (set by `HubBackend.attach`).
        self.floor: str | None = None
        self.attached = False
        # The newest sequence lost in a gap (events the backend could not deliver): a
        # subscriber behind it is told it missed events ("gone").
        self.gap = NO_GAP
        # sequence -> when it was published (time.time()): the events whose delivery lag
        # is measured (`HubObserver.lag_every`); empty without an observer that asks.
        self.sampled: dict[int, float] = {}
        # Set (and forgotten) by every append; made by the first subscriber that waits,
        # so a log is bound to no event loop while nobody waits (a hub made at import
        # time serves whichever loop runs the app).
        self.changed: anyio.Event | None = None
        self.waiters: set[anyio.Event] = set()  # multi-topic subscribers' own events

    def position(self, sequence: int) -> str:
        """The id of the event at ``sequence`` (``first - 1`` up to ``head``)."""
        if self.floor is None:
            return format_position(self.epoch, sequence)
        if sequence < self.first:
            return self.floor
        return frame_id(self.frames[sequence - self.first])

    def head_id(self) -> str:
        return self.position(self.head)

    def frame(self, sequence: int) -> IdFrame:
        return self.frames[sequence - self.first]

    def append(self, event_id: str, head: bytes, tail: bytes) -> bytes:
        """Add an event under ``event_id`` (the next sequence), trim, wake subscribers;
        returns the frame every single-topic subscriber sends."""
        stored = frame_with_id(head, event_id, tail)
        frame = stored[0]
        frames = self.frames
        frames.append(stored)
        self.head += 1
        self.size += len(frame)
        while len(frames) > self.limit or (self.size > self.limit_bytes and len(frames) > 1):
            if self.floor is not None:
                self.floor = self.position(self.first)
            if self.sampled:
                self.sampled.pop(self.first, None)
            self.size -= len(frames.popleft()[0])
            self.first += 1
        self.touched = monotonic()
        self.wake()
        return frame

    def lose(self, floor: str) -> None:
        """Events were lost before the next one (a backend's gap): every subscriber not
        past them gets a `Reset`; the log goes on after ``floor``."""
        self.frames.clear()
        self.sampled.clear()
        self.size = 0
        self.head += 1  # the gap takes a sequence of its own, which no one can be past
        self.gap = self.head
        self.first = self.head + 1
        self.floor = floor
        self.wake()

    def wait(self) -> anyio.Event:
        """What a single-topic subscriber waits on until the next change."""
        if self.changed is None:
            self.changed = anyio.Event()
        return self.changed

    def wake(self) -> None:
        changed, self.changed = self.changed, None
        if changed is not None:
            changed.set()
        if self.waiters:
            for waiter in self.waiters:
                waiter.set()
            self.waiters.clear()


class HubBackend(Protocol):
    """Where a hub's events are kept and their ids come from.

    The hub encodes each event once and fans it out from one `TopicLog` per topic in
    this process; a backend assigns the id, keeps the event where other processes see
    it (`asgi_sse.redis.RedisStreamsBackend`) or not (`MemoryBackend`), feeds the logs
    this process serves, and says where a client's last event id resumes.

    A backend that cannot reach its store raises `HubUnavailable` from `append`,
    `close`, `attach` and `locate`; a subscription that meets it mid-resolve waits for
    `available` and tries again, with its response already open.
    """

    async def start(self, hub: Hub) -> None:
        """Called when the hub is entered."""
        ...

    async def stop(self) -> None:
        """Called when the hub stops."""
        ...

    async def append(self, log: TopicLog, head: bytes, tail: bytes) -> str:
        """Store one event of ``log``'s topic (its frame split where the id line goes)
        and return its id; the event reaches ``log`` (and every process's log) too."""
        ...

    async def close(self, log: TopicLog) -> None:
        """End ``log``'s topic for good (after the events already appended): the logs
        that serve it are marked closed (`TopicLog.closed`) and woken."""
        ...

    async def attach(self, log: TopicLog) -> None:
        """Make ``log`` follow its topic's new events from now on (its first subscriber
        in this process is about to read it); sets ``log.attached``."""
        ...

    def forget(self, log: TopicLog) -> None:
        """``log`` is no longer held by the hub: stop feeding it."""
        ...

    async def locate(self, log: TopicLog, position: str) -> tuple[int, ResetReason | None]:
        """The sequence in ``log`` after a client's ``position`` (an id this backend
        gave), and why that is not exact (a `Reset` reason), if it is not.
        ``position`` `EARLIEST`: the first sequence of everything the topic still holds
        (up to the log's bounds)."""
        ...

    async def available(self) -> None:
        """Return once the backend answers again (at once if it does)."""
        ...


class MemoryBackend:
    """The default backend: topics live in this process only. Ids are
    ``<epoch>-<sequence>``, with an epoch chosen when a topic's log is created, so an
    id from before a restart is a `Reset` ("unknown"), never the wrong events."""

    async def start(self, hub: Hub) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def append(self, log: TopicLog, head: bytes, tail: bytes) -> str:
        return self.append_nowait(log, head, tail)

    def append_nowait(self, log: TopicLog, head: bytes, tail: bytes) -> str:
        """`append` without awaiting (publishing from synchronous code)."""
        event_id = format_position(log.epoch, log.head + 1)
        log.append(event_id, head, tail)
        return event_id

    async def close(self, log: TopicLog) -> None:
        log.closed = True
        log.wake()

    async def attach(self, log: TopicLog) -> None:
        log.attached = True

    def forget(self, log: TopicLog) -> None:
        pass

    async def locate(self, log: TopicLog, position: str) -> tuple[int, ResetReason | None]:
        return _resolve(log, position)

    async def available(self) -> None:
        pass


class Hub:
    """Publish events once and fan them out to every subscriber, with exact resume.

    ``history`` and ``history_bytes`` bound each topic's log (whichever is reached
    first); a subscriber that falls out of it while connected gets ``on_overflow``:
    ``"reset"`` (a `Reset` event, then live) or ``"disconnect"`` (its stream ends and
    its client resumes, learning with a `Reset` what it missed). A topic without
    subscribers and without publishes for ``expire_after`` seconds is forgotten, and
    at most ``max_topics`` are held. ``observer`` gets the hub's events for metrics.

    Use it as ``async with Hub() as hub:`` for the life of the app (a lifespan), so
    that `publish_from_thread` works and streams end when it stops.

    ``Hub.EARLIEST`` as a last event id asks for everything the log still holds.

    Raises:
        ValueError: for a limit that is not a positive number, or an unknown policy.
    """

    EARLIEST = EARLIEST

    def __init__(
        self,
        *,
        history: int = 1000,
        history_bytes: int = 16 * 1024 * 1024,
        on_overflow: OverflowPolicy = "reset",
        expire_after: float = 3600.0,
        max_topics: int = 10_000,
        observer: HubObserver | None = None,
        backend: HubBackend | None = None,
    ) -> None:
        for name, value in (
            ("history", history),
            ("history_bytes", history_bytes),
            ("max_topics", max_topics),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not expire_after > 0:
            raise ValueError(
                f"expire_after must be a positive number of seconds, got {expire_after}"
            )
        if on_overflow not in ("reset", "disconnect"):
            raise ValueError(f"on_overflow must be 'reset' or 'disconnect', got {on_overflow!r}")
        self.history = history
        self.history_bytes = history_bytes
        self.on_overflow: OverflowPolicy = on_overflow
        self.expire_after = expire_after
        self.max_topics = max_topics
        self.observer = observer
        self.backend: HubBackend = MemoryBackend() if backend is None else backend
        # The memory backend's logs are the topics themselves: attached from the start.
        self._local = isinstance(self.backend, MemoryBackend)
        self._topics: dict[str, TopicLog] = {}
        self._stopped = False
        self._token: Any = None
        self._swept = monotonic()
        self._stats = HubStats()

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Hub:
        self._stopped = False  # a hub may run again after a stop (a server restarted in-process)
        self._token = anyio.lowlevel.current_token()
        await self.backend.start(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def lifespan(self, app: ASGIApp) -> ASGIApp:
        """``app`` with this hub running for the life of the server: the hub is entered
        when the server starts the lifespan protocol and stopped when it ends. For apps
        without a lifespan of their own (an `SSEEndpoint` or `SSEMiddleware` app under
        uvicorn or hypercorn); frameworks enter the hub in their own lifespan instead."""
        hub = self

        async def with_hub(scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
            if scope["type"] != "lifespan":
                await app(scope, receive, send)
                return
            # The hub starts on the server's startup message, so that a hub that cannot
            # start (its Redis unreachable) fails the startup, and the server exits
            # saying why - never an app that serves without its hub.
            startup = await receive()
            try:
                await hub.__aenter__()
            except Exception as exc:
                await send(
                    {"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"}
                )
                return
            seen: list[str] = []  # the lifespan messages the app received and answered
            replayed = False

            async def receiving() -> Any:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    message = startup
                else:
                    message = await receive()
                seen.append(message["type"])
                return message

            async def sending(message: Any) -> None:
                seen.append(message["type"])
                await send(message)

            try:
                await app(scope, receiving, sending)
            except Exception:
                if "lifespan.startup.complete" in seen or "lifespan.startup.failed" in seen:
                    raise
                # The app does not do lifespan (ASGI: it raises): the hub must still
                # run, so this wrapper answers the protocol for it (startup included,
                # which it received).
                await answer_lifespan(receive, send, started=True)
            finally:
                await hub.stop()

        return with_hub

    async def stop(self) -> None:
        """End every open subscription (their responses end cleanly); no more publishes."""
        self._stopped = True
        for topic in self._topics.values():
            topic.wake()
        await self.backend.stop()
        if not self._local:
            # The logs were copies of the backend's topics, which go on without this
            # process: a hub that runs again reads them afresh, never stale frames.
            self._topics.clear()

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, topic: str, event: BaseEvent[Any] | ServerSentEvent | str) -> str:
        """Append ``event`` to ``topic`` and wake its subscribers; returns its id.

        Never waits on a subscriber. The event must not carry an id (the hub assigns
        them) and must have data.

        Raises:
            TopicClosed: the topic was closed.
            InvalidEventError: the event has an id, has no data, or cannot be encoded.
            TypeError: ``event`` is not an event or a str.
            HubFull: a new topic, and ``max_topics`` topics all have subscribers.
        """
        log, head, tail = self._to_publish(topic, event)
        event_id = self._published(
            log, await self.backend.append(log, head, tail), len(head) + len(tail)
        )
        # Note: a turn for the subscribers just woken (a loop that publishes many events
        # in a row would otherwise run them all before anyone sends one), and no
        # cancellation here: the event is published, the caller must get its id.
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return event_id

    def publish_nowait(self, topic: str, event: BaseEvent[Any] | ServerSentEvent | str) -> str:
        """`publish` from synchronous code running in the event loop's thread (a
        callback, a sync function called by async code). Same errors, and:

        Raises:
            TypeError: the backend cannot append without awaiting (Redis): use
                `publish` or `publish_from_thread`.
        """
        append_nowait = getattr(self.backend, "append_nowait", None)
        if append_nowait is None:
            msg = f"{type(self.backend).__name__} publishes asynchronously: await publish()"
            raise TypeError(msg)
        log, head, tail = self._to_publish(topic, event)
        return self._published(log, append_nowait(log, head, tail), len(head) + len(tail))

    def _to_publish(
        self, topic: str, event: BaseEvent[Any] | ServerSentEvent | str
    ) -> tuple[TopicLog, bytes, bytes]:
        if self._stopped:
            raise TopicClosed(f"the hub is stopped; {topic!r} takes no more events")
        log = self._topic(topic)
        if log.closed:
            raise TopicClosed(f"topic {topic!r} was closed")
        head, tail = split_at_id(event)
        return log, head, tail

    def _published(self, log: TopicLog, event_id: str, size: int) -> str:
        self._stats.published += 1
        observer = self.observer
        if observer is not None:
            observer.on_publish(log.name, event_id, size)
            every = observer.lag_every
            # Memory: the event is the log's head now (on Redis the reader samples).
            if every and self._local and log.head % every == 0:
                log.sampled[log.head] = time()
        return event_id

    def publish_from_thread(
        self, topic: str, event: BaseEvent[Any] | ServerSentEvent | str
    ) -> str:
        """`publish` from another thread (a worker thread, a sync framework's view):
        blocks until the event is in the log and returns its id.

        Raises:
            RuntimeError: the hub was not entered (``async with hub``) in an event loop.
            The errors of `publish`.
        """
        if self._token is None:
            raise RuntimeError("enter the hub first (async with hub: ...) to publish from threads")
        return anyio.from_thread.run(self.publish, topic, event, token=self._token)

    async def close(
        self, topic: str, final_event: BaseEvent[Any] | ServerSentEvent | str | None = None
    ) -> None:
        """End ``topic`` for good: its open streams send what remains (and
        ``final_event``, if given), then end; a client that reconnects at the head gets
        204 No Content, which makes a browser's EventSource stop reconnecting."""
        log = self._topic(topic)
        if log.closed:
            return
        if final_event is not None:
            await self.publish(topic, final_event)
        await self.backend.close(log)
        log.touched = monotonic()

    # -- subscribing ----------------------------------------------------------------------

    def subscribe(self, *topics: str, last_event_id: str | None = None) -> Subscription:
        """The stream of ``topics`` for one client, resuming after ``last_event_id``
        (the `Last-Event-ID` header or ``?lastEventId=``: `SSERequest.last_event_id`).

        Return it from a handler or pass it to `EventSourceResponse`. How the id
        resolves: absent or empty - from the head, after an id-only frame that primes
        the client's cursor; an id the log holds - every event after it, then live, no
        gap, no duplicate; `EARLIEST` - everything the log holds; anything else - a
        `Reset` event, then live.

        Raises:
            ValueError: no topic, or a topic twice.
        """
        if not topics:
            raise ValueError("subscribe to at least one topic")
        if len(set(topics)) != len(topics):
            raise ValueError(f"a topic is given twice: {topics!r}")
        return Subscription(self, topics, last_event_id)

    # -- introspection --------------------------------------------------------------------

    def stats(self) -> HubStats:
        """A copy of the counters."""
        stats = self._stats
        return HubStats(
            topics=len(self._topics),
            subscribers=stats.subscribers,
            published=stats.published,
            delivered_events=stats.delivered_events,
            delivered_bytes=stats.delivered_bytes,
            replays=stats.replays,
            resets=dict(stats.resets),
            dropped=dict(stats.dropped),
        )

    def head(self, topic: str) -> str | None:
        """The id of ``topic``'s newest event (``<epoch>-0`` before the first), or None
        for a topic the hub does not hold (or, on Redis, that nobody here follows)."""
        log = self._topics.get(topic)
        return None if log is None or not log.attached else log.head_id()

    # -- internals ------------------------------------------------------------------------

    def _topic(self, name: str) -> TopicLog:
        log = self._topics.get(name)
        if log is not None:
            return log
        if type(name) is not str or not name:
            raise ValueError(f"a topic is a non-empty str, got {name!r}")
        self._sweep(force=len(self._topics) >= self.max_topics)
        if len(self._topics) >= self.max_topics:
            idle = [t for t in self._topics.values() if t.subscribers == 0]
            if not idle:
                raise HubFull(f"the hub holds {self.max_topics} topics, all of them in use")
            self._forget(min(idle, key=lambda t: t.touched))
        self._topics[name] = log = TopicLog(
            name, limit=self.history, limit_bytes=self.history_bytes
        )
        log.attached = self._local
        return log

    def _sweep(self, *, force: bool = False) -> None:
        now = monotonic()
        if not force and now - self._swept < self.expire_after / 4:
            return
        self._swept = now
        expired = [
            name
            for name, log in self._topics.items()
            if log.subscribers == 0 and now - log.touched >= self.expire_after
        ]
        for name in expired:
            self._forget(self._topics[name])

    def _forget(self, log: TopicLog) -> None:
        del self._topics[log.name]
        self.backend.forget(log)

    def _count(self, table: dict[str, int], reason: str) -> None:
        table[reason] = table.get(reason, 0) + 1


class Subscription:
    """One client's stream of a hub's topics: an async iterator of frames (bytes).

    Made by `Hub.subscribe`. `EventSourceResponse` calls `prepare_stream` before it
    answers, sends every frame that is ready in one write (`next_nowait`), and closes
    the subscription when the response ends.
    """

    __slots__ = (
        "_cursor",
        "_delivered",
        "_ended",
        "_hub",
        "_last_event_id",
        "_next",
        "_pending",
        "_prepared",
        "_size",
        "_topics",
        "_turn",
        "_waiter",
    )

    def __init__(self, hub: Hub, topics: tuple[str, ...], last_event_id: str | None) -> None:
        self._hub = hub
        self._last_event_id = last_event_id
        self._prepared = False
        self._ended: str | None = None
        self._next: list[int] = []  # per topic: the sequence to send next
        self._pending: list[bytes] = []  # frames before the log's: priming, Reset
        self._cursor: dict[str, str] = {}  # several topics: key -> position sent last
        self._waiter: anyio.Event | None = None
        self._turn = 0
        self._delivered = 0
        self._size = 0
        # Each log counts this subscriber as soon as it is had: making the next one
        # (at max_topics) must not evict a log this subscription already holds.
        held: list[TopicLog] = []
        try:
            for name in topics:
                log = hub._topic(name)
                log.subscribers += 1
                held.append(log)
        except BaseException:
            for log in held:
                log.subscribers -= 1
            raise
        self._topics: tuple[TopicLog, ...] = tuple(held)
        hub._stats.subscribers += 1

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(topic.name for topic in self._topics)

    # -- resolving the client's position ------------------------------------------------------

    async def prepare_stream(self) -> bool:
        """Resolve the client's last event id against the logs. False: nothing will
        ever be sent (every topic is closed and the client is at its head), which the
        response answers with 204 No Content.

        When the backend cannot be reached, True: the response opens (keep-alives go
        out, a browser does not give up on an error status) and the id is resolved
        once the backend answers again.
        """
        try:
            await self._prepare()
        except HubUnavailable:
            return True
        return not (self._ended == "closed" and not self._pending)

    async def _prepare_when_available(self) -> None:
        backend = self._hub.backend
        while not self._prepared and not self._hub._stopped:
            try:
                await self._prepare()
            except HubUnavailable:
                await backend.available()

    async def _prepare(self) -> None:
        if self._prepared:
            return
        hub = self._hub
        topics = self._topics
        for topic in topics:
            if not topic.attached:
                await hub.backend.attach(topic)
        last = self._last_event_id or None
        how = "live"
        reset: ResetReason | None = None
        reset_topics: list[str] = []
        if last is None:
            starts = [topic.head + 1 for topic in topics]
        elif last == EARLIEST:
            starts = [(await hub.backend.locate(topic, EARLIEST))[0] for topic in topics]
            how = "earliest"
        else:
            positions = self._positions(last)
            if positions is None:
                reset, reset_topics = "malformed", list(self.topics)
                starts = [topic.head + 1 for topic in topics]
            else:
                starts = []
                for topic, position in zip(topics, positions, strict=True):
                    if position is None:  # not in the cursor: from the head, quietly
                        start, why = topic.head + 1, None
                    else:
                        start, why = await hub.backend.locate(topic, position)
                    if why is not None:
                        reset = why if reset is None else reset
                        reset_topics.append(topic.name)
                    starts.append(start)
                how = "replay"
        self._prepared = True
        self._next = starts
        if len(topics) > 1:
            for topic, start in zip(topics, starts, strict=True):
                self._cursor[topic.key] = topic.position(start - 1)
        if reset is not None:
            how = "reset"
            self._send_reset(reset, tuple(reset_topics))
        elif last is None:
            self._pending.append(priming_frame(self._current_id()))
        elif how == "replay":
            hub._stats.replays += 1
        if all(t.closed and n > t.head for t, n in zip(topics, self._next, strict=True)):
            # Closed topics, and nothing left for this client: the end. Unless it must
            # first learn that it missed events, nothing is sent at all (204).
            self._end("closed")
            if reset is None:
                self._pending.clear()
                how = "closed"
        if hub.observer is not None:
            hub.observer.on_subscribe(self.topics, how)

    def _positions(self, last: str) -> list[str | None] | None:
        """The client's position per topic, from its id; None when malformed."""
        if len(self._topics) == 1:
            return [last] if parse_position(last) is not None else None
        entries = parse_cursor(last)
        if entries is None:
            return None
        return [entries.get(topic.key) for topic in self._topics]

    def _current_id(self) -> str:
        if len(self._topics) == 1:
            topic = self._topics[0]
            return topic.position(self._next[0] - 1)
        return format_cursor(self._cursor)

    def _send_reset(self, reason: ResetReason, topics: tuple[str, ...]) -> None:
        hub = self._hub
        for index, topic in enumerate(self._topics):
            if topic.name in topics:
                self._next[index] = topic.head + 1
                if len(self._topics) > 1:
                    self._cursor[topic.key] = topic.head_id()
        resume = self._current_id()
        info = ResetInfo(reason=reason, topics=list(topics), resume_from=resume)
        self._pending.append(Reset(data=info, id=resume).encode())
        hub._count(hub._stats.resets, reason)
        if hub.observer is not None:
            hub.observer.on_reset(topics, reason)

    # -- handing out frames -----------------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    def next_nowait(self) -> bytes:
        """The next frame if one is ready now.

        Raises:
            anyio.WouldBlock: nothing is ready.
            StopAsyncIteration: the subscription ended (topics closed and drained, the
                hub stopped, an overflow under the ``disconnect`` policy).
        """
        frame = self.next_ready()
        if frame is None:
            raise anyio.WouldBlock
        return frame

    async def __anext__(self) -> bytes:
        if not self._prepared:
            await self._prepare_when_available()
        while True:
            # Note: _take() says "nothing yet" with None, not an exception: a live
            # subscriber finds nothing once per event, before it waits.
            frame = self.next_ready()
            if frame is not None:
                return frame
            await self._wait()

    def next_ready(self) -> bytes | None:
        """The next frame, or None when nothing is ready (`next_nowait` without the
        exception).

        Raises:
            StopAsyncIteration: the subscription ended.
        """
        if self._pending:
            return self._deliver(self._pending.pop(0))
        if self._ended is not None:
            raise StopAsyncIteration
        if self._hub._stopped:
            self._end("stopped")
            raise StopAsyncIteration
        if not self._prepared:
            return None  # resolved by the first __anext__ (or prepare_stream)
        topics = self._topics
        count = len(topics)
        if count == 1:  # the common case, without the round-robin
            topic = topics[0]
            sequence = self._next[0]
            if sequence <= topic.head:
                if sequence < topic.first:
                    return self._overflow(topic)
                self._next[0] = sequence + 1
                if topic.sampled and sequence in topic.sampled:
                    self._lag(topic, sequence)
                return self._deliver(topic.frames[sequence - topic.first][0])
            if topic.closed:
                self._end("closed")
                raise StopAsyncIteration
            return None
        for offset in range(count):
            index = (self._turn + offset) % count
            topic = topics[index]
            sequence = self._next[index]
            if sequence > topic.head:
                continue
            if sequence < topic.first:
                return self._overflow(topic)
            stored = topic.frame(sequence)
            self._next[index] = sequence + 1
            if topic.sampled and sequence in topic.sampled:
                self._lag(topic, sequence)
            self._turn = index + 1
            self._cursor[topic.key] = topic.position(sequence)
            return self._deliver(with_other_id(stored, format_cursor(self._cursor)))
        if all(t.closed for t in topics):
            self._end("closed")
            raise StopAsyncIteration
        return None

    async def _wait(self) -> None:
        if len(self._topics) == 1:
            await self._topics[0].wait().wait()
            return
        self._waiter = waiter = anyio.Event()
        for topic in self._topics:
            topic.waiters.add(waiter)
        try:
            await waiter.wait()
        finally:
            for topic in self._topics:
                topic.waiters.discard(waiter)
            self._waiter = None

    def _lag(self, topic: TopicLog, sequence: int) -> None:
        observer = self._hub.observer
        if observer is not None:
            observer.on_lag(topic.name, time() - topic.sampled[sequence])

    def _deliver(self, frame: bytes) -> bytes:
        stats = self._hub._stats
        stats.delivered_events += 1
        stats.delivered_bytes += len(frame)
        self._delivered += 1
        self._size += len(frame)
        return frame

    def _overflow(self, topic: TopicLog) -> bytes:
        hub = self._hub
        if hub.on_overflow == "disconnect":
            self._end("overflow")
            raise StopAsyncIteration
        index = self._topics.index(topic)
        reason: ResetReason = "gone" if self._next[index] <= topic.gap else "overflow"
        self._send_reset(reason, (topic.name,))
        return self._deliver(self._pending.pop(0))

    def _end(self, reason: str) -> None:
        if self._ended is None:
            self._ended = reason
            if reason in ("overflow", "stopped", "dropped"):
                self._hub._count(self._hub._stats.dropped, reason)

    # -- closing --------------------------------------------------------------------------------

    def drop(self) -> None:
        """End this client's stream now, from anywhere in the event loop's thread (an
        admin action, a logout): what it was sent stands, its response ends cleanly, and
        a browser reconnects with its Last-Event-ID and resumes exactly."""
        self._end("dropped")
        if self._waiter is not None:
            self._waiter.set()
        elif len(self._topics) == 1:
            self._topics[0].wake()

    async def aclose(self) -> None:
        """Stop following the topics (the response does it when it ends). Idempotent."""
        self.close()

    def close(self) -> None:
        """`aclose` for synchronous code."""
        if not self._topics:
            return
        hub = self._hub
        for topic in self._topics:
            topic.subscribers -= 1
            if self._waiter is not None:
                topic.waiters.discard(self._waiter)
        if self._waiter is not None:
            self._waiter.set()  # a reader waiting on it (another task) ends now
        hub._stats.subscribers -= 1
        if self._ended is None:
            self._ended = "end"
        if hub.observer is not None:
            hub.observer.on_end(self.topics, self._ended, self._delivered, self._size)
        self._topics = ()


def _resolve(topic: TopicLog, position: str) -> tuple[int, ResetReason | None]:
    """Where to start in ``topic`` for a client at ``position``, and why not exactly
    there (memory ids)."""
    if position == EARLIEST:
        return topic.first, None
    parsed = parse_position(position)
    if parsed is None:
        return topic.head + 1, "malformed"
    epoch, sequence = parsed
    if epoch != topic.epoch or sequence > topic.head:
        return topic.head + 1, "unknown"
    if sequence < topic.first - 1:
        return topic.head + 1, "gone"
    return sequence + 1, None
