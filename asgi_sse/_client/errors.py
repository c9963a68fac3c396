"""The client's errors: a refused stream, data that does not validate, an unknown event.

Must not import anyio or any other module of the client; httpx only for the types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._protocol.errors import SSEError
from .._protocol.parser import ParsedEvent

if TYPE_CHECKING:
    import httpx

__all__ = ("EventSourceError", "InvalidEventData", "UnknownEvent")


class EventSourceError(SSEError):
    """The server answered something that is not an event stream (a status other than
    200 or 204, or another content type): the stream will not reconnect.

    ``response`` is that response (closed), ``body`` the start of its body (up to
    64 KiB)."""

    def __init__(self, message: str, response: httpx.Response, body: bytes = b"") -> None:
        super().__init__(message)
        self.response = response
        self.body = body


class InvalidEventData(SSEError, ValueError):
    """A frame named a known event class but its data does not validate as that class.

    ``event`` is the frame as parsed; ``__cause__`` is pydantic's error."""

    def __init__(self, message: str, event: ParsedEvent) -> None:
        super().__init__(message)
        self.event = event


class UnknownEvent(SSEError):
    """A frame named no event class given (``on_unknown="raise"``); ``event`` is it."""

    def __init__(self, message: str, event: ParsedEvent) -> None:
        super().__init__(message)
        self.event = event
