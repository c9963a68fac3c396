"""EventSourceResponse: one streaming SSE response, as a pure ASGI application.

Strategy: two tasks per connection and nothing per event but a send.
- The request task (the server's own) pulls items from the stream, turns each into
  bytes and sends it. Per event it does one type check, one `monotonic()` and one
  `send` - no cancel scope, no task hand-off, no logging call.
- A second task waits on `receive()` for `http.disconnect`, and a timer wakes up only
  when a keep-alive is due or a send may have hit `send_timeout` - once per ping
  interval, not once per event. On asyncio that task runs the server's `receive()`
  and nothing else (see _watch.py); on trio it is an anyio task in a task group.
Disconnect, shutdown and send timeout all end the stream the same way: by cancelling
the cancel scope around the stream loop, which also runs the stream's `finally`.

Imports the wire and events layers and anyio; no framework.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, suppress
from time import monotonic
from typing import Any, cast

import anyio

from ._events import BaseEvent
from ._shutdown import SCOPE_KEY, ShutdownSignal
from ._steps import Resume
from ._types import (
    AnyReceive,
    AnyScope,
    AnySend,
)
from ._watch import PING, AsyncioWatcher, Connection, send_body, watch_anyio
from ._wire import ServerSentEvent, encode_data

__all__ = ("EventSourceResponse", "EventStream", "Item", "PingEvent", "encode_item", "ping_body")

_log = logging.getLogger("asgi_sse")

#: What a stream may yield: typed events, wire events, a plain str (sent as `data`), or
#: bytes that are already one or more complete frames (e.g. encoded once for a broadcast).
Item = BaseEvent[Any] | ServerSentEvent | str | bytes
EventStream = AsyncIterable[Item]

_DEFAULT_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream"),
    # no-transform: proxies must not compress or otherwise buffer the stream.
    (b"cache-control", b"no-cache, no-transform"),
    # nginx buffers responses unless told not to.
    (b"x-accel-buffering", b"no"),
)
# Note: no `connection: keep-alive` - it is forbidden in HTTP/2 (RFC 9113, 8.2.2), and
# these framing headers are the server's business, never the application's.
_FORBIDDEN_HEADERS = frozenset({b"connection", b"transfer-encoding", b"content-length"})

#: What `ping_event=` takes: an event sent as the keep-alive instead of the `: ping`
#: comment (browsers' EventSource never shows comments to the page; an event it does),
#: or a function that makes one each time (a timestamp).
PingEvent = BaseEvent[Any] | ServerSentEvent | Callable[[], BaseEvent[Any] | ServerSentEvent]


def ping_body(ping_event: PingEvent | None) -> bytes | Callable[[], bytes]:
    """The keep-alive to send: the `: ping` comment, an event's frame, or a function.

    Raises:
        TypeError: for anything that is not a `PingEvent`.
    """
    if ping_event is None:
        return PING
    if isinstance(ping_event, (BaseEvent, ServerSentEvent)):
        return ping_event.encode()  # encoded once
    if callable(ping_event):
        make = ping_event

        def encode_ping() -> bytes:
            event = make()
            if not isinstance(event, (BaseEvent, ServerSentEvent)):
                msg = f"ping_event returned {type(event).__name__}, not an event"
                raise TypeError(msg)
            return event.encode()

        return encode_ping
    msg = (
        f"ping_event must be a BaseEvent, a ServerSentEvent or a function returning one, "
        f"got {type(ping_event).__name__}"
    )
    raise TypeError(msg)


HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]


def encode_item(item: object) -> bytes:
    """The bytes of one stream item (see `Item`).

    Raises:
        TypeError: for anything that is not an `Item`.
    """
    if type(item) is bytes:
        return item
    if isinstance(item, (BaseEvent, ServerSentEvent)):
        return item.encode()
    if isinstance(item, str):
        return encode_data(item) + b"\n"
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    msg = (
        f"an event stream yielded {type(item).__name__!r}; yield a BaseEvent, a "
        "ServerSentEvent, a str (sent as data) or bytes holding complete SSE frames"
    )
    raise TypeError(msg)


def build_headers(headers: HeadersLike | None) -> list[tuple[bytes, bytes]]:
    """Default SSE headers with the user's merged over them (case-insensitively).

    Raises:
        ValueError: for a header the server owns (connection, transfer-encoding,
            content-length), a content-type other than text/event-stream, or a name or
            value containing CR, LF or NUL (header injection).
    """
    defaults = dict(_DEFAULT_HEADERS)
    extra: list[tuple[bytes, bytes]] = []
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for raw_name, raw_value in pairs:
        name = (raw_name.encode("latin-1") if isinstance(raw_name, str) else raw_name).lower()
        value = raw_value.encode("latin-1") if isinstance(raw_value, str) else raw_value
        if not name or any(c in name + value for c in (b"\r", b"\n", b"\0")):
            msg = f"header {name!r}: {value!r} contains CR, LF or NUL (or has an empty name)"
            raise ValueError(msg)
        if name in _FORBIDDEN_HEADERS:
            msg = f"header {name.decode()!r} is set by the server; remove it from headers="
            raise ValueError(msg)
        if name == b"content-type" and not value.lower().startswith(b"text/event-stream"):
            msg = f"an event stream's content-type must be text/event-stream, got {value!r}"
            raise ValueError(msg)
        if name in defaults:
            defaults[name] = value  # the user's value replaces the default
        else:
            extra.append((name, value))  # repeated names (set-cookie) all go out
    return [*defaults.items(), *extra]


class EventSourceResponse:
    """Stream server-sent events: an ASGI application for one HTTP response.

    ``stream`` is an async iterable of `BaseEvent`, `ServerSentEvent`, `str` (sent as
    a `data` field) or `bytes` (complete, pre-encoded frames). If it is also an async
    context manager (like `merge(...)`), it is entered for the life of the response.

    Return it from an endpoint (Starlette/FastAPI users: `asgi_sse.starlette` has the
    same class as a Starlette `Response`) or call it: ``await response(scope, receive,
    send)``.

    Lifecycle: the stream is closed (its ``finally`` blocks run) when it ends, when the
    client disconnects, when a send blocks for longer than ``send_timeout`` seconds,
    and when the server shuts down (see `GracefulShutdown`). A keep-alive comment is
    sent once the stream has been idle for ``ping`` seconds (``None``: never);
    ``ping_event`` sends that event instead, which a browser's EventSource does see (an
    event, or a function returning a fresh one each time). An exception raised by the
    stream is logged with its traceback and ends the response cleanly. HEAD requests get
    the headers and no body.

    Raises:
        ValueError: at construction, for headers that cannot be sent (see `headers`).
        TypeError: at construction, for a ``ping_event`` that is not an event or a
            function.
    """

    __slots__ = (
        "_headers",
        "_ping_body",
        "_shutdown",
        "ping",
        "send_timeout",
        "status_code",
        "stream",
    )

    def __init__(
        self,
        stream: EventStream,
        *,
        status_code: int = 200,
        headers: HeadersLike | None = None,
        ping: float | None = 15.0,
        ping_event: PingEvent | None = None,
        send_timeout: float | None = 30.0,
        shutdown: ShutdownSignal | None = None,
    ) -> None:
        if ping is not None and ping <= 0:
            raise ValueError(f"ping must be a positive number of seconds or None, got {ping}")
        if send_timeout is not None and send_timeout <= 0:
            msg = f"send_timeout must be a positive number of seconds or None, got {send_timeout}"
            raise ValueError(msg)
        self.stream = stream
        self.status_code = status_code
        # Note: the default headers are one shared tuple, not a list per response.
        self._headers = _DEFAULT_HEADERS if headers is None else tuple(build_headers(headers))
        self.ping = ping
        self._ping_body = ping_body(ping_event)
        self.send_timeout = send_timeout
        self._shutdown = shutdown

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers (a copy: set them with ``headers=``)."""
        return list(self._headers)

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        if scope["type"] != "http":
            msg = f"EventSourceResponse serves HTTP requests, not {scope['type']!r}"
            raise RuntimeError(msg)
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                # A fresh list: middlewares may edit it in place; it is not kept.
                "headers": list(self._headers),
                "trailers": False,
            }
        )
        shutdown = self._shutdown or cast(Mapping[str, Any], scope).get(SCOPE_KEY)
        if scope["method"] == "HEAD" or (shutdown is not None and shutdown.is_set):
            await _close_stream(self.stream)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        conn = Connection(send, self.ping, self.send_timeout, self._ping_body)
        if not _on_asyncio():
            async with anyio.create_task_group() as watcher_group:
                watcher_group.start_soon(watch_anyio, conn, receive)
                await _respond(self.stream, conn, shutdown, on_asyncio=False)
                watcher_group.cancel_scope.cancel()
            return
        # Note: no task group and no frame of ours waiting on receive() (see _watch.py).
        watcher = AsyncioWatcher(conn, receive)
        try:
            await _respond(self.stream, conn, shutdown, on_asyncio=True)
        finally:
            pending = watcher.close()
            if pending:
                with anyio.CancelScope(shield=True):
                    await asyncio.wait(pending)


