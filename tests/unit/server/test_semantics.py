"""A user's stream runs inside the response exactly as it would in a task of its own.

The rule: its cancel scopes, deadlines, `asyncio.timeout`/`wait_for` and shields behave as
written; no exception of the response's transport is ever raised inside user code (the
stream is closed at its `yield` - GeneratorExit - or cancelled by the response's own
scope at its `await`); a frozen or departed client ends the response within
`send_timeout` (or at once on disconnect) - on asyncio and on trio alike.

The response is called directly (a scope dict, a scripted `receive` and `send`), so every
send can be slowed, frozen or failed, and every stream records what reached it: which
exception arrived at which `yield` or `await`, what its own scopes did, whether its
`finally` ran. The property test at the end compares a random stream served by the
response with the same stream consumed by a plain `async for` in a task of its own.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.abc
import anyio.to_thread
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from asgi_sse import EventSourceResponse, EventStreamParser, ParsedEvent, merge
from tests.support.helpers import server_scope

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

Message = Mapping[str, Any]

#: Slack on every time bound: a 2-core machine under load wakes timers late, but far less
#: than this; the broken behaviours these tests catch are off by seconds or forever.
MARGIN = 0.5
#: How long the harness waits for an app that broke the rule before it unblocks it.
RESCUE = 5.0
PING = b": ping\n"


class TransportError(Exception):
    """A server's `send` that broke otherwise than with the client leaving (no OSError)."""


# -- the server side of one connection ---------------------------------------------------


class Client:
    """A scripted `receive` and `send` for one response.

    `receive` returns `http.disconnect` once the client has left, and never before. The
    client's behaviour is counted in events, not in sends, so that it does not depend on
    how the response batches frames:
    - `delay`: every body's send takes that long; `slow_at`/`slow_for`: the send that
      delivers event number `slow_at` (from 1) takes `slow_for` more.
    - `freeze_after`: the client reads that many events, then stops reading: any send
      that would take it further (or comes after that) never returns; `freeze`: also
      freeze on any message it matches.
    - `leave_after`: the client reads that many events, then leaves; sends from then on
      raise `error()` (`gone="raise"`) or hang (`gone="hang"`).
    - `leave_when_frozen_for`: a frozen client gives up and leaves after that long.
    A frozen or hanging send returns only when the response cancels it, or when the
    harness gives up on the app (`release`).
    """

    def __init__(
        self,
        *,
        delay: float = 0.0,
        slow_at: int | None = None,
        slow_for: float = 0.0,
        freeze_after: int | None = None,
        freeze: Callable[[Message], bool] | None = None,
        leave_after: int | None = None,
        leave_when_frozen_for: float | None = None,
        gone: Literal["raise", "hang"] = "raise",
        error: Callable[[], BaseException] = lambda: OSError("the client is gone"),
    ) -> None:
        self._delay = delay
        self._slow_at = slow_at
        self._slow_for = slow_for
        self._freeze_after = freeze_after
        self._freeze = freeze
        self._leave_after = leave_after
        self._leave_when_frozen_for = leave_when_frozen_for
        self._gone = gone
        self._error = error
        self.messages: list[Message] = []  # every message the app handed to send()
        self.delivered: list[Message] = []  # those whose send() returned normally
        self.delivered_events = 0
        self.active = 0
        self.max_active = 0  # sends in flight at once: an ASGI server allows one
        self.left = anyio.Event()
        self.left_at: float | None = None
        self.frozen = anyio.Event()
        self.frozen_at: float | None = None
        self._released = anyio.Event()

    def leave(self) -> None:
        if not self.left.is_set():
            self.left_at = anyio.current_time()
            self.left.set()

    def release(self) -> None:
        """Unblock every frozen or hanging send (the app broke the rule; end the test)."""
        self.leave()
        self._released.set()

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self._send(message)
        finally:
            self.active -= 1

    async def _send(self, message: Message) -> None:
        self.messages.append(message)
        if message["type"] != "http.response.body":
            if self._freeze is not None and self._freeze(message):
                await self._block()
                return
            self.delivered.append(message)
            return
        before = self.delivered_events
        after = before + _count_events(message["body"])
        if (
            self.frozen.is_set()  # a client that stopped reading reads nothing more
            or (self._freeze is not None and self._freeze(message))
            or _past(self._freeze_after, before, after)
        ):
            await self._block()
            return
        if _past(self._leave_after, before, after):
            self.leave()
        if self.left.is_set():
            if self._gone == "raise":
                # No checkpoint first: a server's send fails at once.
                raise self._error()
            await self._released.wait()
            return
        delay = self._delay
        if self._slow_at is not None and before < self._slow_at <= after:
            delay += self._slow_for
        if delay:
            await anyio.sleep(delay)
        self.delivered.append(message)
        self.delivered_events = after
        if after == self._leave_after:
            self.leave()  # it read what it came for

    async def _block(self) -> None:
        if not self.frozen.is_set():
            self.frozen_at = anyio.current_time()
            self.frozen.set()
        if self._leave_when_frozen_for is not None:
            # The client gives up on the stalled connection and goes away.
            with anyio.move_on_after(self._leave_when_frozen_for):
                await self._released.wait()
            self.leave()
        await self._released.wait()

    def bodies(self) -> list[tuple[bytes, bool]]:
        return [
            (m["body"], m["more_body"])
            for m in self.delivered
            if m["type"] == "http.response.body"
        ]

    def events(self) -> list[str]:
        """The data of every event the client received, in order (as a browser parses)."""
        parser = EventStreamParser()
        received: list[str] = []
        for body, _ in self.bodies():
            received += [item.data for item in parser.feed(body) if isinstance(item, ParsedEvent)]
        return received

    def ended_cleanly(self) -> bool:
        """The final empty body came once, last, after bodies that all said more_body."""
        bodies = self.bodies()
        return (
            bool(bodies)
            and bodies[-1] == (b"", False)
            and all(more for _, more in bodies[:-1])
            and len(self.delivered) == len(self.messages)
        )


