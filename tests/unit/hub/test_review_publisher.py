"""Review of `Publisher`'s asyncio clients per event loop (each closed as its loop shuts
down): loops closed without `adisconnect`, uvloop, `asyncio.run` twice, loops in
threads at once, concurrent first calls on one loop, trio, and the sync `publish`.

Most tests drive their own event loops (`asyncio.run`), so they are plain sync tests;
the trio ones run on anyio's trio backend. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import warnings
import weakref
from typing import Any

import anyio
import anyio.to_thread
import pytest

from asgi_sse.redis import Publisher
from tests.support.redisutil import REDIS_URL, redis_prefix
from tests.unit.hub.test_redis_publisher import publisher, stored_ids

__all__ = ("publisher", "redis_prefix")  # fixtures, imported to be found here

pytestmark = [pytest.mark.timeout(30)]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def leaky_publisher(redis_prefix: str) -> Any:
    """A publisher whose loops end without adisconnect: if anything were left (a loop
    closed by hand), it is let go with its ResourceWarnings silenced at the end of the
    test, not in a later one's garbage collection."""
    made = Publisher(REDIS_URL, prefix=redis_prefix)
    yield made
    made.disconnect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        made._async.clear()  # clients of loops that never shut down, if any
        gc.collect()


# -- what the review found (fixed) -----------------------------------------------


def test_a_loop_closed_without_adisconnect_is_let_go(leaky_publisher: Publisher) -> None:
    """A task-queue worker doing one `asyncio.run()` per task, without adisconnect: the
    review found every loop and one Redis connection (a file descriptor) per task kept
    forever (the per-loop client held its loop, so a WeakKeyDictionary never let go).
    Now each loop's client is closed as `asyncio.run()` shuts the loop down."""
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def publish_once(n: int) -> str:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return await leaky_publisher.apublish("loops", f"task {n}")

    asyncio.run(publish_once(0))  # the first client: whatever it opens once
    gc.collect()
    before = open_fds()
    for n in range(1, 9):
        asyncio.run(publish_once(n))
    gc.collect()
    alive = sum(ref() is not None for ref in loops[1:])
    grown = open_fds() - before
    assert (alive, grown) == (0, 0), f"{alive} closed loops kept, {grown} fds more"


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_adisconnect_on_trio_says_what_to_do(publisher: Publisher) -> None:
    """Like apublish and aclose_topic, adisconnect on trio raises the clear RuntimeError
    (it raised asyncio's bare "no running event loop")."""
    with pytest.raises(RuntimeError, match="worker thread"):
        await publisher.adisconnect()


# -- hazards that hold -----------------------------------------------------------------


def test_asyncio_run_twice_without_adisconnect(
    leaky_publisher: Publisher, redis_prefix: str
) -> None:
    """The original bug ("Event loop is closed" in the second asyncio.run)."""

    async def publish_once(n: int) -> str:
        return await leaky_publisher.apublish("twice", f"run {n}")

    ids = [asyncio.run(publish_once(n)) for n in range(2)]
    assert stored_ids(redis_prefix, "twice") == ids


def test_uvloop_loops_are_served(publisher: Publisher, redis_prefix: str) -> None:
    """uvloop's Loop can be a WeakKeyDictionary key; two uvloop runs, one after the
    other."""
    uvloop = pytest.importorskip("uvloop")

    async def publish_once(n: int) -> str:
        try:
            return await publisher.apublish("uv", f"uv {n}")
        finally:
            await publisher.adisconnect()

    ids = [uvloop.run(publish_once(n)) for n in range(2)]
    assert stored_ids(redis_prefix, "uv") == ids


def test_concurrent_first_calls_on_one_loop_share_one_client(
    publisher: Publisher, redis_prefix: str
) -> None:
    clients: list[int] = []

    async def main() -> list[str]:
        try:
            with anyio.fail_after(10):
                ids = await asyncio.gather(
                    *(publisher.apublish("burst", f"e{n}") for n in range(20))
                )
            clients.append(len(publisher._async))
            return list(ids)
        finally:
            await publisher.adisconnect()

    ids = asyncio.run(main())
    assert len(set(ids)) == 20
    assert sorted(stored_ids(redis_prefix, "burst")) == sorted(ids)
    assert clients == [1]
    assert len(publisher._async) == 0  # adisconnect forgot it


def test_many_loops_in_threads_at_once(publisher: Publisher, redis_prefix: str) -> None:
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    async def publish_some(n: int) -> list[str]:
        try:
            return [await publisher.apublish("threads", f"{n}-{i}") for i in range(5)]
        finally:
            await publisher.adisconnect()

    def in_a_thread(n: int) -> None:
        try:
            start.wait(timeout=10)
            results[n] = asyncio.run(publish_some(n))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=in_a_thread, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
    assert sorted(results) == list(range(8))
    published = [event_id for ids in results.values() for event_id in ids]
    assert sorted(stored_ids(redis_prefix, "threads")) == sorted(published)
    assert len(publisher._async) == 0


def test_adisconnect_then_apublish_again_on_the_same_loop(
    publisher: Publisher, redis_prefix: str
) -> None:
    async def main() -> list[str]:
        first = await publisher.apublish("again", "one")
        await publisher.adisconnect()
        await publisher.adisconnect()  # twice: nothing to close
        second = await publisher.apublish("again", "two")
        await publisher.adisconnect()
        return [first, second]

    ids = asyncio.run(main())
    assert stored_ids(redis_prefix, "again") == ids


def test_sync_publish_unaffected_by_closed_loops(
    leaky_publisher: Publisher, redis_prefix: str
) -> None:
    async def main() -> str:
        return await leaky_publisher.apublish("mixed", "async")

    first = asyncio.run(main())  # its loop closed without adisconnect
    second = leaky_publisher.publish("mixed", "sync")
    leaky_publisher.close_topic("mixed")
    assert stored_ids(redis_prefix, "mixed")[:2] == [first, second]


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_aclose_topic_on_trio_says_to_use_a_thread(publisher: Publisher) -> None:
    with pytest.raises(RuntimeError, match="worker thread"):
        await publisher.aclose_topic("t")
    with anyio.fail_after(10):
        await anyio.to_thread.run_sync(publisher.close_topic, "t")
