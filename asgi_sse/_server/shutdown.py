"""Graceful shutdown: end every open event stream when the server is asked to stop.

Why this exists: uvicorn (and hypercorn) wait for open responses before they run the
lifespan shutdown, and tell the application nothing in between. An endless event
stream is an open response forever, so the server hangs at "Waiting for connections to
close". Nothing in ASGI signals "the server is stopping" to a running request.

Strategy, with nothing patched at import time:
- `ShutdownSignal` is a flag plus a set of wake-up callbacks. `trigger()` is safe to
  call from a signal handler or another thread: each open response registered a
  callback that schedules the cancellation of its stream on its own event loop
  (`call_soon_threadsafe` on asyncio, `TrioToken.run_sync_soon` on trio - both
  documented as safe from signal handlers).
- `GracefulShutdown(app)` is an ASGI wrapper that hands its signal to every HTTP
  request through the scope key `"asgi_sse.shutdown"`, and, when the server runs the
  lifespan protocol, chains a handler for SIGINT/SIGTERM in front of the server's own
  (which it then calls, so the server stops exactly as it would have).
Responses that see the signal end their stream, run its cleanup, and send the final
empty body, so every client sees a clean end of stream and the server can exit.

Imports anyio's lowlevel token and the ASGI types; nothing else of the server layer (the
response reads the signal; the signal knows nothing of responses).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, cast

from anyio.lowlevel import current_token

from .._util.asgi import (
    AnyReceive,
    AnyScope,
    AnySend,
    ASGIApp,
)

__all__ = ("SCOPE_KEY", "GracefulShutdown", "ShutdownSignal")

SCOPE_KEY = "asgi_sse.shutdown"
_log = logging.getLogger("asgi_sse")


class ShutdownSignal:
    """A one-way flag: once triggered, every stream watching it ends.

    `trigger()` may be called from any thread or from a signal handler; `is_set` tells
    whether it has been. Streams register with `add_callback()` (used by
    `EventSourceResponse`; most applications only call `trigger()`). Give one to a
    response as ``shutdown=``, or let `GracefulShutdown` hand its own to every request.
    """

    __slots__ = ("_callbacks", "_idle", "_is_set")

    def __init__(self) -> None:
        self._is_set = False
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._idle = threading.Event()  # set once triggered and no stream is left

    @property
    def is_set(self) -> bool:
        """Whether `trigger()` was called (for good: a signal is never reset)."""
        return self._is_set

    def trigger(self) -> None:
        """End every stream that watches this signal, now and from now on. Idempotent.

        Safe from any thread and from a signal handler: it calls the callbacks there,
        and a response's callback only schedules its end on its own event loop.
        """
        self._is_set = True
        # list() copies the values in one C call, so a stream that registers or leaves
        # on the event loop thread while a signal handler runs here cannot break it.
        callbacks = list(self._callbacks.values())
        if not callbacks:
            self._idle.set()
        for callback in callbacks:
            callback()

    def wait_idle(self, timeout: float) -> bool:
        """Block (a thread, not the event loop) until triggered and every stream that
        watched the signal ended.

        Args:
            timeout: Seconds to wait at most.

        Returns:
            True once they all ended; False if ``timeout`` passed first.
        """
        return self._idle.wait(timeout)

    def add_callback(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` on trigger, at once if triggered already.

        ``callback`` may run in a signal handler or another thread: make it safe there
        (wrap it with `threadsafe`).

        Returns:
            A function that removes the callback again (idempotent).
        """
        key = id(callback)
        self._callbacks[key] = callback
        if self._is_set:
            callback()

        def remove() -> None:
            self._callbacks.pop(key, None)
            if self._is_set and not self._callbacks:
                self._idle.set()

        return remove

    def threadsafe(self, func: Callable[[], object]) -> Callable[[], None]:
        """Wrap ``func`` so that it runs on the current event loop, whoever calls it
        (asyncio's ``call_soon_threadsafe``, trio's ``run_sync_soon``).

        Raises:
            RuntimeError: when no event loop runs in this thread (anyio's
                ``NoEventLoopError``).
        """
        native = current_token().native_token
        if isinstance(native, asyncio.AbstractEventLoop):
            loop = native

            def on_asyncio() -> None:
                loop.call_soon_threadsafe(func)

            return on_asyncio
        run_sync_soon = cast(Any, native).run_sync_soon  # trio.lowlevel.TrioToken

        def on_trio() -> None:
            run_sync_soon(func)

        return on_trio


_REDELIVER_AFTER = 2.0
_FLUSH = 0.1  # for the final bytes to leave the event loop's buffers


def _redeliver(shutdown: ShutdownSignal, signum: signal.Signals) -> None:
    shutdown.wait_idle(_REDELIVER_AFTER)
    time.sleep(_FLUSH)
    os.kill(os.getpid(), signum)


class GracefulShutdown:
    """ASGI wrapper that makes SIGINT/SIGTERM end every open event stream at once.

    Wrap the outermost application: ``app = GracefulShutdown(app)``, then run it with
    ``uvicorn module:app`` or ``hypercorn module:app`` as usual. On the lifespan
    startup it chains its handler in front of the server's own signal handlers (only
    in the main thread); the server then shuts down as it always does, but finds no
    stream left open. Without lifespan (``--lifespan off``) call
    ``app.signal.trigger()`` yourself from wherever you learn of the shutdown.

    Every HTTP scope passed on carries the signal under ``scope["asgi_sse.shutdown"]``;
    `EventSourceResponse` looks for it there, so responses created deep inside any
    framework see it.

    Args:
        app: The application to wrap.
        signals: The signals that end the streams.
        signal_handlers: False: install no handler (call ``app.signal.trigger()``
            yourself).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
        signal_handlers: bool = True,
    ) -> None:
        self.app = app
        """The wrapped application."""
        self.signal = ShutdownSignal()
        """The signal every request sees; `trigger()` it to end every stream."""
        self._signals = tuple(signals)
        self._signal_handlers = signal_handlers
        self._installed = False

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        if scope["type"] == "http":
            cast(dict[str, Any], scope)[SCOPE_KEY] = self.signal
        elif scope["type"] == "lifespan" and self._signal_handlers:
            self.install_signal_handlers()
        await self.app(scope, receive, send)

    def install_signal_handlers(self) -> None:
        """Chain `trigger()` in front of the current handlers of the signals. Idempotent.

        Called on the lifespan startup, once the server installed its own handlers.
        Only possible in the main thread; elsewhere this logs (at debug level) and does
        nothing.
        """
        if self._installed:
            return
        if threading.current_thread() is not threading.main_thread():
            _log.debug("asgi_sse: not in the main thread, signal handlers not installed")
            return
        self._installed = True
        for signum in self._signals:
            previous = signal.getsignal(signum)
            signal.signal(signum, self._chain(signum, previous))

    def _chain(self, signum: signal.Signals, previous: Any) -> Callable[[int, Any], None]:
        shutdown = self.signal

        def handler(number: int, frame: FrameType | None) -> None:
            shutdown.trigger()
            if callable(previous):
                previous(number, frame)
                return
            # Note: no server handler to hand over to (e.g. SIGTERM in hypercorn's worker
            # process): the process must still stop as it would have, but only once the
            # streams just ended have sent their final bytes. The default comes back now
            # (a second signal acts at once); the signal itself is delivered again from a
            # thread when every stream ended, or after _REDELIVER_AFTER seconds.
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            threading.Thread(target=_redeliver, args=(shutdown, signum), daemon=True).start()

        return handler