@dataclass
class Served:
    ended: bool = False  # the app returned or raised before the harness gave up on it
    error: BaseException | None = None  # what the app raised
    started_at: float = 0.0
    ended_at: float = math.inf


def _count_events(body: bytes) -> int:
    # The response sends whole frames: a fresh parser counts a body's events.
    return sum(isinstance(item, ParsedEvent) for item in EventStreamParser().feed(body))


def _past(limit: int | None, before: int, after: int) -> bool:
    """A send that takes the client from `before` to `after` events reaches past `limit`
    (or comes once `limit` was reached)."""
    return limit is not None and (before >= limit or after > limit)


async def serve(
    stream: AsyncIterable[str],
    client: Client,
    *,
    limit: float = 5.0,
    trigger: Literal["frozen", "left"] | None = None,
    within: float = 0.0,
    server_timeout: float | None = None,
    **options: Any,
) -> Served:
    """Run `EventSourceResponse(stream, **options)` against `client` and say how it ended.

    The app gets `limit` seconds in all, and only `within` seconds once the client froze
    or left (`trigger`). An app that has not ended by then broke the rule: the harness
    unblocks the client's sends, then cancels the app, so that the test fails on its
    assertions instead of hanging. `server_timeout`: the server cancels the response
    after that long (uvicorn's --timeout-graceful-shutdown does).
    """
    response = EventSourceResponse(stream, **options)
    served = Served(started_at=anyio.current_time())
    done = anyio.Event()
    rescue = anyio.CancelScope()

    async def run() -> None:
        try:
            with rescue:
                try:
                    with anyio.CancelScope() as server_cancel:
                        if server_timeout is not None:
                            server_cancel.deadline = anyio.current_time() + server_timeout
                        await response(server_scope(), client.receive, client.send)
                except BaseException as exc:
                    if rescue.cancel_called:
                        raise
                    # Whatever escaped the app - a cancellation included - is the
                    # finding; this task ends right after, so swallowing it is safe.
                    served.error = exc
        finally:
            served.ended_at = anyio.current_time()
            done.set()

    async def end_when_triggered(group: anyio.abc.TaskGroup) -> None:
        await (client.frozen if trigger == "frozen" else client.left).wait()
        with anyio.move_on_after(within):
            await done.wait()
        group.cancel_scope.cancel()

    async def end_when_done(group: anyio.abc.TaskGroup) -> None:
        await done.wait()
        group.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as app_group:
            app_group.start_soon(run)
            with anyio.move_on_after(limit):
                async with anyio.create_task_group() as waiters:
                    waiters.start_soon(end_when_done, waiters)
                    if trigger is not None:
                        waiters.start_soon(end_when_triggered, waiters)
            served.ended = done.is_set()
            if not done.is_set():
                client.release()
                with anyio.move_on_after(RESCUE):
                    await done.wait()
            if not done.is_set():
                # An app that ignores even this hangs the test until its pytest timeout.
                rescue.cancel()
    finally:
        await _close(stream)
    return served


