"""A subscription's state, and the moves allowed between states.

After h11's ``_state.py``: one explicit state instead of flags whose combinations mean
something, and a table of the transitions; a move the table does not allow is a bug in
the hub, and raises instead of leaving a subscription in a state nobody designed.

::

    UNRESOLVED --(its id resolved)--------> STREAMING --(topics closed, overflow,
        |    \\                                 |        hub stopped, dropped)--> ENDED
        |     `--(resolved: nothing to stream)--+------------------------------> ENDED
        `--------------------(closed)-----------+--(closed)--> CLOSED <--(closed)--'

An end asked for while UNRESOLVED (a drop, the hub stopping) is kept as the
subscription's end reason and takes effect when its id is resolved, so the client
still gets its priming frame or `Reset` and resumes exactly.

Standard library only.
"""

from __future__ import annotations

import enum

__all__ = ("SubscriptionState", "move")


class SubscriptionState(enum.Enum):
    #: Made: the client's last event id is not resolved yet; nothing to send.
    UNRESOLVED = "unresolved"
    #: Resolved: hands out the frames of its topics' logs.
    STREAMING = "streaming"
    #: Nothing more from the logs (its end reason says why); the frames queued before
    #: (a `Reset`, a priming frame) still go out, then the iteration stops.
    ENDED = "ended"
    #: Its topics released and its observer told: the response is over.
    CLOSED = "closed"


_ALLOWED: dict[SubscriptionState, frozenset[SubscriptionState]] = {
    SubscriptionState.UNRESOLVED: frozenset(
        {SubscriptionState.STREAMING, SubscriptionState.ENDED, SubscriptionState.CLOSED}
    ),
    SubscriptionState.STREAMING: frozenset({SubscriptionState.ENDED, SubscriptionState.CLOSED}),
    SubscriptionState.ENDED: frozenset({SubscriptionState.CLOSED}),
    SubscriptionState.CLOSED: frozenset(),
}


def move(current: SubscriptionState, to: SubscriptionState) -> SubscriptionState:
    """``to``, if a subscription may go there from ``current``.

    Raises:
        RuntimeError: the move is not in the table (a bug in the hub).
    """
    if to not in _ALLOWED[current]:
        raise RuntimeError(f"a subscription cannot go from {current.name} to {to.name}")
    return to
