"""`asgi_sse.redis.Publisher`: publishing to a hub's topics on Redis without a hub - from a
thread, from another process (a plain script), from asyncio - interleaved with
`Hub.publish` on the same topic. Two hubs on one key prefix stand for two workers: their
subscribers get every event once, in the stream's order, and resume across the
publisher's events.

Every wait is a subscription's next frame or a process's end, bounded. asyncio only:
redis's client does not run on trio.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.to_thread
import pytest
import redis
import redis.asyncio as aioredis

from asgi_sse import Hub, HubUnavailable, InvalidEventError, ServerSentEvent, TopicClosed
from asgi_sse.redis import Publisher, RedisStreamsBackend
from tests.support.redisutil import REDIS_URL, redis_prefix
from tests.support.servers import ROOT, free_port
from tests.unit.hub.test_hub import frames_of

__all__ = ("redis_prefix",)  # a fixture, imported to be found here

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def workers(redis_prefix: str) -> AsyncIterator[tuple[Hub, Hub]]:
    """Two entered hubs on the test's prefix: two workers."""
    async with AsyncExitStack() as stack:
        made = [
            await stack.enter_async_context(
                Hub(backend=RedisStreamsBackend(REDIS_URL, prefix=redis_prefix))
            )
            for _ in range(2)
        ]
        yield made[0], made[1]


@pytest.fixture
def publisher(redis_prefix: str) -> Any:
    made = Publisher(REDIS_URL, prefix=redis_prefix)
    yield made
    made.disconnect()


async def read_to_end(
    hub: Hub, topic: str, last_event_id: str | None = Hub.EARLIEST
) -> list[tuple[str, str]]:
    """(id, data) of every event a subscription of ``topic`` gets until its close."""
    frames: list[bytes] = []
    subscription = hub.subscribe(topic, last_event_id=last_event_id)
    try:
        async for frame in subscription:
            frames.append(frame)
    finally:
        await subscription.aclose()
    return [(event.id, event.data) for event in frames_of(frames) if event.data]


def in_stream_order(published: list[tuple[str, str]]) -> list[tuple[str, str]]:
    def order(item: tuple[str, str]) -> tuple[int, int]:
        ms, seq = item[0].split("-")
        return int(ms), int(seq)

    return sorted(published, key=order)


async def test_a_thread_and_the_hubs_publish_to_one_topic_every_worker_reads_it_all(
    workers: tuple[Hub, Hub], publisher: Publisher
) -> None:
    a, b = workers
    published: list[tuple[str, str]] = []
    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            results: list[list[tuple[str, str]]] = []

            async def reader(hub: Hub) -> None:
                results.append(await read_to_end(hub, "mix"))

            group.start_soon(reader, a)
            group.start_soon(reader, b)
            for number in range(10):
                text = f"thread {number}"
                event_id = await anyio.to_thread.run_sync(publisher.publish, "mix", text)
                published.append((event_id, text))
                hub = (a, b)[number % 2]
                published.append((await hub.publish("mix", f"hub {number}"), f"hub {number}"))
            await anyio.to_thread.run_sync(publisher.close_topic, "mix", "bye")
    assert [data for _, data in published[:2]] == ["thread 0", "hub 0"]
    assert published == in_stream_order(published)
    for events in results:
        assert events[:-1] == published  # every event once, in order
        assert events[-1][1] == "bye"
    with pytest.raises(TopicClosed):
        publisher.publish("mix", "late")
    with pytest.raises(TopicClosed):
        await a.publish("mix", "late")


async def test_a_script_in_another_process_publishes_while_a_hub_does(
    workers: tuple[Hub, Hub], redis_prefix: str
) -> None:
    a, b = workers
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            results: list[list[tuple[str, str]]] = []

            async def reader(hub: Hub) -> None:
                results.append(await read_to_end(hub, "script"))

            group.start_soon(reader, a)
            group.start_soon(reader, b)
            hub_ids: list[str] = []
            async with await anyio.open_process(
                [
                    sys.executable,
                    "-m",
                    "tests.support.publish_script",
                    REDIS_URL,
                    redis_prefix,
                    "script",
                    "20",
                ],
                cwd=ROOT,
                env=env,
            ) as process:
                while process.returncode is None and len(hub_ids) < 200:
                    hub_ids.append(await a.publish("script", f"hub {len(hub_ids)}"))
                    await anyio.sleep(0.005)
                assert process.stdout is not None
                output = b"".join([chunk async for chunk in process.stdout])
                assert await process.wait() == 0
            script_ids = output.decode().split()
            await b.close("script")
    published = in_stream_order(
        [(i, f"script {n}") for n, i in enumerate(script_ids)]
        + [(i, f"hub {n}") for n, i in enumerate(hub_ids)]
    )
    assert len(script_ids) == 20
    for events in results:
        assert events == published


