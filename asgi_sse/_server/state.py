"""Why a response ends, and the states of its connection with the moves between them.

Modelled on h11's ``_state.py``: one explicit state, a table of the moves allowed from
each, and an error for any other move (`IllegalTransition`) instead of a silent
combination of flags. The connection (`connection.py`) is the only code that moves it.

Values only: must not import anything async, ASGI, or from the rest of the package.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

__all__ = (
    "CLIENT_GONE_REASONS",
    "TRANSITIONS",
    "CloseReason",
    "ConnectionState",
    "IllegalTransition",
    "check_transition",
)

CloseReason: TypeAlias = Literal[
    "stream_end",
    "stream_error",
    "client_left",
    "send_timeout",
    "send_failed",
    "shutdown",
    "server_cancelled",
    "dropped",
]
"""Why a response ended, as told to `StreamObserver.on_close` (the first reason sticks):

- ``stream_end``: the stream was exhausted;
- ``stream_error``: the stream (or a ``ping_event`` function) raised; logged;
- ``client_left``: ``http.disconnect``, ``send`` raised OSError (ASGI 2.4), the stream
  raised `ClientDisconnected`, or ``receive`` raised (logged);
- ``send_timeout``: the client stopped reading for ``send_timeout`` seconds;
- ``send_failed``: the server's ``send`` raised something else than OSError; logged;
- ``shutdown``: the server is stopping (`GracefulShutdown`, `ShutdownSignal`);
- ``server_cancelled``: the server cancelled the request task itself;
- ``dropped``: a hub subscription in the stream was dropped (`Subscription.drop`,
  `Hub.drop`): the response ended cleanly and the client reconnects.
"""

CLIENT_GONE_REASONS: frozenset[CloseReason] = frozenset(
    {"client_left", "send_timeout", "send_failed"}
)
"""The reasons after which nothing more may be sent: the client is gone or unreachable."""

ConnectionState: TypeAlias = Literal[
    "idle", "sending_frames", "sending_keepalive", "finishing", "finished", "gone"
]
"""What a connection is doing, as far as sending goes:

- ``idle``: nothing is being sent; the stream runs (or waits); keep-alives may go;
- ``sending_frames``: the request task is in ``send`` with the stream's frames;
- ``sending_keepalive``: the watcher is in ``send`` with a keep-alive;
- ``finishing``: the request task is sending the final empty body;
- ``finished``: the final body went out: the response is complete;
- ``gone``: the client left, was dropped, or ``send`` broke: nothing more is sent.
"""

TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    "idle": frozenset({"sending_frames", "sending_keepalive", "finishing", "gone"}),
    "sending_frames": frozenset({"idle", "gone"}),
    "sending_keepalive": frozenset({"idle", "gone"}),
    "finishing": frozenset({"finished", "gone"}),
    "finished": frozenset({"gone"}),
    "gone": frozenset(),
}
"""The moves allowed from each state. One send at a time: a send starts only from
``idle`` and returns there. The final body starts only from ``idle`` too (after any
keep-alive in flight). Any state but ``gone`` may become ``gone``: the client can leave
at any moment, even after the last byte."""


class IllegalTransition(RuntimeError):
    """A connection was asked to move where its state does not allow: a bug in the
    response's lifecycle (two sends at once, a frame after the final body), never
    something a client or a stream can cause."""


def check_transition(current: ConnectionState, new: ConnectionState) -> None:
    """Raise `IllegalTransition` unless the table allows ``current`` -> ``new``."""
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing"
        msg = f"a connection cannot go from {current} to {new} (allowed: {allowed})"
        raise IllegalTransition(msg)
