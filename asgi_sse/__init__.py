"""asgi-sse: Server-Sent Events for any ASGI application.

Typed pydantic events encoded straight to bytes, merged streams, a streaming response
that cleans up on disconnect and shutdown, an endpoint app and a middleware that mount
into any ASGI framework, and a streaming test client (`asgi_sse.testing`).
"""

# `import asgi_sse` has always made `asgi_sse.types` reachable (its layers imported it).
from . import types as types
from ._hub.backend import HubBackend
from ._hub.hub import Hub
from ._hub.memory import MemoryBackend
from ._hub.observer import HubObserver, HubStats
from ._hub.subscription import Subscription
from ._protocol.errors import (
    ClientDisconnected,
    HubFull,
    HubUnavailable,
    InvalidEventError,
    SSEError,
    StreamClosed,
    TopicClosed,
)
from ._protocol.events import BaseEvent, event_stream
from ._protocol.parser import Comment, EventStreamParser, ParsedEvent
from ._protocol.reset import Reset, ResetInfo
from ._protocol.runs import RunEnded, RunEndedInfo
from ._protocol.wire import ServerSentEvent
from ._server.endpoint import SSEEndpoint, SSERequest
from ._server.middleware import SSEMiddleware
from ._server.observer import StreamObserver
from ._server.response import EventSourceResponse
from ._server.shutdown import GracefulShutdown, ShutdownSignal
from ._streams.merge import Merged, buffered, merge
from ._streams.resumable import ResumableMerge, resumable_merge
from ._version import __version__

__all__ = (
    "BaseEvent",
    "ClientDisconnected",
    "Comment",
    "EventSourceResponse",
    "EventStreamParser",
    "GracefulShutdown",
    "Hub",
    "HubBackend",
    "HubFull",
    "HubObserver",
    "HubStats",
    "HubUnavailable",
    "InvalidEventError",
    "MemoryBackend",
    "Merged",
    "ParsedEvent",
    "Reset",
    "ResetInfo",
    "ResumableMerge",
    "RunEnded",
    "RunEndedInfo",
    "SSEEndpoint",
    "SSEError",
    "SSEMiddleware",
    "SSERequest",
    "ServerSentEvent",
    "ShutdownSignal",
    "StreamClosed",
    "StreamObserver",
    "Subscription",
    "TopicClosed",
    "__version__",
    "buffered",
    "event_stream",
    "merge",
    "resumable_merge",
)