async def _close(stream: object) -> None:
    """Close the stream if the response left it open, so that no finaliser runs it later
    (warnings are errors here)."""
    if getattr(stream, "ag_running", False):
        return  # only if the app was abandoned mid-step: aclose() would raise
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


# -- what a stream saw -----------------------------------------------------------------


class Probe:
    """A stream's own record: its trace, every exception that reached one of its
    `yield`s or `await`s (as `(where, kind)`), and how often its `finally` ran."""

    def __init__(self) -> None:
        self.trace: list[object] = []
        self.seen: list[tuple[str, str]] = []
        self.finally_runs = 0
        self._cancelled = anyio.get_cancelled_exc_class()

    def at(self, where: str) -> _At:
        return _At(self, where)

    def kind(self, exc: BaseException) -> str:
        if isinstance(exc, GeneratorExit):
            return "GeneratorExit"
        if isinstance(exc, self._cancelled):
            return "cancelled"
        return type(exc).__name__


class _At:
    __slots__ = ("_probe", "_where")

    def __init__(self, probe: Probe, where: str) -> None:
        self._probe = probe
        self._where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._probe.seen.append((self._where, self._probe.kind(exc)))


def only(error: BaseException, kind: type[BaseException]) -> bool:
    """`error` is a `kind`, or a group (a task group's on trio) of nothing else."""
    if isinstance(error, BaseExceptionGroup):
        return all(only(inner, kind) for inner in error.exceptions)
    return isinstance(error, kind)


def assert_stopped_by_the_response(probe: Probe) -> None:
    """The stream ran its `finally` once and heard of the end only as the rule allows:
    GeneratorExit at a `yield`, or the response's cancellation at an `await`."""
    assert probe.finally_runs == 1, probe.finally_runs
    assert len(probe.seen) <= 1, probe.seen
    for where, kind in probe.seen:
        allowed = "GeneratorExit" if where.startswith("yield") else "cancelled"
        assert kind == allowed, f"{kind} reached the stream's {where!r}"


async def a_b_then(probe: Probe, middle: Callable[[], Awaitable[object]]) -> AsyncIterator[str]:
    """Yield "a" and "b" back to back, then await `middle`, then yield "after".

    "a" and "b" are ready at once: a response may send them in one batch, and must then
    not run the stream on into `middle` while that batch's send is still in flight."""
    try:
        with probe.at("yield a"):
            yield "a"
        with probe.at("yield b"):
            yield "b"
        with probe.at("await"):
            probe.trace.append(("middle", await middle()))
        with probe.at("yield after"):
            yield "after"
        probe.trace.append("end")
    finally:
        probe.finally_runs += 1


# -- a slow client: the stream's own scopes fire inside it ------------------------------


async def own_move_on_after() -> object:
    with anyio.move_on_after(0.05) as scope:
        await anyio.sleep(10)
    return scope.cancelled_caught


async def own_fail_after() -> object:
    try:
        with anyio.fail_after(0.05):
            await anyio.sleep(10)
    except TimeoutError:
        return "TimeoutError"
    return "no timeout"  # pragma: no cover


async def own_shield() -> object:
    with anyio.CancelScope(shield=True):
        await anyio.sleep(0.05)
    return "shielded"


async def a_thread() -> object:
    return await anyio.to_thread.run_sync(_blocking, 0.05)


def _blocking(seconds: float) -> str:
    time.sleep(seconds)
    return "thread done"


