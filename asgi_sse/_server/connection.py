"""One response's connection to its client: the only code that calls the server's `send`.

Two tasks use a connection: the request task (the server's own, which runs the stream
and sends its frames) and the watcher (which waits for the client to leave and sends
keep-alives). The connection owns the rule that keeps them apart - never two sends at
once, nothing after the final body - in its three sending methods:

- `send_frames` (request task): the stream's frames. It waits for a keep-alive in
  flight, sends a large body in bounded pieces, and now and then lets other tasks run.
- `send_keepalive` (watcher): only while no frame is being sent and the body is not
  finished.
- `finish` (request task): the final empty body, once, bounded in time, never after
  the client left.

Every way a response can end goes through `end(reason)`: it records the first reason
and cancels the connection's current cancel scope (the stream's, then the final
send's). Nothing here raises into the user's stream: the request task is either in
the stream (then the cancellation reaches the stream's own `await`, like a task being
cancelled) or in one of these methods.

Imports anyio and the options; no framework.
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

__all__ = (
    "CLIENT_LEFT",
    "SEND_FAILED",
    "SEND_TIMEOUT",
    "SERVER_CANCELLED",
    "SHUTDOWN",
    "STREAM_END",
    "STREAM_ERROR",
    "Connection",
)

_log = logging.getLogger("asgi_sse")

# Why a response ended (`Connection.ended_by`).
STREAM_END = "stream_end"  # the stream was exhausted (or the response was a HEAD)
STREAM_ERROR = "stream_error"  # the stream raised; logged
CLIENT_LEFT = "client_left"  # http.disconnect, or send raised OSError (ASGI 2.4)
SEND_TIMEOUT = "send_timeout"  # the client stopped reading for send_timeout seconds
SHUTDOWN = "shutdown"  # the server is stopping (see GracefulShutdown)
SERVER_CANCELLED = "server_cancelled"  # the server cancelled the request task itself
SEND_FAILED = "send_failed"  # the server's send raised something else than OSError; logged
_GONE = frozenset({CLIENT_LEFT, SEND_TIMEOUT, SEND_FAILED})

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
        "_keepalive_done",
        "_send",
        "_unyielded",
        "counting",
        "ended_by",
        "events",
        "finishing",
        "gone",
        "http_scope",
        "options",
        "scope",
        "sending",
        "since",
        "size",
    )

    def __init__(
        self, send: ASGISendCallable, options: StreamOptions, http_scope: Mapping[str, Any]
    ) -> None:
        self._send = send
        self.options = options
        self.http_scope = http_scope  # for log lines only
        #: The scope `end()` cancels: the stream's, then the final send's.
        self.scope = anyio.CancelScope()
        #: When the last send started (or the response, before the first).
        self.since = monotonic()
        self.sending = False  # the request task is inside send()
        self.finishing = False  # the final body is being (or was) sent
        self.ended_by: str | None = None
        self.gone = False  # the client left or was dropped: nothing more may be sent
        self._keepalive_done: anyio.Event | None = None  # set while a keep-alive is sent
        self._unyielded = 0
        # What was sent, counted only for an observer (`StreamObserver`).
        self.counting = options.observer is not None
        self.events = 0
        self.size = 0

    # -- ending -------------------------------------------------------------------------

    def note(self, reason: str) -> None:
        """Record why the response ends (the first reason sticks), without cancelling."""
        if self.ended_by is None:
            self.ended_by = reason
        if reason in _GONE:
            self.gone = True

    def end(self, reason: str) -> None:
        """End the response for ``reason``: cancel what the request task is doing."""
        self.note(reason)
        self.scope.cancel()

    def describe_client(self) -> str:
        client = self.http_scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "a client"
        return f"{where} on {self.http_scope.get('path', '?')}"

    def _drop(self) -> None:
        _log.warning(
            "asgi_sse: %s did not read for %ss; dropping it",
            self.describe_client(),
            self.options.send_timeout,
        )
        self.end(SEND_TIMEOUT)

    # -- what the watcher asks -----------------------------------------------------------

    def next_wake(self) -> float:
        """Seconds until a keep-alive may be due or a send may have timed out."""
        if self.finishing:
            return math.inf  # the final send bounds itself
        options = self.options
        now = monotonic()
        if self.sending:
            # No keep-alive while a send is in flight; look again a ping interval on.
            wake = math.inf if options.ping is None else options.ping
            if options.send_timeout is not None:
                wake = min(wake, self.since + options.send_timeout - now)
        else:
            wake = math.inf if options.ping is None else self.since + options.ping - now
            if options.send_timeout is not None:
                wake = min(wake, options.send_timeout)  # a send may start at any moment
        return max(wake, 0.0)

    def drop_if_stalled(self) -> bool:
        """End the response if a send has blocked for send_timeout; True if it did."""
        timeout = self.options.send_timeout
        if self.sending and timeout is not None and monotonic() - self.since >= timeout:
            self._drop()
            return True
        return False

    def keepalive_due(self) -> bool:
        ping = self.options.ping
        return (
            ping is not None
            and not self.sending
            and not self.finishing
            and self._keepalive_done is None
            and monotonic() - self.since >= ping
        )

    # -- sending -------------------------------------------------------------------------

    async def send_frames(self, body: bytes) -> None:
        """Send complete frames (request task). Raises what the server's send raises."""
        if self._keepalive_done is not None:
            # One send at a time. A keep-alive that finds the client gone ends the
            # connection before it lets this go on, so this wait is cancelled then.
            await self._keepalive_done.wait()
        send = self._send
        try:
            if len(body) <= PIECE:
                self.since = monotonic()
                self.sending = True
                await send({"type": "http.response.body", "body": body, "more_body": True})
            else:
                for start in range(0, len(body), PIECE):
                    self.since = monotonic()
                    self.sending = True
                    piece = body[start : start + PIECE]
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
        except OSError:  # ASGI 2.4: the client is gone (raised on, to unwind the pump)
            self.end(CLIENT_LEFT)
            raise
        except Exception:  # the server's send broke: nothing more can be sent
            self.note(SEND_FAILED)
            raise
        finally:
            self.sending = False
        if self.counting:
            self.size += len(body)
            self.events += body.count(b"\n\n")  # a frame ends with a blank line
        self._unyielded += len(body) + _SEND_WEIGHT
        if self._unyielded >= FAIR_SHARE:
            self._unyielded = 0
            await checkpoint()

    async def send_keepalive(self) -> bool:
        """Send the keep-alive (watcher). False: the response is ending."""
        make = self.options.keepalive
        try:
            body = make if isinstance(make, bytes) else make()
        except Exception:  # the user's ping_event function; the client is still there
            _log.exception("asgi_sse: ping_event failed; ending the stream")
            self.end(STREAM_ERROR)
            return False
        self._keepalive_done = done = anyio.Event()
        timeout = self.options.send_timeout
        try:
            with anyio.move_on_after(math.inf if timeout is None else timeout) as bound:
                await self._send({"type": "http.response.body", "body": body, "more_body": True})
            if bound.cancelled_caught:
                self._drop()
                return False
        except OSError:  # ASGI 2.4: the client is gone
            self.end(CLIENT_LEFT)
            return False
        except Exception:  # the server's send broke: nothing more can be sent
            _log.exception("asgi_sse: sending the keep-alive failed; ending the stream")
            self.end(SEND_FAILED)
            return False
        finally:
            # Only now may a frame follow, and only if the response goes on (the
            # connection was ended above, before this wakes the request task).
            self._keepalive_done = None
            done.set()
        self.since = monotonic()
        return True

    async def finish(self, *, shield: bool = False) -> None:
        """Send the final empty body (request task): once, never after the client left,
        bounded by send_timeout (less after a shutdown). ``shield``: the server is
        cancelling the request task; try briefly anyway."""
        self.finishing = True
        if self.gone:
            return
        timeout = self.options.send_timeout
        bound = math.inf if timeout is None else timeout
        if shield:
            bound = min(bound, CANCELLED_FINAL_SEND)
        elif self.ended_by == SHUTDOWN:
            bound = min(bound, SHUTDOWN_FINAL_SEND)
        self.scope = anyio.CancelScope(shield=shield, deadline=anyio.current_time() + bound)
        with self.scope:
            try:
                if self._keepalive_done is not None:
                    await self._keepalive_done.wait()
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:  # the client left at this very moment
                self.gone = True
                return
        if self.scope.cancelled_caught and not self.gone:
            self._drop()
