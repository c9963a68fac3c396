"""The hub on Redis Streams, in-process and against a real Redis: `RedisStreamsBackend`'s
own rules, below the hub's contract (which tests/unit/hub/test_hub.py runs on it too).

Two hubs on one key prefix stand for two processes. An event reaches a hub's log once
its reader reads it back, so the tests wait for conditions (`reached`, `until`), never
for time. The tests that stop, kill or restart Redis run a redis-server of their own
(`tests.support.redisproc`); the others use the shared one under a key prefix per test.
asyncio only: redis's client does not run on trio.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from asgi_sse import (
    Hub,
    HubObserver,
    HubUnavailable,
    ServerSentEvent,
    Subscription,
    TopicClosed,
)
from asgi_sse._protocol.cursor import parse_cursor, source_key
from asgi_sse._protocol.frames import split_at_id
from asgi_sse.backends import NOTHING_LOST, TopicLog
from asgi_sse.redis import RedisStreamsBackend
from tests.support.redisproc import RedisProcess, redis_process
from tests.support.redisutil import REDIS_URL, redis_prefix
from tests.support.servers import free_port
from tests.unit.hub.test_hub import Clock, frames_of, reached, ready, reset_info, take, tick

__all__ = ("redis_prefix",)  # a fixture, imported to be found here

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Hubs(Protocol):
    async def __call__(
        self, url: str = REDIS_URL, *, hub: dict[str, Any] | None = None, **backend: Any
    ) -> Hub:
        """An entered hub (``Hub(**hub)``) on a `RedisStreamsBackend(url, **backend)`
        under the test's prefix: one process; stopped after the test."""
        ...


@pytest.fixture
async def hubs(redis_prefix: str) -> AsyncIterator[Hubs]:
    async with AsyncExitStack() as stack:

        async def make(
            url: str = REDIS_URL, *, hub: dict[str, Any] | None = None, **backend: Any
        ) -> Hub:
            backend.setdefault("prefix", redis_prefix)
            made = Hub(**(hub or {}), backend=RedisStreamsBackend(url, **backend))
            return await stack.enter_async_context(made)

        yield make


