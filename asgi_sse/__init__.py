"""asgi-sse: Server-Sent Events for any ASGI application.

Typed pydantic events encoded straight to bytes, merged streams, a streaming response
that cleans up on disconnect and shutdown, an endpoint app and a middleware that mount
into any ASGI framework, and a streaming test client (`asgi_sse.testing`).
"""

from ._endpoint import SSEEndpoint, SSERequest
from ._errors import (
    ClientDisconnected,
    HubFull,
    HubUnavailable,
    InvalidEventError,
    SSEError,
    StreamClosed,
    TopicClosed,
)
from ._events import BaseEvent, event_stream
from ._hub import (
    Hub,
    HubBackend,
    HubObserver,
    HubStats,
    MemoryBackend,
    Reset,
    ResetInfo,
    Subscription,
)
from ._merge import Merged, buffered, merge
from ._middleware import SSEMiddleware
from ._observe import StreamObserver
from ._parser import Comment, EventStreamParser, ParsedEvent
from ._response import EventSourceResponse
from ._resumable import ResumableMerge, resumable_merge
from ._shutdown import GracefulShutdown, ShutdownSignal
from ._version import __version__
from ._wire import ServerSentEvent

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