async def nested_task_groups() -> object:
    finished: list[str] = []

    async def child(name: str, seconds: float) -> None:
        async with anyio.create_task_group() as inner:
            inner.start_soon(anyio.sleep, seconds)
        with anyio.move_on_after(0.01) as scope:
            await anyio.sleep(10)
        finished.append(f"{name}: {scope.cancelled_caught}")

    async with anyio.create_task_group() as outer:
        outer.start_soon(child, "x", 0.05)
        outer.start_soon(child, "y", 0.02)
    return finished


async def task_group_cancelled_by_itself() -> object:
    async with anyio.create_task_group() as group:
        group.start_soon(anyio.sleep_forever)
        await anyio.sleep(0.05)
        group.cancel_scope.cancel()
    return group.cancel_scope.cancelled_caught


async def asyncio_wait_for() -> object:
    try:
        await asyncio.wait_for(asyncio.sleep(10), 0.05)
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        return "timed out"
    return "no timeout"  # pragma: no cover


if sys.version_info >= (3, 11):

    async def asyncio_timeout() -> object:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(10)
        except TimeoutError:
            return "timed out"
        return "no timeout"  # pragma: no cover

else:

    async def asyncio_timeout() -> object:  # never run: not collected before 3.11
        raise NotImplementedError


_BOTH = ("asyncio", "trio")
_MIDDLES: list[tuple[Callable[[], Awaitable[object]], object, tuple[str, ...], str]] = [
    (own_move_on_after, True, _BOTH, "anyio-move_on_after"),
    (own_fail_after, "TimeoutError", _BOTH, "anyio-fail_after"),
    (own_shield, "shielded", _BOTH, "shielded-sleep"),
    (a_thread, "thread done", _BOTH, "to_thread"),
    (nested_task_groups, ["y: True", "x: True"], _BOTH, "task-groups"),
    (task_group_cancelled_by_itself, True, _BOTH, "task-group-cancel"),
    (asyncio_wait_for, "timed out", ("asyncio",), "asyncio-wait_for"),
]
if sys.version_info >= (3, 11):  # asyncio.timeout is new in Python 3.11
    _MIDDLES.append((asyncio_timeout, "timed out", ("asyncio",), "asyncio-timeout"))


# Note: asyncio's own APIs are run on asyncio only (parametrized, not skipped on trio).
@pytest.mark.parametrize(
    ("anyio_backend", "middle", "expected"),
    [
        pytest.param(backend, middle, expected, id=f"{backend}-{name}")
        for middle, expected, backends, name in _MIDDLES
        for backend in backends
    ],
)
async def test_the_streams_own_awaits_behave_as_written_while_a_send_is_slow(
    anyio_backend: str,
    middle: Callable[[], Awaitable[object]],
    expected: object,
) -> None:
    """The stream waits at an await (its own deadline, a thread, task groups) while the
    events before it are still being sent to a slow client (the send that delivers "b"
    takes 0.2 s, longer than the stream's own deadlines): every event arrives, in order,
    and the stream's scopes did what they say - as in a task of its own."""
    probe = Probe()
    client = Client(slow_at=2, slow_for=0.2)

    served = await serve(a_b_then(probe, middle), client)

    assert served.ended
    assert served.error is None, repr(served.error)
    assert client.events() == ["a", "b", "after"]
    assert client.ended_cleanly(), client.bodies()
    assert probe.trace == [("middle", expected), "end"]
    assert probe.seen == []
    assert probe.finally_runs == 1
    assert client.max_active == 1


async def test_merged_sources_keep_their_own_deadlines_while_a_send_is_slow() -> None:
    probe = Probe()

    async def source(name: str) -> AsyncIterator[str]:
        try:
            with probe.at(f"{name}: yield 1"):
                yield f"{name}1"
            with probe.at(f"{name}: yield 2"):
                yield f"{name}2"
            with probe.at(f"{name}: await"), anyio.move_on_after(0.05) as scope:
                await anyio.sleep(10)
            probe.trace.append((name, scope.cancelled_caught))
            with probe.at(f"{name}: yield 3"):
                yield f"{name}3"
        finally:
            probe.finally_runs += 1

    client = Client(slow_at=2, slow_for=0.2)
    served = await serve(merge(source("x"), source("y")), client)

    assert served.ended
    assert served.error is None, repr(served.error)
    received = client.events()
    assert sorted(received) == ["x1", "x2", "x3", "y1", "y2", "y3"]
    for name in "xy":  # each source's own order is kept
        assert [e for e in received if e.startswith(name)] == [f"{name}{i}" for i in (1, 2, 3)]
    assert client.ended_cleanly()
    assert sorted(probe.trace) == [("x", True), ("y", True)]  # type: ignore[type-var]
    assert probe.seen == []
    assert probe.finally_runs == 2


