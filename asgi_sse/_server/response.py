"""EventSourceResponse: one streaming SSE response, as a pure ASGI application.

Two tasks per connection and nothing per event but a send:
- the request task (the server's own) runs the stream and sends its frames (`pump`);
- the watcher waits on `receive()` for `http.disconnect`, and on a timer for due
  keep-alives and stalled sends (`watch`).
Both talk to the client only through the `Connection`, which owns the sending rules
and the response's one state.
Client gone, send timeout and shutdown all end the stream the same way: by cancelling
the connection's cancel scope around the pump, which also runs the stream's `finally`.
Then the final empty body goes out, bounded in time, unless the client is gone.

Imports the protocol layer and `_util`, and the rest of the server layer; never a
framework, the hub or the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from functools import partial
from time import monotonic
from typing import Any, cast

import anyio

from .._protocol.errors import ClientDisconnected
from .._protocol.stream import EventStream
from .._util.asgi import AnyReceive, AnyScope, AnySend
from .._util.closing import close_stream
from .._util.compat import Unpack
from .._util.ending import END_RESPONSE
from .connection import Connection
from .options import ResponseOptions, StreamOptions, response_options, spell_out_options
from .pump import pump
from .shutdown import SCOPE_KEY, ShutdownSignal
from .watch import watching

__all__ = ("EventSourceResponse", "plain_response")

_log = logging.getLogger("asgi_sse")

# Methods that get the headers and no body: the stream never runs. OPTIONS too: a CORS
# preflight must not start a user's stream (Fetch standard, "CORS-preflight request").
_NO_BODY = frozenset({"HEAD", "OPTIONS"})

# An observer is instrumentation: what its hook raises is logged, and streaming goes on.
_HOOK_FAILED = "asgi_sse: the stream observer's %s raised (ignored) for %s"


class EventSourceResponse:
    """Stream server-sent events: an ASGI application for one HTTP response.

    ``stream`` is an async iterable of `BaseEvent`, `ServerSentEvent`, `str` (sent as
    a `data` field) or `bytes` (complete, pre-encoded frames). If it is also an async
    context manager (like `merge(...)`), it is entered for the life of the response.

    Return it from an endpoint (Starlette/FastAPI users: `asgi_sse.starlette` has the
    same class as a Starlette `Response`) or call it: ``await response(scope, receive,
    send)``.

    The stream runs as it would in a task of its own: its cancel scopes, timeouts and
    shields behave as written. It is closed (its ``finally`` blocks run) when it ends,
    when the client disconnects, when the client stops reading for ``send_timeout``
    seconds (measured per piece of at most 64 KiB, so a slow but steady reader is never
    dropped), and when the server shuts down (``shutdown``, or `GracefulShutdown`). A
    keep-alive comment is sent once the stream has been idle for ``ping`` seconds
    (``None``: never); ``ping_event`` sends that event instead, which a browser's
    EventSource does see (an event, or a function returning a fresh one each time).
    An exception raised by the stream is logged with its traceback and ends the
    response cleanly; an event whose value cannot be encoded is left out and logged.
    HEAD and OPTIONS requests get the headers and no body, and the stream never runs
    (it is closed); so does every request once the server is shutting down.
    ``observer`` (a `StreamObserver`, e.g. `asgi_sse.otel.SSEMetrics`) is told when the
    response starts streaming and when it ends, with why and what it sent.

    Args:
        stream: What to send (see `asgi_sse.types.EventStream`).
        status_code: The response status.
        shutdown: The signal that ends the stream when the server stops; by default
            the one `GracefulShutdown` puts in the scope, if any.
        **options: ``ping``, ``ping_event``, ``send_timeout``, ``headers``, ``retry`` and
            ``observer``, as declared (with their defaults) in
            `asgi_sse.types.ResponseOptions`.

    Raises:
        ValueError: at construction, for headers that cannot be sent, or a ``ping`` or
            ``send_timeout`` that is not a positive number.
        TypeError: at construction, for a keyword that is not an option, a
            ``ping_event`` that is not an event or a function, or a ``ping`` or
            ``send_timeout`` that is not a number.
        RuntimeError: when called with a scope that is not HTTP (a websocket).
    """

    __slots__ = ("_shutdown", "options", "status_code", "stream")

    @spell_out_options(ResponseOptions)
    def __init__(
        self,
        stream: EventStream,
        *,
        status_code: int = 200,
        shutdown: ShutdownSignal | None = None,
        **options: Unpack[ResponseOptions],
    ) -> None:
        self.stream = stream
        """What the response sends."""
        self.status_code = status_code
        """The response status."""
        self.options = response_options(options, type(self))
        """The options, checked and encoded once (shared by every response made with
        none)."""
        self._shutdown = shutdown

    @classmethod
    def with_options(
        cls,
        stream: EventStream,
        options: StreamOptions,
        *,
        status_code: int = 200,
        shutdown: ShutdownSignal | None = None,
    ) -> EventSourceResponse:
        """A response with options that were checked already (by an endpoint): nothing
        is checked or encoded again, per request."""
        response = cls(stream, status_code=status_code, shutdown=shutdown)
        response.options = options
        return response

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers (a copy: set them with ``headers=``)."""
        return list(self.options.header_list)

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        if scope["type"] != "http":
            msg = f"EventSourceResponse serves HTTP requests, not {scope['type']!r}"
            raise RuntimeError(msg)
        if not await self._send_head(scope, send):
            return
        shutdown = self._shutdown or cast(Mapping[str, Any], scope).get(SCOPE_KEY)
        if scope["method"] in _NO_BODY or (shutdown is not None and shutdown.is_set):
            await close_stream(self.stream)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        # The body, in this frame and the ones `_pump_then_finish` and `pump` add: the
        # fewer frames stay alive while a connection idles, the less it costs.
        conn = Connection(send, self.options, scope)
        observer = self.options.observer
        started = monotonic()
        try:
            if observer is not None:
                # Inside the try: whatever the hook does, the stream runs (or is
                # closed) and `on_close` is told at the end.
                try:
                    observer.on_open(scope)
                except Exception:
                    _log.exception(_HOOK_FAILED, "on_open", scope.get("path", "?"))
            async with watching(conn, receive):
                await _pump_then_finish(self.stream, conn, shutdown)
        finally:
            if observer is not None:
                reason = conn.ended_by or "server_cancelled"
                elapsed = monotonic() - started
                try:
                    observer.on_close(scope, reason, conn.events_sent, conn.bytes_sent, elapsed)
                except Exception:
                    # Logged, never raised: it would mask the response's own outcome
                    # (a cancellation, an error of the server's send).
                    _log.exception(_HOOK_FAILED, "on_close", scope.get("path", "?"))

    async def _send_head(self, scope: Mapping[str, Any], send: AnySend) -> bool:
        """Prepare the stream and send the headers; False if no body is to follow (the
        answer was a whole response, or the client is gone), the stream closed then."""
        stream = self.stream
        prepare = getattr(stream, "prepare_stream", None)
        if prepare is not None and scope["method"] not in _NO_BODY:
            # Before any header: a stream with nothing to send must become a 204.
            status = await _prepared_status(prepare, scope)
            if status != 200:
                await close_stream(stream)
                body = b"Internal Server Error" if status == 500 else b""
                await plain_response(send, status, body)
                return False
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    # A fresh list: middlewares may edit it in place; it is not kept.
                    "headers": list(self.options.header_list),
                    "trailers": False,
                }
            )
        except BaseException as exc:
            # No body will follow: the stream must not be left open (a subscription
            # would count as a subscriber forever, a generator's finally would wait
            # for the garbage collector).
            with anyio.CancelScope(shield=True):
                await close_stream(stream)
            if isinstance(exc, OSError):  # ASGI 2.4: the client is already gone
                return False
            raise
        return True


