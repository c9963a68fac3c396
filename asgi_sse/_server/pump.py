"""The pump: the request task takes items from the user's stream and sends them.

The rule it may never break: **the stream runs as it would in a task of its own.**
The pump asks for the next item with a plain ``await anext(...)`` (an ``async for``)
and sends only while the stream is suspended at its ``yield``; it never starts a step
of the stream and then awaits anything else while that step is parked. So the stream's
own cancel scopes, deadlines, ``asyncio.timeout``/``wait_for`` and shields behave
exactly as written, and no error of the transport is ever raised inside the stream:
the stream is closed at its ``yield`` (``GeneratorExit``), or cancelled at its own
``await`` by the response's cancel scope - as a task would be cancelled.

Batching follows from the rule: only what is honestly ready goes out together - the
items an iterator hands out through ``next_ready()`` or ``next_nowait()`` (`merge()`,
hub subscriptions; see `asgi_sse.types.ReadyItems`) and bytes the stream joined
itself. A plain generator's items go out one `send` each. A hub subscription (known by
its ``_sse_next_body``; one topic) hands out its frames (a run of them joined) and the
future to await after sending them: no ``__anext__`` coroutine per event.

Imports the protocol layer's items, the connection and `_util`; never a framework, the
hub or `merge()` (it knows a ready-items iterator only by its methods).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from .._protocol.errors import InvalidEventError
from .._protocol.stream import EventStream, Item, encode_item
from .._util.closing import close_stream
from .connection import Connection

__all__ = ("BATCH_BYTES", "pump")

_log = logging.getLogger("asgi_sse")

#: Ready items are joined into one send up to about this many bytes.
BATCH_BYTES = 64 * 1024


async def pump(stream: EventStream, conn: Connection) -> None:
    """Send every item of ``stream`` through ``conn``, then close the stream.

    Raises what the stream raises, and what the server's send raises.
    """
    iterator: AsyncIterator[Item] = aiter(stream)
    next_body: Callable[[int], tuple[bytes | None, Awaitable[object] | None]] | None = getattr(
        iterator, "_sse_next_body", None
    )
    if next_body is not None:
        # A hub subscription: a frame, then what to await before the next step (a
        # future the log sets, parked before the send: no coroutine per event).
        try:
            while True:
                try:
                    body, then = next_body(BATCH_BYTES)
                except StopAsyncIteration:
                    break
                if body is not None:
                    if then is None:  # more may be ready
                        body = _join_ready_of(body, iterator)
                    await conn.send_frames(body)  # (no bound method kept per response)
                    del body
                if then is not None:
                    await then
        finally:
            await close_stream(iterator)
        return
    send_frames = conn.send_frames
    next_ready = _ready_item_getter(iterator)
    try:
        # Note: `item` is let go before the stream is asked for the next one: an event
        # object kept alive across a parked connection's wait outlives the garbage
        # collector's young generation, and a thousand of them make its full
        # collections frequent and long.
        if next_ready is None:
            async for item in iterator:
                body = item if type(item) is bytes else _encode_or_skip(item)
                del item
                if body:
                    await send_frames(body)
        else:
            async for item in iterator:
                body = item if type(item) is bytes else _encode_or_skip(item)
                del item
                body = _join_ready(body, next_ready)
                if body:
                    await send_frames(body)
    finally:
        # Inside the (possibly cancelled) response scope: a stream parked at its yield
        # gets GeneratorExit and runs its finally, as one parked at an await gets the
        # cancellation.
        await close_stream(iterator)


def _encode_or_skip(item: Item) -> bytes:
    try:
        return encode_item(item)
    except InvalidEventError as exc:
        # A bad value in one event (a lone surrogate from a broken decoder) must not end
        # the delivery of every event after it: this one is left out, and said so.
        _log.error("asgi_sse: an event was not sent: %s", exc)
        return b""


def _ready_item_getter(iterator: object) -> Callable[[], Item | None] | None:
    """How to ask ``iterator`` for an item that is ready now: its `next_ready()` (None
    when nothing is), or its `next_nowait()` (which raises instead); None if neither."""
    next_ready: Callable[[], Item | None] | None = getattr(iterator, "next_ready", None)
    if next_ready is not None:
        return next_ready
    next_nowait: Callable[[], Item] | None = getattr(iterator, "next_nowait", None)
    if next_nowait is None:
        return None

    def ready() -> Item | None:
        try:
            return next_nowait()
        except anyio.WouldBlock:
            return None

    return ready


def _join_ready_of(first: bytes, iterator: object) -> bytes:
    """`first` plus the frames of every item ``iterator`` has ready now (no bound method
    of it is kept: this runs once per run of frames, not per event)."""
    next_ready = _ready_item_getter(iterator)
    return first if next_ready is None else _join_ready(first, next_ready)


def _join_ready(first: bytes, next_ready: Callable[[], Item | None]) -> bytes:
    """`first` plus the frames of every item that is ready now, up to BATCH_BYTES."""
    frames = [first]
    size = len(first)
    while size < BATCH_BYTES:
        try:
            item = next_ready()
        except StopAsyncIteration:  # the end: the next __anext__ says so again
            break
        if item is None:
            break
        frame = item if type(item) is bytes else _encode_or_skip(item)
        frames.append(frame)
        size += len(frame)
    return first if len(frames) == 1 else b"".join(frames)
