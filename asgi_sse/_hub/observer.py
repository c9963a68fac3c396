"""What the hub tells the outside: its counters (`HubStats`), its metrics hooks
(`HubObserver`), and the words both use, as types - how a subscription starts
(`SubscriptionStart`), why it ends (`SubscriptionEnd`), what an overflow does
(`OverflowPolicy`).

Hooks are called per publish and per subscription, never per event per subscriber,
so an observer costs nothing on the fan-out path (`on_lag` is sampled).

Plain values and one do-nothing class: imports the protocol layer's reset reasons only;
never anyio, the ASGI layer or the rest of the hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .._protocol.reset import ResetReason

__all__ = (
    "DROPPED_REASONS",
    "HubObserver",
    "HubStats",
    "OverflowPolicy",
    "SubscriptionEnd",
    "SubscriptionStart",
)

SubscriptionStart = Literal["live", "replay", "earliest", "reset", "closed"]
"""How a subscription started: ``live`` (no last event id: from the head, after an
id-only priming frame), ``replay`` (a last event id the hub could resume exactly),
``earliest`` (`EARLIEST`: everything the log holds), ``reset`` (an id it could not
resume: a `Reset` first), ``closed`` (every topic closed and the client at its end:
answered 204 No Content)."""

SubscriptionEnd = Literal["end", "closed", "overflow", "stopped", "dropped"]
"""Why a subscription ended: ``end`` (its response ended: the client left, the stream
was closed), ``closed`` (its topics were closed and it sent what remained),
``overflow`` (it fell out of the log under the ``disconnect`` policy), ``stopped``
(the hub stopped), ``dropped`` (`Subscription.drop`)."""

DROPPED_REASONS: frozenset[SubscriptionEnd] = frozenset({"overflow", "stopped", "dropped"})
"""The ends the hub decided, which `HubStats.dropped` counts."""

OverflowPolicy = Literal["reset", "disconnect"]
"""What a subscriber that falls out of its topic's log gets: a `Reset` then live
(``reset``), or the end of its stream, so that its client resumes (``disconnect``)."""


@dataclass
class HubStats:
    """The hub's counters, as plain numbers (`Hub.stats()`)."""

    topics: int = 0
    """Topics whose log the hub holds in this process."""
    subscribers: int = 0
    """Open subscriptions."""
    published: int = 0
    """Events published through this hub."""
    delivered_events: int = 0
    """Frames handed to subscribers (priming frames and Resets included)."""
    delivered_bytes: int = 0
    """Bytes of those frames."""
    replays: int = 0
    """Subscriptions that resumed exactly after a last event id."""
    resets: dict[ResetReason, int] = field(default_factory=dict)
    """`Reset` events sent, by reason."""
    dropped: dict[SubscriptionEnd, int] = field(default_factory=dict)
    """Subscriptions ended by the hub (``overflow``, ``stopped``, ``dropped``), by reason."""
    runs: int = 0
    """Runs (`Hub.run`) running on this process."""


class HubObserver:
    """Hooks for metrics, called per publish and per subscription, never per event per
    subscriber. Subclass and override what you need; every method does nothing here.

    Give it to the hub as ``observer=`` (or set `Hub.observer`). The hooks run in the
    task that publishes, or in the subscriber's response: keep them quick. What a hook
    raises is logged (the ``asgi_sse`` logger) and ignored: metrics never end a
    subscription or fail a publish.
    """

    def on_publish(self, topic: str, event_id: str, size: int) -> None:
        """An event was published: the backend stored it.

        Args:
            topic: The topic it was published to.
            event_id: Its id.
            size: The bytes of its frame without the ``id:`` line.
        """

    def on_subscribe(self, topics: tuple[str, ...], how: SubscriptionStart) -> None:
        """A subscription started, ``how`` it did (see `SubscriptionStart`)."""

    def on_reset(self, topics: tuple[str, ...], reason: ResetReason) -> None:
        """A `Reset` was sent, for ``reason``."""

    def on_end(
        self, topics: tuple[str, ...], reason: SubscriptionEnd, events: int, size: int
    ) -> None:
        """A subscription ended (its response let go of it).

        Args:
            topics: Its topics.
            reason: Why (see `SubscriptionEnd`).
            events: The frames it delivered (priming frames and Resets included).
            size: Their bytes, in all.
        """

    lag_every: int = 0
    """Every how many events of a topic a delivery lag is measured (`on_lag`); 0: never."""

    def on_lag(self, topic: str, seconds: float) -> None:
        """A sampled event (one in ``lag_every`` of a topic's) was taken by a subscriber
        ``seconds`` after it was published (on Redis: after the time in its id, the
        publishing Redis server's clock)."""