async def _respond(
    stream: EventStream, conn: Connection, shutdown: ShutdownSignal | None, *, on_asyncio: bool
) -> None:
    """Pump the stream in the connection's cancel scope, then end the body cleanly.

    Note: the stream is entered and pumped right here rather than in helper coroutines:
    every coroutine frame stays alive for the life of an idle connection (~300 bytes).
    """
    try:
        with conn.stream_scope:
            remove = (
                shutdown.add_callback(shutdown.threadsafe(conn.stream_scope.cancel))
                if shutdown is not None
                else None
            )
            try:
                if hasattr(type(stream), "__aenter__"):  # merge(...): a task group inside
                    async with cast(AbstractAsyncContextManager[EventStream], stream) as entered:
                        await _pump(aiter(entered), conn, on_asyncio)
                else:
                    await _pump(aiter(stream), conn, on_asyncio)
            except OSError:
                # ASGI 2.4: send() raises OSError once the client is gone.
                conn.disconnected = True
            except Exception:
                _log.exception("asgi_sse: the event stream raised; ending the response")
            finally:
                if remove is not None:
                    remove()
    except anyio.get_cancelled_exc_class():
        # The server itself cancelled the response (uvicorn's
        # --timeout-graceful-shutdown, hypercorn's graceful_timeout): the stream was
        # closed on the way out; still give the client a clean end if it can be had.
        if not (conn.disconnected or conn.timed_out):
            with anyio.move_on_after(_FINAL_SEND_TIMEOUT, shield=True), suppress(OSError):
                await conn.send({"type": "http.response.body", "body": b"", "more_body": False})
        raise
    if not (conn.disconnected or conn.timed_out):
        # Normal end, error or shutdown: always end the body cleanly.
        if conn.ping_done is not None:
            await conn.ping_done.wait()
        conn.sending = True  # no keep-alive may follow the final body
        with suppress(OSError):  # the client left at this very moment
            await conn.send({"type": "http.response.body", "body": b"", "more_body": False})