# -- the transport fails: the stream is closed, never handed the server's error ---------


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(lambda: OSError("the client is gone"), id="OSError"),
        pytest.param(lambda: ConnectionResetError("reset by peer"), id="ConnectionResetError"),
        pytest.param(lambda: TransportError("the server's send broke"), id="TransportError"),
        pytest.param(lambda: anyio.BrokenResourceError(), id="BrokenResourceError"),
        pytest.param(lambda: RuntimeError("send after close"), id="RuntimeError"),
    ],
)
async def test_a_failing_send_closes_the_stream_and_never_raises_inside_it(
    error: Callable[[], BaseException],
) -> None:
    """The client leaves after reading "a": the send that would deliver "b" raises. The
    stream is waiting in `await anyio.sleep(1)` (or still parked at a yield); it must be
    cancelled there or closed at the yield, never handed the server's exception, and the
    response must not wait out the sleep."""
    probe = Probe()

    async def sleep_a_second() -> object:
        await anyio.sleep(1)
        return "slept"

    client = Client(leave_after=1, gone="raise", error=error)
    served = await serve(a_b_then(probe, sleep_a_second), client, trigger="left", within=MARGIN)

    assert served.ended
    assert client.left_at is not None
    assert served.ended_at - client.left_at <= MARGIN
    kind = type(error())
    if not issubclass(kind, OSError):
        # A non-OSError is the server's own failure: it may go back to the server.
        assert served.error is None or only(served.error, kind), repr(served.error)
    else:
        assert served.error is None, repr(served.error)  # ASGI 2.4: the client is gone
    assert_stopped_by_the_response(probe)
    assert probe.trace == []
    assert client.events() in ([], ["a"])


# -- a frozen client ---------------------------------------------------------------------


async def test_a_frozen_client_is_dropped_within_send_timeout_despite_a_shield() -> None:
    """The client stops reading after "a": the send that would deliver "b" never returns,
    and the stream would next sit in a 3 s shielded sleep. The response must end 0.2 s
    (send_timeout) after the client froze: the shield is the stream's own and must not
    protect the response's send."""
    probe = Probe()

    async def shielded_three_seconds() -> object:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(3)
        return "shielded"

    client = Client(freeze_after=1)
    served = await serve(
        a_b_then(probe, shielded_three_seconds),
        client,
        trigger="frozen",
        within=0.2 + MARGIN,
        send_timeout=0.2,
    )

    assert served.ended, "the response outlived send_timeout"
    assert client.frozen_at is not None
    assert served.ended_at - client.frozen_at <= 0.2 + MARGIN
    assert served.error is None, repr(served.error)
    assert_stopped_by_the_response(probe)
    assert client.events() in ([], ["a"])


@pytest.mark.parametrize("shield", [0.3, 3.0])
async def test_a_client_leaving_during_a_hanging_send_ends_the_response_at_once(
    shield: float,
) -> None:
    """The send that would deliver "b" hangs; 0.1 s later the client leaves
    (http.disconnect). The stream would next sit in a shielded sleep: the response must
    end at once anyway."""
    probe = Probe()

    async def shielded() -> object:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(shield)
        return "shielded"

    client = Client(freeze_after=1, leave_when_frozen_for=0.1, gone="hang")
    served = await serve(a_b_then(probe, shielded), client, trigger="left", within=MARGIN)

    assert served.ended, "the response outlived the client"
    assert client.left_at is not None
    assert served.ended_at - client.left_at <= MARGIN
    assert served.error is None, repr(served.error)
    assert_stopped_by_the_response(probe)
    assert client.events() in ([], ["a"])


