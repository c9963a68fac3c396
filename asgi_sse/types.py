"""The types users annotate with: what a stream yields, what a handler returns, the
options' value types, the ready-items protocol, and the ASGI callables.

Only type aliases and protocols live here; importing this module has no side effect.
"""

from __future__ import annotations

from typing import TypeAlias

from ._protocol.stream import EventStream, Item, Preparable, ReadyItems
from ._server.aliases import HeadersLike, PingEvent
from ._server.endpoint import Handler, HandlerResult
from ._util.asgi import ASGIApp, ASGIReceiveCallable, ASGISendCallable, Scope

__all__ = (
    "ASGIApp",
    "EventStream",
    "Handler",
    "HandlerResult",
    "HeadersLike",
    "Item",
    "PingEvent",
    "Preparable",
    "ReadyItems",
    "Receive",
    "Scope",
    "Send",
)

# ASGI, as asgiref types it (`Scope` is asgiref's union of scope TypedDicts).
Receive: TypeAlias = ASGIReceiveCallable
Send: TypeAlias = ASGISendCallable
