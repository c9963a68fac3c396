"""The types users annotate with: what a stream yields, what a hub publishes, what a
handler returns, the options (`ResponseOptions`, `EndpointOptions`) and their value
types, the ready-items protocol, the ASGI callables, and the words as Literals: why a
response closed (`CloseReason`, told to `StreamObserver.on_close`), how a subscription
starts and ends, why a stream resets, what an overflow does.

Only type aliases and protocols live here; importing this module has no side effect.
"""

from __future__ import annotations

from typing import TypeAlias

from ._hub.observer import OverflowPolicy, SubscriptionEnd, SubscriptionStart
from ._protocol.reset import ResetReason
from ._protocol.stream import EventStream, Item, Preparable, Publishable, ReadyItems
from ._server.aliases import HeadersLike, PingEvent
from ._server.endpoint import Handler, HandlerResult
from ._server.options import EndpointOptions, ResponseOptions
from ._server.state import CloseReason
from ._util.asgi import ASGIApp, ASGIReceiveCallable, ASGISendCallable, Scope

__all__ = (
    "ASGIApp",
    "CloseReason",
    "EndpointOptions",
    "EventStream",
    "Handler",
    "HandlerResult",
    "HeadersLike",
    "Item",
    "OverflowPolicy",
    "PingEvent",
    "Preparable",
    "Publishable",
    "ReadyItems",
    "Receive",
    "ResetReason",
    "ResponseOptions",
    "Scope",
    "Send",
    "SubscriptionEnd",
    "SubscriptionStart",
)

# ASGI, as asgiref types it (`Scope` is asgiref's union of scope TypedDicts).
Receive: TypeAlias = ASGIReceiveCallable
"""An ASGI ``receive`` callable, as asgiref types it."""

Send: TypeAlias = ASGISendCallable
"""An ASGI ``send`` callable, as asgiref types it."""
