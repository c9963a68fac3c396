"""One response's connection to its client: the only code that calls the server's `send`.

Two tasks use a connection: the request task (the server's own, which runs the stream
and sends its frames) and the watcher (which waits for the client to leave and sends
keep-alives). The connection keeps them apart - never two sends at once, nothing after
the final body or once the client is gone - with one explicit state (`state.py`: the
states and the moves allowed between them), moved by its three sending methods:

- `send_frames` (request task): the stream's frames, ``idle -> sending_frames -> idle``.
  It waits for a keep-alive in flight, sends a large body in bounded pieces, and now
  and then lets other tasks run.
- `send_keepalive` (watcher): ``idle -> sending_keepalive -> idle``, only while no frame
  is being sent and the body is not finishing.
- `finish` (request task): the final empty body, ``idle -> finishing -> finished``:
  once, bounded in time, never once the client is ``gone``.

Every way a response can end goes through `end(reason)`: it records the first reason
(a `CloseReason`), moves to ``gone`` when the client is unreachable, and cancels the
connection's current cancel scope (the stream's, then the final send's). Nothing here
raises into the user's stream: the request task is either in the stream (then the
cancellation reaches the stream's own `await`, like a task being cancelled) or in one
of these methods.

Imports anyio, the options and the states; no framework.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from time import monotonic
from typing import Any

import anyio
from anyio.lowlevel import checkpoint

from .._util.asgi import ASGISendCallable
from .options import StreamOptions
from .state import CLIENT_GONE_REASONS, CloseReason, ConnectionState, check_transition

__all__ = ("CANCELLED_FINAL_SEND", "FAIR_SHARE", "PIECE", "SHUTDOWN_FINAL_SEND", "Connection")

_log = logging.getLogger("asgi_sse")

#: A body larger than this goes out in pieces of this size, so that `send_timeout`
#: measures whether the client makes progress, not how long a whole 10 MB event takes
#: (a server buffers a whole `send` and makes the next one wait for all of it).
PIECE = 64 * 1024
#: Sending costs the event loop's other tasks a turn only when the send suspends, and
#: servers do not suspend while their write buffer is below its high-water mark
#: (uvicorn: 64 KiB). So after about this many bytes (a send counts as at least
#: _SEND_WEIGHT) the request task yields once: a burst on one connection cannot starve
#: the others, and a stream that never awaits still sees its client leave.
FAIR_SHARE = 64 * 1024
_SEND_WEIGHT = 2048
#: The final body after a shutdown: a frozen client must not hold the shutdown for a
#: whole send_timeout.
SHUTDOWN_FINAL_SEND = 1.0
#: The final body when the server cancels the response itself: shielded, briefly.
CANCELLED_FINAL_SEND = 0.5


class Connection:
    """Per-response state shared by the request task and the watcher."""

    __slots__ = (
        "_bytes_since_checkpoint",
        "_keepalive_done",
        "_send",
        "bytes_sent",
        "counting",
        "ended_by",
        "events_sent",
        "http_scope",
        "last_send_started",
        "options",
        "scope",
        "state",
    )

    def __init__(
        self, send: ASGISendCallable, options: StreamOptions, http_scope: Mapping[str, Any]
    ) -> None:
        self._send = send
        self.options = options
        self.http_scope = http_scope  # for log lines only
        #: What the connection is doing; moved only as `state.TRANSITIONS` allows.
        self.state: ConnectionState = "idle"
        #: Why the response ends: the first reason given, None while it goes on.
        self.ended_by: CloseReason | None = None
        #: The scope `end()` cancels: the stream's, then the final send's.
        self.scope = anyio.CancelScope()
        #: When the last send started (or the response, before the first).
        self.last_send_started = monotonic()
        #: Set when the keep-alive in flight is done; None while none is.
        self._keepalive_done: anyio.Event | None = None
        self._bytes_since_checkpoint = 0
        # What was sent, counted only for an observer (`StreamObserver`).
        self.counting = options.observer is not None
        self.events_sent = 0
        self.bytes_sent = 0

    def _move(self, new: ConnectionState) -> None:
        check_transition(self.state, new)
        self.state = new

    def _client_gone(self) -> bool:
        # A method, not a comparison inline: the state changes across an await, and a
        # type checker would carry a narrowed state over it.
        return self.state == "gone"

    # -- ending -------------------------------------------------------------------------

    def record_end(self, reason: CloseReason) -> None:
        """Record why the response ends (the first reason sticks), without cancelling;
        a reason that means the client is unreachable moves the connection to ``gone``."""
        if self.ended_by is None:
            self.ended_by = reason
        if reason in CLIENT_GONE_REASONS and self.state != "gone":
            self._move("gone")

    def end(self, reason: CloseReason) -> None:
        """End the response for ``reason``: cancel what the request task is doing."""
        self.record_end(reason)
        self.scope.cancel()

    def describe_client(self) -> str:
        client = self.http_scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "a client"
        return f"{where} on {self.http_scope.get('path', '?')}"

    def _drop_stalled_client(self) -> None:
        _log.warning(
            "asgi_sse: %s did not read for %ss; dropping it",
            self.describe_client(),
            self.options.send_timeout,
        )
        self.end("send_timeout")

    # -- what the watcher asks -----------------------------------------------------------

    def next_wake(self) -> float:
        """Seconds until a keep-alive may be due or a send may have timed out."""
        state = self.state
        if state == "finishing" or state == "finished" or state == "gone":
            return math.inf  # nothing more to watch for: the final send bounds itself
        options = self.options
        now = monotonic()
        if state == "sending_frames":
            # No keep-alive while a send is in flight; look again a ping interval on.
            wake = math.inf if options.ping is None else options.ping
            if options.send_timeout is not None:
                wake = min(wake, self.last_send_started + options.send_timeout - now)
        else:
            ping = options.ping
            wake = math.inf if ping is None else self.last_send_started + ping - now
            if options.send_timeout is not None:
                wake = min(wake, options.send_timeout)  # a send may start at any moment
        return max(wake, 0.0)

    def drop_if_stalled(self) -> bool:
        """End the response if a send has blocked for send_timeout; True if it did."""
        timeout = self.options.send_timeout
        if (
            self.state == "sending_frames"
            and timeout is not None
            and monotonic() - self.last_send_started >= timeout
        ):
            self._drop_stalled_client()
            return True
        return False

    def keepalive_due(self) -> bool:
        """Whether the connection has been idle for a ping interval."""
        ping = self.options.ping
        return (
            ping is not None
            and self.state == "idle"
            and monotonic() - self.last_send_started >= ping
        )

    # -- sending -------------------------------------------------------------------------

    async def send_frames(self, body: bytes) -> None:
        """Send complete frames (request task). Raises what the server's send raises."""
        if self.state == "idle":
            self.state = "sending_frames"  # the table's idle -> sending_frames, inlined
        else:
            await self._wait_to_send_frames()
        send = self._send
        try:
            if len(body) <= PIECE:
                self.last_send_started = monotonic()
                await send({"type": "http.response.body", "body": body, "more_body": True})
            else:
                for start in range(0, len(body), PIECE):
                    self.last_send_started = monotonic()
                    piece = body[start : start + PIECE]
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
        except OSError:  # ASGI 2.4: the client is gone (raised on, to unwind the pump)
            self.end("client_left")
            raise
        except Exception:  # the server's send broke: nothing more can be sent
            self.record_end("send_failed")
            raise
        finally:
            if self.state == "sending_frames":  # not if the client left meanwhile
                self.state = "idle"  # the table's sending_frames -> idle, inlined
        if self.counting:
            self.bytes_sent += len(body)
            self.events_sent += body.count(b"\n\n")  # a frame ends with a blank line
        self._bytes_since_checkpoint += len(body) + _SEND_WEIGHT
        if self._bytes_since_checkpoint >= FAIR_SHARE:
            self._bytes_since_checkpoint = 0
            await checkpoint()

    async def _wait_to_send_frames(self) -> None:
        """`send_frames` when the connection is not idle: wait for the keep-alive in
        flight. A client that is gone ends the stream here instead of in `send`: the
        watcher ended the connection while this task ran, so the cancellation is
        pending and the checkpoint delivers it. Any other state is a bug."""
        if self._keepalive_done is not None:
            # One send at a time. A keep-alive that finds the client gone ends the
            # connection before it lets this go on, so this wait is cancelled then.
            await self._keepalive_done.wait()
        if self.state == "gone":
            await checkpoint()
        self._move("sending_frames")

    async def send_keepalive(self) -> bool:
        """Send the keep-alive (watcher) if it is still due. False: the response is
        ending."""
        if not self.keepalive_due():
            # The request task sent or began to finish since the watcher looked (on
            # asyncio the keep-alive runs in a task that starts a little later).
            return self.state == "idle" or self.state == "sending_frames"
        make = self.options.keepalive
        try:
            body = make if isinstance(make, bytes) else make()
        except Exception:  # the user's ping_event function; the client is still there
            _log.exception("asgi_sse: ping_event failed; ending the stream")
            self.end("stream_error")
            return False
        self._move("sending_keepalive")
        self._keepalive_done = done = anyio.Event()
        timeout = self.options.send_timeout
        try:
            with anyio.move_on_after(math.inf if timeout is None else timeout) as bound:
                await self._send({"type": "http.response.body", "body": body, "more_body": True})
            if bound.cancelled_caught:
                self._drop_stalled_client()
                return False
        except OSError:  # ASGI 2.4: the client is gone
            self.end("client_left")
            return False
        except Exception:  # the server's send broke: nothing more can be sent
            _log.exception("asgi_sse: sending the keep-alive failed; ending the stream")
            self.end("send_failed")
            return False
        finally:
            # Only now may a frame follow, and only if the response goes on (the
            # connection was ended above, before this wakes the request task).
            if self.state == "sending_keepalive":
                self._move("idle")
            self._keepalive_done = None
            done.set()
        self.last_send_started = monotonic()
        return True

    async def finish(self, *, shield: bool = False) -> None:
        """Send the final empty body (request task): once, never once the client is
        gone, bounded by send_timeout (less after a shutdown). ``shield``: the server is
        cancelling the request task; try briefly anyway."""
        if self._client_gone():
            return
        timeout = self.options.send_timeout
        bound = math.inf if timeout is None else timeout
        if shield:
            bound = min(bound, CANCELLED_FINAL_SEND)
        elif self.ended_by == "shutdown":
            bound = min(bound, SHUTDOWN_FINAL_SEND)
        self.scope = anyio.CancelScope(shield=shield, deadline=anyio.current_time() + bound)
        with self.scope:
            try:
                if self._keepalive_done is not None:
                    await self._keepalive_done.wait()
                self._move("finishing")
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:  # the client left at this very moment
                self.record_end("client_left")
                return
        if self._client_gone():  # the client left while the final body was on its way
            return
        if self.scope.cancelled_caught:
            self._drop_stalled_client()
        else:
            self._move("finished")
