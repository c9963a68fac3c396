"""The topic log: one topic's recent events in this process, as the frames subscribers
send, and what those subscribers wait on.

Strategy: a deque of frames numbered by sequence (``oldest .. newest``), bounded by
count and by bytes; a subscriber is a sequence into it, so publishing never waits on
anybody and a frozen client costs an int. The log owns its invariants: every change
goes through one of its methods (append, back-fill older events, lose history, close,
attach and detach, count subscribers); everyone else, backends included, only reads
its attributes. Those are plain attributes, not properties, because subscribers read
them once per event (`Subscription.next_ready`).

Imports the protocol layer (frames, cursor keys), anyio (asyncio for the futures of
parked single-topic subscribers) and the hub's observer (whose ``lag_every`` it reads);
never the ASGI layer or the rest of the hub.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from time import monotonic, time
from typing import Literal

import anyio

from .._protocol.cursor import format_position, new_epoch, source_key
from .._protocol.frames import IdFrame, frame_id, frame_with_id, id_line
from .observer import HubObserver

__all__ = ("NOTHING_LOST", "BackfillOutcome", "TopicLog")

_log = logging.getLogger("asgi_sse")
_told_bad_rate: set[int] = set()  # the observers (by id) whose odd lag_every was logged

NOTHING_LOST = -(1 << 62)
"""`TopicLog.lost_through` of a log that never lost an event."""

BackfillOutcome = Literal["filled", "no_room", "too_big"]
"""What `TopicLog.backfill` did: ``filled`` (the events are in the log: all of them,
or with ``trim_to_fit`` as many as its bytes allow), ``no_room`` (more events than
`TopicLog.room_for_older` allows now: the log grew meanwhile; nothing changed),
``too_big`` (without ``trim_to_fit``: more bytes than the log holds; nothing changed)."""


class TopicLog:
    """One topic's log in this process: the frames of its events ``oldest ..
    newest`` (sequence numbers), bounded by ``max_events`` and ``max_bytes``, and the
    subscribers waiting for the next one.

    Sequences are this process's: they number the events as they reach the log, from
    1. A backend's event ids are its own (the memory backend's are
    ``<epoch>-<sequence>``, Redis's the stream entry ids); every frame carries its id in
    its ``id:`` line, and `id_at` maps a sequence to its id.

    The hub makes the logs and a backend feeds them. Every attribute is read-only
    outside the log's own methods.

    Args:
        name: The topic's name.
        max_events: How many events the log holds at most.
        max_bytes: How many bytes of frames it holds at most (but always its newest
            event).
        lag_every: Keep the publish time of one event in that many (0: none), or in
            as many as a `HubObserver`'s ``lag_every`` says at each append (the hub's
            observer: a change applies from the next event on).
    """

    __slots__ = (
        "attached",
        "bytes_held",
        "closed",
        "cursor_key",
        "epoch",
        "frames",
        "id_before_oldest",
        "lag_rate",
        "lag_samples",
        "last_used",
        "lost_through",
        "max_bytes",
        "max_events",
        "name",
        "newest",
        "next_change_event",
        "oldest",
        "parked",
        "parked_gone",
        "subscribers",
        "waiters",
    )

    def __init__(
        self, name: str, *, max_events: int, max_bytes: int, lag_every: int | HubObserver = 0
    ) -> None:
        self.name = name
        """The topic's name."""
        self.cursor_key = source_key(name)
        """The topic's key in a composite cursor."""
        self.epoch = new_epoch()
        """Chosen when the log is made: the first part of memory ids."""
        self.max_events = max_events
        """How many events the log holds at most."""
        self.max_bytes = max_bytes
        """How many bytes of frames the log holds at most (but always its newest event)."""
        self.frames: deque[IdFrame] = deque()
        """The frames, oldest first, each with where its id line is (`IdFrame`)."""
        self.oldest = 1
        """The sequence of ``frames[0]`` (``newest + 1`` when the log is empty)."""
        self.newest = 0
        """The sequence of the newest event; 0: none yet."""
        self.bytes_held = 0
        """The bytes of ``frames``."""
        self.closed = False
        """No event will be added: the topic was closed."""
        self.attached = False
        """The backend feeds this log (`attach`)."""
        self.subscribers = 0
        """The subscriptions that hold this log."""
        self.last_used = monotonic()
        """When the log was last appended to or used (`time.monotonic`): idle logs expire."""
        self.id_before_oldest: str | None = None
        """The id of the event before ``frames[0]``, for backends with ids of their own (None:
        memory ids, made from ``epoch``)."""
        self.lost_through = NOTHING_LOST
        """The newest sequence lost in a gap (events the backend could not deliver): a
        subscriber at or behind it missed events."""
        self.lag_rate = _lag_rate(lag_every)
        """Whose ``lag_every`` says, at each append, every how many events one has its
        publish time kept (0: none): the hub's observer, or one that only holds a rate."""
        self.lag_samples: dict[int, float] = {}
        """The publish times kept (`time.time()` seconds), by sequence, until their event
        leaves the log."""
        self.next_change_event: anyio.Event | None = None
        """Set (and forgotten) at the next change; made by the first subscriber that waits, so
        that a log is bound to no event loop while nobody waits (a hub made at import time
        serves whichever loop runs the app)."""
        self.waiters: set[anyio.Event] = set()
        """The events of multi-topic subscribers waiting on this log among others."""
        self.parked: list[asyncio.Future[None]] = []
        """The futures of single-topic subscribers parked on asyncio, each set at the next
        change: one bare future per subscriber per wake-up, as asyncio's own `Event`
        makes, without its wrappers (on any other loop they wait on `next_change`). A
        subscription appends its future itself (once per event: no call) and hands it
        back with `unpark` if it stops waiting first."""
        self.parked_gone = 0
        """How many of ``parked`` were cancelled (their subscriber went away) since the
        last wake-up: past half of them, the list is compacted."""

    # -- reading ----------------------------------------------------------------------------

    def id_at(self, sequence: int) -> str:
        """The id of the event at ``sequence`` (``oldest - 1`` up to ``newest``)."""
        if self.id_before_oldest is None:
            return format_position(self.epoch, sequence)
        if sequence < self.oldest:
            return self.id_before_oldest
        return frame_id(self.frames[sequence - self.oldest])

    def newest_id(self) -> str:
        """The id of the newest event (of the event before the log's first, if none)."""
        return self.id_at(self.newest)

    def frame_at(self, sequence: int) -> IdFrame:
        """The frame of the event at ``sequence`` (``oldest`` up to ``newest``), with
        where its id line is."""
        return self.frames[sequence - self.oldest]

    @staticmethod
    def frame_size(event_id: str, prefix: bytes, suffix: bytes) -> int:
        """The bytes the frame of an event takes in a log."""
        return len(prefix) + len(id_line(event_id)) + len(suffix)

    def room_for_older(self) -> int:
        """How many events older than ``oldest`` `backfill` may add now (by count: not
        past ``max_events``, and none from before a loss)."""
        return min(self.max_events - len(self.frames), self.oldest - 1 - self.lost_through)

    @property
    def lag_every(self) -> int:
        """Every how many events one has its publish time kept now (0: none), as
        ``lag_rate`` says; 0 when it says anything but a non-negative int (logged once
        per observer): an observer's mistake never fails a publish."""
        rate = self.lag_rate
        try:
            every = rate.lag_every
        except Exception:
            every = None
        if type(every) is int and every >= 0:
            return every
        if id(rate) not in _told_bad_rate:
            _told_bad_rate.add(id(rate))
            _log.error(
                "asgi_sse: HubObserver.lag_every is %r, not a non-negative int: "
                "no delivery lag is measured",
                every,
            )
        return 0

    # -- changing ---------------------------------------------------------------------------

    def append(
        self, event_id: str, prefix: bytes, suffix: bytes, *, published_at: float | None = None
    ) -> bytes:
        """Add an event as the newest, trim the log to its bounds, wake its subscribers.

        Args:
            event_id: The event's id (the backend's).
            prefix: Its frame before the id line.
            suffix: Its frame after the id line.
            published_at: When it was published (`time.time()` seconds) if not now, for
                the lag samples.

        Returns:
            The frame every single-topic subscriber sends.

        Raises:
            ValueError: the first event of a log attached without ``after=`` (whose ids
                are ``<epoch>-<sequence>``) has an id of another kind: its backend has
                ids of its own and must say so (`HubBackend.attach`).
        """
        if not self.newest and self.id_before_oldest is None:
            self._check_memory_id(event_id)
        stored = frame_with_id(prefix, event_id, suffix)
        frame = stored[0]
        frames = self.frames
        frames.append(stored)
        self.newest += 1
        self.bytes_held += len(frame)
        every = self.lag_every  # read per event: it may change at any time
        if every and self.newest % every == 0:
            self.lag_samples[self.newest] = time() if published_at is None else published_at
        while len(frames) > self.max_events or (
            self.bytes_held > self.max_bytes and len(frames) > 1
        ):
            self._drop_oldest()
        self.last_used = monotonic()
        self.wake()
        return frame

    def _check_memory_id(self, event_id: str) -> None:
        expected = format_position(self.epoch, 1)
        if event_id != expected:
            msg = (
                f"the log of {self.name!r} was attached without after=, so its first id is "
                f"{expected!r}, not {event_id!r}: a backend with ids of its own attaches "
                "its logs with after= (see HubBackend.attach)"
            )
            raise ValueError(msg)

    def _drop_oldest(self) -> None:
        if self.id_before_oldest is not None:
            self.id_before_oldest = self.id_at(self.oldest)
        if self.lag_samples:
            self.lag_samples.pop(self.oldest, None)
        self.bytes_held -= len(self.frames.popleft()[0])
        self.oldest += 1

    def backfill(
        self, older: Sequence[tuple[str, bytes, bytes]], *, previous_id: str, trim_to_fit: bool
    ) -> BackfillOutcome:
        """Add events older than ``oldest`` (read back from a backend's store).

        Args:
            older: ``(event_id, prefix, suffix)`` of each, newest first: the first is the
                event right before ``oldest``, each next one the event before it.
            previous_id: The id of the event before the last of them.
            trim_to_fit: True: as many as the log's bytes allow are added (the newest
                of them); False: all of them or none.

        Returns:
            What was done (see `BackfillOutcome`).
        """
        stored: list[IdFrame] = []
        size = 0
        for event_id, prefix, suffix in older:
            frame = frame_with_id(prefix, event_id, suffix)
            if self.bytes_held + size + len(frame[0]) > self.max_bytes and (self.frames or stored):
                if not trim_to_fit:
                    return "too_big"
                previous_id = event_id  # the newest left out
                break
            stored.append(frame)
            size += len(frame[0])
        if not stored:
            return "filled"
        if len(stored) > self.room_for_older():
            return "no_room"
        self.frames.extendleft(stored)
        self.bytes_held += size
        self.oldest -= len(stored)
        self.id_before_oldest = previous_id
        return "filled"

    def lose_history(self, id_before_next: str) -> None:
        """Events were lost before the next one (a backend's gap): every subscriber not
        past them gets a `Reset`; the log starts again after ``id_before_next``."""
        self.frames.clear()
        self.lag_samples.clear()
        self.bytes_held = 0
        self.newest += 1  # the loss takes a sequence of its own, which no one can be past
        self.lost_through = self.newest
        self.oldest = self.newest + 1
        self.id_before_oldest = id_before_next
        self.wake()

    def close(self) -> None:
        """No event will be added: subscribers send what remains, then end."""
        self.closed = True
        self.wake()

    def attach(self, *, after: str | None = None, closed: bool = False) -> None:
        """The backend feeds this log from now on: with ``after``, the id of the
        topic's newest event, or of its own id before the first (a backend with ids of
        its own; without, the log's ids are ``<epoch>-<sequence>``), and whether the
        topic was ``closed`` already (see `HubBackend.attach`)."""
        if after is not None:
            self.id_before_oldest = after
        self.closed = self.closed or closed
        self.attached = True

    def detach(self) -> None:
        """The backend stopped feeding this log."""
        self.attached = False

    def measure_lag_every(self, every: int | HubObserver) -> None:
        """Keep the publish time of one event in ``every`` (0: none) from now on, or in
        as many as the observer's ``lag_every`` says at each append. The samples kept
        so far are forgotten: they were taken for the observer before."""
        self.lag_rate = _lag_rate(every)
        self.lag_samples.clear()

    def mark_used(self) -> None:
        """The log was used now (it expires ``expire_after`` seconds after that)."""
        self.last_used = monotonic()

    def add_subscriber(self) -> None:
        """A subscription holds this log now (the hub does not expire a held log)."""
        self.subscribers += 1

    def remove_subscriber(self) -> None:
        """A subscription let go of this log."""
        self.subscribers -= 1

    # -- waiting ----------------------------------------------------------------------------

    def next_change(self) -> anyio.Event:
        """The event set at the log's next change (what a single-topic subscriber
        waits on)."""
        if self.next_change_event is None:
            self.next_change_event = anyio.Event()
        return self.next_change_event

    def add_waiter(self, waiter: anyio.Event) -> None:
        """Set ``waiter`` at the next change (a multi-topic subscriber's own event)."""
        self.waiters.add(waiter)

    def remove_waiter(self, waiter: anyio.Event) -> None:
        """Forget ``waiter`` (its subscriber stopped waiting); no error if it is not here."""
        self.waiters.discard(waiter)

    def unpark(self, waiter: asyncio.Future[None]) -> None:
        """``waiter`` (in ``parked``) is not awaited any more (its subscriber was
        cancelled): forgotten at the next change, or now if the list is mostly such."""
        if not waiter.done():
            waiter.cancel()  # so that the next change skips it
        self.parked_gone += 1
        if self.parked_gone > 16 and self.parked_gone * 2 > len(self.parked):
            self.parked = [future for future in self.parked if not future.done()]
            self.parked_gone = 0

    def wake(self) -> None:
        """Wake whoever waits for a change."""
        changed, self.next_change_event = self.next_change_event, None
        if changed is not None:
            changed.set()
        parked = self.parked
        if parked:
            self.parked = []
            self.parked_gone = 0
            for future in parked:
                if not future.done():
                    future.set_result(None)
        if self.waiters:
            for waiter in self.waiters:
                waiter.set()
            self.waiters.clear()


def _lag_rate(every: int | HubObserver) -> HubObserver:
    """The observer whose ``lag_every`` a log reads: ``every`` itself, or for an int a
    do-nothing observer that holds it."""
    if not isinstance(every, int):
        return every
    rate = HubObserver()
    rate.lag_every = every
    return rate
