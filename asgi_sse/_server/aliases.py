"""The server layer's option value types: keep-alive events and headers.

Type aliases only (re-exported by `asgi_sse.types`). What a handler is (`Handler`)
names the request and the response, so it lives with them in `endpoint`. Imports the
wire and events modules; must not import anything async or ASGI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from .._protocol.events import BaseEvent
from .._protocol.wire import ServerSentEvent

__all__ = ("HeadersLike", "PingEvent")

PingEvent: TypeAlias = (
    BaseEvent[Any] | ServerSentEvent | Callable[[], BaseEvent[Any] | ServerSentEvent]
)
"""What `ping_event=` takes: an event sent as the keep-alive instead of the `: ping`
comment (a browser's EventSource never shows comments to the page; an event it does),
or a function that makes a fresh one each time (with a timestamp, say)."""

HeadersLike: TypeAlias = (
    Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]
)
"""Response headers: a mapping, or pairs of str or of bytes (repeated names allowed)."""