async def test_the_server_cancelling_the_response_ends_it_while_a_send_hangs() -> None:
    """A server's graceful-shutdown timeout cancels the request task while the response's
    send hangs and the stream would be in a shielded sleep: the cancellation must reach
    the response, not be absorbed by the stream's shield."""
    probe = Probe()

    async def shielded() -> object:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(3)
        return "shielded"

    client = Client(freeze_after=1)
    # A cancelled response may still try, briefly, to give the client a clean end of body
    # (this client never reads it): 1 s covers that, and is far below the 3 s shield.
    served = await serve(
        a_b_then(probe, shielded),
        client,
        limit=0.2 + 1.0 + MARGIN,
        server_timeout=0.2,
        send_timeout=None,
    )

    assert served.ended, "the server's cancellation did not end the response"
    assert served.ended_at - served.started_at <= 0.2 + 1.0 + MARGIN
    assert served.error is None or isinstance(served.error, anyio.get_cancelled_exc_class())
    assert_stopped_by_the_response(probe)


async def test_a_client_frozen_at_the_final_body_is_dropped_within_send_timeout() -> None:
    """Every event was read, then the final empty body's send never returns (a server
    waits for the socket to drain before every body): send_timeout still applies."""
    probe = Probe()

    async def nothing() -> object:
        return None

    client = Client(freeze=lambda m: m["type"] == "http.response.body" and not m["more_body"])
    served = await serve(
        a_b_then(probe, nothing),
        client,
        trigger="frozen",
        within=0.2 + MARGIN,
        send_timeout=0.2,
    )

    assert client.events() == ["a", "b", "after"]
    assert served.ended, "the response outlived send_timeout on its final body"
    assert client.frozen_at is not None
    assert served.ended_at - client.frozen_at <= 0.2 + MARGIN
    assert probe.finally_runs == 1
    assert probe.seen == []


# -- keep-alives and one send at a time ------------------------------------------------


@pytest.mark.parametrize("frozen", ["event", "ping"])
async def test_no_keep_alive_overlaps_a_blocked_send_and_the_response_still_ends(
    frozen: str,
) -> None:
    """ping=0.05 while a send is blocked: ASGI allows one send at a time, so neither the
    keep-alive (while an event's send hangs) nor the next event (while the keep-alive's
    send hangs) may enter send() concurrently, and send_timeout still ends it."""
    probe = Probe()

    async def stream() -> AsyncIterator[str]:
        try:
            with probe.at("yield first"):
                yield "first"
            for i in range(20):
                with probe.at(f"await {i}"):
                    await anyio.sleep(0.1)  # two keep-alives due per wait
                with probe.at(f"yield {i}"):
                    yield f"event {i}"
        finally:
            probe.finally_runs += 1

    if frozen == "event":
        client = Client(freeze_after=0)
    else:
        client = Client(freeze=lambda m: m.get("body") == PING)
    served = await serve(
        stream(), client, trigger="frozen", within=0.3 + MARGIN, ping=0.05, send_timeout=0.3
    )

    assert client.max_active == 1, "send() was entered while another send was in flight"
    assert served.ended, "the response outlived send_timeout"
    assert client.frozen_at is not None
    assert served.ended_at - client.frozen_at <= 0.3 + MARGIN
    assert served.error is None, repr(served.error)
    assert_stopped_by_the_response(probe)
    assert client.events() == ([] if frozen == "event" else ["first"])


async def test_a_merged_stream_with_shielded_sources_ends_within_send_timeout() -> None:
    probe = Probe()

    async def source(name: str) -> AsyncIterator[str]:
        try:
            for i in range(3):
                with probe.at(f"{name}: yield {i}"):
                    yield f"{name}{i}"
            with probe.at(f"{name}: shielded"), anyio.CancelScope(shield=True):
                await anyio.sleep(0.3)
            with probe.at(f"{name}: yield last"):
                yield f"{name} last"
        finally:
            probe.finally_runs += 1

    client = Client(freeze_after=1)
    served = await serve(
        merge(source("x"), source("y")),
        client,
        trigger="frozen",
        within=0.2 + MARGIN,
        send_timeout=0.2,
    )

    assert served.ended
    assert client.frozen_at is not None
    assert served.ended_at - client.frozen_at <= 0.2 + MARGIN
    assert served.error is None, repr(served.error)
    assert probe.finally_runs == 2
    for where, kind in probe.seen:
        # A source runs in merge()'s own task: the response cancels it at its await or
        # closes it at its yield, never with the transport's error.
        assert kind in ("GeneratorExit", "cancelled"), (where, kind)


