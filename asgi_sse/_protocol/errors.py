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
    """Base class of asgi-sse's own errors.

    Misuse raises builtins, as Python does: `TypeError` for a value of the wrong type,
    `ValueError` for an option out of range, `RuntimeError` for a call out of order.
    """


class InvalidEventError(SSEError, ValueError):
    """An event field holds a value that cannot go on the wire.

    Raised where the event is made (`ServerSentEvent`, a `BaseEvent` class,
    `BaseEvent.frame`): a newline in an event name or id would let one event forge
    another (the injection boundary), so it is rejected, not stripped. A typed event's
    data is serialised only when it is encoded, so its lone surrogate fails in
    `BaseEvent.encode`, while streaming: the response then leaves that one event out
    and logs it.
    """


class ClientDisconnected(SSEError):
    """The client went away while the request body was being read (`SSERequest.body`).

    Raised inside a handler or a stream, it needs no handling: `SSEEndpoint` and
    `EventSourceResponse` take it as the client leaving and end the request quietly.
    """


class StreamClosed(SSEError):
    """The response ended (or the app returned) before the awaited event arrived.

    Raised by the test client (`asgi_sse.testing.TestStream`): a test that waits for one
    more event than the app sends fails with this instead of hanging.
    """


class TopicClosed(SSEError):
    """A hub topic was closed (`Hub.close`), or the hub stopped: it takes no more
    events (raised by `Hub.publish` and its siblings)."""


class HubFull(SSEError):
    """The hub holds its ``max_topics`` topics, every one with subscribers: a new topic
    would make it hold more state than it was allowed; or `Hub.run` would start more
    than ``max_running`` runs on this process (an app answers 429 Too Many Requests).

    Raised where a topic the hub does not hold yet would be made: `Hub.publish` (and
    its siblings), `Hub.subscribe`, `Hub.close`, `Hub.run`.
    """


class HubUnavailable(SSEError):
    """The hub's backend cannot be reached (Redis is down or refuses): the event was
    not published, and nothing was stored. Publishing may be retried.

    Raised by `Hub.publish` and `Hub.close`, and when the hub is entered and its backend
    does not answer (the app must not start without it).
    """
