"""Runs (`Hub.run`): producers started on the hub, independent of any connection, read
by subscribers of their topic, ended by one `RunEnded` event and the topic's close.

Memory backend, on asyncio and trio; clients through the in-process test client
(`asgi_sse.testing.connect`) or the subscription itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asgi_sse import (
    Hub,
    HubFull,
    ParsedEvent,
    RunEnded,
    RunEndedInfo,
    SSEEndpoint,
    SSERequest,
    Subscription,
    TopicClosed,
)
from asgi_sse._hub import runs as hub_runs
from asgi_sse.backends import MemoryBackend, RunLeases, TopicLog
from asgi_sse.testing import connect
from tests.support.redisutil import REDIS_URL, redis_prefix
from tests.unit.hub.test_hub import frames_of

__all__ = ("redis_prefix",)  # a fixture, imported to be found here

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def endpoint(hub: Hub, topic: str) -> SSEEndpoint:
    """The app a client streams a run from: from the run's start on a first visit,
    after its Last-Event-ID on a reconnect."""

    def handler(request: SSERequest) -> Subscription:
        return hub.subscribe(topic, last_event_id=request.last_event_id or Hub.EARLIEST)

    return SSEEndpoint(handler)


async def read_all(hub: Hub, topic: str, last_event_id: str | None = Hub.EARLIEST) -> list[bytes]:
    """Every frame a subscription of ``topic`` gets until it ends."""
    frames: list[bytes] = []
    subscription = hub.subscribe(topic, last_event_id=last_event_id)
    try:
        async for frame in subscription:
            frames.append(frame)
    finally:
        await subscription.aclose()
    return frames


def reason_of(event: ParsedEvent) -> Any:
    """The reason of a `RunEnded` event, read as a typed event."""
    assert event.event == RunEnded.event_name
    return RunEndedInfo.model_validate_json(event.data).reason


async def test_a_run_is_read_whole_by_two_subscribers() -> None:
    go = anyio.Event()

    async def producer() -> AsyncIterator[str]:
        await go.wait()
        for number in range(5):
            yield str(number)
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(10):
        async with Hub() as hub:
            topic = await hub.run(producer())
            assert hub.stats().runs == 1
            app = endpoint(hub, topic)
            async with connect(app, "/") as first, connect(app, "/") as second:
                await first.wait_started()
                await second.wait_started()
                go.set()
                got = [[event async for event in first], [event async for event in second]]
            for events in got:
                assert [event.data for event in events[:-1]] == ["0", "1", "2", "3", "4"]
                assert reason_of(events[-1]) == "complete"
            assert first.complete
            assert second.complete
            assert hub.stats().runs == 0


async def test_a_client_resumes_mid_run_without_gap_or_duplicate() -> None:
    send, receive = anyio.create_memory_object_stream[str](10)
    with anyio.fail_after(10):
        async with Hub() as hub:
            topic = await hub.run(receive)
            app = endpoint(hub, topic)
            for item in ("a", "b", "c"):
                await send.send(item)
            async with connect(app, "/") as stream:
                before = await stream.events(3)
                await stream.disconnect()
            for item in ("d", "e"):
                await send.send(item)  # nobody reads: the run goes on
            async with connect(app, "/", last_event_id=before[-1].id) as stream:
                after = await stream.events(2)
                await send.send("f")
                await send.aclose()
                rest = [event async for event in stream]
            datas = [event.data for event in before + after + rest[:-1]]
            assert datas == ["a", "b", "c", "d", "e", "f"]
            assert reason_of(rest[-1]) == "complete"


async def test_a_run_whose_subscribers_all_left_keeps_running_to_its_end() -> None:
    """Two readers leave after the first item; the producer is not told and goes on to
    its last item; a reader that comes later gets every item and `complete`."""
    send, receive = anyio.create_memory_object_stream[str](10)
    finished = anyio.Event()

    async def producer() -> AsyncIterator[str]:
        async with receive:
            async for item in receive:
                yield item
        finished.set()

    with anyio.fail_after(10):
        async with Hub() as hub:
            topic = await hub.run(producer())
            readers = [hub.subscribe(topic, last_event_id=Hub.EARLIEST) for _ in range(2)]
            await send.send("0")
            for reader in readers:
                async for frame in reader:
                    if b"data: 0" in frame:
                        break
                await reader.aclose()
            assert hub.stats().subscribers == 0
            for item in ("1", "2", "3"):
                await send.send(item)
            await send.aclose()
            await finished.wait()
            events = frames_of(await read_all(hub, topic))
    assert [event.data for event in events[:-1]] == ["0", "1", "2", "3"]
    assert reason_of(events[-1]) == "complete"


async def test_a_reconnect_after_the_end_gets_what_it_missed_then_204() -> None:
    send, receive = anyio.create_memory_object_stream[str](10)
    with anyio.fail_after(10):
        async with Hub() as hub:
            topic = await hub.run(receive)
            app = endpoint(hub, topic)
            await send.send("a")
            async with connect(app, "/") as stream:
                [seen] = await stream.events(1)
                await stream.disconnect()
            await send.send("b")
            await send.send("c")
            await send.aclose()
            async with connect(app, "/", last_event_id=seen.id) as stream:
                missed = [event async for event in stream]
            assert stream.status == 200
            assert stream.complete
            assert [event.data for event in missed[:-1]] == ["b", "c"]
            assert reason_of(missed[-1]) == "complete"
            async with connect(app, "/", last_event_id=missed[-1].id) as stream:
                await stream.wait_finished()
            assert stream.status == 204


async def test_a_producer_that_raises_is_logged_and_never_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def producer() -> AsyncIterator[str]:
        for number in range(5):
            yield str(number)
        raise RuntimeError("the secret is hunter2")

    with anyio.fail_after(10), caplog.at_level(logging.ERROR, logger="asgi_sse"):
        async with Hub() as hub:
            topic = await hub.run(producer())
            frames = await read_all(hub, topic)
    assert len(frames) == 6
    assert frames[-1].startswith(b"event: run_ended\n")
    assert b'{"reason":"failed"}' in frames[-1]
    assert not any(b"hunter2" in frame for frame in frames)
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "asgi_sse"
    assert topic in record.getMessage()
    assert record.exc_info is not None
    assert "hunter2" in str(record.exc_info[1])


async def test_a_producer_that_never_awaits_does_not_starve_its_subscribers() -> None:
    count = 5000
    produced = 0

    async def producer() -> AsyncIterator[str]:
        nonlocal produced
        for number in range(count):
            produced += 1
            yield str(number)

    seen_at: list[int] = []
    frames: list[bytes] = []

    async def subscriber(subscription: Subscription) -> None:
        async for frame in subscription:
            if not seen_at:
                seen_at.append(produced)
            frames.append(frame)
        await subscription.aclose()

    with anyio.fail_after(20):
        async with Hub(history=count + 10) as hub, anyio.create_task_group() as group:
            group.start_soon(subscriber, hub.subscribe("busy"))
            await anyio.wait_all_tasks_blocked()
            await hub.run(producer(), topic="busy")
    assert seen_at[0] < count  # it read while the producer was still producing
    events = [frame for frame in frames if b"\ndata: " in frame]
    assert len(events) == count + 1
    assert b'{"reason":"complete"}' in events[-1]


async def test_cancel_ends_the_producer_at_its_await() -> None:
    cleaned = anyio.Event()

    async def producer() -> AsyncIterator[str]:
        try:
            yield "a"
            await anyio.sleep_forever()
        finally:
            cleaned.set()

    with anyio.fail_after(10):
        async with Hub() as hub:
            topic = await hub.run(producer())
            app = endpoint(hub, topic)
            async with connect(app, "/") as stream:
                [first] = await stream.events(1)
                assert first.data == "a"
                with anyio.fail_after(1):
                    assert await hub.cancel(topic) is True
                assert cleaned.is_set()
                rest = [event async for event in stream]
            assert [reason_of(event) for event in rest] == ["cancelled"]
            assert await hub.cancel(topic) is False
            assert await hub.cancel("no-such-run") is False
            assert hub.stats().runs == 0


async def test_max_running_raises_hub_full_and_stats_count_runs() -> None:
    async def sleeper() -> AsyncIterator[str]:
        await anyio.sleep_forever()
        yield "never"

    async def short() -> AsyncIterator[str]:
        yield "done"

    with anyio.fail_after(10):
        async with Hub(max_running=2) as hub:
            one = await hub.run(sleeper())
            two = await hub.run(sleeper(), topic="mine")
            assert two == "mine"
            assert one != two
            assert len(one) >= 16
            with pytest.raises(HubFull):
                await hub.run(sleeper())
            with pytest.raises(ValueError, match="alive"):
                await hub.run(sleeper(), topic="mine")
            assert hub.stats().runs == 2
            assert await hub.cancel(one)
            assert hub.stats().runs == 1
            done = await hub.run(short())
            assert len(await read_all(hub, done)) == 2
            with pytest.raises(TopicClosed):
                await hub.run(short(), topic=done)  # a finished run's topic is closed
            assert await hub.cancel("mine")


async def test_runs_need_a_running_hub_and_valid_options() -> None:
    async def short() -> AsyncIterator[str]:
        yield "x"

    hub = Hub()
    with pytest.raises(RuntimeError, match="enter the hub"):
        await hub.run(short())
    for value in (0, -1.0, float("nan"), float("inf"), True, "5"):
        with pytest.raises(ValueError, match="run_lease"):
            Hub(run_lease=value)  # type: ignore[arg-type]
    for count in (0, 1.5, True):
        with pytest.raises(ValueError, match="max_running"):
            Hub(max_running=count)  # type: ignore[arg-type]
    assert (Hub().run_lease, Hub(run_lease=2).run_lease, Hub().max_running) == (5.0, 2.0, 1000)
    async with hub:
        with pytest.raises(TypeError, match="async iterable"):
            await hub.run(["x"])  # type: ignore[arg-type]
        for topic in ("", 5):
            with pytest.raises(ValueError, match="non-empty str"):
                await hub.run(short(), topic=topic)  # type: ignore[arg-type]


async def test_stop_ends_runs_with_shutdown_even_a_shielded_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hub_runs, "STOP_GRACE", 0.3)
    cleaned = anyio.Event()
    release = anyio.Event()
    stubborn_done = anyio.Event()

    async def polite() -> AsyncIterator[str]:
        try:
            yield "p"
            await anyio.sleep_forever()
        finally:
            cleaned.set()

    async def stubborn() -> AsyncIterator[str]:
        try:
            yield "s"
            with anyio.CancelScope(shield=True):
                await release.wait()
            yield "after"
        finally:
            stubborn_done.set()

    got: dict[str, list[bytes]] = {}

    async def reader(subscription: Subscription, name: str) -> None:
        got[name] = [frame async for frame in subscription]
        await subscription.aclose()

    with anyio.fail_after(10), caplog.at_level(logging.ERROR, logger="asgi_sse"):
        async with anyio.create_task_group() as group:
            async with Hub() as hub:
                for name, producer in (("polite", polite()), ("stubborn", stubborn())):
                    topic = await hub.run(producer, topic=name)
                    group.start_soon(
                        reader, hub.subscribe(topic, last_event_id=Hub.EARLIEST), name
                    )
                await anyio.wait_all_tasks_blocked()
                with anyio.fail_after(2):
                    await hub.stop()
            assert cleaned.is_set()
            assert not stubborn_done.is_set()
            release.set()
            await stubborn_done.wait()
    for name in ("polite", "stubborn"):
        assert b'{"reason":"shutdown"}' in got[name][-1], name
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "stubborn" in record.getMessage()
    assert "ignored its cancellation" in record.getMessage()


async def test_a_thousand_runs_of_five_subscribers_complete_then_expire() -> None:
    runs, subscribers = 1000, 5
    go = anyio.Event()
    ends: list[bytes] = []

    async def producer() -> AsyncIterator[str]:
        await go.wait()
        for number in range(3):
            yield str(number)

    async def reader(subscription: Subscription) -> None:
        frames = [frame async for frame in subscription]
        await subscription.aclose()
        assert len(frames) == 4
        ends.append(frames[-1])

    with anyio.fail_after(45):
        async with Hub(max_running=runs, expire_after=0.5) as hub:
            async with anyio.create_task_group() as group:
                for _ in range(runs):
                    topic = await hub.run(producer())
                    for _ in range(subscribers):
                        subscription = hub.subscribe(topic, last_event_id=Hub.EARLIEST)
                        group.start_soon(reader, subscription)
                assert hub.stats().runs == runs
                await anyio.wait_all_tasks_blocked()
                go.set()
            assert len(ends) == runs * subscribers
            assert all(b'{"reason":"complete"}' in end for end in ends)
            assert hub.stats().runs == 0
            # expire_after: the finished runs' topics go (time passing signals nothing)
            while hub.stats().topics:  # noqa: ASYNC110
                await anyio.sleep(0.05)


async def test_run_leases_is_an_optional_capability_backends_may_lack() -> None:
    assert not isinstance(MemoryBackend(), RunLeases)  # a run's only home: this process
    assert Hub(backend=MemoryBackend()).backend is not None  # nothing new is required


async def test_closing_a_run_s_topic_ends_the_run_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    finished = anyio.Event()

    async def producer() -> AsyncIterator[str]:
        try:
            while True:
                yield "tick"
                await anyio.lowlevel.checkpoint()
        finally:
            finished.set()

    with anyio.fail_after(10), caplog.at_level(logging.ERROR, logger="asgi_sse"):
        async with Hub() as hub:
            topic = await hub.run(producer())
            await hub.close(topic, final_event="closed by the app")
            await finished.wait()
            frames = await read_all(hub, topic)
            assert hub.stats().runs == 0
            assert await hub.cancel(topic) is False
    # (the run may publish a tick or two between close's final event and the close)
    assert any(frame.endswith(b"data: closed by the app\n\n") for frame in frames)
    assert not any(b"run_ended" in frame for frame in frames)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_run_on_the_redis_backend_lives_in_its_process(redis_prefix: str) -> None:
    from asgi_sse.redis import RedisStreamsBackend

    async def producer() -> AsyncIterator[str]:
        for number in range(3):
            yield str(number)
            await anyio.lowlevel.checkpoint()

    hub = Hub(backend=RedisStreamsBackend(REDIS_URL, prefix=redis_prefix))
    with anyio.fail_after(10):
        async with hub:
            topic = await hub.run(producer())
            frames = await read_all(hub, topic)
    assert [frame.rpartition(b"data: ")[2] for frame in frames] == [
        b"0\n\n",
        b"1\n\n",
        b"2\n\n",
        b'{"reason":"complete"}\n\n',
    ]


async def test_leaving_async_with_hub_ends_runs_with_shutdown() -> None:
    cleaned = anyio.Event()

    async def producer() -> AsyncIterator[str]:
        try:
            yield "a"
            await anyio.sleep_forever()
        finally:
            cleaned.set()

    got: list[bytes] = []

    async def reader(subscription: Subscription) -> None:
        got.extend([frame async for frame in subscription])
        await subscription.aclose()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            async with Hub() as hub:
                topic = await hub.run(producer())
                group.start_soon(reader, hub.subscribe(topic, last_event_id=Hub.EARLIEST))
                await anyio.wait_all_tasks_blocked()
            assert cleaned.is_set()
            assert hub.stats().runs == 0
    assert got[0].endswith(b"data: a\n\n")
    assert got[-1].endswith(b'data: {"reason":"shutdown"}\n\n')


# -- runs across processes: the hub's side of RunLeases, with a fake backend -----------


class LeaseStore:
    """What two fake processes share: the claims, the cancel requests, the lapses."""

    def __init__(self) -> None:
        self.claims: dict[str, LeasingBackend] = {}
        self.cancels: dict[str, anyio.Event] = {}
        self.lapsed: set[str] = set()
        self.released: list[str] = []


class LeasingBackend(MemoryBackend):
    """The memory backend plus `RunLeases` over a `LeaseStore` (public imports only)."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.renewals = 0
        self.renewed_twice = anyio.Event()
        self.lost_frames: list[tuple[bytes, bytes]] = []

    async def claim_run(self, log: TopicLog, lease: float, lost: tuple[bytes, bytes]) -> bool:
        if log.name in self.store.claims:
            return False
        self.store.claims[log.name] = self
        self.store.cancels[log.name] = anyio.Event()
        self.lost_frames.append(lost)
        return True

    async def renew_run(self, log: TopicLog, lease: float) -> bool:
        self.renewals += 1
        if self.renewals == 2:
            self.renewed_twice.set()
        return log.name not in self.store.lapsed

    async def release_run(self, log: TopicLog) -> None:
        self.store.released.append(log.name)
        del self.store.claims[log.name]

    async def request_run_cancel(self, topic: str) -> bool:
        if topic not in self.store.claims:
            return False
        self.store.cancels[topic].set()
        return True

    async def run_cancel_requested(self, log: TopicLog) -> None:
        await self.store.cancels[log.name].wait()


