"""1,000 concurrent runs of 5 subscribers each on one process (memory backend): every
run completes, and once ``expire_after`` has taken the finished runs' topics the
process's Python memory is back to its baseline.

Measured with `tracemalloc` (Python allocations: the hub's topics, logs, runs and
subscriptions are all Python objects) and the garbage collector's object count: the
baseline after a warm-up round of the same size, the peak while the runs are alive, and
the figures once the topics are gone. The numbers are printed (``pytest -s`` shows them).

Why a full-size warm-up: the first 1,000 concurrent runs leave ~1.2 MB over a baseline
taken before them, all of it in a handful of hash tables that CPython never shrinks -
asyncio's set of tasks, anyio's task states, the hub's live-subscription set, its runs'
task set and running dict - one allocation each, emptied but keeping their capacity. A
second round of the same size reuses them: measured, rounds after the first differ from
each other by a few tens of KiB, in a few allocations, and no object stays.

The bounds: under 128 KiB of traced memory and under 100 objects over the baseline. A
leak of anything per run or per subscription (1,000 or 5,000 of them) is at least 1,000
objects, and at ~100 bytes each 100 KiB to 500 KiB; the peak is tens of MiB. The byte
bound leaves room for a hash table re-allocated at another size (the tables above are
32-288 KiB: one of them reallocated one step up is the noise seen) and the allocator's
free lists.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import AsyncIterator

import anyio
import pytest
import sniffio

from asgi_sse import Hub, Subscription

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

RUNS = 1000
SUBSCRIBERS = 5
EXPIRE_AFTER = 0.5
BOUND = 128 * 1024  # bytes left over the baseline, at most
OBJECTS = 100  # objects left over the baseline, at most


async def round_of_runs(hub: Hub, runs: int, subscribers: int) -> list[bytes]:
    """Start ``runs`` runs of three events with ``subscribers`` readers each, let them
    all go at once, and wait for every reader's last frame; the last frames."""
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

    async with anyio.create_task_group() as group:
        for _ in range(runs):
            topic = await hub.run(producer())
            for _ in range(subscribers):
                subscription = hub.subscribe(topic, last_event_id=Hub.EARLIEST)
                group.start_soon(reader, subscription)
        assert hub.stats().runs == runs
        await anyio.wait_all_tasks_blocked()
        go.set()
    return ends


async def topics_gone(hub: Hub) -> None:
    """Wait for ``expire_after`` to take every finished run's topic."""
    while hub.stats().topics:  # noqa: ASYNC110 - time passing signals nothing
        await anyio.sleep(0.05)


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_a_thousand_runs_of_five_subscribers_leave_memory_at_its_baseline() -> None:
    tracemalloc.start()
    try:
        with anyio.fail_after(100):
            async with Hub(max_running=RUNS, expire_after=EXPIRE_AFTER) as hub:
                # Warm-up: the same round once (see the module's docstring).
                await round_of_runs(hub, RUNS, SUBSCRIBERS)
                await topics_gone(hub)
                baseline = traced()
                baseline_objects = len(gc.get_objects())
                tracemalloc.reset_peak()
                started = time.monotonic()
                ends = await round_of_runs(hub, RUNS, SUBSCRIBERS)
                elapsed = time.monotonic() - started
                peak = tracemalloc.get_traced_memory()[1]
                assert len(ends) == RUNS * SUBSCRIBERS
                assert all(b'{"reason":"complete"}' in end for end in ends)
                assert hub.stats().runs == 0
                del ends
                await topics_gone(hub)
                expired = time.monotonic() - started
                after = traced()
                left_objects = len(gc.get_objects()) - baseline_objects
    finally:
        tracemalloc.stop()
    left = after - baseline
    print(
        f"\n{RUNS} runs x {SUBSCRIBERS} subscribers ({sniffio.current_async_library()}): "
        f"all complete in {elapsed:.2f} s, topics gone after {expired:.2f} s "
        f"(expire_after {EXPIRE_AFTER} s); traced memory: baseline {baseline:,} B, "
        f"peak {peak:,} B (+{peak - baseline:,}), after {after:,} B ({left:+,} B); "
        f"objects {left_objects:+,}"
    )
    assert left < BOUND, (baseline, peak, after)
    assert left_objects < OBJECTS, left_objects
