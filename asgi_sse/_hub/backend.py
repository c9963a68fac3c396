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

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from .._protocol.reset import ResetReason
from .log import TopicLog

__all__ = (
    "DECLARATIONS",
    "EARLIEST",
    "BackendCounters",
    "HubBackend",
    "LogBounds",
    "OwnerDrops",
    "ResumePoint",
    "RunLeases",
    "attach_at_once",
    "check_declarations",
)

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


@runtime_checkable
class RunLeases(Protocol):
    """Runs across processes (`Hub.run`): which process runs a topic, for how long, and
    how another process cancels it. An optional capability: a backend that has it
    implements these methods besides `HubBackend`'s; without them (the memory backend,
    and every backend written before runs) a run lives in the process that started it
    and nowhere else, and nothing can lapse.

    The one capability the hub finds out rather than reads from a declaration (an
    ``isinstance`` check, once, as the hub is made): a new member of `HubBackend`
    would make every backend written before it fail to type-check as one.

    What the hub does with it (`asgi_sse.redis.RedisStreamsBackend` implements it):
    `claim_run` before the producer starts; `renew_run` every third of
    the lease while it runs; `run_cancel_requested` beside the producer, which is
    cancelled when it returns; after the run's `RunEnded` is published and its topic
    closed (or, when the claim was lost, without publishing anything), `release_run`.
    `Hub.cancel` of a topic this process does not run calls `request_run_cancel`.
    """

    async def claim_run(self, log: TopicLog, lease: float, lost: tuple[bytes, bytes]) -> bool:
        """Claim ``log``'s topic for a run in this process for ``lease`` seconds
        (`Hub.run_lease`), unless a live claim of another process holds it.

        ``lost`` is the frame of `RunEnded` ``lost``, cut where its ``id:`` line goes
        (as `HubBackend.append` takes it): when the claim lapses unrenewed, whichever
        process sees it first appends that frame and closes the topic, once, so every
        subscriber everywhere learns ``lost``.

        Returns:
            True if this process holds the claim now; False if another one does (the
            hub then refuses the run with `ValueError`).

        Raises:
            HubUnavailable: the store cannot be reached; nothing was claimed.
        """
        ...

    async def renew_run(self, log: TopicLog, lease: float) -> bool:
        """Extend this process's claim on ``log``'s topic by ``lease`` seconds.

        Returns:
            False if the claim was lost (it lapsed, and the topic was ended ``lost``):
            the hub then cancels the producer and publishes nothing more (not even
            its `RunEnded`).

        Raises:
            HubUnavailable: the store cannot be reached (the hub tries again at the
                next renewal; the claim may lapse meanwhile).
        """
        ...

    async def release_run(self, log: TopicLog) -> None:
        """The run on ``log``'s topic ended here: its `RunEnded` is published and the
        topic closed. Drop the claim (and any cancel request). Never raises."""
        ...

    async def request_run_cancel(self, topic: str) -> bool:
        """Ask whichever process holds a live claim on ``topic`` to cancel its run (its
        `run_cancel_requested` returns there).

        Returns:
            True if a live claim was found (the request was made); False otherwise.

        Raises:
            HubUnavailable: the store cannot be reached.
        """
        ...

    async def run_cancel_requested(self, log: TopicLog) -> None:
        """Return once another process asked to cancel this process's run on ``log``'s
        topic (`request_run_cancel`); the hub runs it beside the producer and cancels it
        when the producer ends."""
        ...