# -- the property: any stream, any client -----------------------------------------------


@dataclass(frozen=True)
class Yield:
    """Yield an item (named after the step's position)."""


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Deadline:
    """`with move_on_after(after): await sleep(sleep)`: cancelled iff sleep > after."""

    after: float
    sleep: float


@dataclass(frozen=True)
class Shielded:
    seconds: float


Step = Yield | Sleep | Deadline | Shielded


@dataclass(frozen=True)
class Reads:
    """Reads everything; each body's send takes `delay` seconds (0: a fast client)."""

    delay: float


@dataclass(frozen=True)
class Freezes:
    """Reads `after` events, then stops reading: no later send returns (the final body's
    included, if it comes after those events)."""

    after: int


@dataclass(frozen=True)
class Leaves:
    """Reads `after` events, then leaves (receive says http.disconnect); later sends
    raise `error` or hang."""

    after: int
    then: Literal["raise", "hang"]
    error: Literal["OSError", "TransportError"] = "OSError"


ClientModel = Reads | Freezes | Leaves

SEND_TIMEOUT = 0.1
SHORT = st.floats(min_value=0.0, max_value=0.02)


@st.composite
def deadlines(draw: st.DrawFn) -> Deadline:
    # The deadline and the sleep are far apart, so that whether the scope fires does not
    # depend on scheduling: the oracle and the response must agree on it.
    short = draw(SHORT)
    if draw(st.booleans()):
        return Deadline(after=short, sleep=short + 1.0)
    return Deadline(after=short + 1.0, sleep=short)


steps_strategy = st.lists(
    st.one_of(
        st.just(Yield()),
        st.just(Yield()),  # twice as likely: runs of ready items matter most
        st.builds(Sleep, SHORT),
        deadlines(),
        st.builds(Shielded, SHORT),
    ),
    max_size=8,
)
# The clients that stop early come first: hypothesis favours the first branches, and a
# client that reads everything is also what most of those become (the stream ends first).
clients_strategy = st.one_of(
    st.builds(Freezes, st.integers(0, 3)),
    st.builds(
        Leaves,
        st.integers(0, 3),
        st.sampled_from(["raise", "hang"]),
        st.sampled_from(["OSError", "TransportError"]),
    ),
    st.builds(Reads, st.sampled_from([0.0, 0.005, 0.03])),
)


async def scripted(steps: Sequence[Step], probe: Probe) -> AsyncGenerator[str, None]:
    """The stream a list of steps describes; its trace records each step's outcome."""
    try:
        for i, step in enumerate(steps):
            if isinstance(step, Yield):
                probe.trace.append(("yield", i))
                with probe.at(f"yield {i}"):
                    yield f"item {i}"
                continue
            with probe.at(f"await {i}"):
                if isinstance(step, Sleep):
                    await anyio.sleep(step.seconds)
                    outcome = "slept"
                elif isinstance(step, Deadline):
                    with anyio.move_on_after(step.after) as scope:
                        await anyio.sleep(step.sleep)
                    outcome = "deadline fired" if scope.cancelled_caught else "deadline unused"
                else:
                    with anyio.CancelScope(shield=True):
                        await anyio.sleep(step.seconds)
                    outcome = "shielded"
            probe.trace.append((outcome, i))
        probe.trace.append("end")
    finally:
        probe.finally_runs += 1


@dataclass
class Observed:
    oracle: Probe
    oracle_items: list[str]
    probe: Probe
    client: Client
    served: Served = field(default_factory=Served)


