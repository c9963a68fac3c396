"""merge(): several async streams into one, with an anyio task group.

The classic trap: an async *generator* that yields from inside a task group leaves the
group's cancel scope open on whatever task happens to iterate it, and closing it from
elsewhere (or after the consumer moved on) breaks cancel-scope nesting. So `merge()`
returns an object whose task group lives exactly as long as an ``async with`` block in
the consumer's own task; iterating it without entering it is an error with a clear
message. `EventSourceResponse` enters it for you. `aclose()` only *requests* the end
(cancels the group's scope), so it is safe to call from any task.

Contract: items as they arrive; ends when every source ended; the first
source error cancels the others and is raised as itself (never an ExceptionGroup);
leaving the block cancels every source and runs its cleanup; memory is bounded - a
rendezvous channel holds no item, so each source is at most one item ahead.

Imports anyio and the neutral helpers of `_util`; nothing of the server layer.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._util.checks import is_count
from .._util.closing import close_stream
from .._util.excgroups import BaseExceptionGroup, wraps_only

__all__ = ("Merged", "buffered", "merge")

T = TypeVar("T")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")


class Merged(Generic[T]):
    """The merged stream returned by `merge()` and `buffered()`: ``async with merged:
    async for ...``.

    Args:
        sources: The streams to merge, each run in a task of its own once entered.
        buffer: Items each source may run ahead of the consumer.

    Raises:
        ValueError: for a ``buffer`` that is not an int >= 0.
    """

    __slots__ = ("_buffer", "_entered", "_error", "_receive", "_sources", "_task_group")

    def __init__(self, sources: tuple[AsyncIterable[T], ...], buffer: int = 0) -> None:
        if not is_count(buffer, minimum=0):
            raise ValueError(f"buffer must be a number of items >= 0, got {buffer!r}")
        self._sources = sources
        self._buffer = buffer
        self._task_group: TaskGroup | None = None
        self._receive: MemoryObjectReceiveStream[T] | None = None
        self._error: BaseException | None = None
        self._entered = False

    async def __aenter__(self) -> Merged[T]:
        if self._entered:
            raise RuntimeError("a merged stream can be entered only once")
        self._entered = True
        send, self._receive = anyio.create_memory_object_stream[T](self._buffer)
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        with send:
            for source in self._sources:
                task_group.start_soon(self._run_source, source, send.clone())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        task_group = self._task_group
        assert task_group is not None
        # Leaving early (consumer done, client gone, error): end every source now.
        task_group.cancel_scope.cancel()
        try:
            suppressed = await task_group.__aexit__(exc_type, exc, traceback)
        except BaseExceptionGroup as group:
            # The sources catch their own errors, so a group here holds the consumer's
            # exception, and maybe the cancellation of a scope around the consumer (trio
            # puts both in the group): let the exception propagate as itself.
            if wraps_only(group, exc):
                return False
            raise
        finally:
            assert self._receive is not None
            self._receive.close()
        if self._error is not None:
            # The first source error, as itself; what the consumer saw was only the
            # cancellation it caused.
            raise self._error
        return bool(suppressed)

    def __aiter__(self) -> Merged[T]:
        return self

    async def __anext__(self) -> T:
        receive = self._receive
        if receive is None:
            msg = (
                "merge() runs its sources in a task group: use `async with merge(...) as "
                "events: async for event in events: ...`, or hand it to "
                "EventSourceResponse, which enters it for you"
            )
            raise RuntimeError(msg)
        try:
            try:
                return receive.receive_nowait()  # ready: no trip through the event loop
            except anyio.WouldBlock:
                return await receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    def next_nowait(self) -> T:
        """The next item if one is ready now.

        Raises:
            anyio.WouldBlock: when no source has an item ready.
            StopAsyncIteration: when every source ended.
        """
        if self._receive is None:
            raise anyio.WouldBlock
        try:
            return self._receive.receive_nowait()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Ask the merged stream to end; safe from any task. The sources are cancelled
        and cleaned up when the ``async with`` block that entered it is left."""
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
        if self._receive is not None:
            self._receive.close()

    async def _run_source(self, source: AsyncIterable[T], send: MemoryObjectSendStream[T]) -> None:
        try:
            with send:
                if hasattr(type(source), "__aenter__"):  # a nested merge(), for one
                    async with source as entered:  # type: ignore[attr-defined]
                        await _forward(entered, send)
                else:
                    await _forward(source, send)
        except anyio.BrokenResourceError:
            pass  # the consumer closed the merged stream: a normal end for a source
        except Exception as exc:
            if self._error is None:
                self._error = exc
            assert self._task_group is not None
            self._task_group.cancel_scope.cancel()


