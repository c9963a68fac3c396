"""The lean delivery path's hazards: how a parked single-topic subscriber wakes up.

On asyncio a subscriber parks on a bare future of the loop that its topic's log sets at
its next change (`TopicLog.park`); on trio (and any other loop anyio runs on) it waits on
the log's `anyio.Event` (`TopicLog.next_change`). Either way: one wake-up per subscriber
for a whole batch of publishes, every event of the batch handed out in order, nothing
lost between the reader's last look and its parking, and no waiter left behind when a
parked subscriber is closed, dropped or cancelled.
"""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest

from asgi_sse import Hub, Subscription

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def parked(sub: Subscription, hub: Hub, topic: str) -> None:
    """Until ``sub``'s reader is parked on ``topic``'s log."""
    log = hub._core.logs[topic]
    with anyio.fail_after(5):
        while not (log.parked or log.next_change_event is not None):
            await anyio.lowlevel.checkpoint()  # nothing signals a reader's parking
    assert sub._waiter is not None or log.next_change_event is not None


async def primed(sub: Subscription) -> None:
    assert await sub.prepare_stream()
    assert (await sub.__anext__()).startswith(b"id: ")  # the priming frame
    assert sub.next_ready() is None


async def test_one_wake_up_hands_out_a_whole_batch_in_order(anyio_backend: str) -> None:
    async with Hub() as hub:
        sub = hub.subscribe("t")
        await primed(sub)
        got: list[bytes] = []
        wakes = 0

        async def read() -> None:
            nonlocal wakes
            got.append(await sub.__anext__())
            wakes += 1
            while (frame := sub.next_ready()) is not None:
                got.append(frame)

        async with anyio.create_task_group() as group:
            group.start_soon(read)
            await parked(sub, hub, "t")
            ids = [hub.publish_nowait("t", f"event {n}") for n in range(3)]
        assert wakes == 1
        assert [frame.split(b"\n")[0] for frame in got] == [f"id: {i}".encode() for i in ids]
        assert [frame.split(b"\n")[1] for frame in got] == [
            b"data: event 0",
            b"data: event 1",
            b"data: event 2",
        ]
        log = hub._core.logs["t"]
        assert log.parked == []
        assert log.next_change_event is None
        sub.close()


async def test_an_event_published_between_a_look_and_the_park_is_not_missed(
    anyio_backend: str,
) -> None:
    async with Hub() as hub:
        sub = hub.subscribe("t")
        await primed(sub)  # the reader looked: nothing
        event_id = hub.publish_nowait("t", "x")  # before it parks
        with anyio.fail_after(5):
            frame = await sub.__anext__()
        assert frame.startswith(f"id: {event_id}\n".encode())
        sub.close()


async def test_every_parked_subscriber_wakes_once_per_publish(anyio_backend: str) -> None:
    async with Hub() as hub:
        subs = [hub.subscribe("t") for _ in range(20)]
        for sub in subs:
            await primed(sub)
        got: list[list[bytes]] = [[] for _ in subs]

        async def read(index: int) -> None:
            for _ in range(2):
                got[index].append(await subs[index].__anext__())

        async with anyio.create_task_group() as group:
            for index in range(len(subs)):
                group.start_soon(read, index)
            for sub in subs:
                await parked(sub, hub, "t")
            first = hub.publish_nowait("t", "one")
            await anyio.sleep(0.01)
            second = hub.publish_nowait("t", "two")
        for frames in got:
            assert [frame.split(b"\n")[0] for frame in frames] == [
                f"id: {first}".encode(),
                f"id: {second}".encode(),
            ]
        for sub in subs:
            sub.close()
        assert hub.stats().subscribers == 0


async def test_closing_a_parked_subscription_ends_its_reader(anyio_backend: str) -> None:
    async with Hub() as hub:
        sub = hub.subscribe("t")
        await primed(sub)
        ended = anyio.Event()

        async def read() -> None:
            with pytest.raises(StopAsyncIteration):
                await sub.__anext__()
            ended.set()

        async with anyio.create_task_group() as group:
            group.start_soon(read)
            await parked(sub, hub, "t")
            sub.close()
            if anyio_backend == "asyncio":
                with anyio.fail_after(5):
                    await ended.wait()  # at once: its own future is set
            else:
                hub.publish_nowait("t", "x")  # on trio: at the log's next change
        assert ended.is_set()
        assert hub.stats().subscribers == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_dropping_a_parked_subscriber_wakes_it_alone_on_asyncio() -> None:
    async with Hub() as hub:
        dropped, other = hub.subscribe("t"), hub.subscribe("t")
        await primed(dropped)
        await primed(other)
        ended = anyio.Event()

        async def read_dropped() -> None:
            with pytest.raises(StopAsyncIteration):
                await dropped.__anext__()
            ended.set()

        async def read_other() -> None:
            assert b"data: late" in await other.__anext__()

        async with anyio.create_task_group() as group:
            group.start_soon(read_dropped)
            group.start_soon(read_other)
            await parked(dropped, hub, "t")
            await parked(other, hub, "t")
            waiter = other._waiter
            dropped.drop()
            with anyio.fail_after(5):
                await ended.wait()
            assert waiter is not None
            assert not waiter.done()  # not woken for nothing
            assert other._waiter is waiter
            hub.publish_nowait("t", "late")
        dropped.close()
        other.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_cancelled_parked_readers_leave_no_waiter_behind() -> None:
    async with Hub() as hub:
        log_subs = [hub.subscribe("t") for _ in range(100)]
        for sub in log_subs:
            await primed(sub)
        async with anyio.create_task_group() as group:
            for sub in log_subs:
                group.start_soon(sub.__anext__)
            for sub in log_subs:
                await parked(sub, hub, "t")
            log = hub._core.logs["t"]
            assert len(log.parked) == 100
            group.cancel_scope.cancel()
        # Most cancelled futures were let go before any publish (compacted), and none is
        # set by the next change.
        assert len(log.parked) < 100
        assert all(future.cancelled() for future in log.parked)
        hub.publish_nowait("t", "x")
        assert log.parked == []
        for sub in log_subs:
            assert sub._waiter is None
            assert b"data: x" in (sub.next_ready() or b"")
            sub.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_parked_asyncio_reader_holds_no_coroutine_but_its_own() -> None:
    async with Hub() as hub:
        sub = hub.subscribe("t")
        await primed(sub)
        task = asyncio.ensure_future(sub.__anext__())
        await parked(sub, hub, "t")
        assert isinstance(sub._waiter, asyncio.Future)
        # The reader's own coroutine awaits the future itself: nothing in between.
        awaited = getattr(task.get_coro(), "cr_await", None)
        assert awaited is sub._waiter or type(awaited).__name__ == "FutureIter"
        hub.publish_nowait("t", "x")
        assert b"data: x" in await task
        sub.close()


async def test_a_subscription_closed_before_it_is_read_ends_at_once(anyio_backend: str) -> None:
    async with Hub() as hub:
        sub = hub.subscribe("t")
        assert await sub.prepare_stream()
        sub.close()
        frames = [frame async for frame in sub]
        assert len(frames) <= 1  # at most the priming frame queued before the close