async def test_a_backend_with_run_leases_claims_renews_and_releases() -> None:
    store = LeaseStore()
    here, there = LeasingBackend(store), LeasingBackend(store)
    assert isinstance(here, RunLeases)

    async def producer() -> AsyncIterator[str]:
        await here.renewed_twice.wait()  # renewed every third of the lease
        yield "renewed"

    with anyio.fail_after(10):
        async with Hub(backend=here, run_lease=0.06) as hub, Hub(backend=there) as other:
            topic = await hub.run(producer(), topic="answer")
            with pytest.raises(ValueError, match="another process"):
                await other.run(producer(), topic=topic)
            assert other.stats().runs == 0
            frames = await read_all(hub, topic)
    assert frames[0].endswith(b"data: renewed\n\n")
    assert frames[-1].endswith(b'data: {"reason":"complete"}\n\n')
    assert store.released == ["answer"]
    [(prefix, suffix)] = here.lost_frames
    assert prefix.startswith(b"event: run_ended\n")
    assert suffix == b'data: {"reason":"lost"}\n\n'


async def test_run_leases_cancel_from_another_process_and_lose_a_run() -> None:
    store = LeaseStore()
    here, there = LeasingBackend(store), LeasingBackend(store)
    cleaned: list[str] = []

    async def producer(name: str) -> AsyncIterator[str]:
        try:
            yield name
            await anyio.sleep_forever()
        finally:
            cleaned.append(name)

    with anyio.fail_after(10):
        async with Hub(backend=here, run_lease=0.03) as hub, Hub(backend=there) as other:
            cancelled = await hub.run(producer("cancelled"), topic="cancelled")
            assert await other.cancel(cancelled) is True  # asks the process running it
            assert await other.cancel("nobody-runs-this") is False
            frames = await read_all(hub, cancelled)
            assert frames[-1].endswith(b'data: {"reason":"cancelled"}\n\n')
            lost = await hub.run(producer("lost"), topic="lost")
            store.lapsed.add(lost)  # the claim lapsed: ended "lost" elsewhere
            while hub.stats().runs:  # noqa: ASYNC110 - the next renewal finds out
                await anyio.sleep(0.01)
            # Nothing published after its one event: no run_ended from this process.
            assert str(hub.head(lost)).endswith("-1")
    assert cleaned == ["cancelled", "lost"]
    assert store.released == ["cancelled", "lost"]