async def _prepared_status(
    prepare: Callable[[], Awaitable[bool]], scope: Mapping[str, Any]
) -> int:
    """The status a `Preparable` stream asks for: 200, 204 (nothing to send), or 500."""
    try:
        return 200 if await prepare() else 204
    except Exception:
        _log.exception("asgi_sse: preparing the stream for %s failed", scope.get("path", "?"))
        return 500


async def plain_response(
    send: AnySend,
    status: int,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A whole response without a stream (204, 405, 500...): text, or no body."""
    base = [(b"content-type", b"text/plain; charset=utf-8")] if body else []
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": base + (headers or []),
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _pump_then_finish(
    stream: EventStream, conn: Connection, shutdown: ShutdownSignal | None
) -> None:
    """Pump the stream in the connection's cancel scope, then end the body cleanly.

    Note: the stream is entered and pumped right here rather than in helper coroutines:
    every coroutine frame stays alive for the life of an idle connection.
    """
    try:
        with conn.scope:
            remove = (
                shutdown.add_callback(shutdown.threadsafe(partial(conn.end, "shutdown")))
                if shutdown is not None
                else None
            )
            try:
                if conn.options.retry_frame is not None:  # retry=: before any event
                    await conn.send_frames(conn.options.retry_frame)
                    conn.events_sent = 0  # a retry line is no event
                if hasattr(type(stream), "__aenter__"):  # merge(...): a task group inside
                    # A hub subscription among the merged streams (their tasks inherit
                    # the context) ends the whole response when it is dropped. Only
                    # here: a subscription that is the stream ends it by ending.
                    ending = END_RESPONSE.set(partial(conn.end, "dropped"))
                    try:
                        async with cast(
                            AbstractAsyncContextManager[EventStream], stream
                        ) as entered:
                            await pump(entered, conn)
                    finally:
                        END_RESPONSE.reset(ending)
                else:
                    await pump(stream, conn)
            except ClientDisconnected:  # request.body() inside the stream: the client left
                conn.record_end("client_left")
            except Exception:
                if conn.ended_by == "send_failed":
                    _log.exception("asgi_sse: the server's send failed; ending the response")
                elif conn.state != "gone":  # an OSError of send: the client left (ASGI 2.4)
                    _log.exception("asgi_sse: the event stream raised; ending the response")
                    conn.record_end("stream_error")
            finally:
                if remove is not None:
                    remove()
    except anyio.get_cancelled_exc_class():
        # The server itself cancelled the response (uvicorn's
        # --timeout-graceful-shutdown, hypercorn's graceful_timeout): the stream was
        # closed on the way out; still give the client a clean end if it can be had.
        conn.record_end("server_cancelled")
        await conn.finish(shield=True)
        raise
    # A hub subscription that was dropped (`Subscription.drop`) ended the stream.
    conn.record_end("dropped" if getattr(stream, "dropped", False) is True else "stream_end")
    await conn.finish()
