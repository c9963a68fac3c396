"""The watcher: the second task of a response. It waits for the client to leave, sends
keep-alives and drops clients that stop reading.

Only `receive()` says that an HTTP client left (uvicorn drops a late `send` silently),
and the request task is busy in the stream, so a second task waits on it. While it
waits it also wakes up when a keep-alive is due or a send may have blocked for too
long - never per event. It only *requests* the end (`Connection.end`); the request
task ends the response.

The backend is chosen here and only here (`watching`), with one implementation each:
- `AsyncioWatcher`: a task that runs nothing but the server's `receive()`, a
  done-callback and a `call_later` timer. No task group, no cancel scope and no
  coroutine frame of ours stays alive while a connection idles: memory is what idle
  connections cost most.
- `AnyioWatcher` (trio, or any other anyio backend): an anyio task in a task group,
  with a cancel scope per wake-up.

Imports anyio and the connection; never a framework, and never the pump or the
response (the watcher only asks the connection).
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

import anyio

from .._util.asgi import ASGIReceiveCallable, ASGIReceiveEvent
from .connection import Connection

__all__ = ("AnyioWatcher", "AsyncioWatcher", "watching")

_log = logging.getLogger("asgi_sse")


def watching(conn: Connection, receive: ASGIReceiveCallable) -> AsyncioWatcher | AnyioWatcher:
    """The watcher for the running event loop, as an async context manager that the
    request task holds open around the stream and the final body."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return AnyioWatcher(conn, receive)
    return AsyncioWatcher(conn, receive)


def _receive_failed(conn: Connection, error: BaseException) -> None:
    # Without receive() nobody would notice the client leaving: end the stream.
    _log.error("asgi_sse: receive() raised; ending the stream", exc_info=error)
    conn.end("client_left")


class AsyncioWatcher:
    """A task that is just `receive()`, a done-callback, and a timer.

    The done-callback reads the message and starts the next `receive()` unless it was
    `http.disconnect`; the timer wakes up when a keep-alive may be due or a send may
    have timed out. Only a due keep-alive spawns a (short-lived) task, to await its
    send. Leaving the block cancels what is left and waits for it, so no task outlives
    the response.
    """

    __slots__ = (
        "_conn",
        "_keepalive_task",
        "_loop",
        "_receive",
        "_receiving",
        "_stopped",
        "_wake_timer",
    )

    def __init__(self, conn: Connection, receive: ASGIReceiveCallable) -> None:
        self._conn = conn
        self._receive = receive
        self._stopped = False
        self._keepalive_task: asyncio.Task[bool] | None = None
        self._wake_timer: asyncio.TimerHandle | None = None
        self._receiving: asyncio.Future[ASGIReceiveEvent] | None = None

    async def __aenter__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._receive_next()
        self._schedule_wake()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopped = True
        if self._wake_timer is not None:
            self._wake_timer.cancel()
        pending = [
            t for t in (self._receiving, self._keepalive_task) if t is not None and not t.done()
        ]
        for task in pending:
            task.cancel()
        if pending:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(pending)

    def _receive_next(self) -> None:
        self._receiving = task = asyncio.ensure_future(self._receive())
        task.add_done_callback(self._on_message)

    def _on_message(self, task: asyncio.Future[ASGIReceiveEvent]) -> None:
        if task.cancelled() or self._stopped:
            return  # the response is over: nothing left to end
        error = task.exception()
        if error is not None:
            _receive_failed(self._conn, error)
        elif task.result()["type"] == "http.disconnect":
            self._conn.end("client_left")
        else:
            self._receive_next()  # a request body chunk nobody read: ignore it

    def _schedule_wake(self) -> None:
        delay = self._conn.next_wake()
        if delay != float("inf"):
            self._wake_timer = self._loop.call_later(delay, self._on_wake)

    def _on_wake(self) -> None:
        self._wake_timer = None
        conn = self._conn
        if self._stopped or conn.drop_if_stalled():
            return
        if conn.keepalive_due():
            self._keepalive_task = self._loop.create_task(self._send_keepalive())
        else:
            self._schedule_wake()

    async def _send_keepalive(self) -> bool:
        alive = await self._conn.send_keepalive()
        self._keepalive_task = None
        if alive and not self._stopped:
            self._schedule_wake()
        return alive


class AnyioWatcher:
    """The watcher as an anyio task in a task group (trio, or any anyio backend)."""

    __slots__ = ("_conn", "_group", "_receive")

    def __init__(self, conn: Connection, receive: ASGIReceiveCallable) -> None:
        self._conn = conn
        self._receive = receive

    async def __aenter__(self) -> None:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._watch)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        self._group.cancel_scope.cancel()
        return await self._group.__aexit__(exc_type, exc, traceback)

    async def _watch(self) -> None:
        conn = self._conn
        while True:
            message: Any = None
            with anyio.move_on_after(conn.next_wake()):
                try:
                    message = await self._receive()
                except Exception as error:
                    _receive_failed(conn, error)
                    return
            if message is not None:
                if message["type"] == "http.disconnect":
                    conn.end("client_left")
                    return
                continue  # a request body chunk nobody read: ignore it
            if conn.drop_if_stalled():
                return
            if conn.keepalive_due() and not await conn.send_keepalive():
                return