async def observe(steps: Sequence[Step], model: ClientModel) -> Observed:
    # The oracle: the same stream, consumed by a plain `async for` in a task of its own.
    oracle = Probe()
    oracle_items: list[str] = []

    async def consume() -> None:
        stream = scripted(steps, oracle)
        try:
            async for item in stream:
                oracle_items.append(item)
        finally:
            await stream.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(consume)

    probe = Probe()
    stream = scripted(steps, probe)
    if isinstance(model, Reads):
        client = Client(delay=model.delay)
        served = await serve(stream, client, ping=None, send_timeout=None)
    elif isinstance(model, Freezes):
        client = Client(freeze_after=model.after)
        served = await serve(
            stream,
            client,
            trigger="frozen",
            within=SEND_TIMEOUT + MARGIN,
            ping=None,
            send_timeout=SEND_TIMEOUT,
        )
    else:
        error: Callable[[], BaseException] = (
            (lambda: OSError("the client is gone"))
            if model.error == "OSError"
            else (lambda: TransportError("the server's send broke"))
        )
        client = Client(leave_after=model.after, gone=model.then, error=error)
        served = await serve(
            stream, client, trigger="left", within=MARGIN, ping=None, send_timeout=None
        )
    return Observed(oracle, oracle_items, probe, client, served)


def check(observed: Observed, model: ClientModel) -> None:
    oracle, probe, client = observed.oracle, observed.probe, observed.client
    served = observed.served
    # The oracle itself is sound: nothing reached it and its finally ran once.
    assert oracle.seen == []
    assert oracle.finally_runs == 1
    assert served.ended, "the app did not end by itself"
    assert client.max_active <= 1, "send() was entered concurrently"
    assert probe.finally_runs == 1, f"finally ran {probe.finally_runs} times"
    for where, kind in probe.seen:
        assert kind in ("GeneratorExit", "cancelled"), f"{kind} reached the stream's {where!r}"
    stopped_early = client.frozen_at is not None or (
        client.left_at is not None and client.left_at < served.ended_at
    )
    received = client.events()
    event(f"{type(model).__name__}, {'stopped early' if stopped_early else 'read all'}")
    if not stopped_early:
        assert served.error is None, repr(served.error)
        assert probe.seen == []
        assert probe.trace == oracle.trace
        assert received == observed.oracle_items
        assert client.ended_cleanly(), client.bodies()
        return
    assert_stopped_by_the_response(probe)
    assert probe.trace == oracle.trace[: len(probe.trace)], "the stream's trace diverged"
    assert received == observed.oracle_items[: len(received)]
    if isinstance(model, Leaves) and model.error == "TransportError":
        # The server's own failure may go back to the server.
        assert served.error is None or only(served.error, TransportError), repr(served.error)
    else:
        assert served.error is None, repr(served.error)
    if client.frozen_at is not None:
        assert served.ended_at - client.frozen_at <= SEND_TIMEOUT + MARGIN
    if client.left_at is not None:
        assert served.ended_at - client.left_at <= MARGIN


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=60, deadline=None)
@given(steps=steps_strategy, model=clients_strategy)
# Explicit examples run first, so that a known break is reported at once (not after a long
# search and shrink). These broke on asyncio when the response stepped the stream by hand:
# two items, then the stream waits (its own deadline, a sleep, a shield) while the send
# that delivers the second is slow, fails, freezes or hangs.
@example(steps=[Yield(), Yield(), Deadline(after=0.01, sleep=1.01), Yield()], model=Reads(0.03))
@example(steps=[Yield(), Yield(), Sleep(0.02), Yield()], model=Leaves(1, "raise"))
@example(
    steps=[Yield(), Yield(), Sleep(0.02), Yield()], model=Leaves(1, "raise", "TransportError")
)
@example(steps=[Yield(), Yield(), Shielded(0.02), Yield()], model=Freezes(1))
@example(steps=[Yield(), Yield(), Shielded(0.02), Yield()], model=Leaves(1, "hang"))
@example(steps=[Yield(), Yield(), Deadline(after=0.0, sleep=1.0)], model=Freezes(1))
# And these on both backends: every event was read, then the final empty body's send
# never returns (the client froze, or left and the server's send hangs).
@example(steps=[Yield(), Yield()], model=Freezes(2))
@example(steps=[Yield(), Yield()], model=Leaves(2, "hang"))
def test_a_served_stream_behaves_as_in_a_task_of_its_own(
    backend: str, steps: list[Step], model: ClientModel
) -> None:
    # One event loop per example: a broken example cannot leave tasks behind for the next.
    observed = anyio.run(observe, steps, model, backend=backend)
    check(observed, model)
