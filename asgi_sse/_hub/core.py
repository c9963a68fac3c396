"""What a hub and its subscriptions share: the topics' logs in this process (made on
demand, at most ``max_topics``, idle ones expiring), the backend, the observer, the
counters and whether the hub stopped.

`Hub` is the facade users hold; a `Subscription` holds this instead of the hub, so the
subscription module does not import the facade (which imports it).

Imports the log, the backend SPI and the observer; never the facade, the subscriptions
or the ASGI layer.
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import Literal, Protocol

from .._protocol.errors import HubFull, TopicClosed
from .._protocol.frames import split_at_id
from .._protocol.reset import ResetReason
from .._protocol.stream import Publishable
from .backend import HubBackend, attach_at_once
from .log import TopicLog
from .observer import HubObserver, HubStats, OverflowPolicy, SubscriptionEnd

__all__ = ("Delivering", "Droppable", "HubCore", "joined_run")

_log = logging.getLogger("asgi_sse")

#: The `HubObserver` hooks the hub calls (`HubCore.observe`).
Hook = Literal["on_publish", "on_subscribe", "on_reset", "on_end", "on_lag"]


class Delivering(Protocol):
    """An open subscription, as the hub's counters see it."""

    def delivered(self) -> tuple[int, int]:
        """The frames it handed out so far, and their bytes."""
        ...


class Droppable(Protocol):
    """An open subscription with an owner, as `HubCore.drop_owner` sees it."""

    def drop(self) -> None:
        """End its stream now (its response ends; the client reconnects)."""
        ...


