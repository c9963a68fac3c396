"""The client's errors: a refused stream, data that does not validate, an unknown event.

Must not import anyio or any other module of the client; httpx only for the types.
"""

from __future__ import annotations

import httpx

from .._protocol.errors import SSEError
from .._protocol.parser import ParsedEvent

__all__ = ("EventSourceError", "InvalidEventData", "UnknownEvent")


class EventSourceError(SSEError):
    """The server answered something that is not an event stream (a status other than
    200 or 204, or another content type): the stream will not reconnect. Also raised
    for a ``reconnect_on`` status that was the last failure ``max_retries`` allowed.

    Args:
        message: What was answered, and where.
        response: That response.
        body: The start of its body.
    """

    def __init__(self, message: str, response: httpx.Response, body: bytes = b"") -> None:
        super().__init__(message)
        self.response = response
        """The response (closed by the time the error is seen)."""
        self.body = body
        """The start of its body, decoded as httpx decodes it (up to 64 KiB; empty for a
        ``reconnect_on`` status)."""


class InvalidEventData(SSEError, ValueError):
    """A frame named a known event class but its data does not validate as that class
    (with ``on_invalid="raise"``, the default); ``__cause__`` is pydantic's error.

    Args:
        message: Which event, and why.
        event: The frame as parsed.
    """

    def __init__(self, message: str, event: ParsedEvent) -> None:
        super().__init__(message)
        self.event = event
        """The frame as parsed."""


class UnknownEvent(SSEError):
    """A frame named no event class given (with ``on_unknown="raise"``).

    Args:
        message: Which event name.
        event: The frame as parsed.
    """

    def __init__(self, message: str, event: ParsedEvent) -> None:
        super().__init__(message)
        self.event = event
        """The frame as parsed."""
