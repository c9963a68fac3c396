"""Runs across processes on Redis (`RedisStreamsBackend` as `asgi_sse.backends.RunLeases`):
two hubs on one key prefix stand for two processes. The claim, the cancel from the other
process, and a lapsed lease (its process killed) ending the topic ``lost`` once.

The tests wait for conditions (a subscription's frames), each bounded; the one bound
that is a promise - ``lost`` within the lease and a second - is measured. asyncio only:
redis's client does not run on trio.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from asgi_sse import Hub
from asgi_sse.redis import RedisStreamsBackend
from tests.support.redisutil import REDIS_URL, redis_prefix
from tests.unit.hub.test_hub import frames_of
from tests.unit.hub.test_runs import read_all, reason_of

__all__ = ("redis_prefix",)  # a fixture, imported to be found here

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

LEASE = 1.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def two_hubs(stack: AsyncExitStack, prefix: str) -> tuple[Hub, Hub]:
    made = []
    for _ in range(2):
        hub = Hub(run_lease=LEASE, backend=RedisStreamsBackend(REDIS_URL, prefix=prefix))
        made.append(await stack.enter_async_context(hub))
    return made[0], made[1]


def backend_of(hub: Hub) -> RedisStreamsBackend:
    backend = hub.backend
    assert isinstance(backend, RedisStreamsBackend)
    return backend


async def ticker(count: int | None = None) -> AsyncIterator[str]:
    number = 0
    while count is None or number < count:
        yield str(number)
        number += 1
        await anyio.sleep(0.01)
    await anyio.sleep_forever()


async def test_a_topic_runs_in_one_process_only_and_its_keys_go_with_it(
    redis_prefix: str,
) -> None:
    raw = aioredis.Redis.from_url(REDIS_URL)
    try:
        with anyio.fail_after(10):
            async with AsyncExitStack() as stack:
                here, there = await two_hubs(stack, redis_prefix)
                topic = await here.run(ticker(1), topic="once")
                assert await raw.get(f"{redis_prefix}lease:once") is not None
                with pytest.raises(ValueError, match="in another process"):
                    await there.run(ticker(1), topic="once")
                assert await here.cancel(topic) is True
                assert (
                    await raw.exists(f"{redis_prefix}lease:once", f"{redis_prefix}run:once") == 0
                )
                assert await there.cancel(topic) is False  # no live claim anywhere
    finally:
        await raw.aclose()


async def test_cancel_from_another_process_and_resume_there(redis_prefix: str) -> None:
    with anyio.fail_after(15):
        async with AsyncExitStack() as stack:
            here, there = await two_hubs(stack, redis_prefix)
            topic = await here.run(ticker(5), topic="cancel-me")
            subscription = there.subscribe(topic, last_event_id=Hub.EARLIEST)
            first = [await subscription.__anext__() for _ in range(3)]
            await subscription.aclose()
            resumed_from = frames_of(first)[-1].id
            asked = time.monotonic()
            assert await there.cancel(topic) is True
            rest = await read_all(there, topic, last_event_id=resumed_from)
            took = time.monotonic() - asked
    events = frames_of(first) + frames_of(rest)
    assert [event.data for event in events[:-1]] == ["0", "1", "2", "3", "4"]
    assert reason_of(events[-1]) == "cancelled"
    assert took < 1.0 + LEASE  # the owner polls its cancel flags every quarter second


async def test_a_lapsed_lease_ends_the_topic_lost_once_everywhere(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = aioredis.Redis.from_url(REDIS_URL)
    try:
        with anyio.fail_after(15):
            async with AsyncExitStack() as stack:
                owner, one = await two_hubs(stack, redis_prefix)
                third, other = await two_hubs(stack, redis_prefix)
                topic = await owner.run(ticker(2), topic="orphan")
                ended: list[list[bytes]] = []

                async def reader(hub: Hub) -> None:
                    ended.append(await read_all(hub, topic))

                async with anyio.create_task_group() as group:
                    group.start_soon(reader, one)
                    group.start_soon(reader, other)
                    # Both follow the topic (a subscription each).
                    while not all(  # noqa: ASYNC110
                        hub.stats().subscribers == 1 for hub in (one, other)
                    ):
                        await anyio.sleep(0.05)

                    # The owner "dies": it renews no more and publishes nothing.
                    async def frozen(*args: Any) -> bool:
                        await anyio.sleep_forever()
                        return True

                    async def gone(*args: Any) -> None:
                        pass

                    leases = backend_of(owner)._leases
                    monkeypatch.setattr(leases, "renew", frozen)
                    monkeypatch.setattr(leases, "release", gone)
                    died = time.monotonic()
                    ttl = await raw.pttl(f"{redis_prefix}lease:orphan")
                    run = owner._runs.running[topic]
                    run.lost = True  # its end publishes nothing
                    run.scope.cancel()  # and its producer stops
                took = time.monotonic() - died
            reply: Any = await raw.xrange(f"{redis_prefix}t:orphan")
            entries: list[tuple[bytes, dict[bytes, bytes]]] = reply
    finally:
        await raw.aclose()
    assert took < ttl / 1000 + 1.0
    for frames in ended:
        events = frames_of(frames)
        assert [event.data for event in events[:-1]] == ["0", "1"]
        assert reason_of(events[-1]) == "lost"
    # One lost event and one close marker in the stream, whoever appended them.
    assert sum(1 for _, fields in entries if b"run_ended" in fields.get(b"h", b"")) == 1
    assert sum(1 for _, fields in entries if b"c" in fields) == 1
    # Every process sweeps the lapsed runs: exactly one of the four ended it.
    lapses = [backend_of(hub).lapses for hub in (owner, one, third, other)]
    assert sorted(lapses) == [0, 0, 0, 1]


async def test_a_run_whose_process_died_unwatched_ends_lost_for_a_later_client(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody reads the topic when its process dies: another process still ends it
    ``lost`` (the runs' deadlines are swept whatever is read), and a client that comes
    later gets the events, ``lost``, then the end - not an open topic forever."""
    raw = aioredis.Redis.from_url(REDIS_URL)
    try:
        with anyio.fail_after(15):
            async with AsyncExitStack() as stack:
                owner, other = await two_hubs(stack, redis_prefix)
                topic = await owner.run(ticker(2), topic="unwatched")
                while await raw.xlen(f"{redis_prefix}t:unwatched") < 2:  # noqa: ASYNC110
                    await anyio.sleep(0.02)

                async def frozen(*args: Any) -> bool:
                    await anyio.sleep_forever()
                    return True

                async def gone(*args: Any) -> None:
                    pass

                # The owner "dies": it renews no more, publishes nothing, and its own
                # sweep is stopped too (a dead process sweeps nothing).
                leases = backend_of(owner)._leases
                monkeypatch.setattr(leases, "renew", frozen)
                monkeypatch.setattr(leases, "release", gone)
                monkeypatch.setattr(leases, "look_at_leases", gone)
                died = time.monotonic()
                ttl = await raw.pttl(f"{redis_prefix}lease:unwatched")
                run = owner._runs.running[topic]
                run.lost = True
                run.scope.cancel()
                assert other.stats().subscribers == 0
                while backend_of(other).lapses == 0:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
                took = time.monotonic() - died
                frames = await read_all(other, topic)  # a client that comes later
            left = await raw.zcard(f"{redis_prefix}runs")
    finally:
        await raw.aclose()
    assert took < ttl / 1000 + 1.0
    events = frames_of(frames)
    assert [event.data for event in events[:-1]] == ["0", "1"]
    assert reason_of(events[-1]) == "lost"
    assert left == 0  # the ended run left the runs' set
