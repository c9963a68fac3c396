"""The `reset` event: a stream could not resume exactly where its client stopped.

A protocol event like any typed event, sent by the hub and read by the client and the
schemas, which is why it lives in the protocol layer and not with the hub. Imports the
events module and pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from .events import BaseEvent

__all__ = ("Reset", "ResetInfo", "ResetReason")

ResetReason = Literal["gone", "unknown", "malformed", "overflow"]
"""Why a stream could not resume exactly: ``gone`` (the id is older than what the log
still holds), ``unknown`` (an id from another epoch or from the future: a restart),
``malformed`` (not an id of the hub), ``overflow`` (the subscriber fell out of the log
while connected)."""


class ResetInfo(BaseModel):
    """Why a stream could not resume where the client stopped, and where it goes on."""

    reason: ResetReason
    """``gone``: the log no longer holds the client's position; ``unknown``: the id is
    from another epoch (a restart) or from the future; ``malformed``: not an id of this
    hub; ``overflow``: the client fell out of the log while connected."""
    topics: list[str]
    """The topics concerned."""
    resume_from: str
    """The id the stream goes on from (the head): the frame's own id."""


class Reset(BaseEvent[ResetInfo], event="reset"):
    """Sent instead of a replay that cannot be exact: events were missed. Refetch your
    state, then follow the live events after it."""