@runtime_checkable
class OwnerDrops(Protocol):
    """Drops across processes (`Hub.drop`): ending an owner's subscriptions in every
    process that shares the store. An optional capability, found out like `RunLeases`
    (an ``isinstance`` check as the hub is made); without it (the memory backend) a
    drop ends the subscriptions of the process it is called in, which are all of them.

    What the hub does with it (`asgi_sse.redis.RedisStreamsBackend` implements it):
    `Hub.drop` ends the owner's subscriptions here, then calls `send_drop`; as the hub
    is made it registers, with `receive_drops`, the function that ends an owner's
    subscriptions here, for the drops other processes send.
    """

    async def send_drop(self, owner: str) -> None:
        """Ask every other process that shares the store to end ``owner``'s
        subscriptions (the function each gave `receive_drops`), within about a second.
        A process that cannot reach the store at that moment applies it when it can
        again, as long as the store keeps it. This process's own are ended already:
        it must not get its own drop back.

        Raises:
            HubUnavailable: the store cannot be reached; no other process was told.
        """
        ...

    def receive_drops(self, apply: Callable[[str], object]) -> None:
        """Call ``apply(owner)`` in the event loop's thread for every drop another
        process sends, from `HubBackend.start` until `HubBackend.stop` (called once,
        before the hub starts the backend)."""
        ...


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
    attributes below, `append_nowait` (not supported) and `available` (always). A
    backend that does not subclass it must declare both attributes itself: `Hub`
    refuses it otherwise (`TypeError`, naming what is missing).
    """

    logs_are_the_store: bool = False
    """True: the logs are where this backend keeps the topics (the memory backend). A log then
    follows its topic from the moment it is made (an event published before any subscriber
    is in it): the hub calls `attach` as it makes the log, and keeps its logs over a stop.
    False: a log is this process's copy of a topic kept elsewhere, fed from `attach` on
    (called when its first subscriber here is about to read it); the hub drops the logs
    when it stops, and reads them afresh when it runs again."""
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
        """The hub stops: end what `start` began. The hub may be entered again.

        Once it returns, the backend changes no log (no append, close or lost history:
        whatever feeds them has stopped). It need not detach them: the hub keeps the
        logs when `logs_are_the_store` (they are the topics, attached still, for when
        it runs again) and drops them otherwise.
        """
        ...

    async def append(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        """Store one event of ``log``'s topic and return its id. ``prefix`` and
        ``suffix`` are its frame, cut where the ``id:`` line goes; the event reaches
        the attached logs of its topic only (`TopicLog.append`), now or later: ``log``
        if it is attached, never a log that is not (a publisher's log that nobody here
        reads is not fed; it would hold an event without those before it).

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
        """Make ``log`` follow its topic's new events from now on (`TopicLog.attach`).
        Called only for a log that is not attached: when its first subscriber in this
        process is about to read it; or, when `logs_are_the_store`, as the hub makes
        it, maybe in synchronous code (`Hub.subscribe`, `Hub.publish_nowait`), so it
        must then return without awaiting anything (the hub raises `TypeError` if it
        does).

        A backend with ids of its own gives ``after=``: the id of the topic's newest
        event or, for a topic without events, an id of its own that sorts before the
        topic's first event (``<epoch>-0`` for ids ``<epoch>-<number>``). Subscribers
        are primed with it, so `locate` must later resolve it like any other id: to
        the event after it (``newest + 1`` while the topic has none), with no reset.
        Without ``after=``, the log's ids are the memory backend's
        (``<epoch>-<sequence>``).

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


@runtime_checkable
class BackendCounters(Protocol):
    """An optional capability of a `HubBackend`: counters of the faults it met and got
    over, which ``asgi_sse.otel.SSEMetrics.instrument_backend`` observes
    (``asgi_sse.redis.RedisStreamsBackend`` has them).

    Not a declaration: a backend without them is a backend all the same (the hub never
    reads them), it only cannot be instrumented. A backend has them by having both
    members, as int attributes or read-only properties; ``isinstance(backend,
    BackendCounters)`` tells.
    """

    @property
    def reconnects(self) -> int:
        """Times the backend reconnected to its store after losing it."""
        ...

    @property
    def gaps(self) -> int:
        """Gaps met: events of a topic that this process never saw (trimmed before it
        read them, or lost)."""
        ...


DECLARATIONS: tuple[str, ...] = tuple(inspect.get_annotations(HubBackend))
"""The attributes by which a backend declares what differs (`HubBackend.logs_are_the_store`,
`HubBackend.can_append_nowait`): every backend has them, by subclassing or its own."""


def check_declarations(backend: object) -> None:
    """Refuse a backend that lacks a declaration (one that does not subclass
    `HubBackend` and leaves one out), where the hub is made rather than at a publish.

    Raises:
        TypeError: naming what it lacks.
    """
    missing = [name for name in DECLARATIONS if not hasattr(backend, name)]
    if missing:
        msg = (
            f"{type(backend).__name__} is not a HubBackend: it does not declare "
            f"{' nor '.join(missing)} (declare them, or subclass "
            "asgi_sse.backends.HubBackend for their defaults)"
        )
        raise TypeError(msg)


def attach_at_once(backend: HubBackend, log: TopicLog) -> None:
    """``backend.attach(log)``, run to its end here, for a log the hub just made when the
    backend's logs are the store: the hub makes logs in synchronous code too.

    Raises:
        TypeError: the backend's `attach` awaited something.
    """
    attaching = backend.attach(log)
    try:
        attaching.send(None)
    except StopIteration:
        return
    attaching.close()
    msg = (
        f"{type(backend).__name__}.attach awaited: a backend whose logs are the store "
        "attaches without awaiting (the hub makes logs in synchronous code too)"
    )
    raise TypeError(msg)
