"""merge() and buffered(): the contract, point by point, on asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel
from typing_extensions import assert_type

from asgi_sse import (
    BaseEvent,
    EventSourceResponse,
    Merged,
    ServerSentEvent,
    buffered,
    merge,
    resumable_merge,
)
from asgi_sse.testing import connect

pytestmark = pytest.mark.anyio


async def gated(name: str, gates: list[anyio.Event], log: list[str]) -> AsyncIterator[str]:
    """Yield name:i after gate i opens; record the cleanup."""
    try:
        for i, gate in enumerate(gates):
            await gate.wait()
            yield f"{name}:{i}"
    finally:
        log.append(f"{name} closed")


async def test_items_arrive_in_arrival_order_and_stream_ends_when_all_end() -> None:
    a_gates = [anyio.Event() for _ in range(2)]
    b_gates = [anyio.Event() for _ in range(2)]
    log: list[str] = []
    got: list[str] = []
    async with merge(gated("a", a_gates, log), gated("b", b_gates, log)) as merged:
        for gate in (b_gates[0], a_gates[0], a_gates[1], b_gates[1]):
            gate.set()
            got.append(await merged.__anext__())
        with pytest.raises(StopAsyncIteration):
            await merged.__anext__()
    assert got == ["b:0", "a:0", "a:1", "b:1"]
    assert sorted(log) == ["a closed", "b closed"]


async def test_first_error_cancels_others_and_propagates_unwrapped() -> None:
    log: list[str] = []
    boom = anyio.Event()

    async def failing() -> AsyncIterator[str]:
        yield "f:0"
        await boom.wait()
        raise KeyError("source failed")

    with pytest.raises(KeyError, match="source failed"):
        async with merge(failing(), gated("slow", [anyio.Event()], log)) as merged:
            assert await merged.__anext__() == "f:0"
            boom.set()
            async for _ in merged:
                pass  # pragma: no cover
    assert log == ["slow closed"]


async def test_source_raises_while_another_is_parked_at_yield() -> None:
    """One source waits at its yield (the consumer has not taken its item) when the
    other fails: the parked one must be closed too, and the error come out as itself."""
    log: list[str] = []
    fail = anyio.Event()
    parked = anyio.Event()

    async def eager() -> AsyncIterator[str]:
        try:
            parked.set()
            yield "eager"  # nobody receives this: parked here
            yield "never"  # pragma: no cover
        finally:
            log.append("eager closed")

    async def failing() -> AsyncIterator[str]:
        await fail.wait()
        raise ValueError("bad source")
        yield ""  # pragma: no cover

    with pytest.raises(ValueError, match="bad source"):
        async with merge(eager(), failing()):
            with anyio.fail_after(5):
                await parked.wait()
            fail.set()
            await anyio.sleep_forever()
    assert log == ["eager closed"]


async def test_leaving_early_cancels_every_source_and_runs_cleanup() -> None:
    log: list[str] = []

    async def endless(name: str) -> AsyncIterator[str]:
        try:
            while True:
                yield name
                await anyio.lowlevel.checkpoint()
        finally:
            log.append(f"{name} closed")

    blocked_gate = anyio.Event()
    async with merge(endless("a"), endless("b"), gated("blocked", [blocked_gate], log)) as merged:
        async for item in merged:
            if item == "b":
                break
    assert sorted(log) == ["a closed", "b closed", "blocked closed"]


async def test_memory_is_bounded_by_backpressure() -> None:
    produced = 0

    async def fast() -> AsyncIterator[int]:
        nonlocal produced
        while True:
            produced += 1
            yield produced

    async with merge(fast()) as merged:
        for expected in range(1, 51):
            assert await merged.__anext__() == expected
            await anyio.sleep(0.001)
            # a rendezvous channel: the source is at most one item ahead
            assert produced <= expected + 1


async def test_iterating_without_entering_is_a_clear_error() -> None:
    merged = merge(gated("a", [], []))
    with pytest.raises(RuntimeError, match="async with merge"):
        await merged.__anext__()


async def test_entering_twice_is_an_error() -> None:
    merged = merge(gated("a", [], []))
    async with merged:
        with pytest.raises(RuntimeError, match="once"):
            await merged.__aenter__()


async def test_aclose_from_another_task_is_safe() -> None:
    log: list[str] = []
    got: list[str] = []
    async with merge(gated("a", [anyio.Event()], log)) as merged:
        async with anyio.create_task_group() as task_group:

            async def consume() -> None:
                got.extend([item async for item in merged])

            task_group.start_soon(consume)
            await anyio.sleep(0.01)
            await merged.aclose()  # a different task than the consumer
    assert got == []
    assert log == ["a closed"]


async def test_nested_merge() -> None:
    async def one(value: str) -> AsyncIterator[str]:
        yield value

    async with merge(merge(one("a"), one("b")), one("c")) as merged:
        assert sorted([item async for item in merged]) == ["a", "b", "c"]


async def test_client_disconnect_while_a_source_is_blocked_in_an_await() -> None:
    log: list[str] = []
    first = anyio.Event()
    first.set()
    app = EventSourceResponse(
        merge(gated("a", [first, anyio.Event()], log), gated("b", [anyio.Event()], log))
    )
    async with connect(app) as response:
        assert (await response.next_event()).data == "a:0"
        await response.disconnect()
    assert sorted(log) == ["a closed", "b closed"]


class Payload(BaseModel):
    text: str


class Echo(BaseEvent[Payload]):
    pass


class ReverseEcho(BaseEvent[Payload]):
    pass


async def test_merging_typed_streams_keeps_their_types() -> None:
    async def echoes() -> AsyncIterator[Echo]:
        yield Echo(data=Payload(text="hi"))

    async def reverses() -> AsyncIterator[ReverseEcho]:
        yield ReverseEcho(data=Payload(text="ih"))

    merged = merge(echoes(), reverses())
    assert_type(merged, Merged[Echo | ReverseEcho])
    async with merged:
        names = sorted([type(event).__name__ async for event in merged])
    assert names == ["Echo", "ReverseEcho"]


# -- buffered(): a stream in a task of its own, some items ahead -----------------------


def body_sends(messages: list[Any]) -> list[bytes]:
    return [m["body"] for m in messages if m["type"] == "http.response.body" and m["more_body"]]


async def test_buffered_burst_goes_out_in_few_sends() -> None:
    async def burst() -> AsyncIterator[str]:
        for i in range(1000):
            yield str(i)

    async with connect(EventSourceResponse(buffered(burst(), 64))) as response:
        await response.wait_finished()
    sends = body_sends(response.messages)
    assert b"".join(sends) == b"".join(b"data: %d\n\n" % i for i in range(1000))
    assert len(sends) < 1000 / 8  # batches, not one send per event
    assert response.complete


async def test_buffered_keeps_the_stream_bounded_ahead() -> None:
    produced = 0

    async def counting() -> AsyncIterator[int]:
        nonlocal produced
        while True:
            produced += 1
            yield produced

    async with buffered(counting(), 5) as items:
        assert await items.__anext__() == 1
        for _ in range(10):
            await anyio.lowlevel.checkpoint()
        assert produced <= 1 + 5 + 1  # taken, buffered, and one waiting to be handed over


async def test_buffered_stream_error_and_cleanup() -> None:
    cleaned = anyio.Event()

    async def failing() -> AsyncIterator[str]:
        try:
            yield "a"
            raise LookupError("no more")
        finally:
            cleaned.set()

    with pytest.raises(LookupError, match="no more"):
        async with buffered(failing()) as items:
            async for _ in items:
                pass
    assert cleaned.is_set()


async def test_buffered_stream_is_closed_when_the_client_leaves() -> None:
    cleaned = anyio.Event()

    async def endless() -> AsyncIterator[str]:
        try:
            while True:
                yield "x"  # never awaits: only the buffer stops it
        finally:
            cleaned.set()

    async with connect(EventSourceResponse(buffered(endless(), 16))) as response:
        await response.next_event()
        await response.disconnect()
    assert cleaned.is_set()


@pytest.mark.parametrize("size", [-1, True, 1.5])
def test_buffer_must_be_a_count(size: object) -> None:
    async def nothing() -> AsyncIterator[str]:
        yield ""  # pragma: no cover

    with pytest.raises(ValueError, match="buffer must be"):
        buffered(nothing(), size)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer must be"):
        merge(nothing(), buffer=size)  # type: ignore[call-overload]


async def test_the_consumers_error_comes_out_as_itself_while_a_scope_around_is_cancelled() -> None:
    """The client leaves (the response's scope is cancelled) and send raises OSError in
    the same moment: trio's task group sees both; the OSError must come out as itself."""

    async def forever() -> AsyncIterator[str]:
        while True:
            yield "x"
            await anyio.sleep(0.01)

    with anyio.CancelScope() as outer:
        with pytest.raises(OSError, match="client gone"):
            async with merge(forever()) as merged:
                await merged.__anext__()
                outer.cancel()
                raise OSError("client gone")


# -- resumable_merge(): keyed sources, one cursor ------------------------------------------


def counter(name: str, count: int) -> Any:
    """A source that numbers its events from after ``last`` (its own ids)."""

    async def start(last: str | None) -> AsyncIterator[ServerSentEvent]:
        first = 0 if last is None else int(last) + 1
        for n in range(first, first + count):
            yield ServerSentEvent(f"{name}{n}", id=n)
            await anyio.lowlevel.checkpoint()

    return start


async def test_resumable_merge_resumes_every_source_exactly() -> None:
    sources = {"echo": counter("e", 3), "reverse": counter("r", 3)}
    async with resumable_merge(sources) as events:
        first = [event async for event in events]
    assert sorted(e.data or "" for e in first) == ["e0", "e1", "e2", "r0", "r1", "r2"]
    ids = [e.id for e in first]
    assert len(set(ids)) == 6  # no collisions between the sources' own ids
    cursor = ids[3]
    seen = {e.data for e in first[:4]}
    merged = resumable_merge(sources, last_event_id=cursor)
    async with merged as events:
        again = [event async for event in events]
    expected_starts = {
        name: str(max(int(d[1:]) for d in seen if d[0] == name[0])) for name in sources
    }
    assert merged.starts == expected_starts
    resumed = {e.data for e in again}
    assert not resumed & seen  # nothing twice
    assert all(int(d[1:]) <= 5 for d in resumed)


async def test_resumable_merge_with_a_typed_source_and_events_without_ids() -> None:
    class Note(BaseEvent[str]):
        pass

    async def typed(last: str | None) -> AsyncIterator[Note | str]:
        yield "no id"
        yield Note(data="n", id=7)

    async with resumable_merge({"t": typed}) as events:
        plain, note = [event async for event in events]
    assert plain == "no id"
    assert isinstance(note, Note)
    assert note.id is not None
    assert note.id != 7


async def test_resumable_merge_refuses_an_id_that_cannot_go_into_a_cursor() -> None:
    from asgi_sse import InvalidEventError

    async def bad(last: str | None) -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent("x", id="a.b")

    with pytest.raises(InvalidEventError, match="goes into the cursor"):
        async with resumable_merge({"bad": bad}) as events:
            async for _ in events:
                pass


async def test_resumable_merge_starts_afresh_on_a_malformed_cursor() -> None:
    merged = resumable_merge({"a": counter("a", 1)}, last_event_id="not a cursor")
    assert merged.starts == {"a": None}
    with pytest.raises(ValueError, match="at least one source"):
        resumable_merge({})


async def test_resumable_merge_through_the_response_batches_ready_items() -> None:
    response = EventSourceResponse(resumable_merge({"a": counter("a", 3)}, buffer=8))
    async with connect(response) as stream:
        events = await stream.events(3)
    assert [e.data for e in events] == ["a0", "a1", "a2"]
