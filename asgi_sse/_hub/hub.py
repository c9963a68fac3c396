"""Hub: publish an event once, fan it out to every subscriber, resume after Last-Event-ID.

The facade users hold. Strategy: one bounded log of encoded frames per topic
(`log.TopicLog`), and a subscriber is a cursor into it plus a wake-up
(`subscription.Subscription`) - no queue per subscriber, so a frozen client costs a
cursor, never a backlog, and publishing never waits on anybody.

`publish` encodes the event once, cut where its ``id:`` line goes
(`asgi_sse._protocol.frames.split_at_id`); the backend (`backend.HubBackend`: memory by
default, Redis Streams in `asgi_sse.redis`) assigns its id and gets it into the logs,
which wake their subscribers. Every subscriber of one topic sends the very same bytes.
The hub never asks which backend it has: what differs is declared by the backend.

Imports the rest of the hub, the protocol layer and anyio; never the ASGI response
layer (`asgi_sse._server`).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterable
from types import TracebackType
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from .._protocol.errors import HubUnavailable
from .._protocol.stream import Publishable
from .._util.asgi import ASGIApp
from .backend import EARLIEST, HubBackend, LogBounds, OwnerDrops, RunLeases, check_declarations
from .core import HubCore
from .lifespan import with_lifespan
from .memory import MemoryBackend
from .observer import HubObserver, HubStats, OverflowPolicy
from .options import check_options, check_owner
from .runs import Runs
from .subscription import Subscription

__all__ = ("Hub",)


class Hub:
    """Publish events once and fan them out to every subscriber, with exact resume.

    Use it as ``async with Hub() as hub:`` for the life of the app (a lifespan, or
    `lifespan`), so that its backend runs, `publish_from_thread` works and streams end
    when it stops. Entering it starts the backend, which raises `HubUnavailable` when
    its store cannot be reached (the app must not start without it).

    ``Hub.EARLIEST`` as a last event id asks for everything the log still holds.

    Args:
        history: Events each topic's log holds at most.
        history_bytes: Bytes of frames each topic's log holds at most (but always its
            newest event); whichever bound is reached first trims the log.
        on_overflow: What a subscriber that falls out of the log while connected gets:
            ``"reset"`` (a `Reset` event, then live) or ``"disconnect"`` (its stream
            ends and its client resumes, learning with a `Reset` what it missed).
        expire_after: Seconds after which a topic without subscribers and without
            publishes is forgotten.
        max_topics: Topics held at most; at the limit a new topic evicts the idlest
            one without subscribers (`HubFull` if every one has some).
        observer: Gets the hub's events, for metrics (`asgi_sse.otel.SSEMetrics`).
        backend: Keeps the events and assigns their ids (`MemoryBackend` by default;
            `asgi_sse.redis.RedisStreamsBackend` across processes).
        max_running: Runs (`run`) alive at most on this process; one more raises
            `HubFull`.
        run_lease: Seconds a process's claim on a run lasts without being renewed
            (every third of it), on a backend that runs runs across processes
            (`asgi_sse.backends.RunLeases`: `asgi_sse.redis.RedisStreamsBackend`): when it
            lapses, subscribers everywhere learn ``lost``. With the memory backend
            the process is the run's only home and nothing can lapse: the option is
            checked and kept.

    Raises:
        ValueError: for a limit that is not a positive int, an ``expire_after`` or
            ``run_lease`` that is not a positive finite number, or an unknown
            policy.
        TypeError: for an ``expire_after`` that is not a number, or a ``backend`` that
            lacks a declaration of `HubBackend` (``logs_are_the_store``,
            ``can_append_nowait``).
    """

    EARLIEST = EARLIEST
    """The last event id that asks for everything the log still holds (``earliest``)."""

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
        max_running: int = 1000,
        run_lease: float = 5.0,
    ) -> None:
        check_options(
            history, history_bytes, max_topics, expire_after, on_overflow, max_running, run_lease
        )
        if backend is not None:
            check_declarations(backend)
        self._core = HubCore(
            backend=MemoryBackend() if backend is None else backend,
            history=history,
            history_bytes=history_bytes,
            on_overflow=on_overflow,
            expire_after=expire_after,
            max_topics=max_topics,
            observer=observer,
        )
        self._token: Any = None
        self._loop_thread: int | None = None  # the thread of the loop it was entered in
        backend_in_use = self._core.backend
        # Runs across processes: the one capability found out (see `RunLeases`).
        leases = backend_in_use if isinstance(backend_in_use, RunLeases) else None
        self._runs = Runs(self, self._core.log, max_running, leases, float(run_lease))
        self._run_lease = float(run_lease)
        # Drops across processes: the other capability found out (see `OwnerDrops`).
        self._drops = backend_in_use if isinstance(backend_in_use, OwnerDrops) else None
        if self._drops is not None:
            self._drops.receive_drops(self._core.drop_owner)

    # The options, as given (read-only: the logs and subscriptions follow them).

    @property
    def backend(self) -> HubBackend:
        """Where the events are kept (read-only)."""
        return self._core.backend

    @property
    def history(self) -> int:
        """Events each topic's log holds at most (read-only)."""
        return self._core.history

    @property
    def history_bytes(self) -> int:
        """Bytes of frames each topic's log holds at most (read-only)."""
        return self._core.history_bytes

    @property
    def on_overflow(self) -> OverflowPolicy:
        """What a subscriber that falls out of its log gets (read-only)."""
        return self._core.on_overflow

    @property
    def expire_after(self) -> float:
        """Seconds after which an idle topic is forgotten (read-only)."""
        return self._core.expire_after

    @property
    def max_topics(self) -> int:
        """Topics held at most (read-only)."""
        return self._core.max_topics

    @property
    def max_running(self) -> int:
        """Runs alive at most on this process (read-only)."""
        return self._runs.max_running

    @property
    def run_lease(self) -> float:
        """Seconds a process's claim on a run lasts unrenewed, across processes
        (read-only)."""
        return self._run_lease

    @property
    def observer(self) -> HubObserver | None:
        """Who gets the hub's events for metrics (may be set at any time)."""
        return self._core.observer

    @observer.setter
    def observer(self, observer: HubObserver | None) -> None:
        self._core.set_observer(observer)

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Hub:
        self._core.stopped = False  # a hub may run again (a server restarted in-process)
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = threading.get_ident()
        await self.backend.start(LogBounds(self.history, self.history_bytes))
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
        uvicorn or hypercorn); frameworks enter the hub in their own lifespan instead.

        A hub that cannot start (`HubUnavailable`) fails the server's startup, with
        the error as its message: the server exits instead of serving without it."""
        return with_lifespan(self, app)

    async def stop(self) -> None:
        """End every run (its subscribers get `RunEnded` ``shutdown``) and every open
        subscription (their responses end cleanly), and stop the backend; publishing
        raises `TopicClosed` from now on. The hub may be entered again.

        A producer gets two seconds to end once cancelled; one that shields itself
        longer is logged and left behind (its subscribers are told the run ended),
        then the runs' subscribers get as long to read their last event."""
        await self._runs.stop()
        core = self._core
        core.stop()
        await self.backend.stop()
        if not self.backend.logs_are_the_store:
            # The logs were copies of the backend's topics, which go on without this
            # process: a hub that runs again reads them afresh, never stale frames.
            core.logs.clear()

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, topic: str, event: Publishable) -> str:
        """Append ``event`` to ``topic`` and wake its subscribers.

        Never waits on a subscriber. The event must not carry an id (the hub assigns
        them) and must have data; a str is sent as the data of an unnamed event.

        Returns:
            The event's id in its topic.

        Raises:
            TopicClosed: the topic was closed, or the hub stopped.
            ValueError: ``topic`` is not a non-empty str.
            InvalidEventError: the event has an id, has no data, or cannot be encoded.
            TypeError: ``event`` is not an event or a str.
            HubFull: a new topic, and ``max_topics`` topics all have subscribers.
            HubUnavailable: the backend cannot be reached; nothing was published.
            RuntimeError: the backend needs the hub entered first (Redis).
        """
        log, prefix, suffix = self._core.to_publish(topic, event)
        event_id = await self.backend.append(log, prefix, suffix)
        self._core.published(log, event_id, len(prefix) + len(suffix))
        # Note: a turn for the subscribers just woken (a loop that publishes many events
        # in a row would otherwise run them all before anyone sends one), and no
        # cancellation here: the event is published, the caller must get its id.
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return event_id

    def publish_nowait(self, topic: str, event: Publishable) -> str:
        """`publish` from synchronous code running in the event loop's thread (a
        callback, a sync function called by async code).

        Returns:
            The event's id.

        Raises:
            TypeError: the backend cannot append without awaiting (Redis): use
                `publish` or `publish_from_thread`; or ``event`` is not an event or a
                str.
            TopicClosed: as `publish` raises it.
            ValueError: as `publish` raises it.
            InvalidEventError: as `publish` raises it.
            HubFull: as `publish` raises it.
        """
        if not self.backend.can_append_nowait:
            msg = f"{type(self.backend).__name__} publishes asynchronously: await publish()"
            raise TypeError(msg)
        log, prefix, suffix = self._core.to_publish(topic, event)
        event_id = self.backend.append_nowait(log, prefix, suffix)
        self._core.published(log, event_id, len(prefix) + len(suffix))
        return event_id

    def publish_from_thread(self, topic: str, event: Publishable) -> str:
        """`publish` from another thread (a worker thread, a sync framework's view):
        blocks until the backend stored the event.

        Never call it from the event loop's own thread (a coroutine or a callback
        running on the hub's loop): blocking there would wait for the loop for good, so
        it raises `RuntimeError` at once instead (``await hub.publish(...)`` there, or
        `publish_nowait` from synchronous code).

        Returns:
            The event's id.

        Raises:
            RuntimeError: the hub was not entered (``async with hub``) in an event loop,
                or this is the thread of the loop it was entered in.
            TopicClosed: as `publish` raises it.
            ValueError: as `publish` raises it.
            InvalidEventError: as `publish` raises it.
            TypeError: as `publish` raises it.
            HubFull: as `publish` raises it.
            HubUnavailable: as `publish` raises it.
        """
        if self._token is None:
            raise RuntimeError("enter the hub first (async with hub: ...) to publish from threads")
        if threading.get_ident() == self._loop_thread:
            # Handing the call to the loop and waiting for it, from the loop's own thread,
            # would wait for good (asyncio) or fail obscurely (trio): say what to do.
            raise RuntimeError(
                "publish_from_thread was called from the hub's event loop thread, where it "
                "would block the loop for good: use `await hub.publish(...)` there (or "
                "hub.publish_nowait(...) from synchronous code)"
            )
        return anyio.from_thread.run(self.publish, topic, event, token=self._token)

    async def close(self, topic: str, final_event: Publishable | None = None) -> None:
        """End ``topic`` for good: its open streams send what remains (and
        ``final_event``, if given), then end; a client that reconnects at the head gets
        204 No Content, which makes a browser's EventSource stop reconnecting. Closing
        a closed topic does nothing; closing one the hub does not hold yet makes it,
        closed.

        Raises:
            ValueError: ``topic`` is not a non-empty str.
            HubFull: a new topic, and ``max_topics`` topics all have subscribers.
            HubUnavailable: the backend cannot be reached.
            TopicClosed: with ``final_event``, when the hub stopped.
            InvalidEventError: ``final_event`` cannot be published (see `publish`).
            TypeError: ``final_event`` is not an event or a str.
            RuntimeError: the backend needs the hub entered first (Redis).
        """
        log = self._core.log(topic)
        if log.closed:
            return
        if final_event is not None:
            await self.publish(topic, final_event)
        await self.backend.close(log)
        log.mark_used()

    # -- runs -----------------------------------------------------------------------------

    async def run(self, producer: AsyncIterable[Publishable], *, topic: str | None = None) -> str:
        """Start ``producer`` on this hub, independent of any connection, publishing
        each item it yields to ``topic``; return the topic at once.

        Clients stream it with `subscribe` like any topic, and resume after a
        reconnect like any topic. The run ends with one `RunEnded` event (``complete``,
        ``cancelled``, ``failed``, ``shutdown``), then the topic is closed: a client
        that reconnects later gets what it missed, `RunEnded`, then the end; one that
        has everything gets 204. A producer that raises is logged (logger
        ``asgi_sse``, with its traceback) and its subscribers get ``failed``, never
        the error's text. A run whose subscribers all left goes on to its end.

        The topic's log must hold the whole run for a late client to replay it
        (``history``, ``history_bytes``); a finished run's topic stays resumable for
        ``expire_after`` seconds after its end (a live run's never expires).

        Args:
            producer: An async iterable of what `publish` takes.
            topic: The topic to publish to; None for a fresh, unguessable, URL-safe
                name (`secrets.token_urlsafe`).

        Returns:
            The run's topic.

        Raises:
            RuntimeError: the hub is not running (``async with hub`` first).
            TypeError: ``producer`` is not an async iterable.
            ValueError: ``topic`` is not a non-empty str, or a run on it is alive
                (here, or in another process with `asgi_sse.backends.RunLeases`).
            HubFull: ``max_running`` runs are alive on this process, or a new topic
                finds no room (``max_topics``).
            TopicClosed: ``topic`` was closed (a finished run's, for one).
            HubUnavailable: the backend could not claim the run (its store cannot be
                reached).
        """
        if self._token is None or self._core.stopped:
            raise RuntimeError("enter the hub first (async with hub: ...) to start runs")
        topic = await self._runs.start(producer, topic)
        # A turn for the run to start, and no cancellation here: the run is started,
        # the caller must get its topic.
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return topic

    async def cancel(self, topic: str) -> bool:
        """Cancel the run on ``topic``: its producer is cancelled at its ``await`` (its
        ``finally`` runs) and its subscribers get `RunEnded` ``cancelled``. Waits up
        to a second for the producer to end.

        A run of another process is cancelled there when the backend runs runs across
        processes (`asgi_sse.backends.RunLeases`); with the memory backend a run
        lives in this process only.

        Returns:
            True if it cancelled a live run (or asked the process running it to);
            False for a finished or unknown one (or one being cancelled already).

        Raises:
            HubUnavailable: the backend cannot ask another process (its store cannot
                be reached).
        """
        return await self._runs.cancel(topic)

    # -- subscribing ----------------------------------------------------------------------

    def subscribe(
        self, *topics: str, last_event_id: str | None = None, owner: str | None = None
    ) -> Subscription:
        """The stream of ``topics`` for one client, resuming after ``last_event_id``
        (the `Last-Event-ID` header or ``?lastEventId=``: `SSERequest.last_event_id`).

        Return it from a handler or pass it to `EventSourceResponse`. How the id
        resolves: absent or empty - from the head, after an id-only frame that primes
        the client's cursor; an id the log holds - every event after it, then live, no
        gap, no duplicate; `EARLIEST` - everything the log holds; anything else - a
        `Reset` event, then live. The id is resolved when the response prepares the
        stream (`Subscription.prepare_stream`), not here.

        ``owner`` labels who holds the stream - a user id, a session id, a client id,
        the app's choice - so that `drop` can end all of that owner's streams (on every
        process, with a shared backend). It is never sent to the client.

        Raises:
            ValueError: no topic, a topic twice, a topic that is not a non-empty str,
                or an ``owner`` that is not a non-empty str.
            HubFull: a new topic, and ``max_topics`` topics all have subscribers.
        """
        if not topics:
            raise ValueError("subscribe to at least one topic")
        if len(set(topics)) != len(topics):
            raise ValueError(f"a topic is given twice: {topics!r}")
        if owner is not None:
            check_owner(owner)
        return Subscription(self._core, topics, last_event_id, owner)

    async def drop(self, owner: str) -> int:
        """End every stream ``owner`` holds (`subscribe`'s ``owner``) now, on this
        process and - with a backend shared by several processes (Redis) - on every
        other one, which ends its own within about a second.

        Each stream ends as `Subscription.drop` ends one: its response ends cleanly (also
        when the subscription is merged with other streams, is still replaying, or
        waits for an unreachable backend), the client reconnects with its
        Last-Event-ID, and the app's handler runs again and decides: resume exactly, or
        refuse (a 401 or 403 stops a browser's EventSource for good). An owner with no
        streams anywhere: nothing happens. Never waits on a client.

        Returns:
            How many streams it ended on this process.

        Raises:
            ValueError: ``owner`` is not a non-empty str.
            HubUnavailable: with a shared backend, the other processes could not be
                told (the store cannot be reached): this process's streams were ended
                all the same; call `drop` again once the store answers (a drop that
                finds nothing is harmless).
            RuntimeError: with a shared backend, the hub is not running (``async with
                hub`` first).
        """
        check_owner(owner)
        ended = self._core.drop_owner(owner)
        drops = self._drops
        if drops is not None:
            if self._token is None or self._core.stopped:
                raise RuntimeError("enter the hub first (async with hub: ...) to drop owners")
            try:
                await drops.send_drop(owner)
            except HubUnavailable as exc:
                raise HubUnavailable(
                    f"ended {ended} stream(s) of {owner!r} on this process, but could not "
                    f"tell the other processes: {exc}"
                ) from exc
        else:
            await anyio.lowlevel.checkpoint()
        return ended

    # -- introspection --------------------------------------------------------------------

    def stats(self) -> HubStats:
        """A copy of the counters, which later changes leave as they are."""
        self._core.sweep()  # expired topics are not counted
        stats = self._core.stats
        delivered_events, delivered_bytes = self._core.delivered()
        return HubStats(
            topics=len(self._core.logs),
            subscribers=stats.subscribers,
            published=stats.published,
            delivered_events=delivered_events,
            delivered_bytes=delivered_bytes,
            replays=stats.replays,
            resets=dict(stats.resets),
            dropped=dict(stats.dropped),
            runs=len(self._runs.running),
        )

    def head(self, topic: str) -> str | None:
        """The id of ``topic``'s newest event (``<epoch>-0`` before the first), or None
        for a topic the hub does not hold (or, on Redis, that nobody here follows)."""
        log = self._core.logs.get(topic)
        return None if log is None or not log.attached else log.newest_id()
