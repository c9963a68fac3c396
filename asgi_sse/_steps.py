"""Taking one step of an async iterator without awaiting it (asyncio only).

Why: a stream that yields many events in a row (a burst, a replay) should go out in one
`send` per batch, not one per event - the send is most of the per-event cost. But an
async generator cannot be asked "is your next item ready?". So the response *starts*
the step itself: it calls ``__anext__().__await__().send(None)``. Either the step
finishes at once (the item was ready) or the stream suspends on a future.

In the second case the frames collected so far must go out before waiting, which means
awaiting our own send while the stream's step is parked. On asyncio that is safe: the
stream yielded an `asyncio.Future` (or a bare `None` checkpoint), and a task may hand a
future to the loop later than it got it - if it completed meanwhile, the task is woken
at once. On trio it is not: a trap has already registered the task for a wake-up, so
any other await in between would receive the stream's wake-up. The response therefore
uses this on asyncio only.

`Resume` then finishes the parked step exactly as ``yield from`` would have: it yields
the pending future first, and forwards every later send and throw (cancellation
included) to the step.

Imports nothing from the package.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

__all__ = ("Resume", "Step")


class Step(Protocol):
    """The iterator behind an awaitable (`__await__()`): a coroutine's send/throw."""

    def send(self, value: Any, /) -> Any: ...
    def throw(self, error: BaseException, /) -> Any: ...


class Resume:
    """Await to finish a step that suspended on ``pending``; with ``error``, throw that
    into the step first (our own await failed and the stream must hear of it)."""

    __slots__ = ("_error", "_pending", "_step")

    def __init__(self, step: Step, pending: object, error: BaseException | None = None) -> None:
        self._step = step
        self._pending = pending
        self._error = error

    def __await__(self) -> Generator[Any, Any, Any]:
        step = self._step
        to_yield = self._pending
        error = self._error
        while True:
            if error is not None:
                thrown, error = error, None
                try:
                    to_yield = step.throw(thrown)
                except StopIteration as done:
                    return done.value
            try:
                sent = yield to_yield
            except BaseException as exc:  # cancellation, close(): the step must see it
                error = exc
                continue
            try:
                to_yield = step.send(sent)
            except StopIteration as done:
                return done.value
