"""`Hub.drop(owner)` across processes on Redis, in one process with several hubs (each
its own `RedisStreamsBackend`, as each worker has): the drop reaches the other hubs'
subscriptions through the ``<prefix>drops`` stream, a hub does not apply its own drop
twice, a hub whose link was down applies the drops it missed, and a drop that cannot
reach Redis ends this hub's streams and says the others were not told. (The same with
real worker processes: tests/integration/test_owners_workers.py.)"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from asgi_sse import Hub, HubUnavailable, Subscription
from asgi_sse.backends import OwnerDrops
from tests.support.redisproc import RedisProcess
from tests.unit.hub.test_hub_redis import (
    FAST,
    Hubs,
    backend_of,
    hubs,
    own_redis,
    raw,
    redis_prefix,
)

__all__ = ("hubs", "own_redis", "raw", "redis_prefix")  # fixtures, imported to be found

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis's client runs on asyncio only


async def streaming(hub: Hub, topic: str, owner: str) -> Subscription:
    sub = hub.subscribe(topic, owner=owner)
    assert await sub.prepare_stream()
    return sub


async def ended(sub: Subscription, seconds: float = 1.0) -> None:
    """Until ``sub`` ends (its frames read on the way), within ``seconds``."""
    with anyio.fail_after(seconds):
        async for _frame in sub:
            pass


async def test_a_drop_on_one_hub_ends_the_owners_streams_on_the_other(hubs: Hubs) -> None:
    a, b = await hubs(), await hubs()
    assert isinstance(a.backend, OwnerDrops)
    mine = [await streaming(a, "t", "ann"), await streaming(b, "t", "ann")]
    theirs = await streaming(b, "t", "bob")
    assert await a.drop("ann") == 1  # a's own; b's through Redis
    for sub in mine:
        await ended(sub)
    assert backend_of(b).drops_received == 1
    assert backend_of(a).drops_received == 0  # its own drop is not applied twice
    event_id = await a.publish("t", "still here")
    with anyio.fail_after(5):
        frame = await theirs.__anext__()
        while event_id.encode() not in frame:
            frame = await theirs.__anext__()
    for sub in [*mine, theirs]:
        sub.close()


async def test_a_drop_that_cannot_reach_redis_ends_this_hubs_streams_and_says_so(
    own_redis: RedisProcess, hubs: Hubs
) -> None:
    a, b = await hubs(own_redis.url(), **FAST), await hubs(own_redis.url(), **FAST)
    here, there = await streaming(a, "t", "ann"), await streaming(b, "t", "ann")
    own_redis.kill()
    message = r"ended 1 stream\(s\) of 'ann' on this process, but could not tell the other"
    with pytest.raises(HubUnavailable, match=message):
        await a.drop("ann")
    await ended(here)
    own_redis.start()
    # Once b reads Redis again, a drop sent again reaches it.
    with anyio.fail_after(10):
        while True:
            try:
                assert await a.drop("ann") == 0
                break
            except HubUnavailable:
                await anyio.sleep(0.05)
    await ended(there, 5.0)
    here.close()
    there.close()


async def test_a_hub_whose_link_broke_applies_the_drops_it_missed(
    hubs: Hubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await hubs(), await hubs(block=0.1, **FAST)
    sub = await streaming(b, "t", "ann")
    client = backend_of(b)._link.client
    key = f"{backend_of(b).prefix}drops".encode()
    real_xread = client.xread
    cut = True
    failed = anyio.Event()

    async def xread(streams: Any, *args: Any, **kwargs: Any) -> Any:
        if cut and key in streams:
            failed.set()
            raise RedisConnectionError("cut by the test")
        return await real_xread(streams, *args, **kwargs)

    monkeypatch.setattr(client, "xread", xread)
    with anyio.fail_after(5):
        await failed.wait()  # b's drops reader is not reading now
    assert await a.drop("ann") == 0
    await anyio.sleep(0.3)  # a few of b's attempts: the drop is not applied meanwhile
    assert backend_of(b).drops_received == 0
    cut = False
    await ended(sub, 5.0)  # read on from where it was: applied late, not lost
    assert backend_of(b).drops_received == 1
    sub.close()


async def test_the_drops_stream_holds_who_was_dropped_and_by_whom(
    hubs: Hubs, redis_prefix: str
) -> None:
    a = await hubs()
    for _ in range(3):
        await a.drop("nobody")
    client = backend_of(a)._link.client
    entries: Any = await client.xrange(f"{redis_prefix}drops".encode())
    assert [fields[b"o"] for _id, fields in entries] == [b"nobody"] * 3
    assert len({fields[b"f"] for _id, fields in entries}) == 1  # one process sent them


async def test_drop_needs_a_running_hub_on_redis(redis_prefix: str) -> None:
    from asgi_sse.redis import RedisStreamsBackend

    hub = Hub(backend=RedisStreamsBackend(prefix=redis_prefix))
    with pytest.raises(RuntimeError, match="enter the hub first"):
        await hub.drop("ann")
    with pytest.raises(RuntimeError, match="enter the hub first"):
        await hub.backend.send_drop("ann")  # type: ignore[attr-defined]
    await anyio.lowlevel.checkpoint()