def _pump(iterator: AsyncIterator[Item], conn: Connection, on_asyncio: bool) -> Awaitable[None]:
    # Note: returns the chosen coroutine instead of awaiting it (one frame less).
    next_nowait = getattr(iterator, "next_nowait", None)
    if next_nowait is None and on_asyncio:
        return _pump_coalescing(iterator, conn)
    return _pump_one_by_one(iterator, conn, next_nowait)


async def _pump_one_by_one(
    iterator: AsyncIterator[Item], conn: Connection, next_nowait: Callable[[], object] | None
) -> None:
    """One send per item - or per run of items the stream reports ready (merge(), hub
    subscriptions). On trio a plain async generator cannot be peeked at safely."""
    try:
        async for item in iterator:
            body = item if type(item) is bytes else encode_item(item)
            if next_nowait is not None:
                body = _coalesce(body, next_nowait)
            await send_body(conn, body)
    finally:
        # Inside the (possibly cancelled) stream scope: a generator parked at a
        # yield gets GeneratorExit and runs its finally, exactly as one parked at
        # an await gets the cancellation. Both see the same semantics.
        await _close_stream(iterator)


_BATCH_BYTES = 64 * 1024
_FINAL_SEND_TIMEOUT = 0.5
# An item that took less than this to arrive came without a real wait: a burst.
_BACK_TO_BACK = 50e-6


async def _pump_coalescing(iterator: AsyncIterator[Item], conn: Connection) -> None:
    """Send the stream's frames, every run of ready items in one send (asyncio only:
    see _steps.py for why and how a step is taken without awaiting it).

    Note: steps are taken without awaiting only while items come back to back (the
    last one arrived without a real wait). A stream that waits between events - fan-out
    at 10 Hz - is awaited plainly and pays nothing for the coalescing.
    """
    anext_ = type(iterator).__anext__
    frames: list[bytes] = []
    size = 0
    peek = False
    try:
        while True:
            if not peek:
                if frames:
                    body = frames[0] if len(frames) == 1 else b"".join(frames)
                    frames = []
                    size = 0
                    await send_body(conn, body)
                started = monotonic()
                try:
                    item = await anext_(iterator)
                except StopAsyncIteration:
                    break
                if monotonic() - started >= _BACK_TO_BACK:
                    # The stream waited for this item (fan-out, a live feed): it goes out
                    # at once, without the batching below.
                    await send_body(conn, item if type(item) is bytes else encode_item(item))
                    continue
                peek = True
            else:
                step = anext_(iterator).__await__()
                try:
                    pending = step.send(None)
                except StopIteration as done:
                    item = done.value  # ready without waiting
                except StopAsyncIteration:
                    break
                else:
                    peek = False
                    if frames:  # the stream must wait: what we have goes out first
                        body = frames[0] if len(frames) == 1 else b"".join(frames)
                        frames = []
                        size = 0
                        try:
                            await send_body(conn, body)
                        except BaseException as exc:
                            await Resume(step, pending, exc)
                            raise
                    try:
                        item = await Resume(step, pending)
                    except StopAsyncIteration:
                        break
            frame = item if type(item) is bytes else encode_item(item)
            frames.append(frame)
            size += len(frame)
            if size >= _BATCH_BYTES:
                body = b"".join(frames)
                frames = []
                size = 0
                await send_body(conn, body)
        if frames:
            body, frames = b"".join(frames), []
            await send_body(conn, body)
    except Exception:
        # The stream failed (or yielded something unsendable): what it produced before
        # still reaches the client, then the error is handled by the response.
        if frames:
            await send_body(conn, b"".join(frames))
        raise
    finally:
        await _close_stream(iterator)


def _coalesce(first: bytes, next_nowait: Callable[[], object]) -> bytes:
    """`first` plus the frames of every item that is ready now, up to _BATCH_BYTES."""
    frames = [first]
    size = len(first)
    while size < _BATCH_BYTES:
        try:
            item = next_nowait()
        except (anyio.WouldBlock, StopAsyncIteration):
            break
        frame = item if type(item) is bytes else encode_item(item)
        frames.append(frame)
        size += len(frame)
    return first if len(frames) == 1 else b"".join(frames)


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _close_stream(stream: object) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
