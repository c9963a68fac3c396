"""The second task of a connection: it waits for the client to leave, sends keep-alives
and drops clients that stop reading.

Only `receive()` says that an HTTP client left (uvicorn drops a late `send` silently),
and the request task is busy waiting on the stream, so a second task waits on it. While
it waits it also wakes up when a keep-alive is due or a send may have blocked for too
long - never per event.

Two implementations of the same loop:
- `watch_anyio` (trio, or any anyio backend): an anyio task with a cancel scope per
  wake-up.
- `AsyncioWatcher`: a task that runs nothing but `receive()`, a done-callback and a
  `call_later` timer. No task group, no cancel scope, no frame of ours per idle
  connection: memory is what idle connections cost most (see benchmarks/RESULTS.md).

Note: both only *request* the end of the stream (`stream_scope.cancel()`); the request
task ends the response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import monotonic
from typing import Any

import anyio

from ._types import ASGIReceiveCallable, ASGIReceiveEvent, ASGISendCallable

__all__ = ("PING", "AsyncioWatcher", "Connection", "send_body", "watch_anyio")

_log = logging.getLogger("asgi_sse")

# WHATWG HTML 9.2.7 "Authoring notes": comment lines keep connections alive through
# proxies. One line, no blank line after it: `: ping\n\n` shows up as an empty event in
# some client parsers (httpx-sse#35).
PING = b": ping\n"
_INF = float("inf")


class Connection:
    """Per-connection state shared by the request task and the watcher."""

    __slots__ = (
        "disconnected",
        "mark",
        "ping",
        "ping_body",
        "ping_done",
        "send",
        "send_timeout",
        "sending",
        "stream_scope",
        "timed_out",
    )

    def __init__(
        self,
        send: ASGISendCallable,
        ping: float | None,
        send_timeout: float | None,
        ping_body: bytes | Callable[[], bytes] = PING,
    ) -> None:
        self.send = send
        self.ping = ping
        # A keep-alive: bytes, or a function that makes them (a timestamped ping event).
        self.ping_body = ping_body
        self.send_timeout = send_timeout
        self.stream_scope = anyio.CancelScope()  # entered by the request task
        self.mark = monotonic()  # when the last send started
        self.sending = False  # the request task is inside send()
        self.disconnected = False
        self.timed_out = False
        self.ping_done: anyio.Event | None = None  # set while the watcher sends a ping

    def next_wake(self) -> float:
        """Seconds until a keep-alive is due or a send may have timed out."""
        now = monotonic()
        wake = _INF if self.ping is None else self.mark + self.ping - now
        if self.send_timeout is not None:
            due = self.mark + self.send_timeout - now if self.sending else self.send_timeout
            wake = min(wake, due)
        return max(wake, 0.0)

    def end(self, *, disconnected: bool = False, timed_out: bool = False) -> None:
        self.disconnected = self.disconnected or disconnected
        self.timed_out = self.timed_out or timed_out
        self.stream_scope.cancel()


async def send_body(conn: Connection, body: bytes) -> None:
    """Send frames from the request task (waiting for a keep-alive in flight)."""
    if conn.ping_done is not None:
        await conn.ping_done.wait()
    conn.mark = monotonic()
    conn.sending = True
    await conn.send({"type": "http.response.body", "body": body, "more_body": True})
    conn.sending = False


def _send_timed_out(conn: Connection) -> bool:
    """True - and the stream is ended - when a send has blocked for `send_timeout`."""
    if (
        conn.sending
        and conn.send_timeout is not None
        and monotonic() - conn.mark >= conn.send_timeout
    ):
        _log.warning("asgi_sse: client did not read for %ss; closing", conn.send_timeout)
        conn.end(timed_out=True)
        return True
    return False


def _ping_due(conn: Connection) -> bool:
    return not conn.sending and conn.ping is not None and monotonic() - conn.mark >= conn.ping


async def _on_timer(conn: Connection) -> bool:
    """Send a due keep-alive, or end a send blocked for too long. False: the end."""
    if _send_timed_out(conn):
        return False
    return await _send_ping(conn) if _ping_due(conn) else True


async def _send_ping(conn: Connection) -> bool:
    """Send the keep-alive. False: the stream was ended."""
    make = conn.ping_body
    try:
        body = make if isinstance(make, bytes) else make()
    except Exception:  # the user's ping_event function: the client is still there
        _log.exception("asgi_sse: ping_event failed; ending the stream")
        conn.end()
        return False
    conn.ping_done = done = anyio.Event()
    try:
        with anyio.move_on_after(conn.send_timeout or _INF) as ping_scope:
            await conn.send({"type": "http.response.body", "body": body, "more_body": True})
    except OSError:  # ASGI 2.4: the client is gone
        conn.end(disconnected=True)
        return False
    except Exception:  # the server's send broke: the stream cannot go on
        _log.exception("asgi_sse: the keep-alive failed; ending the stream")
        conn.end(disconnected=True)
        return False
    finally:
        conn.ping_done = None
        done.set()
    if ping_scope.cancelled_caught:
        conn.end(timed_out=True)
        return False
    conn.mark = monotonic()
    return True


async def watch_anyio(conn: Connection, receive: ASGIReceiveCallable) -> None:
    while True:
        with anyio.move_on_after(conn.next_wake()):
            try:
                message = await receive()
            except Exception:
                # Without receive() nobody would notice the client leaving: end the stream.
                _log.exception("asgi_sse: receive() raised; ending the stream")
                conn.end(disconnected=True)
                return
            if message["type"] == "http.disconnect":
                conn.end(disconnected=True)
                return
            continue  # a request body chunk nobody read: ignore it
        if not await _on_timer(conn):
            return


class AsyncioWatcher:
    """The asyncio watcher: a task that is just `receive()`, and a timer.

    Nothing of ours stays suspended while a connection idles: the task runs the
    server's own `receive()` coroutine (no wrapper frame), a done-callback reads the
    message and starts the next `receive()` if it was not `http.disconnect`, and a
    `call_later` handle wakes up when a keep-alive may be due or a send may have timed
    out. Only a due keep-alive spawns a (short-lived) task, to await its send.

    `close()` stops it and returns the tasks it cancelled; the request task awaits them,
    so no task outlives the response.
    """

    __slots__ = ("_closed", "_conn", "_loop", "_ping_task", "_receive", "_task", "_timer")

    def __init__(self, conn: Connection, receive: ASGIReceiveCallable) -> None:
        self._conn = conn
        self._receive = receive
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._ping_task: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Future[ASGIReceiveEvent] | None = None
        self._listen()
        self._arm()

    def _listen(self) -> None:
        self._task = task = asyncio.ensure_future(self._receive())
        task.add_done_callback(self._on_message)

    def _on_message(self, task: asyncio.Future[ASGIReceiveEvent]) -> None:
        if task.cancelled():
            return  # close() did it
        error = task.exception()
        if self._closed:
            return  # the response is over: nothing left to end
        if error is not None:
            # Without receive() nobody would notice the client leaving: end the stream.
            _log.error("asgi_sse: receive() raised; ending the stream", exc_info=error)
            self._conn.end(disconnected=True)
        elif task.result()["type"] == "http.disconnect":
            self._conn.end(disconnected=True)
        else:
            self._listen()  # a request body chunk nobody read: ignore it

    def _arm(self) -> None:
        delay = self._conn.next_wake()
        if delay != _INF:
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        if _ping_due(self._conn):
            self._ping_task = self._loop.create_task(self._ping())
        elif not _send_timed_out(self._conn):
            self._arm()

    async def _ping(self) -> bool:
        alive = await _send_ping(self._conn)
        self._ping_task = None
        if alive and not self._closed:
            self._arm()
        return alive

    def close(self) -> list[asyncio.Future[Any]]:
        """Stop watching; returns the tasks still to be awaited (cancelled)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = [t for t in (self._task, self._ping_task) if t is not None and not t.done()]
        for task in pending:
            task.cancel()
        return pending
