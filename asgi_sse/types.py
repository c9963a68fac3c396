"""The types users annotate with: what a stream yields, what a handler returns, the
options' value types, the ready-items protocol, and the ASGI callables.

Only type aliases and protocols live here; importing this module has no side effect.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from ._events import BaseEvent
from ._types import ASGIApp, ASGIReceiveCallable, ASGISendCallable, Scope
from ._wire import ServerSentEvent

if TYPE_CHECKING:
    from ._endpoint import SSERequest
    from ._response import EventSourceResponse

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

T_co = TypeVar("T_co", covariant=True)

# ASGI, as asgiref types it (`Scope` is asgiref's union of scope TypedDicts).
Receive: TypeAlias = ASGIReceiveCallable
Send: TypeAlias = ASGISendCallable

#: What a stream may yield: typed events, wire events, a plain str (sent as `data`), or
#: bytes that are already one or more complete frames (e.g. encoded once for many
#: subscribers).
Item: TypeAlias = BaseEvent[Any] | ServerSentEvent | str | bytes
#: What `EventSourceResponse` streams: any async iterable of items.
EventStream: TypeAlias = AsyncIterable[Item]
#: What `ping_event=` takes: an event sent as the keep-alive instead of the `: ping`
#: comment (a browser's EventSource never shows comments to the page; an event it does),
#: or a function that makes a fresh one each time (with a timestamp, say).
PingEvent: TypeAlias = (
    BaseEvent[Any] | ServerSentEvent | Callable[[], BaseEvent[Any] | ServerSentEvent]
)
#: Response headers: a mapping, or pairs of str or of bytes (repeated names allowed).
HeadersLike: TypeAlias = (
    Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]
)
#: What a handler may return: a stream, a ready response (own status or headers), or
#: None for "204 No Content", which tells a browser's EventSource to stop reconnecting.
HandlerResult: TypeAlias = "EventStream | EventSourceResponse | None"
#: An endpoint's handler: called with the request, returns (or awaits) a `HandlerResult`.
Handler: TypeAlias = "Callable[[SSERequest], HandlerResult | Awaitable[HandlerResult]]"


class ReadyItems(Protocol[T_co]):
    """An async iterator that can also say which items are ready right now.

    `EventSourceResponse` sends every item that `next_nowait()` hands out in the same
    `send` as the one it waited for (up to a batch size), so a subscriber that fell
    behind, or a burst of merged sources, costs one write instead of one per event.
    `merge()`, `buffered()` and hub subscriptions implement it; implement it on your own
    iterators to get the same. An iterator may also offer ``next_ready()``, which
    returns None instead of raising when nothing is ready (no exception per batch: the
    response prefers it).
    """

    def __aiter__(self) -> ReadyItems[T_co]: ...

    async def __anext__(self) -> T_co: ...

    def next_nowait(self) -> T_co:
        """The next item if it is ready now, without waiting.

        Raises:
            anyio.WouldBlock: when no item is ready.
            StopAsyncIteration: when the iterator is exhausted.
        """
        ...


class Preparable(Protocol):
    """A stream that must do some work before the response starts, and may find that it
    has nothing to send at all (a hub subscription to a closed topic).

    `EventSourceResponse` awaits `prepare_stream()` before it sends any header: False
    makes it answer 204 No Content - the one answer that makes a browser's EventSource
    stop reconnecting - and an exception makes it answer 500 (logged). Every adapter
    (`SSEEndpoint`, `SSEMiddleware`, the Starlette response) goes through it.
    """

    async def prepare_stream(self) -> bool:
        """True to stream; False: nothing to send, answer 204 No Content."""
        ...
