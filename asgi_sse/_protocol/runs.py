"""The `run_ended` event: the one terminal event of a run started with `Hub.run`.

A protocol event like `Reset`, sent by the hub and read by clients and the schemas,
which is why it lives in the protocol layer. Imports the events module and pydantic
only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from .events import BaseEvent

__all__ = ("RunEnded", "RunEndedInfo", "RunReason")

RunReason = Literal["complete", "cancelled", "failed", "lost", "shutdown"]
"""Why a run ended: ``complete`` (its producer ended), ``cancelled`` (`Hub.cancel`),
``failed`` (its producer raised: the error is logged on the server, never sent),
``lost`` (the process running it went away: Redis only, when its lease lapses),
``shutdown`` (the hub stopped while it ran)."""


class RunEndedInfo(BaseModel):
    """Why a run ended."""

    reason: RunReason
    """``complete``, ``cancelled``, ``failed``, ``lost`` or ``shutdown`` (see
    `RunReason`)."""


class RunEnded(BaseEvent[RunEndedInfo], event="run_ended"):
    """The last event of a run's topic (`Hub.run`): the run is over, and the topic is
    closed after it, so a client that has it gets 204 when it reconnects and a browser's
    EventSource stops reconnecting. Its data never holds an error's text."""
