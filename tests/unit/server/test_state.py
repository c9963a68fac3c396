"""The connection's states: the table of allowed moves, written out once more here as
the specification it implements, and an error for every other move."""

from __future__ import annotations

import itertools
from typing import get_args

import pytest

from asgi_sse._server.state import (
    CLIENT_GONE_REASONS,
    TRANSITIONS,
    CloseReason,
    ConnectionState,
    IllegalTransition,
    check_transition,
)

STATES: tuple[ConnectionState, ...] = get_args(ConnectionState)

#: One send at a time, each from idle and back; the final body from idle; the client
#: may leave from anywhere, after the last byte too; nothing once it is gone.
LEGAL: set[tuple[ConnectionState, ConnectionState]] = {
    ("idle", "sending_frames"),
    ("sending_frames", "idle"),
    ("idle", "sending_keepalive"),
    ("sending_keepalive", "idle"),
    ("idle", "finishing"),
    ("finishing", "finished"),
    ("idle", "gone"),
    ("sending_frames", "gone"),
    ("sending_keepalive", "gone"),
    ("finishing", "gone"),
    ("finished", "gone"),
}


def test_the_table_names_every_state() -> None:
    assert set(TRANSITIONS) == set(STATES)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(STATES, STATES)))
def test_a_move_is_allowed_exactly_when_the_specification_lists_it(
    current: ConnectionState, new: ConnectionState
) -> None:
    if (current, new) in LEGAL:
        check_transition(current, new)
    else:
        with pytest.raises(IllegalTransition, match=f"from {current} to {new}"):
            check_transition(current, new)


def test_an_illegal_move_says_what_was_allowed() -> None:
    with pytest.raises(IllegalTransition, match=r"\(allowed: gone, idle\)"):
        check_transition("sending_frames", "sending_keepalive")
    with pytest.raises(IllegalTransition, match=r"\(allowed: nothing\)"):
        check_transition("gone", "idle")


def test_the_reasons_that_mean_the_client_is_gone() -> None:
    assert set(get_args(CloseReason)) == {
        "stream_end",
        "stream_error",
        "client_left",
        "send_timeout",
        "send_failed",
        "shutdown",
        "server_cancelled",
        "dropped",
    }
    assert set(CLIENT_GONE_REASONS) == {"client_left", "send_timeout", "send_failed"}
