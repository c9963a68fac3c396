"""One client's stream of a hub's topics: cursors into the topics' logs, and a wake-up.

A subscription resolves the client's last event id once, before the response starts
(`prepare_stream`: a closed topic answers 204), then hands out frames while its cursor
is behind the log's newest event (`next_nowait`: the response sends a run of them in
one write), and waits for the log's next change otherwise. Replay and live are one read
of the same log: no gap, no duplicate. `next_ready` runs once per event per subscriber:
its one-topic case reads a few attributes and counts the delivery once, in the
subscription (the hub adds those counts up when asked). A one-topic subscriber parks on
a bare future of the asyncio loop that the log sets (the response's pump awaits it
itself: `_sse_next_body`), or on the log's `anyio.Event` on trio. One `SubscriptionState`.

Imports the hub's core, log, resolution, states and the protocol layer; never the
facade or the ASGI layer.
"""

from __future__ import annotations

import asyncio
from asyncio import _get_running_loop
from collections.abc import Awaitable, Callable
from time import time

import anyio

from .._protocol.errors import HubUnavailable
from .._protocol.frames import priming_frame
from .._protocol.reset import ResetReason
from .._util.ending import END_RESPONSE
from .core import HubCore, joined_run
from .log import TopicLog
from .observer import DROPPED_REASONS, SubscriptionEnd, SubscriptionStart
from .resume import Resolved, reset_frame, resolve
from .several import SeveralTopics
from .state import CLOSED, ENDED, STREAMING, UNRESOLVED, move

__all__ = ("Subscription",)

_UNREAD = object()  # `Subscription._end_response` before it is read
_Step = tuple[bytes | None, Awaitable[object] | None]  # frames to send, then what to await