async def _forward(source: AsyncIterable[T], send: MemoryObjectSendStream[T]) -> None:
    iterator: AsyncIterator[T] = aiter(source)
    try:
        async for item in iterator:
            try:
                # No checkpoint when the item can be handed over at once: a source that
                # runs ahead fills the buffer, then waits in send() for room.
                send.send_nowait(item)
            except anyio.WouldBlock:
                await send.send(item)
    finally:
        # A source parked at its yield (waiting for the consumer) is not reached by the
        # cancellation: close it so that its finally blocks run too.
        await close_stream(iterator)


@overload
def merge(s1: AsyncIterable[T1], /, *, buffer: int = 0) -> Merged[T1]: ...
@overload
def merge(
    s1: AsyncIterable[T1], s2: AsyncIterable[T2], /, *, buffer: int = 0
) -> Merged[T1 | T2]: ...
@overload
def merge(
    s1: AsyncIterable[T1], s2: AsyncIterable[T2], s3: AsyncIterable[T3], /, *, buffer: int = 0
) -> Merged[T1 | T2 | T3]: ...
@overload
def merge(
    s1: AsyncIterable[T1],
    s2: AsyncIterable[T2],
    s3: AsyncIterable[T3],
    s4: AsyncIterable[T4],
    /,
    *,
    buffer: int = 0,
) -> Merged[T1 | T2 | T3 | T4]: ...
@overload
def merge(*streams: AsyncIterable[T], buffer: int = 0) -> Merged[T]: ...
def merge(*streams: AsyncIterable[Any], buffer: int = 0) -> Merged[Any]:
    """Merge async streams into one that yields items as they arrive.

    Use it as ``async with merge(a, b) as events: async for event in events: ...``, or
    pass it to `EventSourceResponse`, which enters it. Item types are kept: merging a
    stream of `Echo` with a stream of `ReverseEcho` gives ``Merged[Echo | ReverseEcho]``.
    The merged stream ends when every source ended; leaving the block early cancels
    the sources and runs their cleanup.

    Args:
        *streams: The sources; a source that is an async context manager (another
            `merge()`) is entered in its task.
        buffer: Items each source may run ahead of the consumer before it waits for it
            (0: each source hands over one item at a time). Items that are ready
            together go out in one `send` (see `asgi_sse.types.ReadyItems`).

    Returns:
        The merged stream, to enter with ``async with``.

    Raises:
        ValueError: for a ``buffer`` that is not an int >= 0.
        RuntimeError: when iterated without being entered, or entered twice.
        Exception: the first exception raised by any source, unwrapped, from the
            ``async with`` block, after the other sources were cancelled and closed.
    """
    return Merged(streams, buffer)


def buffered(stream: AsyncIterable[T], size: int = 64) -> Merged[T]:
    """Run ``stream`` in a task of its own, up to ``size`` items ahead of the response.

    For a stream that produces bursts (a replay, a fast producer, a model's tokens): the
    response sends every item that is ready in one `send` instead of one `send` per
    item, while the stream already makes the next ones. A plain stream is sent item by
    item because the response cannot know whether the next item is ready without
    running the stream; in a task of its own, the stream can run ahead safely.

    The cost: one more task per connection, and a hand-off between two tasks for every
    item the stream had to wait for - so leave streams that mostly wait (a live feed, a
    hub subscription) unbuffered. Use it like `merge()`: return it from a handler or pass
    it to `EventSourceResponse`, which enters it. Memory is bounded by ``size`` items.

    Args:
        stream: The stream to run ahead.
        size: Items it may run ahead of the response (0: none, a hand-off per item).

    Returns:
        The buffered stream, to enter with ``async with`` (a one-source `merge()`).

    Raises:
        ValueError: for a ``size`` that is not an int >= 0.
        RuntimeError: as `merge()` raises it.
        Exception: what ``stream`` raises, from the ``async with`` block.
    """
    return Merged((stream,), size)