class HubCore:
    """The hub's state (see the module). Its fields are read by the hub's facade and
    its subscriptions; the topics change through its methods."""

    __slots__ = (
        "backend",
        "expire_after",
        "history",
        "history_bytes",
        "live",
        "logs",
        "max_topics",
        "observer",
        "on_overflow",
        "owned",
        "stats",
        "stopped",
        "swept",
    )

    def __init__(
        self,
        *,
        backend: HubBackend,
        history: int,
        history_bytes: int,
        on_overflow: OverflowPolicy,
        expire_after: float,
        max_topics: int,
        observer: HubObserver | None,
    ) -> None:
        self.backend = backend
        self.history = history
        self.history_bytes = history_bytes
        self.on_overflow: OverflowPolicy = on_overflow
        self.expire_after = expire_after
        self.max_topics = max_topics
        self.observer = observer
        self.logs: dict[str, TopicLog] = {}
        self.stats = HubStats()
        # The open subscriptions. Each counts what it delivers, once, in itself; the
        # hub's delivered_* counters hold what closed ones delivered (`delivered`).
        self.live: set[Delivering] = set()
        # The open subscriptions that have an owner, by owner (`Hub.drop`).
        self.owned: dict[str, set[Droppable]] = {}
        self.stopped = False
        self.swept = monotonic()  # when idle logs were last looked for

    def log(self, name: str) -> TopicLog:
        """The log of topic ``name``, made if the hub holds none.

        Raises:
            ValueError: ``name`` is not a non-empty str.
            HubFull: ``max_topics`` topics are held, every one with subscribers.
        """
        log = self.logs.get(name)
        if log is not None:
            return log
        if type(name) is not str or not name:
            raise ValueError(f"a topic is a non-empty str, got {name!r}")
        self.make_room()
        observer = self.observer
        log = TopicLog(
            name,
            max_events=self.history,
            max_bytes=self.history_bytes,
            lag_every=0 if observer is None else observer,
        )
        if self.backend.logs_are_the_store:
            attach_at_once(self.backend, log)
        self.logs[name] = log
        return log

    def hold(self, names: tuple[str, ...]) -> tuple[TopicLog, ...]:
        """The logs of ``names`` for a new subscriber, each counting it as soon as it is
        had: making the next one (at ``max_topics``) must not evict a log it holds.

        Raises:
            ValueError, HubFull: as `log` raises them (no log then counts it).
        """
        held: list[TopicLog] = []
        try:
            for name in names:
                log = self.log(name)
                log.add_subscriber()
                held.append(log)
        except BaseException:
            for log in held:
                log.remove_subscriber()
            raise
        return tuple(held)

    def make_room(self) -> None:
        """Forget the expired logs, and the idlest one if ``max_topics`` are held."""
        self.sweep(force=len(self.logs) >= self.max_topics)
        if len(self.logs) >= self.max_topics:
            idle = [log for log in self.logs.values() if log.subscribers == 0]
            if not idle:
                raise HubFull(f"the hub holds {self.max_topics} topics, all of them in use")
            self.forget(min(idle, key=lambda log: log.last_used))

    def sweep(self, *, force: bool = False) -> None:
        """Forget the logs idle for ``expire_after`` seconds (looked for at most four
        times per ``expire_after`` unless ``force``)."""
        now = monotonic()
        if not force and now - self.swept < self.expire_after / 4:
            return
        self.swept = now
        expired = [
            log
            for log in self.logs.values()
            if log.subscribers == 0 and now - log.last_used >= self.expire_after
        ]
        for log in expired:
            self.forget(log)

    def forget(self, log: TopicLog) -> None:
        del self.logs[log.name]
        self.backend.forget(log)

    def set_observer(self, observer: HubObserver | None) -> None:
        self.observer = observer
        for log in self.logs.values():
            log.measure_lag_every(0 if observer is None else observer)

    def stop(self) -> None:
        """No more publishes; wake every subscriber, so that its stream ends."""
        self.stopped = True
        for log in self.logs.values():
            log.wake()

    def delivered(self) -> tuple[int, int]:
        """The frames every subscription handed out, and their bytes: the closed ones'
        (counted when they closed) and the open ones' (asked now)."""
        events, size = self.stats.delivered_events, self.stats.delivered_bytes
        for subscription in self.live:
            more_events, more_size = subscription.delivered()
            events += more_events
            size += more_size
        return events, size

    def own(self, owner: str, subscription: Droppable) -> None:
        """Record that ``owner`` holds ``subscription`` (until `disown`)."""
        held = self.owned.get(owner)
        if held is None:
            self.owned[owner] = {subscription}
        else:
            held.add(subscription)

    def disown(self, owner: str, subscription: Droppable) -> None:
        """``subscription`` closed: ``owner`` holds it no more."""
        held = self.owned.get(owner)
        if held is not None:
            held.discard(subscription)
            if not held:
                del self.owned[owner]

    def drop_owner(self, owner: str) -> int:
        """End every open subscription of ``owner`` in this process; how many."""
        held = self.owned.pop(owner, None)
        if not held:
            return 0
        for subscription in held:
            subscription.drop()
        return len(held)

    def to_publish(self, topic: str, event: Publishable) -> tuple[TopicLog, bytes, bytes]:
        """The log ``event`` goes to and its frame, cut where its id goes (checked:
        the hub runs, the topic is open, the event can be published)."""
        if self.stopped:
            raise TopicClosed(f"the hub is stopped; {topic!r} takes no more events")
        log = self.log(topic)
        if log.closed:
            raise TopicClosed(f"topic {topic!r} was closed")
        prefix, suffix = split_at_id(event)
        return log, prefix, suffix

    def published(self, log: TopicLog, event_id: str, size: int) -> None:
        """Count a publish and tell the observer (whose errors are logged, not raised)."""
        self.stats.published += 1
        # The event is stored: were on_publish to raise, a caller that retries would
        # publish it twice.
        self.observe("on_publish", log.name, event_id, size)

    def observe(self, hook: Hook, *args: object) -> None:
        """Call the observer's ``hook``, if there is an observer; what the hook raises
        is logged, never raised.

        Metrics must never change what the hub does: a hook that raised would end a
        subscription (`on_subscribe`, `on_lag`, `on_reset`), hide how it ended
        (`on_end`), or fail a publish that was stored (`on_publish`).
        """
        observer = self.observer
        if observer is None:
            return
        try:
            getattr(observer, hook)(*args)
        except Exception:
            _log.exception("asgi_sse: HubObserver.%s raised; ignored", hook)

    def count_reset(self, reason: ResetReason) -> None:
        resets = self.stats.resets
        resets[reason] = resets.get(reason, 0) + 1

    def count_drop(self, reason: SubscriptionEnd) -> None:
        dropped = self.stats.dropped
        dropped[reason] = dropped.get(reason, 0) + 1


def joined_run(log: TopicLog, sequence: int, limit: int) -> tuple[bytes, int, int]:
    """The frames of ``log`` from ``sequence`` (``oldest`` up to ``newest``) on, joined:
    up to the newest, or until about ``limit`` bytes; and the sequence after the last
    one, and how many. What a one-topic subscriber behind sends in one write."""
    frames, oldest, newest = log.frames, log.oldest, log.newest
    run: list[bytes] = []
    size = 0
    while sequence <= newest and size < limit:
        frame = frames[sequence - oldest][0]
        run.append(frame)
        size += len(frame)
        sequence += 1
    return b"".join(run), sequence, len(run)