async def test_apublish_writes_the_frames_and_ids_of_hub_publish_and_resumes(
    workers: tuple[Hub, Hub], publisher: Publisher, redis_prefix: str
) -> None:
    a, b = workers
    raw = aioredis.Redis.from_url(REDIS_URL)
    event = ServerSentEvent("same \u2028 bytes", event="note", retry=3000)
    try:
        with anyio.fail_after(10):
            from_hub = await a.publish("same", event)
            from_publisher = await publisher.apublish("same", event)
            more = [await publisher.apublish("same", f"more {n}") for n in range(3)]
            await publisher.aclose_topic("same")
            await publisher.aclose_topic("same")  # closing a closed topic: nothing
            reply: Any = await raw.xrange(f"{redis_prefix}t:same")
            # b never followed the topic: it resumes after the publisher's event from Redis.
            resumed = await read_to_end(b, "same", last_event_id=from_publisher)
            whole = await read_to_end(a, "same")
    finally:
        await raw.aclose()
        await publisher.adisconnect()
    hub_entry, publisher_entry = reply[0][1], reply[1][1]
    assert (hub_entry[b"h"], hub_entry[b"t"]) == (publisher_entry[b"h"], publisher_entry[b"t"])
    assert [entry_id.decode() for entry_id, _ in reply] == [
        from_hub,
        from_publisher,
        *more,
        reply[-1][0].decode(),
    ]
    assert resumed == [(i, f"more {n}") for n, i in enumerate(more)]
    assert [i for i, _ in whole] == [from_hub, from_publisher, *more]


def stored_ids(prefix: str, topic: str) -> list[str]:
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        reply: Any = raw.xrange(f"{prefix}t:{topic}")
        return [entry_id.decode() for entry_id, _ in reply]
    finally:
        raw.close()


def test_apublish_serves_every_event_loop(publisher: Publisher, redis_prefix: str) -> None:
    """A publisher made once (at import time, say) serves each `asyncio.run()` of a
    script or a task queue's worker, one after the other or at once in threads: each
    loop gets its own client, not the first loop's (which failed: "Event loop is
    closed")."""

    async def publish_once(n: int) -> str:
        try:
            return await publisher.apublish("loops", f"loop {n}")
        finally:
            await publisher.adisconnect()

    ids = [asyncio.run(publish_once(n)) for n in range(2)]
    in_threads: dict[int, str] = {}

    def in_a_thread(n: int) -> None:
        in_threads[n] = asyncio.run(publish_once(n))

    threads = [threading.Thread(target=in_a_thread, args=(n,)) for n in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(in_threads) == [2, 3]
    stored = stored_ids(redis_prefix, "loops")
    assert sorted(stored) == sorted([*ids, *in_threads.values()])


@pytest.mark.parametrize(
    "run",
    [
        pytest.param(asyncio.run, id="asyncio.run"),
        pytest.param(lambda main: pytest.importorskip("uvloop").run(main), id="uvloop.run"),
        pytest.param(lambda main: anyio.run(lambda: main), id="anyio.run"),
    ],
)
def test_a_loop_s_client_is_closed_as_the_loop_shuts_down(
    publisher: Publisher, run: Callable[[Coroutine[Any, Any, str]], str]
) -> None:
    """Without adisconnect, whichever runner ends the loop closes its client (the
    runners finalise the loop's async generators first): no connection is left open
    (a ResourceWarning would fail this test) and no loop is kept."""
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def publish_once() -> str:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return await publisher.apublish("runners", "x")

    assert run(publish_once())
    gc.collect()
    assert [ref() for ref in loops] == [None]
    assert not publisher._async


def test_a_loop_closed_by_hand_is_let_go_at_the_next_call(
    publisher: Publisher, redis_prefix: str
) -> None:
    """`asyncio.run()` closes a loop's client as the loop shuts down; a loop closed by
    hand (no `shutdown_asyncgens`) cannot, so the next call forgets it and leaves its
    connections to the garbage collector: nothing closed is kept."""

    async def publish_once() -> str:
        return await publisher.apublish("by-hand", "two")

    # The abandoned connection warns as the collector closes it, which may happen at
    # any allocation from the loop's close on: the whole stretch ignores those warnings.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        loop = asyncio.new_event_loop()
        first = loop.run_until_complete(publisher.apublish("by-hand", "one"))
        loop.close()
        gone = weakref.ref(loop)
        del loop
        second = asyncio.run(publish_once())
        gc.collect()
    assert gone() is None
    assert stored_ids(redis_prefix, "by-hand") == [first, second]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_apublish_on_trio_says_to_publish_in_a_thread(publisher: Publisher) -> None:
    with pytest.raises(RuntimeError, match="worker thread"):
        await publisher.apublish("t", "x")
    event_id = await anyio.to_thread.run_sync(publisher.publish, "t", "x")  # the advice
    assert event_id


async def test_what_a_publisher_refuses(publisher: Publisher) -> None:
    with pytest.raises(ValueError, match="non-empty str"):
        publisher.publish("", "x")
    with pytest.raises(InvalidEventError):
        publisher.publish("t", ServerSentEvent("x", id="1"))
    with pytest.raises(InvalidEventError):
        await publisher.apublish("t", ServerSentEvent(None, event="empty"))
    with pytest.raises(ValueError, match="maxlen"):
        Publisher(REDIS_URL, maxlen=0)
    nowhere = Publisher(f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    with pytest.raises(HubUnavailable):
        nowhere.publish("t", "x")
    with pytest.raises(HubUnavailable):
        await nowhere.apublish("t", "x")
    await nowhere.adisconnect()
    nowhere.disconnect()
