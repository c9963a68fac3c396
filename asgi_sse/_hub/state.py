"""A subscription's state, and the moves allowed between states.

After h11's ``_state.py``: one explicit state instead of flags whose combinations mean
something, and a table of the transitions; a move the table does not allow is a bug in
the hub, and raises instead of leaving a subscription in a state nobody designed.

==========  ============================================================  =========
from        when                                                          to
==========  ============================================================  =========
UNRESOLVED  its last event id is resolved, and there is a stream          STREAMING
UNRESOLVED  resolved, and its topics are closed and had, or it was
            asked to end meanwhile (dropped, the hub stopped)             ENDED
STREAMING   its topics closed and drained, an overflow under the
            ``disconnect`` policy, the hub stopped, `Subscription.drop`   ENDED
any         `Subscription.close` (its response ended)                     CLOSED
==========  ============================================================  =========

An end asked for while UNRESOLVED is kept as the subscription's end reason and takes
effect when its id is resolved, so the client still gets its priming frame or `Reset`
and resumes exactly.

Standard library only.
"""

from __future__ import annotations

import enum

__all__ = ("CLOSED", "ENDED", "STREAMING", "UNRESOLVED", "SubscriptionState", "move")


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


#: The states by name, for the code that compares them once per event (a module global
#: is found faster than an enum member).
UNRESOLVED = SubscriptionState.UNRESOLVED
STREAMING = SubscriptionState.STREAMING
ENDED = SubscriptionState.ENDED
CLOSED = SubscriptionState.CLOSED

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