class Subscription:
    """One client's stream of a hub's topics: an async iterator of frames (bytes).

    Made by `Hub.subscribe`. `EventSourceResponse` calls `prepare_stream` before it
    answers, sends every frame that is ready in one write (`next_ready`), and closes
    the subscription when the response ends. Iterating it yourself works the same
    way: each item is one complete frame, as bytes.
    """

    __slots__ = (
        "_core",
        "_delivered",
        "_end_reason",
        "_end_response",
        "_last_event_id",
        "_next",
        "_pending",
        "_several",
        "_size",
        "_state",
        "_topics",
        "_waiter",
        "_waiting_for_backend",
        "owner",
    )

    def __init__(
        self,
        core: HubCore,
        topics: tuple[str, ...],
        last_event_id: str | None,
        owner: str | None = None,
    ) -> None:
        self._core = core
        self._last_event_id = last_event_id or None  # an empty Last-Event-ID is no id
        self._state = UNRESOLVED
        self._end_reason: SubscriptionEnd | None = None
        self._next: list[int] = []  # per topic: the sequence to send next
        self._pending: list[bytes] | None = None  # frames before the logs': priming, Reset
        self._delivered = 0
        self._size = 0
        self._topics = core.hold(topics)
        # Several topics: turns and a composite cursor (None for one, the common case).
        self._several = SeveralTopics(self._topics) if len(topics) > 1 else None
        # The future it is parked on, on asyncio with one topic (None otherwise).
        self._waiter: asyncio.Future[None] | None = None
        # Ends the response this subscription is streamed in (read as it is first
        # iterated: `END_RESPONSE`); _UNREAD before, None outside a response.
        self._end_response: object = _UNREAD
        # While it waits for an unreachable backend to resolve its id: that wait's scope.
        self._waiting_for_backend: anyio.CancelScope | None = None
        self.owner = owner
        """Who holds this stream, as given to `Hub.subscribe` (`Hub.drop` ends all of an
        owner's); never sent to the client."""
        core.stats.subscribers += 1
        core.live.add(self)
        if owner is not None:
            core.own(owner, self)

    @property
    def dropped(self) -> bool:
        """Whether the stream ended by `drop` (or `Hub.drop`): the response records
        ``dropped`` as why it ended."""
        return self._end_reason == "dropped"

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics followed, in the order given (none once closed)."""
        return tuple(topic.name for topic in self._topics)

    # -- resolving the client's position ---------------------------------------------------

    async def prepare_stream(self) -> bool:
        """Resolve the client's last event id against the logs. False: nothing will
        ever be sent (every topic is closed and the client is at its end), which the
        response answers with 204 No Content.

        When the backend cannot be reached, True: the response opens (keep-alives go
        out, a browser does not give up on an error status) and the id is resolved
        once the backend answers again.

        Raises:
            RuntimeError: the backend needs the hub entered first (Redis); the response
                answers 500.
        """
        try:
            await self._resolve()
        except HubUnavailable:
            return True
        return not (self._end_reason == "closed" and not self._pending)

    async def _resolve(self) -> None:
        if self._state is not UNRESOLVED:
            return
        resolved = await resolve(self._core.backend, self._topics, self._last_event_id)
        if self._state is not UNRESOLVED:  # closed, or resolved elsewhere, meanwhile
            return
        self._next = resolved.starts
        if self._several is not None:
            self._several.start_at(resolved.starts)
        how = self._first_frames(resolved)
        topics_from = zip(self._topics, self._next, strict=True)
        if all(topic.closed and start > topic.newest for topic, start in topics_from):
            # Closed topics, and nothing left for this client: the end. Unless it must
            # first learn that it missed events, nothing is sent at all (204).
            self._end("closed")
            if resolved.reset is None:
                self._pending = None
                how = "closed"
        self._state = move(UNRESOLVED, STREAMING if self._end_reason is None else ENDED)
        self._core.observe("on_subscribe", self.topics, how)

    def _first_frames(self, resolved: Resolved) -> SubscriptionStart:
        """Queue what goes before the logs' frames (a Reset, or the priming frame);
        returns how the subscription starts."""
        if resolved.reset is not None:
            self._send_reset(resolved.reset, resolved.reset_topics)
            return "reset"
        if self._last_event_id is None:
            self._queue(priming_frame(self._current_id()))
        elif resolved.how == "replay":
            self._core.stats.replays += 1
        return resolved.how

    def _current_id(self) -> str:
        if self._several is not None:
            return self._several.current_id()
        return self._topics[0].id_at(self._next[0] - 1)

    def _queue(self, frame: bytes) -> None:
        """Queue a frame that goes before the logs' next ones."""
        if self._pending is None:
            self._pending = [frame]
        else:
            self._pending.append(frame)

    def _take_pending(self) -> bytes:
        """The first queued frame, delivered (the queue is forgotten once empty: most
        subscribers only ever queue their priming frame)."""
        pending = self._pending
        assert pending is not None
        frame = pending.pop(0)
        if not pending:
            self._pending = None
        return self._deliver(frame)

    def _send_reset(self, reason: ResetReason, topics: tuple[str, ...]) -> None:
        """Queue a `Reset` for ``topics``, which go on from their newest event."""
        core = self._core
        for index, topic in enumerate(self._topics):
            if topic.name in topics:
                self._next[index] = topic.newest + 1
                if self._several is not None:
                    self._several.skip_to_newest(topic)
        self._queue(reset_frame(reason, topics, self._current_id()))
        core.count_reset(reason)
        core.observe("on_reset", topics, reason)

    # -- handing out frames ------------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    def next_nowait(self) -> bytes:
        """The next frame if one is ready now.

        Raises:
            anyio.WouldBlock: nothing is ready.
            StopAsyncIteration: the subscription ended (topics closed and drained, the
                hub stopped, an overflow under the ``disconnect`` policy, `drop`).
        """
        frame = self.next_ready()
        if frame is None:
            raise anyio.WouldBlock
        return frame

    async def __anext__(self) -> bytes:
        core = self._core
        if self._end_response is _UNREAD:
            self._read_end_response()
        if self._state is UNRESOLVED and not core.stopped:  # once the backend answers
            await self._resolve_when_available()
            if self._end_reason is not None and self._state is UNRESOLVED:
                raise StopAsyncIteration  # dropped before it could resolve
        several = self._several
        if several is not None:
            while True:
                frame = self.next_ready()
                if frame is not None:
                    return frame
                await several.wait()
        if not self._topics:  # one topic, closed: what was queued before, then the end
            frame = self.next_ready()
            if frame is not None:
                return frame
            raise StopAsyncIteration
        topic = self._topics[0]
        while True:
            if (
                self._state is STREAMING
                and self._next[0] > topic.newest
                and not self._pending
                and not topic.closed
                and not core.stopped
            ):
                loop = _get_running_loop()
                if loop is None:  # trio, or any other loop anyio runs on
                    await topic.next_change().wait()
                    continue
                self._waiter = waiter = loop.create_future()  # `_park`, inlined
                topic.parked.append(waiter)  # every change that matters wakes it, or `drop`
                try:
                    await waiter  # the bare future itself: no coroutine in between
                except BaseException:
                    topic.unpark(waiter)
                    raise
                finally:
                    self._waiter = None
            frame = self.next_ready()
            if frame is not None:
                return frame

    def _read_end_response(self) -> None:  # which response streams it; end it if dropped
        self._end_response = end_response = END_RESPONSE.get()
        if end_response is not None and self._end_reason == "dropped":
            end_response()  # dropped before its response got to it: end it now

    async def _resolve_when_available(self) -> None:
        """Resolve the client's id once the backend answers (or until an end is asked)."""
        while self._state is UNRESOLVED and self._end_reason is None and not self._core.stopped:
            try:
                await self._resolve()
            except HubUnavailable:
                with anyio.CancelScope() as self._waiting_for_backend:  # `drop` cancels it
                    await self._core.backend.available()
                self._waiting_for_backend = None

    @property
    def _sse_next_body(self) -> Callable[[int], _Step] | None:
        """The response pump's step (`asgi_sse._server.pump`); several topics: None."""
        return self._step if self._several is None else None

    def _step(self, limit: int) -> _Step:
        """Frames to send (a run: up to about ``limit`` bytes), then what to await; with the
        newest frame, a future parked at once (`close` hands back one nobody awaited)."""
        if (
            self._state is STREAMING
            and not self._pending
            and not self._core.stopped
            and self._end_response is not _UNREAD
        ):
            topic = self._topics[0]  # one topic, the common case: the log's own frame
            sequence = self._next[0]
            newest = topic.newest
            if sequence == newest and sequence >= topic.oldest:
                self._next[0] = sequence + 1
                if topic.lag_samples and sequence in topic.lag_samples:
                    self._lag(topic, sequence)
                frame = topic.frames[-1][0]
                self._delivered += 1
                self._size += len(frame)
                loop = _get_running_loop()
                if loop is None or topic.closed:
                    return frame, None
                self._waiter = waiter = loop.create_future()  # `_park`, inlined
                topic.parked.append(waiter)
                return frame, waiter
            if sequence > newest and not topic.closed:
                return None, self._park(topic)
            if topic.oldest <= sequence < newest and not topic.lag_samples:
                body, self._next[0], count = joined_run(topic, sequence, limit)
                self._delivered += count
                self._size += len(body)
                return body, None  # the next step parks, or takes the rest
        return self._next_body_slowly()

    def _next_body_slowly(self) -> _Step:
        """`_step` for every other case (None to await: the pump joins a run)."""
        if self._end_response is _UNREAD:
            self._read_end_response()
        if self._state is UNRESOLVED and self._end_reason is None and not self._core.stopped:
            return None, self._resolve_when_available()
        first = self.next_ready()  # raises the end
        if first is not None:
            return first, None  # the pump joins what else is ready (`next_ready`)
        return None, self._park(self._topics[0])  # streaming, nothing newer

    def _park(self, topic: TopicLog) -> Awaitable[object]:
        """A one-topic reader's wait: the log's bare future (asyncio) or `anyio.Event`."""
        loop = _get_running_loop()
        if loop is None:  # trio, or any other loop anyio runs on
            return topic.next_change().wait()
        self._waiter = waiter = loop.create_future()
        topic.parked.append(waiter)
        return waiter

    def next_ready(self) -> bytes | None:
        """The next frame, or None when nothing is ready (`next_nowait` without the
        exception).

        Raises:
            StopAsyncIteration: the subscription ended.
        """
        if self._pending:
            return self._take_pending()
        if self._state is not STREAMING:
            return self._next_unless_streaming()
        core = self._core
        if core.stopped:
            self._end("stopped")
            raise StopAsyncIteration
        if self._several is not None:
            return self._next_of_several(self._several)
        # One topic, the common case: the log's own frame, nothing copied, the counters
        # kept inline.
        topic = self._topics[0]
        sequence = self._next[0]
        if sequence <= topic.newest:
            if sequence < topic.oldest:
                return self._overflow(topic)
            self._next[0] = sequence + 1
            if topic.lag_samples and sequence in topic.lag_samples:
                self._lag(topic, sequence)
            frame = topic.frames[sequence - topic.oldest][0]
            self._delivered += 1
            self._size += len(frame)
            return frame
        if topic.closed:
            self._end("closed")
            raise StopAsyncIteration
        return None

    def _next_unless_streaming(self) -> bytes | None:
        if self._state is not UNRESOLVED or self._end_reason is not None:
            raise StopAsyncIteration
        if self._core.stopped:
            self._end("stopped")
            raise StopAsyncIteration
        return None  # resolved by the first __anext__ (or prepare_stream)

    def _next_of_several(self, several: SeveralTopics) -> bytes | None:
        index = several.ready(self._next)
        if index is None:
            if all(topic.closed for topic in self._topics):
                self._end("closed")
                raise StopAsyncIteration
            return None
        topic = self._topics[index]
        sequence = self._next[index]
        if sequence < topic.oldest:
            return self._overflow(topic)
        self._next[index] = sequence + 1
        if topic.lag_samples and sequence in topic.lag_samples:
            self._lag(topic, sequence)
        return self._deliver(several.take(index, sequence))

    def _lag(self, topic: TopicLog, sequence: int) -> None:
        self._core.observe("on_lag", topic.name, time() - topic.lag_samples[sequence])

    def delivered(self) -> tuple[int, int]:
        """The frames handed out so far, and their bytes (what the hub's counters add
        up: a delivery is counted once, here)."""
        return self._delivered, self._size

    def _deliver(self, frame: bytes) -> bytes:
        self._delivered += 1
        self._size += len(frame)
        return frame

    def _overflow(self, topic: TopicLog) -> bytes:
        if self._core.on_overflow == "disconnect":
            self._end("overflow")
            raise StopAsyncIteration
        index = self._topics.index(topic)
        reason: ResetReason = "gone" if self._next[index] <= topic.lost_through else "overflow"
        self._send_reset(reason, (topic.name,))
        return self._take_pending()

    def _end(self, reason: SubscriptionEnd) -> None:
        """End the stream (the first reason stays); while unresolved, once resolved."""
        if self._end_reason is not None:
            return
        self._end_reason = reason
        if reason in DROPPED_REASONS:
            self._core.count_drop(reason)
        if self._state is STREAMING:
            self._state = move(STREAMING, ENDED)

    # -- closing ----------------------------------------------------------------------------

    def drop(self) -> None:
        """End this client's stream now, from anywhere in the event loop's thread (an
        admin action, a logout): what it was sent stands, its response ends cleanly, and
        a browser reconnects with its Last-Event-ID and resumes exactly.

        The whole response ends, also when the subscription is one of several streams
        merged into it (``merge()``, `resumable_merge`), and also while it still waits
        for an unreachable backend: the client reconnects, and the app's handler decides
        again what it may stream. Never waits: a slow client's response ends within its
        ``send_timeout``."""
        if self._state is CLOSED:
            return
        self._end("dropped")
        end_response = self._end_response
        if callable(end_response):
            end_response()
        waiting = self._waiting_for_backend
        if waiting is not None:
            waiting.cancel()
        if self._several is not None:
            self._several.wake()
        elif not self._wake_parked() and self._topics:
            self._topics[0].wake()

    def _wake_parked(self) -> bool:
        """Wake this subscription's reader if it is parked on asyncio; False if not."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return False
        waiter.set_result(None)
        return True

    async def aclose(self) -> None:
        """Stop following the topics (the response does it when it ends). Idempotent."""
        self.close()

    def close(self) -> None:
        """`aclose` for synchronous code."""
        if self._state is CLOSED:
            return
        core = self._core
        for topic in self._topics:
            topic.remove_subscriber()
        if self._several is not None:
            self._several.release()  # a reader waiting on it (another task) ends now
        waiter = self._waiter
        if waiter is not None and self._topics and (self._wake_parked() or waiter.cancelled()):
            self._topics[0].unpark(waiter)  # woken now, or the pump's: unawaited, cancelled
        self._waiter = None
        stats = core.stats
        stats.subscribers -= 1
        if self in core.live:
            core.live.remove(self)
            stats.delivered_events += self._delivered
            stats.delivered_bytes += self._size
        self._end_reason = self._end_reason or "end"
        self._state = move(self._state, CLOSED)
        self._end_response = None
        if self.owner is not None:
            core.disown(self.owner, self)
        core.observe("on_end", self.topics, self._end_reason, self._delivered, self._size)
        self._topics = ()
