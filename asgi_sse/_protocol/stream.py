"""What an event stream is: the items it may yield and their bytes (`encode_item`),
and the protocols by which a stream tells the response more than `__anext__` does
(items ready now, work before the start).

The contract between producers (the user's generators, `merge()`, hub subscriptions) and
the server layer, which is why it lives below both. Sans-IO: imports the wire and events
modules, must not import anything async or ASGI.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from typing import Any, Protocol, TypeAlias, TypeVar

from .events import ITEM_ENCODERS, BaseEvent, item_encoder
from .wire import ServerSentEvent, encode_data

__all__ = ("EventStream", "Item", "Preparable", "Publishable", "ReadyItems", "encode_item")

T_co = TypeVar("T_co", covariant=True)

Item: TypeAlias = BaseEvent[Any] | ServerSentEvent | str | bytes
"""What a stream may yield: typed events, wire events, a plain str (sent as `data`), or
bytes that are already one or more complete frames (e.g. encoded once for many
subscribers)."""

EventStream: TypeAlias = AsyncIterable[Item]
"""What `EventSourceResponse` streams: any async iterable of items."""

Publishable: TypeAlias = BaseEvent[Any] | ServerSentEvent | str
"""What `Hub.publish` takes: a typed event, a wire event, or a plain str (sent as the
data of an unnamed event); without an id (the hub assigns them), and with data."""


def encode_item(item: object) -> bytes:
    """The bytes of one stream item (see `Item`); bytes-like items are sent as they are.

    Raises:
        TypeError: for anything that is not an item.
        InvalidEventError: for an event whose value cannot be encoded (a lone surrogate
            in a typed event's data, for one).
    """
    # Per exact type, the function that encodes it: one dict lookup instead of an
    # isinstance() on pydantic's metaclass (an ABC) and a method lookup on the event
    # (pydantic's __getattr__ keeps instance lookups off CPython's fast path).
    encode = ITEM_ENCODERS.get(type(item))
    if encode is not None:
        return encode(item)
    return _encode_other(item)


def _encode_str(item: str) -> bytes:
    return encode_data(item) + b"\n"


def _same_bytes(item: bytes) -> bytes:
    return item


#: How many exact types `ITEM_ENCODERS` may hold: classes made at run time, one per
#: request say, must not grow it without end; past the bound they take the slow path.
MAX_ENCODERS = 512


def _encode_other(item: object) -> bytes:
    kind = type(item)
    known: Callable[[Any], bytes] | None = None
    if kind is str:
        known = _encode_str
    elif kind is bytes:
        known = _same_bytes
    elif isinstance(item, BaseEvent):
        frame = item.encode()
        # After the first encode, which made the class's serializer; None for a class
        # whose `encode` is not BaseEvent's (then it is called every time).
        known = item_encoder(type(item))
        if known is not None and len(ITEM_ENCODERS) < MAX_ENCODERS:
            ITEM_ENCODERS[kind] = known
        return frame
    elif isinstance(item, ServerSentEvent):
        return item.encode()
    elif isinstance(item, str):
        return _encode_str(item)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    else:
        msg = (
            f"an event stream yielded {kind.__name__!r}; yield a BaseEvent, a "
            "ServerSentEvent, a str (sent as data) or bytes holding complete SSE frames"
        )
        raise TypeError(msg)
    if len(ITEM_ENCODERS) < MAX_ENCODERS:
        ITEM_ENCODERS[kind] = known
    return known(item)  # type: ignore[arg-type]  # str or bytes, exactly


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
