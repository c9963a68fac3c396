"""The second task of a connection: it waits for the client to leave, sends keep-alives
and drops clients that stop reading.

Only `receive()` says that an HTTP client left (uvicorn drops a late `send` silently),
and the request task is busy waiting on the stream, so a second task waits on it. While
it waits it also wakes up when a keep-alive is due or a send may have blocked for too
long - never per event.

Two implementations of the same loop:
- `watch_anyio` (trio, or any anyio backend): an anyio task with a cancel scope per
  wake-up.
- `watch_asyncio`: a plain asyncio task that waits on the pending future of `receive()`
  and a `call_later` timer. No task group, no cancel scope per wait: an idle connection
  costs about a third of the memory (see benchmarks/RESULTS.md). It takes the step of
  `receive()` itself, as the response does with the stream (see _steps.py).

Note: both only *request* the end of the stream (`stream_scope.cancel()`); the request
task ends the response.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic

import anyio

from ._steps import Resume
from ._types import ASGIReceiveCallable, ASGISendCallable

__all__ = ("Connection", "send_body", "watch_anyio", "watch_asyncio")

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
        "ping_done",
        "send",
        "send_timeout",
        "sending",
        "stream_scope",
        "timed_out",
    )

    def __init__(
        self, send: ASGISendCallable, ping: float | None, send_timeout: float | None
    ) -> None:
        self.send = send
        self.ping = ping
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


async def _on_timer(conn: Connection) -> bool:
    """Send a due keep-alive, or end a send blocked for too long. False: the end."""
    now = monotonic()
    if conn.sending:
        if conn.send_timeout is not None and now - conn.mark >= conn.send_timeout:
            _log.warning("asgi_sse: client did not read for %ss; closing", conn.send_timeout)
            conn.end(timed_out=True)
            return False
        return True
    if conn.ping is None or now - conn.mark < conn.ping:
        return True
    conn.ping_done = done = anyio.Event()
    try:
        with anyio.move_on_after(conn.send_timeout or _INF) as ping_scope:
            await conn.send({"type": "http.response.body", "body": PING, "more_body": True})
    except OSError:  # ASGI 2.4: the client is gone
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
            message = await receive()
            if message["type"] == "http.disconnect":
                conn.end(disconnected=True)
                return
            continue  # a request body chunk nobody read: ignore it
        if not await _on_timer(conn):
            return


async def watch_asyncio(conn: Connection, receive: ASGIReceiveCallable) -> None:
    loop = asyncio.get_running_loop()
    while True:
        step = receive().__await__()
        try:
            pending = step.send(None)
        except StopIteration as done:
            message = done.value
        else:
            try:
                while not await _ready_or_timer(loop, pending, conn.next_wake()):
                    if not await _on_timer(conn):
                        step.close()
                        return
                message = await Resume(step, pending)
            except BaseException:
                step.close()
                raise
        if message["type"] == "http.disconnect":
            conn.end(disconnected=True)
            return


async def _ready_or_timer(loop: asyncio.AbstractEventLoop, pending: object, delay: float) -> bool:
    """Wait until `pending` (the future receive() waits on) is done: True, or until
    `delay` seconds passed: False."""
    if not isinstance(pending, asyncio.Future) or pending.done():
        return True  # a bare checkpoint, or already done: resume the step
    if delay <= 0:
        return False
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    pending.add_done_callback(wake)
    handle = None if delay == _INF else loop.call_later(delay, wake)
    try:
        await waiter
    finally:
        pending.remove_done_callback(wake)
        if handle is not None:
            handle.cancel()
    return pending.done()
