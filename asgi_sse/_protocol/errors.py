"""The exception hierarchy: one base class, a handful of precise subclasses.

Must not import anything from the rest of the package.

Convention: a value of the right type that cannot go on the wire raises
`InvalidEventError` (a `ValueError`); a value of the wrong type raises the builtin
`TypeError`, as Python itself does.
"""

from __future__ import annotations

__all__ = (
    "ClientDisconnected",
    "HubFull",
    "HubUnavailable",
    "InvalidEventError",
    "SSEError",
    "StreamClosed",
    "TopicClosed",
)


class SSEError(Exception):
    """Base class of every error raised by asgi-sse."""


class InvalidEventError(SSEError, ValueError):
    """An event field holds a value that cannot go on the wire.

    Raised where the event is made, never while streaming: a newline in an event name or
    id would let one event forge another (the injection boundary), so it is rejected,
    not stripped.
    """


class ClientDisconnected(SSEError):
    """The client went away while the request body was being read."""


class StreamClosed(SSEError):
    """The response ended (or the app returned) before the awaited event arrived
    (raised by the test client, `asgi_sse.testing`)."""


class TopicClosed(SSEError):
    """A hub topic was closed (`Hub.close`) and takes no more events."""


class HubFull(SSEError):
    """The hub holds its ``max_topics`` topics, every one with subscribers: a new topic
    would make it hold more state than it was allowed."""


class HubUnavailable(SSEError):
    """The hub's backend cannot be reached (Redis is down or refuses): the event was
    not published, and nothing was stored. Publishing may be retried."""