@pytest.fixture
async def raw(redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the shared Redis, to look at the streams and to meddle."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A redis-server of this test's own, without persistence: a restart loses it all."""
    with redis_process(appendonly=False) as server:
        yield server


@pytest.fixture
def own_persistent_redis() -> Iterator[RedisProcess]:
    """A redis-server of this test's own with ``appendonly yes``, ``appendfsync always``."""
    with redis_process(appendonly=True) as server:
        yield server


#: Fast reconnects for the tests that take Redis away.
FAST: dict[str, Any] = {"reconnect_min": 0.01, "reconnect_max": 0.1}


def backend_of(hub: Hub) -> RedisStreamsBackend:
    backend = hub.backend
    assert isinstance(backend, RedisStreamsBackend)
    return backend


def stream(prefix: str, topic: str) -> str:
    return f"{prefix}t:{topic}"


def ids(frames: list[bytes]) -> list[str]:
    return [event.id for event in frames_of(frames)]


def named(url: str, name: str) -> str:
    """``url`` with a client name: the backend's connections show under it in CLIENT LIST."""
    return f"{url}{'&' if '?' in url else '?'}client_name={name}"


async def until(hub: Hub, topic: str, condition: Callable[[TopicLog], bool]) -> None:
    """Wait until ``condition`` holds for this process's log of ``topic`` (checked at
    every change of the log)."""
    log = hub._core.logs[topic]
    with anyio.fail_after(5):
        while not condition(log):
            await log.next_change().wait()


async def polled(condition: Callable[[], Any]) -> None:
    """Wait until ``condition()`` (sync or async) is true, looking every 10 ms: for what
    nothing signals (Redis's client list, a reader's counters, a waiter)."""
    with anyio.fail_after(5):
        while True:
            value = condition()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return
            await anyio.sleep(0.01)


async def blocked_readers(raw: aioredis.Redis, name: str) -> int:
    """Connections named ``name`` blocked in an XREAD of topics right now: all of them
    but the one that reads the drops of other processes (counted out; when it happens
    to be between two reads, one fewer, so a wait on this waits a little longer)."""
    clients = await raw.client_list()
    blocked = sum(
        1
        for client in clients
        if client.get("name") == name and client.get("cmd") == "xread" and "b" in client["flags"]
    )
    return max(0, blocked - 1)


async def later_than(raw: aioredis.Redis, event_id: str) -> bool:
    """Whether Redis's clock is past the millisecond of ``event_id``."""
    seconds, microseconds = await raw.time()
    return seconds * 1000 + microseconds // 1000 > int(event_id.split("-")[0])


class ReaderGate:
    """Holds back what a hub's reader read (once ``hold`` is set) until ``release``."""

    def __init__(self, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hold = False
        self.release = anyio.Event()
        client = backend_of(hub)._link.client
        xread = client.xread

        async def gated(*args: Any, **kwargs: Any) -> Any:
            reply = await xread(*args, **kwargs)
            if self.hold:
                await self.release.wait()
            return reply

        monkeypatch.setattr(client, "xread", gated)


async def prepared(hub: Hub, *topics: str, last_event_id: str | None = None) -> Subscription:
    sub = hub.subscribe(*topics, last_event_id=last_event_id)
    assert await sub.prepare_stream()
    return sub


# -- across processes ---------------------------------------------------------------------


async def test_an_event_published_in_one_process_reaches_the_subscribers_of_another(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    a = await hubs()
    b = await hubs()
    sub = await prepared(b, "news")
    assert ready(sub) == [b"id: 0-0\n\n"]  # an empty stream's head
    note = ServerSentEvent("hi", event="note", comment="c")
    first = await a.publish("news", tick(1))
    second = await a.publish("news", note)
    got = await take(sub, 2)
    assert ids(got) == [first, second]
    assert got[1] == b": c\nevent: note\nid: " + second.encode() + b"\ndata: hi\n\n"
    assert a.head("news") is None  # A publishes to the topic but follows nothing
    assert b.head("news") == second
    # The entry carries the id before it and the frame around where the id line goes.
    entries = await raw.xrange(stream(redis_prefix, "news"))
    parts = [split_at_id(tick(1)), split_at_id(note)]
    assert entries == [
        (first.encode(), {b"p": b"0-0", b"h": parts[0][0], b"t": parts[0][1]}),
        (second.encode(), {b"p": first.encode(), b"h": parts[1][0], b"t": parts[1][1]}),
    ]


async def test_a_composite_cursor_resumes_in_another_process_from_the_streams(
    hubs: Hubs,
) -> None:
    a = await hubs()
    sub = await prepared(a, "a", "b")
    ready(sub)
    await reached(a, "a", await a.publish("a", "a1"))
    await reached(a, "b", await a.publish("b", "b1"))
    cursor = frames_of(ready(sub))[-1].id
    b = await hubs()  # follows neither topic: both replays come from Redis
    missed = [await b.publish(topic, f"{topic}2") for topic in ("a", "b")]
    again = await prepared(b, "a", "b", last_event_id=cursor)
    replayed = frames_of(ready(again))
    assert sorted(e.data for e in replayed) == ["a2", "b2"]
    assert parse_cursor(replayed[-1].id) == {
        source_key("a"): missed[0],
        source_key("b"): missed[1],
    }


# -- gaps -------------------------------------------------------------------------------------


async def test_an_entry_after_one_this_process_never_read_is_a_gap_told_with_a_reset(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    a = await hubs()
    b = await hubs()
    live = await prepared(b, "news")
    ready(live)
    e1 = await a.publish("news", tick(1))
    await reached(b, "news", e1)
    assert ids(ready(live)) == [e1]
    # An entry whose predecessor ("lost") b never read: trimmed before it could, say.
    ms = int(e1.split("-")[0])
    lost, after = f"{ms + 5}-0", f"{ms + 10}-0"
    await raw.xadd(
        stream(redis_prefix, "news"), {"p": lost, "h": b"", "t": b"data: y\n\n"}, id=after
    )
    await reached(b, "news", after)
    (frame,) = ready(live)
    assert reset_info(frame) == {"reason": "gone", "topics": ["news"], "resume_from": after}
    assert backend_of(b).gaps == 1
    behind = await prepared(b, "news", last_event_id=e1)  # behind the gap: gone
    assert reset_info(ready(behind)[0])["reason"] == "gone"
    at_lost = await prepared(b, "news", last_event_id=lost)  # read elsewhere: exact
    assert ids(ready(at_lost)) == [after]
    fresh = await prepared(b, "news")
    assert ready(fresh) == [f"id: {after}\n\n".encode()]
    e2 = await a.publish("news", tick(2))  # after the hand-made entry: no gap
    await reached(b, "news", e2)
    for sub in (live, behind, at_lost, fresh):
        assert ids(ready(sub)) == [e2]
    assert backend_of(b).gaps == 1
    assert b.stats().resets == {"gone": 2}


async def test_a_stream_deleted_under_its_subscribers_is_a_gap_at_the_next_publish(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    a = await hubs()
    b = await hubs()
    live = await prepared(b, "news")
    ready(live)
    e1 = await a.publish("news", tick(1))
    await reached(b, "news", e1)
    ready(live)
    # (a millisecond later: the new stream's first id must come after e1, as after a
    # real restart, or b's reader, reading after e1, would never see it)
    await polled(lambda: later_than(raw, e1))
    await raw.delete(stream(redis_prefix, "news"))  # Redis lost it (restarted empty)
    e2 = await a.publish("news", tick(2))  # the first entry of a new stream: "p" 0-0
    await until(b, "news", lambda log: log.lost_through != NOTHING_LOST and log.newest_id() == e2)
    (frame,) = ready(live)
    assert reset_info(frame) == {"reason": "gone", "topics": ["news"], "resume_from": e2}
    fresh = await prepared(b, "news")
    assert ready(fresh) == [f"id: {e2}\n\n".encode()]
    e3 = await a.publish("news", tick(3))
    await reached(b, "news", e3)
    assert ids(ready(live)) == ids(ready(fresh)) == [e3]


# -- resuming from Redis ------------------------------------------------------------------------


async def test_an_id_older_than_the_log_is_read_back_from_redis_page_by_page(
    hubs: Hubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await hubs()
    b = await hubs(page_size=2)
    client = backend_of(b)._link.client
    pages: list[Any] = []
    xrevrange = client.xrevrange

    async def counting(*args: Any, **kwargs: Any) -> Any:
        pages.append(kwargs.get("count"))
        return await xrevrange(*args, **kwargs)

    monkeypatch.setattr(client, "xrevrange", counting)
    published = [await a.publish("news", tick(n)) for n in range(7)]
    sub = await prepared(b, "news", last_event_id=published[1])
    assert ids(ready(sub)) == published[2:]
    assert pages == [1, 2, 2, 2]  # the newest id when b attached, then pages of 2
    during = await a.publish("news", tick(7))
    assert ids(await take(sub, 1)) == [during]  # replay and live: no gap, no duplicate
    older = await prepared(b, "news", last_event_id=published[0])  # older than b's log
    assert ids(ready(older)) == [*published[1:], during]
    c = await hubs(page_size=3)
    earliest = await prepared(c, "news", last_event_id=Hub.EARLIEST)
    assert ids(ready(earliest)) == [*published, during]


async def test_an_id_ahead_of_this_process_waits_for_its_reader_and_resumes_exactly(
    hubs: Hubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await hubs()
    b = await hubs()
    # b's reader hands over what it read only when the test says so
    gate = ReaderGate(b, monkeypatch)
    watcher = await prepared(b, "news")
    ready(watcher)
    gate.hold = True
    e1 = await a.publish("news", tick(1))  # in Redis, not yet in b's log
    e2 = await a.publish("news", tick(2))
    late = b.subscribe("news", last_event_id=e1)
    results: list[bool] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:

            async def prepare() -> None:
                results.append(await late.prepare_stream())

            group.start_soon(prepare)
            await polled(lambda: b._core.logs["news"].next_change_event is not None)  # it waits
            assert results == []  # for b's reader, not answering from a guess
            gate.release.set()
    assert results == [True]
    await reached(b, "news", e2)
    assert ids(ready(late)) == [e2]
    assert ids(ready(watcher)) == [e1, e2]


async def test_a_resume_waiting_for_the_reader_ends_when_the_hub_stops(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hub is entered inside the task group (hub.stop() must run where it was entered).
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            a = await Hub(backend=RedisStreamsBackend(REDIS_URL, prefix=redis_prefix)).__aenter__()
            b = await Hub(backend=RedisStreamsBackend(REDIS_URL, prefix=redis_prefix)).__aenter__()
            client = backend_of(b)._link.client
            xread = client.xread

            async def held(*args: Any, **kwargs: Any) -> Any:
                reply = await xread(*args, **kwargs)
                await anyio.sleep_forever()
                return reply  # pragma: no cover

            monkeypatch.setattr(client, "xread", held)
            await prepared(b, "news")
            e1 = await a.publish("news", tick(1))
            late = b.subscribe("news", last_event_id=e1)
            frames: list[bytes] = []
            answered: list[bool] = []

            async def follow() -> None:
                answered.append(await late.prepare_stream())
                frames.extend([frame async for frame in late])

            group.start_soon(follow)
            await polled(lambda: b._core.logs["news"].next_change_event is not None)  # it waits
            assert answered == []
            await b.stop()
            await a.stop()
    assert answered == [True]  # the response had opened; its stream then ends
    assert frames == []


async def test_a_backlog_reaches_the_log_a_log_at_a_time_so_a_subscriber_keeps_up(
    hubs: Hubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog bigger than the log (in bytes, id lines counted) is fed a log's worth
    per batch: a subscriber that had read everything takes each batch in its turn and
    never gets a Reset (once, the batch was one frame more than the log held)."""
    a = await hubs()
    b = await hubs(hub={"history_bytes": 1000})  # 3 frames of ~330 bytes
    gate = ReaderGate(b, monkeypatch)
    live = await prepared(b, "big")
    ready(live)
    gate.hold = True
    published = [await a.publish("big", "x" * 300) for _ in range(10)]  # one XREAD's worth
    gate.release.set()
    frames = await take(live, 10)  # a batch at a time, its turn between them: no Reset
    assert ids(frames) == published
    assert b.stats().resets == {}


async def test_the_delivery_lag_is_measured_from_the_time_in_the_entry_id(hubs: Hubs) -> None:
    lags: list[float] = []

    class Lag(HubObserver):
        lag_every = 2

        def on_lag(self, topic: str, seconds: float) -> None:
            lags.append(seconds)

    a = await hubs()
    b = await hubs(hub={"observer": Lag()})
    live = await prepared(b, "news")
    ready(live)
    published = [await a.publish("news", tick(n)) for n in range(4)]
    assert ids(await take(live, 4)) == published
    assert len(lags) == 2  # one event in two
    assert all(-1 < lag < 5 for lag in lags)  # one machine's clock: a small lag


async def test_the_observer_s_lag_every_is_read_as_the_reader_reads(hubs: Hubs) -> None:
    lags: list[float] = []

    class Lag(HubObserver):
        def on_lag(self, topic: str, seconds: float) -> None:
            lags.append(seconds)

    observer = Lag()
    a = await hubs()
    b = await hubs(hub={"observer": observer})
    live = await prepared(b, "news")  # its log is made and followed: lag_every is 0
    ready(live)
    observer.lag_every = 1
    published = [await a.publish("news", tick(n)) for n in range(3)]
    assert ids(await take(live, 3)) == published
    assert len(lags) == 3


async def test_ids_this_topic_never_had_are_unknown_and_others_are_malformed(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    b = await hubs()
    watcher = await prepared(b, "news")
    for n, previous in ((100, "0-0"), (200, "100-0"), (300, "200-0")):
        await raw.xadd(
            stream(redis_prefix, "news"),
            {"p": previous, "h": b"", "t": f"data: {n}\n\n".encode()},
            id=f"{n}-0",
        )
    await reached(b, "news", "300-0")
    assert len(ready(watcher)) == 4
    for last_event_id, reason in (
        ("150-0", "unknown"),  # between two entries b holds
        ("300-1", "unknown"),  # after the newest: Redis does not have it
        ("99999999999999-0", "unknown"),
        ("ab-1", "malformed"),  # the shape of a memory id, not of a stream id
        ("nonsense", "malformed"),
    ):
        sub = await prepared(b, "news", last_event_id=last_event_id)
        (frame,) = ready(sub)
        assert reset_info(frame) == {"reason": reason, "topics": ["news"], "resume_from": "300-0"}
    exact = await prepared(b, "news", last_event_id="100-0")
    assert ids(ready(exact)) == ["200-0", "300-0"]
    start = await prepared(b, "news", last_event_id="0-0")  # before the first entry
    assert ids(ready(start)) == ["100-0", "200-0", "300-0"]


async def test_the_hub_history_bounds_an_exact_resume_even_where_redis_holds_more(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    a = await hubs(maxlen=100)
    b = await hubs(hub={"history": 3}, maxlen=100)
    published = [await a.publish("news", tick(n)) for n in range(6)]
    assert await raw.xlen(stream(redis_prefix, "news")) == 6
    older = await prepared(b, "news", last_event_id=published[1])
    assert reset_info(ready(older)[0])["reason"] == "gone"
    exact = await prepared(b, "news", last_event_id=published[2])
    assert ids(ready(exact)) == published[3:]
    earliest = await prepared(b, "news", last_event_id=Hub.EARLIEST)
    assert ids(ready(earliest)) == published[3:]


async def test_a_stream_trimmed_by_maxlen_resumes_what_it_still_holds(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    a = await hubs(hub={"history": 5})  # MAXLEN ~ 5: Redis trims whole nodes, later
    published = [await a.publish("news", "x") for _ in range(300)]
    held = await raw.xlen(stream(redis_prefix, "news"))
    assert 5 <= held < 300
    b = await hubs(hub={"history": 5})
    exact = await prepared(b, "news", last_event_id=published[-6])
    assert ids(ready(exact)) == published[-5:]
    gone = await prepared(b, "news", last_event_id=published[0])
    assert reset_info(ready(gone)[0])["reason"] == "gone"


async def test_a_resume_older_than_the_log_after_redis_lost_it_is_gone_and_earliest_keeps_the_log(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    b = await hubs(hub={"history": 10, "history_bytes": 1000})
    live = await prepared(b, "big")
    published = [await b.publish("big", "x" * 300) for _ in range(5)]
    await reached(b, "big", published[-1])
    ready(live)  # the log holds the last 3 (bytes): the id before its oldest is published[1]
    await raw.delete(stream(redis_prefix, "big"))
    late = await prepared(b, "big", last_event_id=published[0])
    assert reset_info(ready(late)[0])["reason"] == "gone"
    earliest = await prepared(b, "big", last_event_id=Hub.EARLIEST)
    assert ids(ready(earliest)) == published[2:]


async def test_earliest_reads_what_follows_a_break_in_the_stream(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    a = await hubs()
    e1 = await a.publish("news", "1")
    e2 = await a.publish("news", "2")
    ms = int(e2.split("-")[0])
    lost, broken = f"{ms + 5}-0", f"{ms + 10}-0"  # after an entry the stream lost
    await raw.xadd(
        stream(redis_prefix, "news"), {"p": lost, "h": b"", "t": b"data: x\n\n"}, id=broken
    )
    e3 = await a.publish("news", "3")
    b = await hubs()
    across = await prepared(b, "news", last_event_id=e1)  # its replay would cross it
    assert reset_info(ready(across)[0])["reason"] == "gone"
    c = await hubs()
    earliest = await prepared(c, "news", last_event_id=Hub.EARLIEST)
    assert ids(ready(earliest)) == [broken, e3]
    for behind in (e1, e2):  # now below c's log, which starts after the break
        across = await prepared(c, "news", last_event_id=behind)
        assert reset_info(ready(across)[0])["reason"] == "gone"
    at_lost = await prepared(c, "news", last_event_id=lost)
    assert ids(ready(at_lost)) == [broken, e3]


async def test_a_replay_read_while_the_log_moved_is_read_again_never_spliced(
    hubs: Hubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await hubs()
    published = [await a.publish("news", tick(n)) for n in range(3)]
    b = await hubs(hub={"history": 2})
    live = await prepared(b, "news")  # b's log starts after published[2]
    published.append(await a.publish("news", tick(3)))
    await reached(b, "news", published[-1])  # b's log: 1 of 2 frames, room for 1 more
    assert ids(ready(live)[1:]) == published[3:]
    client = backend_of(b)._link.client
    xrevrange = client.xrevrange
    reads = 0

    async def meanwhile(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        page = await xrevrange(*args, **kwargs)
        if reads == 1:  # while Redis answers, two events arrive and trim the log
            for n in (4, 5):
                published.append(await a.publish("news", tick(n)))
            await reached(b, "news", published[-1])
        return page

    monkeypatch.setattr(client, "xrevrange", meanwhile)
    late = await prepared(b, "news", last_event_id=published[1])
    assert reset_info(ready(late)[0]) == {
        "reason": "gone",  # looked again: the log is full now, published[2:4] are gone
        "topics": ["news"],
        "resume_from": published[-1],
    }
    assert reads == 1
    assert ids(ready(live)) == published[4:]


async def test_a_log_that_keeps_moving_gives_up_after_a_few_looks(
    hubs: Hubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await hubs()
    published = [await a.publish("news", tick(n)) for n in range(3)]
    b = await hubs()
    backend = backend_of(b)
    looks = 0

    async def moved(log: TopicLog, position: str | None) -> None:
        nonlocal looks
        looks += 1
        await anyio.lowlevel.checkpoint()

    monkeypatch.setattr(backend._locator, "_backfill", moved)
    sub = await prepared(b, "news", last_event_id=published[0])
    assert reset_info(ready(sub)[0])["reason"] == "gone"  # never a replay that may be wrong
    assert looks == 8
    earliest = await prepared(b, "news", last_event_id=Hub.EARLIEST)
    assert ready(earliest) == []  # what the log holds: nothing
    assert looks == 16


# -- closing -----------------------------------------------------------------------------------


async def test_closing_in_one_process_ends_the_topic_in_every_process(hubs: Hubs) -> None:
    a = await hubs()
    b = await hubs()
    c = await hubs()  # follows nothing: only Redis knows the topic is closed
    live = await prepared(b, "news")
    ready(live)
    e1 = await a.publish("news", tick(1))
    await a.close("news", final_event=ServerSentEvent("bye", event="closed"))
    frames = frames_of(await take(live, 2))
    assert [frames[0].id, frames[1].event] == [e1, "closed"]
    with anyio.fail_after(5), pytest.raises(StopAsyncIteration):
        await live.__anext__()
    for hub in (a, b):
        late = hub.subscribe("news")
        assert not await late.prepare_stream()  # 204
    behind = await prepared(b, "news", last_event_id=e1)
    assert [e.event for e in frames_of(ready(behind))] == ["closed"]
    with pytest.raises(StopAsyncIteration):
        behind.next_nowait()
    for hub in (a, b, c):
        with pytest.raises(TopicClosed):
            await hub.publish("news", tick(2))
    await c.close("news")  # closed already: nothing to do, no error


async def test_a_client_at_the_close_marker_gets_204_in_every_process(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    """The close marker's id is a head id in a process that attached after the close
    (a Reset's resume_from, a composite cursor); a process that followed the topic when
    it closed never holds it, and must still answer that client 204 (once, it answered
    200 and retried forever, one XRANGE per turn)."""
    a = await hubs()
    b = await hubs()
    await prepared(a, "news")  # a follows the topic when it closes
    await a.publish("news", tick(1))
    await a.close("news")
    await until(a, "news", lambda log: log.closed)
    reset = await prepared(b, "news", last_event_id="nonsense")
    marker = reset_info(ready(reset)[0])["resume_from"]
    newest: Any = await raw.xrevrange(stream(redis_prefix, "news"), count=1)
    assert marker == newest[0][0].decode()  # the close marker's id
    back = a.subscribe("news", last_event_id=marker)  # the browser comes back, to a
    with anyio.fail_after(2):
        assert not await back.prepare_stream()  # nothing more will ever come: 204
    with anyio.fail_after(2), pytest.raises(StopAsyncIteration):
        await back.__anext__()


# -- readers ------------------------------------------------------------------------------------


async def test_a_new_topic_wakes_a_reader_blocked_without_it(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    name = f"wake-{redis_prefix.split(':')[1]}"
    b = await hubs(named(REDIS_URL, name), block=5)
    a = await hubs()
    first = await prepared(b, "one")
    e1 = await a.publish("one", "x")
    with anyio.fail_after(2):  # the first subscriber in a process: well under `block`
        assert ids((await take(first, 2))[1:]) == [e1]
    await polled(lambda: blocked_readers(raw, name))  # in a 5 s XREAD without "two"
    second = await prepared(b, "two")
    e2 = await a.publish("two", "y")
    with anyio.fail_after(2):  # not after the 5 s: the new topic woke the reader
        assert ids((await take(second, 2))[1:]) == [e2]


async def test_one_reader_per_group_of_topics_whatever_the_subscribers(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    name = f"readers-{redis_prefix.split(':')[1]}"
    b = await hubs(named(REDIS_URL, name), topics_per_reader=2, block=5)
    topics = [f"t{n}" for n in range(5)]
    subs = [await prepared(b, topic) for topic in topics]
    backend = backend_of(b)
    assert [len(reader.logs) for reader in backend._readers] == [2, 2, 1]
    await polled(_count_is(raw, name, 3))  # three blocking connections
    subs += [await prepared(b, topic) for topic in topics for _ in range(20)]
    assert [len(reader.logs) for reader in backend._readers] == [2, 2, 1]
    await polled(_count_is(raw, name, 3))
    published = [await b.publish(topic, topic) for topic in topics]
    for topic, event_id in zip(topics, published, strict=True):
        await reached(b, topic, event_id)
    assert all(len(ids(ready(sub))) == 1 for sub in subs[5:])


def _count_is(raw: aioredis.Redis, name: str, count: int) -> Callable[[], Any]:
    async def check() -> bool:
        return await blocked_readers(raw, name) == count

    return check


async def test_a_topic_nobody_follows_any_more_is_forgotten_by_its_reader(
    hubs: Hubs, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    name = f"forget-{redis_prefix.split(':')[1]}"
    b = await hubs(named(REDIS_URL, name), hub={"expire_after": 10}, block=5)
    a = await hubs()
    keep = await prepared(b, "keep")
    ready(keep)
    old = await prepared(b, "old")
    old.close()
    backend = backend_of(b)
    key = f"{backend.prefix}t:old".encode()
    reader = backend._reader_of[key]
    # Once the reader is in an XREAD that names "old" (after the wake "old" sent)...
    newest_wake: Any = await backend._link.client.xrevrange(reader.wake_key, count=1)
    await polled(lambda: reader.wake_id == newest_wake[0][0])
    await polled(lambda: blocked_readers(backend._link.client, name))
    clock.now += 11
    await b.publish("new", "x")  # ...a sweep on the way forgets "old"
    assert key not in backend._reader_of
    assert key not in reader.logs
    assert key not in reader.last_read
    assert b.head("old") is None
    # The reader's XREAD in flight still names "old": what it returns for it is dropped.
    await a.publish("old", "dropped")
    kept = await a.publish("keep", "kept")
    await reached(b, "keep", kept)
    assert ids(ready(keep)) == [kept]
    assert "old" not in b._core.logs


async def test_concurrent_first_subscribers_attach_the_topic_once(hubs: Hubs) -> None:
    b = await hubs()
    subs = [b.subscribe("news") for _ in range(5)]
    async with anyio.create_task_group() as group:
        for sub in subs:
            group.start_soon(sub.prepare_stream)
    backend = backend_of(b)
    assert [len(reader.logs) for reader in backend._readers] == [1]
    event_id = await b.publish("news", "x")
    await reached(b, "news", event_id)
    for sub in subs:
        assert ids(ready(sub)[1:]) == [event_id]


async def test_expire_after_sets_the_stream_to_expire(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    b = await hubs(expire_after=60)
    await b.publish("news", "x")
    ttl = await raw.pttl(stream(redis_prefix, "news"))
    assert 0 < ttl <= 60_000
    await b.close("news")
    assert 0 < await raw.pttl(stream(redis_prefix, "news")) <= 60_000


# -- Redis away ---------------------------------------------------------------------------------


async def test_a_hub_whose_redis_does_not_answer_does_not_start() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(HubUnavailable, match=re.escape(url)):
        async with Hub(backend=RedisStreamsBackend(url)):
            pass  # pragma: no cover
    port = free_port()
    client = aioredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(HubUnavailable, match=f"127.0.0.1:{port}"):
            async with Hub(backend=RedisStreamsBackend(client)):
                pass  # pragma: no cover
    finally:
        await client.aclose()


@pytest.mark.timeout(60)
async def test_publish_raises_hub_unavailable_while_redis_is_down_and_works_after(
    own_redis: RedisProcess, hubs: Hubs
) -> None:
    b = await hubs(own_redis.url(), **FAST)
    await b.publish("news", "before")
    own_redis.kill()
    with pytest.raises(HubUnavailable, match=re.escape(own_redis.url())):
        await b.publish("news", "while down")
    with pytest.raises(HubUnavailable):
        await b.close("news")
    await anyio.to_thread.run_sync(own_redis.start)
    event_id = await b.publish("news", "after")  # its script is loaded again, too
    sub = await prepared(b, "news", last_event_id=Hub.EARLIEST)
    assert ids(ready(sub)) == [event_id]  # Redis came back empty
    assert b.stats().published == 2


@pytest.mark.timeout(60)
async def test_restarted_without_its_data_redis_gives_live_subscribers_a_reset(
    own_redis: RedisProcess, hubs: Hubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    b = await hubs(own_redis.url(), hub={"expire_after": 10}, topics_per_reader=1, **FAST)
    live = await prepared(b, "news")
    ready(live)
    e1 = await b.publish("news", tick(1))
    await reached(b, "news", e1)
    ready(live)
    idle = await prepared(b, "idle")  # its reader will have nothing left to read
    idle.close()
    clock.now += 11
    await b.publish("new", "x")  # forgets "idle"
    backend = backend_of(b)
    assert [len(reader.logs) for reader in backend._readers] == [1, 0]
    own_redis.kill()
    with pytest.raises(HubUnavailable):
        await b.publish("news", tick(2))
    await anyio.to_thread.run_sync(own_redis.start)
    # Once its reader is back, not at the next publish: the events it read are gone.
    await until(b, "news", lambda log: log.lost_through != NOTHING_LOST)
    (frame,) = ready(live)
    assert reset_info(frame) == {"reason": "gone", "topics": ["news"], "resume_from": "0-0"}
    e2 = await b.publish("news", tick(3))
    await reached(b, "news", e2)
    assert ids(ready(live)) == [e2]
    await polled(lambda: backend.reconnects >= 2)  # both readers
    assert backend.gaps == 1


@pytest.mark.timeout(60)
async def test_redis_restarted_with_its_data_loses_and_repeats_nothing(
    own_persistent_redis: RedisProcess, hubs: Hubs
) -> None:
    server = own_persistent_redis
    a = await hubs(server.url(), **FAST)
    b = await hubs(server.url(), **FAST)
    live = await prepared(b, "news")
    ready(live)
    published = [await a.publish("news", tick(n)) for n in range(3)]
    other = [await a.publish("other", str(n)) for n in range(2)]
    assert ids(await take(live, 3)) == published
    server.kill()
    with pytest.raises(HubUnavailable):
        await a.publish("news", tick(99))  # not stored, so not delivered either
    # Clients that connect meanwhile: their responses open, their ids resolve later.
    replay = b.subscribe("other", last_event_id=other[0])
    fresh = b.subscribe("third")
    assert await replay.prepare_stream()
    assert await fresh.prepare_stream()
    assert ready(replay) == ready(fresh) == []
    got: dict[str, list[bytes]] = {}
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:

            async def collect(name: str, sub: Subscription, count: int) -> None:
                got[name] = await take(sub, count)

            group.start_soon(collect, "replay", replay, 1)
            group.start_soon(collect, "fresh", fresh, 1)
            await anyio.to_thread.run_sync(server.start)
    assert ids(got["replay"]) == [other[1]]
    assert got["fresh"] == [b"id: 0-0\n\n"]
    after = await a.publish("news", tick(3))
    assert ids(await take(live, 1)) == [after]  # no Reset: nothing was lost
    assert backend_of(b).gaps == 0
    assert backend_of(b).reconnects >= 1


@pytest.mark.timeout(60)
async def test_a_hub_stops_cleanly_while_redis_is_down(own_redis: RedisProcess) -> None:
    hub = Hub(backend=RedisStreamsBackend(own_redis.url(), prefix="x:", **FAST))
    await hub.__aenter__()
    sub = await prepared(hub, "news")
    ready(sub)
    own_redis.kill()
    started = anyio.current_time()
    await hub.__aexit__(None, None, None)  # (not under fail_after: see the stop bug below)
    assert anyio.current_time() - started < 3
    with pytest.raises(StopAsyncIteration):
        sub.next_nowait()


@pytest.mark.timeout(60)
async def test_the_first_publish_after_redis_came_back_is_stored(
    own_redis: RedisProcess, hubs: Hubs
) -> None:
    """After a Redis restart, the first publish on an idle pooled connection is stored
    (redis-py 8's RESP3 pool with maintenance notifications skips the check that finds
    a connection the server closed, and the backend never retries: its client speaks
    RESP2)."""
    b = await hubs(own_redis.url(), **FAST)
    live = await prepared(b, "news")
    ready(live)
    e1 = await b.publish("news", tick(1))  # leaves an idle connection in the pool
    await reached(b, "news", e1)
    ready(live)
    own_redis.kill()
    await anyio.to_thread.run_sync(own_redis.start)
    await until(b, "news", lambda log: log.lost_through != NOTHING_LOST)  # the reader reads again
    e2 = await b.publish("news", tick(2))
    await reached(b, "news", e2)


# -- refused commands ---------------------------------------------------------------------------


async def test_a_topic_key_of_another_type_is_refused_not_unavailable(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    b = await hubs(**FAST)
    await raw.set(stream(redis_prefix, "bad"), "not a stream")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await b.publish("bad", "x")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await b.subscribe("bad").prepare_stream()
    # Taken over after it was followed: the reader logs it, and goes on once it is a stream.
    sub = await prepared(b, "taken")
    e1 = await b.publish("taken", "1")
    await reached(b, "taken", e1)
    ready(sub)
    key = stream(redis_prefix, "taken")
    await raw.delete(key)
    await raw.set(key, "not a stream")
    await polled(lambda: "reading the topics' streams failed" in caplog.text)
    await raw.delete(key)
    await until(b, "taken", lambda log: log.lost_through != NOTHING_LOST)  # its events are gone
    assert reset_info(ready(sub)[0])["reason"] == "gone"
    e2 = await b.publish("taken", "2")
    await reached(b, "taken", e2)
    assert ids(ready(sub)) == [e2]


async def test_a_key_of_another_type_does_not_stall_the_other_topics_of_its_reader(
    hubs: Hubs, raw: aioredis.Redis, redis_prefix: str
) -> None:
    """One XREAD reads every topic of a reader: a key that is no stream any more must
    not make it fail with WRONGTYPE for all of them (the key is left out; its topic gets
    a Reset)."""
    b = await hubs()
    good = await prepared(b, "good")
    ready(good)
    await prepared(b, "taken")
    await raw.set(stream(redis_prefix, "taken"), "not a stream")
    for n in range(3):
        event_id = await b.publish("good", f"still flowing {n}")
        assert ids(await take(good, 1)) == [event_id]


async def test_a_failure_feeding_one_topic_is_a_gap_not_the_end_of_its_reader(
    hubs: Hubs, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever fails while the reader puts a topic's entries into its log (a bug, an
    observer's odd value once did), the reader goes on: the topics it reads with that
    one keep flowing, and that topic's subscribers get a Reset, then its next events -
    nothing appended twice."""
    b = await hubs()
    broken = await prepared(b, "broken")
    fine = await prepared(b, "fine")
    ready(broken)
    ready(fine)
    append = TopicLog.append
    failures = [RuntimeError("a bug in the log")]

    def append_once_broken(log: TopicLog, *args: Any, **kwargs: Any) -> bytes:
        if log.name == "broken" and failures:
            raise failures.pop()
        return append(log, *args, **kwargs)

    monkeypatch.setattr(TopicLog, "append", append_once_broken)
    lost = await b.publish("broken", "lost")
    (frame,) = await take(broken, 1)
    assert reset_info(frame) == {"reason": "gone", "topics": ["broken"], "resume_from": lost}
    for topic, sub in (("fine", fine), ("broken", broken)):
        event_id = await b.publish(topic, f"{topic} goes on")
        assert ids(await take(sub, 1)) == [event_id]
    assert "feeding 'broken' from its stream failed" in caplog.text
    assert backend_of(b).gaps == 1


# -- the backend's options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"page_size": 0}, "page_size must be a positive int"),
        ({"read_count": True}, "read_count must be a positive int"),
        ({"topics_per_reader": 1.5}, "topics_per_reader must be a positive int"),
        ({"maxlen": 0}, "maxlen must be a positive int"),
        ({"expire_after": 0}, "expire_after must be positive"),
        ({"block": 0}, "block must be between"),
        ({"block": 61}, "block must be between"),
        ({"reconnect_min": 0}, "reconnect_min"),
        ({"reconnect_min": 2, "reconnect_max": 1}, "reconnect_min"),
    ],
)
def test_options_are_checked(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RedisStreamsBackend(REDIS_URL, **options)


def test_a_client_must_return_bytes_and_time_out_well_after_a_block() -> None:
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisStreamsBackend(aioredis.Redis.from_url(REDIS_URL, decode_responses=True))
    slow = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2)
    with pytest.raises(ValueError, match="well under the client's socket timeout"):
        RedisStreamsBackend(slow, block=2)
    assert RedisStreamsBackend(slow, block=1).block == 1


async def test_a_client_of_the_app_serves_and_stays_open(redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        backend = RedisStreamsBackend(client, prefix=redis_prefix)
        assert repr(backend).startswith("RedisStreamsBackend(")
        assert f"prefix={redis_prefix!r}" in repr(backend)
        async with Hub(backend=backend) as hub:
            sub = await prepared(hub, "news")
            event_id = await hub.publish("news", "x")
            assert ids((await take(sub, 2))[1:]) == [event_id]
        assert await client.ping()  # the app's client: the hub leaves it open
    finally:
        await client.aclose()
    url_backend = RedisStreamsBackend(REDIS_URL)
    assert repr(url_backend) == f"RedisStreamsBackend({REDIS_URL!r}, prefix='asgi-sse:')"


async def test_a_hub_not_entered_says_so(redis_prefix: str) -> None:
    hub = Hub(backend=RedisStreamsBackend(REDIS_URL, prefix=redis_prefix))
    with pytest.raises(RuntimeError, match="enter the hub first"):
        await hub.publish("news", "x")
    with pytest.raises(RuntimeError, match="enter the hub first"):
        await hub.subscribe("news").prepare_stream()
    async with hub:  # and then it works (and closes its client on the way out)
        sub = await prepared(hub, "news")
        event_id = await hub.publish("news", "x")
        assert ids((await take(sub, 2))[1:]) == [event_id]


async def test_a_hub_stopped_from_another_task_ends_its_streams(redis_prefix: str) -> None:
    """`hub.stop()` works from any task and under any cancel scope, as on the memory
    backend (the readers' task group lives in a task of its own; entered in `start`
    and left in `stop`, it raised RuntimeError about exiting a cancel scope)."""
    hub = Hub(backend=RedisStreamsBackend(REDIS_URL, prefix=redis_prefix))
    async with hub:
        sub = await prepared(hub, "news")
        ready(sub)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(hub.stop)
        with pytest.raises(StopAsyncIteration):
            sub.next_nowait()


# -- found by review ---------------------------------------------------------------------------


async def test_a_hub_restarted_in_process_reads_its_topics_afresh(
    hubs: Hubs, redis_prefix: str
) -> None:
    """Stopped, events published elsewhere meanwhile, started again: a resume from an
    id before, at or after what this process held is exact - never the stale frames."""
    a = await hubs()
    b = await hubs()
    sub = await prepared(a, "t")
    early = [await a.publish("t", f"e{n}") for n in (1, 2, 3)]
    await reached(a, "t", early[-1])
    sub.close()
    await a.stop()
    later = [await b.publish("t", f"e{n}") for n in (4, 5)]
    await a.__aenter__()
    for after, expected in ((early[0], [*early[1:], *later]), (early[-1], later)):
        resumed = await prepared(a, "t", last_event_id=after)
        assert ids(ready(resumed)) == expected
        resumed.close()


async def test_a_cursor_with_ids_beyond_redis_range_gets_a_reset_not_an_error(
    hubs: Hubs,
) -> None:
    hub = await hubs()
    await hub.publish("a", "x")
    for position in ("99999999999999999999-0", "1-99999999999999999999"):
        for last in (position, f"{source_key('a')}~{position}.{source_key('b')}~0-0"):
            topics = ("a",) if last == position else ("a", "b")
            sub = await prepared(hub, *topics, last_event_id=last)
            (frame,) = ready(sub)[:1]
            assert reset_info(frame)["reason"] == "malformed"
            sub.close()


async def test_a_reply_read_before_a_topic_was_followed_again_is_not_fed_to_its_new_log(
    hubs: Hubs,
) -> None:
    """The reader snapshots its logs with each XREAD: a key forgotten and followed again
    meanwhile has a new log, which that (older) reply must not reach."""
    hub = await hubs()
    backend = backend_of(hub)
    await prepared(hub, "t")
    reader = backend._readers[0]
    key = backend._key(hub._core.logs["t"])
    before = dict(reader.logs)  # what an XREAD in flight was sent for
    fresh = TopicLog("t", max_events=10, max_bytes=1 << 20)
    reader.logs[key] = fresh  # forgotten and followed again, with a log of its own
    stale = [(key, [(b"9-0", {b"p": b"8-0", b"h": b"", b"t": b"data: x\n\n"})])]
    reader.feed(stale, before)
    assert (fresh.newest, fresh.lost_through, backend.gaps) == (0, NOTHING_LOST, 0)


async def test_the_close_marker_read_while_locate_asks_redis_keeps_the_events_before_it(
    hubs: Hubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client resumes at an id this process's reader has not read yet; while locate
    asks Redis whether that id exists, the reader reads it, the events after it and
    the close marker: the client gets those events, then the end - not a 204."""
    b = await hubs()
    e1 = await b.publish("t", "e1")
    e2 = await b.publish("t", "e2")
    e3 = await b.publish("t", "e3")
    await b.close("t")
    backend = backend_of(b)
    # A log of this topic whose reader has read up to e1 only (a process behind).
    log = TopicLog("t", max_events=100, max_bytes=1 << 20)
    log.attach(after=e1)
    real_exists = backend._locator._exists

    async def exists_while_the_reader_catches_up(log_: TopicLog, position: str) -> bool:
        found = await real_exists(log_, position)
        for event_id, text in ((e2, "e2"), (e3, "e3")):  # what the reader reads meanwhile
            log.append(event_id, b"", f"data: {text}\n\n".encode())
        log.close()  # ... and the close marker
        return found

    monkeypatch.setattr(backend._locator, "_exists", exists_while_the_reader_catches_up)
    start, why = await backend.locate(log, e2)
    assert why is None
    assert [log.id_at(sequence) for sequence in range(start, log.newest + 1)] == [e3]
