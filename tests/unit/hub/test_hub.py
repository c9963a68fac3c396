"""Hub, in-process: publish once, fan out, resume exactly, Reset when it cannot, bounded
logs, several topics under one cursor, ending with 204.

The contract tests (`contract`) run on every backend: memory on asyncio and trio,
Redis Streams (a hub of its own per test, under a key prefix of its own) on asyncio,
where redis's client runs, and three backends written with public imports only
(`custom_backends`), which prove the SPI is enough. On Redis an event reaches this
process's log once the reader reads it back, so those tests wait for it (`reached`,
`closed`) before looking at what a subscription has ready. The rest is about the
memory backend or the hub alone, on asyncio and trio.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any, Protocol

import anyio
import pytest
from pydantic import BaseModel

from asgi_sse import (
    BaseEvent,
    EventSourceResponse,
    Hub,
    HubFull,
    HubObserver,
    InvalidEventError,
    MemoryBackend,
    ParsedEvent,
    Reset,
    ServerSentEvent,
    SSEEndpoint,
    SSERequest,
    Subscription,
    TopicClosed,
)
from asgi_sse._hub import core as hub_core
from asgi_sse._hub import log as hub_log
from asgi_sse._protocol.cursor import parse_cursor, parse_position, source_key
from asgi_sse.backends import HubBackend
from asgi_sse.testing import connect
from asgi_sse.types import ResetReason, SubscriptionEnd, SubscriptionStart
from tests.support.redisutil import REDIS_URL, redis_prefix
from tests.unit.hub.custom_backends import CountingBackend, DelegatingBackend, DictBackend

__all__ = ("redis_prefix",)  # a fixture, imported to be found here

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

#: A test of the hub's contract, on every backend: memory on asyncio and on trio, Redis
#: on asyncio only (test_a_redis_hub_refuses_to_start_on_trio checks the error there),
#: and three backends written in the tests with public imports only (`custom_backends`):
#: one that keeps events in a dict, one that delegates to the memory backend, one whose
#: logs are the store under ids of its own.
contract = pytest.mark.parametrize(
    ("anyio_backend", "hub_kind"),
    [
        ("asyncio", "memory"),
        ("trio", "memory"),
        ("asyncio", "redis"),
        ("asyncio", "dict"),
        ("trio", "delegating"),
        ("trio", "counting"),
    ],
    ids=[
        "asyncio-memory",
        "trio-memory",
        "asyncio-redis",
        "asyncio-dict",
        "trio-delegating",
        "trio-counting",
    ],
)


class MakeHub(Protocol):
    async def __call__(self, **options: Any) -> Hub:
        """An entered hub (``Hub(**options)``) on the test's backend, stopped after the
        test."""
        ...


@pytest.fixture
def hub_kind() -> str:
    """The backend of `make_hub`'s hubs (`contract` parametrises it)."""
    return "memory"


@pytest.fixture
def hub_prefix(hub_kind: str, request: pytest.FixtureRequest) -> str | None:
    """The test's Redis key prefix (`redis_prefix`: skipped where no Redis answers), or
    None for the memory backend."""
    if hub_kind == "redis":
        return str(request.getfixturevalue("redis_prefix"))
    return None


@pytest.fixture
async def make_hub(hub_kind: str, hub_prefix: str | None) -> AsyncIterator[MakeHub]:
    async with AsyncExitStack() as stack:

        async def make(**options: Any) -> Hub:
            backend: HubBackend | None = None
            if hub_prefix is not None:
                from asgi_sse.redis import RedisStreamsBackend

                backend = RedisStreamsBackend(REDIS_URL, prefix=hub_prefix)
            elif hub_kind == "dict":
                backend = DictBackend()
            elif hub_kind == "delegating":
                backend = DelegatingBackend()
            elif hub_kind == "counting":
                backend = CountingBackend()
            return await stack.enter_async_context(Hub(**options, backend=backend))

        yield make


def order(event_id: str) -> tuple[int, int]:
    """Where an id falls in its topic: Redis ids are ``<ms>-<seq>``, memory ids
    ``<epoch>-<seq>`` (one epoch per log, so the sequence decides)."""
    left, _, right = event_id.rpartition("-")
    return (int(left) if left.isdigit() else 0, int(right))


async def reached(hub: Hub, topic: str, event_id: str) -> None:
    """Wait until this process's log of ``topic`` holds ``event_id``: at once in memory,
    once the reader has read it back on Redis (the topic must be followed here)."""
    log = hub._core.logs[topic]
    assert log.attached, f"nobody here follows {topic!r}: nothing will reach its log"
    with anyio.fail_after(5):
        while order(log.newest_id()) < order(event_id):
            await log.next_change().wait()


async def closed(hub: Hub, topic: str) -> None:
    """Wait until this process's log of ``topic`` knows it was closed."""
    log = hub._core.logs[topic]
    assert log.attached, f"nobody here follows {topic!r}: nothing will reach its log"
    with anyio.fail_after(5):
        while not log.closed:
            await log.next_change().wait()


class Price(BaseModel):
    symbol: str
    cents: int


class Tick(BaseEvent[Price]):
    pass


def tick(cents: int) -> Tick:
    return Tick(data=Price(symbol="X", cents=cents))


def frames_of(items: list[bytes]) -> list[ParsedEvent]:
    from asgi_sse import EventStreamParser

    parser = EventStreamParser()
    events: list[ParsedEvent] = []
    for item in items:
        events += [e for e in parser.feed(item) if isinstance(e, ParsedEvent)]
    return events


async def take(sub: Subscription, count: int) -> list[bytes]:
    """``count`` frames, waiting for each (bounded by the test timeout)."""
    with anyio.fail_after(5):
        return [await sub.__anext__() for _ in range(count)]


def ready(sub: Subscription) -> list[bytes]:
    """Every frame ready now (up to the end, if it ended)."""
    out: list[bytes] = []
    while True:
        try:
            out.append(sub.next_nowait())
        except (anyio.WouldBlock, StopAsyncIteration):
            return out


def reset_info(frame: bytes) -> dict[str, Any]:
    (event,) = frames_of([frame])
    assert event.event == "reset", frame
    info: dict[str, Any] = json.loads(event.data)
    assert info["resume_from"] == event.id
    return info


def primed_at(frame: bytes) -> str:
    """The id of a priming frame (``id: ...`` and nothing else)."""
    assert frame.startswith(b"id: "), frame
    assert frame.endswith(b"\n\n"), frame
    return frame.decode().removeprefix("id: ").strip()


class Clock:
    """A monotonic clock the test moves (``clock.now += 11``), for what the hub times:
    the logs' last use and the sweep of idle ones."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, now: float = 1000.0) -> None:
        self.now = now
        for module in (hub_core, hub_log):
            monkeypatch.setattr(module, "monotonic", lambda: self.now)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_redis_hub_refuses_to_start_on_trio(redis_prefix: str) -> None:
    from asgi_sse.redis import RedisStreamsBackend

    hub = Hub(backend=RedisStreamsBackend(REDIS_URL, prefix=redis_prefix))
    with pytest.raises(RuntimeError, match="asyncio only"):
        async with hub:
            pass  # pragma: no cover


# -- publishing -------------------------------------------------------------------------


async def test_ids_increase_per_topic_under_one_epoch() -> None:
    hub = Hub()
    first = await hub.publish("news", tick(1))
    second = await hub.publish("news", tick(2))
    other = await hub.publish("other", "x")
    epoch, one = parse_position(first) or ("", 0)
    assert (one, parse_position(second)) == (1, (epoch, 2))
    assert parse_position(other) is not None
    assert parse_position(other) != (epoch, 1)
    assert hub.head("news") == second
    assert hub.head("nowhere") is None


@contract
async def test_ids_increase_per_topic_and_the_head_is_the_newest(make_hub: MakeHub) -> None:
    hub = await make_hub()
    sub = hub.subscribe("news")  # on Redis, a topic's head is known where it is followed
    await sub.prepare_stream()
    first = await hub.publish("news", tick(1))
    second = await hub.publish("news", tick(2))
    other = await hub.publish("other", "x")
    assert order(first) < order(second)
    assert parse_position(other) is not None  # an id of its own topic (on Redis, per stream)
    await reached(hub, "news", second)
    assert hub.head("news") == second
    assert hub.head("nowhere") is None


@contract
async def test_the_wire_id_is_the_published_id_and_every_subscriber_sends_the_same_bytes(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    subs = [hub.subscribe("news") for _ in range(3)]
    for sub in subs:
        assert await sub.prepare_stream()
        ready(sub)  # the priming frame
    event_id = await hub.publish("news", tick(7))
    await reached(hub, "news", event_id)
    frames = [ready(sub)[0] for sub in subs]
    assert frames[0] is frames[1] is frames[2]  # encoded once, the very same object
    (event,) = frames_of(frames[:1])
    assert (event.event, event.id, json.loads(event.data)) == (
        "tick",
        event_id,
        {"symbol": "X", "cents": 7},
    )


@contract
async def test_an_event_is_encoded_once_whatever_the_number_of_subscribers(
    make_hub: MakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asgi_sse._hub.core as hub_module
    from asgi_sse._protocol.frames import split_at_id as original

    calls = 0

    def counting(item: Any) -> tuple[bytes, bytes]:
        nonlocal calls
        calls += 1
        return original(item)

    monkeypatch.setattr(hub_module, "split_at_id", counting)
    hub = await make_hub()
    subs = [hub.subscribe("news") for _ in range(5000)]
    for sub in subs:
        await sub.prepare_stream()
        ready(sub)
    ids = [await hub.publish("news", tick(n)) for n in range(3)]
    await reached(hub, "news", ids[-1])
    delivered = [ready(sub) for sub in subs]
    assert calls == 3
    assert all(len(frames) == 3 for frames in delivered)
    assert hub.stats().delivered_events == 5000 * (3 + 1)  # with the priming frames


@contract
@pytest.mark.parametrize(
    ("event", "error", "match"),
    [
        (Tick(data=Price(symbol="X", cents=1), id=5), InvalidEventError, "assigns event ids"),
        (ServerSentEvent("x", id="5"), InvalidEventError, "assigns event ids"),
        (ServerSentEvent(comment="only a comment"), InvalidEventError, "with data"),
        (ServerSentEvent(retry=5), InvalidEventError, "with data"),
        (42, TypeError, "publish a BaseEvent"),
    ],
)
async def test_what_cannot_be_published_fails_at_publish(
    make_hub: MakeHub, event: Any, error: type[Exception], match: str
) -> None:
    hub = await make_hub()
    with pytest.raises(error, match=match):
        await hub.publish("news", event)
    assert hub.stats().published == 0


@contract
async def test_an_unencodable_event_fails_where_it_is_published(make_hub: MakeHub) -> None:
    class Note(BaseEvent[str]):
        pass

    hub = await make_hub()
    with pytest.raises(InvalidEventError, match="Note cannot be encoded"):
        await hub.publish("news", Note(data="\ud800"))


@contract
async def test_event_names_comments_and_retry_survive_the_id_insertion(make_hub: MakeHub) -> None:
    hub = await make_hub()
    sub = hub.subscribe("t", last_event_id=Hub.EARLIEST)
    await hub.publish("t", ServerSentEvent("a\nb", event="x", comment="hi", retry=10))
    await hub.publish("t", "plain")
    await sub.prepare_stream()
    frames = ready(sub)
    assert frames[0].startswith(b": hi\nevent: x\nid: ")
    assert frames[0].endswith(b"\ndata: a\ndata: b\nretry: 10\n\n")
    events = frames_of(frames)
    assert [(e.event, e.data, e.retry) for e in events] == [
        ("x", "a\nb", 10),
        ("message", "plain", None),
    ]


# -- resuming ------------------------------------------------------------------------------


@contract
async def test_no_id_primes_the_cursor_at_the_head_then_goes_live(make_hub: MakeHub) -> None:
    hub = await make_hub()
    head = await hub.publish("news", tick(1))
    for last in (None, ""):  # an empty Last-Event-ID is no id
        sub = hub.subscribe("news", last_event_id=last)
        assert await sub.prepare_stream()
        assert ready(sub) == [f"id: {head}\n\n".encode()]  # no data line: not dispatched
        assert hub.head("news") == head
        head = await hub.publish("news", tick(2))
        await reached(hub, "news", head)
        assert [e.id for e in frames_of(ready(sub))] == [head]
        sub.close()


@contract
async def test_an_empty_topic_has_a_head_id_too(make_hub: MakeHub) -> None:
    hub = await make_hub()
    sub = hub.subscribe("fresh")
    await sub.prepare_stream()
    (priming,) = ready(sub)
    head = primed_at(priming)
    assert parse_position(head) is not None
    assert head.endswith("-0")
    event_id = await hub.publish("fresh", tick(1))
    await reached(hub, "fresh", event_id)
    again = hub.subscribe("fresh", last_event_id=head)
    await again.prepare_stream()
    assert [e.id for e in frames_of(ready(again))] == [event_id]


@contract
async def test_a_retained_id_replays_then_goes_live_with_no_gap_and_no_duplicate(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    ids = [await hub.publish("news", tick(n)) for n in range(5)]
    sub = hub.subscribe("news", last_event_id=ids[1])
    await sub.prepare_stream()
    replayed = ready(sub)
    during = await hub.publish("news", tick(5))  # while the replay goes out
    live = await take(sub, 1)
    assert [e.id for e in frames_of(replayed + live)] == [*ids[2:], during]
    assert hub.stats().replays == 1


@contract
async def test_the_head_id_replays_nothing_and_goes_live(make_hub: MakeHub) -> None:
    hub = await make_hub()
    last = await hub.publish("news", tick(1))
    sub = hub.subscribe("news", last_event_id=last)
    await sub.prepare_stream()
    assert ready(sub) == []
    new = await hub.publish("news", tick(2))
    assert [e.id for e in frames_of(await take(sub, 1))] == [new]


@contract
async def test_earliest_gives_everything_the_log_holds(make_hub: MakeHub) -> None:
    hub = await make_hub(history=3)  # on Redis, the stream may hold more: the log decides
    ids = [await hub.publish("news", tick(n)) for n in range(5)]
    sub = hub.subscribe("news", last_event_id=Hub.EARLIEST)
    await sub.prepare_stream()
    assert [e.id for e in frames_of(ready(sub))] == ids[2:]
    assert hub.stats().resets == {}


@contract
async def test_earliest_of_an_empty_topic_is_its_head(make_hub: MakeHub) -> None:
    hub = await make_hub()
    sub = hub.subscribe("fresh", last_event_id=Hub.EARLIEST)
    assert await sub.prepare_stream()
    assert ready(sub) == []
    event_id = await hub.publish("fresh", tick(1))
    assert [e.id for e in frames_of(await take(sub, 1))] == [event_id]


def _trimmed(ids: list[str], kind: str) -> tuple[str, str]:
    return ids[0], "gone"  # out of the log


def _restart(ids: list[str], kind: str) -> tuple[str, str]:
    if kind == "memory":
        return "00000000-2", "unknown"  # another epoch: a restart
    return "1-0", "gone"  # older than what the stream holds: it cannot tell it from trimmed


def _future(ids: list[str], kind: str) -> tuple[str, str]:
    left = ids[-1].rpartition("-")[0]
    if kind == "memory":
        return f"{left}-999", "unknown"
    return f"{int(left) + 60_000}-0", "unknown"


def _other_backend(ids: list[str], kind: str) -> tuple[str, str]:
    if kind == "memory":
        return "1733100000000-0", "unknown"  # a Redis id: an epoch of no log here
    return "3fa9c2d1-42", "malformed"  # a memory id is no Redis stream id


def _malformed(text: str) -> Callable[[list[str], str], tuple[str, str]]:
    return lambda ids, kind: (text, "malformed")


@contract
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(_trimmed, id="trimmed"),
        pytest.param(_restart, id="restart"),
        pytest.param(_future, id="future"),
        pytest.param(_other_backend, id="other-backend"),
        pytest.param(_malformed("42"), id="no-dash"),
        pytest.param(_malformed("x" * 10_000), id="huge"),
        pytest.param(_malformed("é😀"), id="not-ascii"),
    ],
)
async def test_an_id_that_cannot_resume_exactly_gets_a_reset_then_live(
    make_hub: MakeHub, hub_kind: str, case: Callable[[list[str], str], tuple[str, str]]
) -> None:
    hub = await make_hub(history=3)
    ids = [await hub.publish("news", tick(n)) for n in range(5)]
    # The backends written in the tests make ids the way the memory backend does.
    last_event_id, reason = case(ids, "redis" if hub_kind == "redis" else "memory")
    sub = hub.subscribe("news", last_event_id=last_event_id)
    assert await sub.prepare_stream()
    frames = ready(sub)
    assert len(frames) == 1  # nothing the log holds is replayed after a Reset
    info = reset_info(frames[0])
    assert info == {"reason": reason, "topics": ["news"], "resume_from": ids[-1]}
    new = await hub.publish("news", tick(9))
    assert [e.id for e in frames_of(await take(sub, 1))] == [new]
    assert hub.stats().resets == {reason: 1}
    decoded = Reset.decode(frames_of(frames)[0].data)
    assert decoded.data.reason == reason


@contract
async def test_the_last_history_events_resume_exactly_and_older_ones_are_gone(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(history=3)
    ids = [await hub.publish("news", tick(n)) for n in range(6)]
    exact = hub.subscribe("news", last_event_id=ids[2])  # 3 events after it: all kept
    await exact.prepare_stream()
    assert [e.id for e in frames_of(ready(exact))] == ids[3:]
    older = hub.subscribe("news", last_event_id=ids[1])  # 4 after it: one is gone
    await older.prepare_stream()
    assert reset_info(ready(older)[0])["reason"] == "gone"


@contract
async def test_the_log_is_bounded_in_bytes_too(make_hub: MakeHub) -> None:
    hub = await make_hub(history=1000, history_bytes=1000)
    ids = [await hub.publish("big", "x" * 300) for _ in range(10)]
    sub = hub.subscribe("big", last_event_id=Hub.EARLIEST)
    await sub.prepare_stream()
    kept = [e.id for e in frames_of(ready(sub))]
    assert kept == ids[-len(kept) :]
    assert 2 <= len(kept) <= 3


@contract
async def test_the_bytes_bound_decides_what_resumes_exactly(make_hub: MakeHub) -> None:
    hub = await make_hub(history=1000, history_bytes=1000)  # 3 frames of ~330 bytes
    ids = [await hub.publish("big", "x" * 300) for _ in range(10)]
    exact = hub.subscribe("big", last_event_id=ids[6])
    await exact.prepare_stream()
    assert [e.id for e in frames_of(ready(exact))] == ids[7:]
    older = hub.subscribe("big", last_event_id=ids[5])
    await older.prepare_stream()
    assert reset_info(ready(older)[0])["reason"] == "gone"


@contract
async def test_one_event_larger_than_history_bytes_is_still_kept(make_hub: MakeHub) -> None:
    hub = await make_hub(history_bytes=10)
    event_id = await hub.publish("big", "x" * 100)
    sub = hub.subscribe("big", last_event_id=Hub.EARLIEST)
    await sub.prepare_stream()
    assert [e.id for e in frames_of(ready(sub))] == [event_id]


# -- slow subscribers ------------------------------------------------------------------------


@contract
async def test_a_frozen_subscriber_that_falls_out_of_the_log_gets_a_reset(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(history=10)
    frozen = hub.subscribe("news")
    reader = hub.subscribe("news")
    for sub in (frozen, reader):
        await sub.prepare_stream()
        ready(sub)
    ids = []
    for n in range(11):
        ids.append(await hub.publish("news", tick(n)))
        await reached(hub, "news", ids[-1])
        assert [e.id for e in frames_of(ready(reader))] == [ids[-1]]  # not slowed
    frames = ready(frozen)
    info = reset_info(frames[0])
    assert info == {"reason": "overflow", "topics": ["news"], "resume_from": ids[-1]}
    assert frames[1:] == []  # then live: nothing replayed
    new = await hub.publish("news", tick(99))
    await reached(hub, "news", new)
    assert [e.id for e in frames_of(ready(frozen))] == [new]
    assert hub.stats().resets == {"overflow": 1}


@contract
async def test_the_disconnect_policy_ends_an_overflowing_stream(make_hub: MakeHub) -> None:
    hub = await make_hub(history=2, on_overflow="disconnect")
    sub = hub.subscribe("news")
    await sub.prepare_stream()
    last_seen = primed_at(ready(sub)[0])
    ids = [await hub.publish("news", tick(n)) for n in range(3)]
    await reached(hub, "news", ids[-1])
    with pytest.raises(StopAsyncIteration):
        sub.next_nowait()
    assert hub.stats().dropped == {"overflow": 1}
    again = hub.subscribe("news", last_event_id=last_seen)  # its reconnect
    await again.prepare_stream()
    assert reset_info(ready(again)[0])["reason"] == "gone"


# -- several topics, one cursor -----------------------------------------------------------------


@contract
async def test_several_topics_interleave_under_a_composite_cursor(make_hub: MakeHub) -> None:
    hub = await make_hub()
    sub = hub.subscribe("a", "b")
    await sub.prepare_stream()
    (priming,) = ready(sub)
    cursor = primed_at(priming)
    assert set((parse_cursor(cursor) or {}).keys()) == {source_key("a"), source_key("b")}
    a1 = await hub.publish("a", "a1")
    b1 = await hub.publish("b", "b1")
    a2 = await hub.publish("a", "a2")
    await reached(hub, "a", a2)
    await reached(hub, "b", b1)
    events = frames_of(ready(sub))
    assert sorted(e.data for e in events) == ["a1", "a2", "b1"]
    assert [e.data for e in events if e.data.startswith("a")] == ["a1", "a2"]  # per topic
    last = parse_cursor(events[-1].id) or {}
    assert last == {source_key("a"): a2, source_key("b"): b1}
    assert a1 != a2


@contract
async def test_a_composite_cursor_resumes_every_topic_exactly(make_hub: MakeHub) -> None:
    hub = await make_hub()
    sub = hub.subscribe("a", "b")
    await sub.prepare_stream()
    ready(sub)
    await reached(hub, "a", await hub.publish("a", "a1"))
    await reached(hub, "b", await hub.publish("b", "b1"))
    events = frames_of(ready(sub))
    cursor = events[-1].id
    sub.close()
    await reached(hub, "a", await hub.publish("a", "a2"))
    await reached(hub, "b", await hub.publish("b", "b2"))
    again = hub.subscribe("a", "b", last_event_id=cursor)
    await again.prepare_stream()
    assert sorted(e.data for e in frames_of(ready(again))) == ["a2", "b2"]


@contract
async def test_cursor_keys_of_topics_not_granted_are_ignored(make_hub: MakeHub) -> None:
    hub = await make_hub()
    secret = hub.subscribe("a", "secret")
    await secret.prepare_stream()
    ready(secret)
    await reached(hub, "secret", await hub.publish("secret", "classified"))
    await reached(hub, "a", await hub.publish("a", "a1"))
    cursor = frames_of(ready(secret))[0].id
    granted = hub.subscribe("a", "b", last_event_id=cursor)
    await granted.prepare_stream()
    frames = frames_of(ready(granted))
    assert all("classified" not in e.data for e in frames)
    assert all(e.event != "reset" for e in frames)


@contract
async def test_a_single_topic_id_given_to_several_topics_is_malformed(make_hub: MakeHub) -> None:
    hub = await make_hub()
    event_id = await hub.publish("a", "a1")
    sub = hub.subscribe("a", "b", last_event_id=event_id)
    await sub.prepare_stream()
    assert reset_info(ready(sub)[0])["reason"] == "malformed"


# -- ending --------------------------------------------------------------------------------


@contract
async def test_closing_a_topic_drains_open_streams_then_ends_them(make_hub: MakeHub) -> None:
    hub = await make_hub()
    sub = hub.subscribe("news")
    await sub.prepare_stream()
    ready(sub)
    first = await hub.publish("news", tick(1))
    await hub.close("news", final_event=ServerSentEvent("bye", event="closed"))
    await closed(hub, "news")
    frames = frames_of([*ready(sub)])
    assert [e.id for e in frames][:1] == [first]
    assert frames[-1].event == "closed"
    with pytest.raises(StopAsyncIteration):
        sub.next_nowait()
    with pytest.raises(TopicClosed):
        await hub.publish("news", tick(2))
    await hub.close("news")  # closing again: nothing to do


@contract
async def test_a_closed_topic_answers_204_at_the_head_and_the_tail_behind_it(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    first = await hub.publish("news", tick(1))
    last = await hub.publish("news", tick(2))
    await hub.close("news")
    app = SSEEndpoint(lambda request: hub.subscribe("news", last_event_id=request.last_event_id))
    for at_head in (None, last):
        async with connect(app, "/", last_event_id=at_head) as stream:
            await stream.wait_finished()
        assert stream.status == 204, at_head
        assert stream.header("content-type") is None
    async with connect(app, "/", last_event_id=first) as stream:
        event = await stream.next_event()
        await stream.wait_finished()
    assert (stream.status, event.id) == (200, last)
    assert stream.complete
    assert hub.stats().subscribers == 0


@contract
async def test_the_starlette_response_answers_204_too(make_hub: MakeHub) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    from asgi_sse.starlette import EventSourceResponse as StarletteResponse

    hub = await make_hub()
    await hub.close("news")

    async def route(request: Request) -> StarletteResponse:
        return StarletteResponse(hub.subscribe("news"))

    async with connect(Starlette(routes=[Route("/", route)]), "/") as stream:
        await stream.wait_finished()
    assert stream.status == 204


async def test_a_failing_prepare_is_a_500_before_any_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def __aiter__(self) -> Broken:
            return self

        async def __anext__(self) -> str:
            raise StopAsyncIteration  # pragma: no cover

        async def prepare_stream(self) -> bool:
            raise ConnectionError("the backend is down")

    async with connect(EventSourceResponse(Broken())) as stream:
        await stream.wait_finished()
    assert stream.status == 500
    assert "preparing the stream" in caplog.text


@contract
async def test_stopping_the_hub_ends_every_stream(make_hub: MakeHub) -> None:
    hub = await make_hub()
    app = SSEEndpoint(lambda request: hub.subscribe("news"))
    async with connect(app, "/") as stream:
        await stream.wait_started()  # subscribed before the headers went out
        await hub.publish("news", tick(1))
        await stream.next_event()
        await hub.stop()
        await stream.wait_finished()
    assert stream.complete
    assert hub.stats().dropped == {"stopped": 1}
    with pytest.raises(TopicClosed):
        await hub.publish("news", tick(2))


# -- through the response ----------------------------------------------------------------------


@contract
async def test_a_subscriber_behind_gets_what_it_missed_in_one_send(make_hub: MakeHub) -> None:
    hub = await make_hub()
    ids = [await hub.publish("news", tick(n)) for n in range(50)]
    response = EventSourceResponse(hub.subscribe("news", last_event_id=ids[0]))
    async with connect(response) as stream:
        events = [await stream.next_event() for _ in range(49)]
    assert [e.id for e in events] == ids[1:]
    bodies = [m for m in stream.messages if m["type"] == "http.response.body" and m["body"]]
    assert len(bodies) == 1


@contract
async def test_the_subscription_ends_with_the_response(make_hub: MakeHub) -> None:
    hub = await make_hub()
    app = SSEEndpoint(lambda request: hub.subscribe("news"))
    async with connect(app, "/") as stream:
        await stream.wait_started()
        assert hub.stats().subscribers == 1
    assert hub.stats().subscribers == 0


# -- limits, lifecycle, threads, counters -------------------------------------------


@contract
async def test_topics_are_bounded_idle_ones_make_room_and_busy_ones_refuse(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(max_topics=2)
    await hub.publish("one", "x")
    keep = hub.subscribe("two")
    await hub.publish("three", "x")  # "one" (idle) was forgotten to make room
    assert hub.head("one") is None
    assert hub.stats().topics == 2
    other = hub.subscribe("three")
    with pytest.raises(HubFull):
        await hub.publish("four", "x")
    keep.close()
    other.close()


async def test_idle_topics_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    hub = Hub(expire_after=10)
    old = await hub.publish("old", "x")
    busy = hub.subscribe("busy")
    clock.now += 11
    await hub.publish("new", "x")  # a sweep happens on the way
    assert hub.head("old") is None
    assert hub.head("busy") is not None  # it has a subscriber
    sub = hub.subscribe("old", last_event_id=old)  # a new log, a new epoch
    await sub.prepare_stream()
    assert reset_info(ready(sub)[0])["reason"] == "unknown"
    busy.close()


@contract
async def test_publish_from_another_thread(make_hub: MakeHub) -> None:
    hub = await make_hub()
    sub = hub.subscribe("news")
    await sub.prepare_stream()
    ready(sub)
    event_id = await anyio.to_thread.run_sync(hub.publish_from_thread, "news", "hi")
    await reached(hub, "news", event_id)
    assert [e.id for e in frames_of(ready(sub))] == [event_id]


async def test_publish_from_a_thread_needs_an_entered_hub() -> None:
    with pytest.raises(RuntimeError, match="enter the hub"):
        Hub().publish_from_thread("news", "x")


async def test_publish_from_thread_in_the_loops_own_thread_raises_at_once() -> None:
    # Handed to the loop and waited for from the loop's thread, it would wait for good.
    async with Hub() as hub:
        sub = hub.subscribe("news")
        await sub.prepare_stream()
        ready(sub)
        with pytest.raises(RuntimeError, match=r"await hub\.publish\(\.\.\.\)"):
            hub.publish_from_thread("news", "from a coroutine")

        def callback() -> str:  # synchronous code the loop runs
            return hub.publish_from_thread("news", "from a callback")

        with pytest.raises(RuntimeError, match="event loop thread"):
            callback()
        assert ready(sub) == []  # nothing was published
        # Another thread still publishes.
        event_id = await anyio.to_thread.run_sync(hub.publish_from_thread, "news", "hi")
        await reached(hub, "news", event_id)
        assert [e.id for e in frames_of(ready(sub))] == [event_id]
        sub.close()


@pytest.mark.parametrize(
    "options",
    [
        {"history": 0},
        {"history_bytes": -1},
        {"max_topics": True},
        {"expire_after": 0},
        {"on_overflow": "drop"},
    ],
)
def test_hub_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Hub(**options)


async def test_subscribe_needs_distinct_topics() -> None:
    hub = Hub()
    with pytest.raises(ValueError, match="at least one"):
        hub.subscribe()
    with pytest.raises(ValueError, match="twice"):
        hub.subscribe("a", "a")
    with pytest.raises(ValueError, match="non-empty str"):
        hub.subscribe("")


@contract
async def test_counters_and_the_observer(make_hub: MakeHub) -> None:
    seen: list[tuple[Any, ...]] = []

    class Recorder(HubObserver):
        def on_publish(self, topic: str, event_id: str, size: int) -> None:
            seen.append(("publish", topic))

        def on_subscribe(self, topics: tuple[str, ...], how: str) -> None:
            seen.append(("subscribe", topics, how))

        def on_reset(self, topics: tuple[str, ...], reason: str) -> None:
            seen.append(("reset", topics, reason))

        def on_end(self, topics: tuple[str, ...], reason: str, events: int, size: int) -> None:
            seen.append(("end", topics, reason, events))

    hub = await make_hub(observer=Recorder())
    sub = hub.subscribe("news")
    await sub.prepare_stream()
    await reached(hub, "news", await hub.publish("news", "x"))
    ready(sub)
    sub.close()
    bad = hub.subscribe("news", last_event_id="nope")
    await bad.prepare_stream()
    bad.close()
    assert seen == [
        ("subscribe", ("news",), "live"),
        ("publish", "news"),
        ("end", ("news",), "end", 2),
        ("reset", ("news",), "malformed"),
        ("subscribe", ("news",), "reset"),
        ("end", ("news",), "end", 0),
    ]
    stats = hub.stats()
    assert (stats.published, stats.subscribers, stats.resets) == (1, 0, {"malformed": 1})


@contract
async def test_an_observer_raising_in_on_publish_does_not_fail_the_publish(
    make_hub: MakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    """The event is stored before the hook runs: an exception there must not reach the
    publisher, who would retry and publish it twice."""

    class Broken(HubObserver):
        def on_publish(self, topic: str, event_id: str, size: int) -> None:
            raise RuntimeError("metrics are down")

    hub = await make_hub(observer=Broken())
    sub = hub.subscribe("news")
    await sub.prepare_stream()
    event_id = await hub.publish("news", "x")
    await reached(hub, "news", event_id)
    assert hub.head("news") == event_id
    assert hub.stats().published == 1
    assert "on_publish raised" in caplog.text
    sub.close()


async def test_an_observer_raising_in_any_hook_changes_nothing_the_hub_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Metrics must not end a subscription: every hook that raises is logged, and the
    streams, the resets and the counts go on as if it had not."""

    class Broken(HubObserver):
        lag_every = 1

        def on_subscribe(self, topics: tuple[str, ...], how: SubscriptionStart) -> None:
            raise RuntimeError("on_subscribe is down")

        def on_reset(self, topics: tuple[str, ...], reason: ResetReason) -> None:
            raise RuntimeError("on_reset is down")

        def on_lag(self, topic: str, seconds: float) -> None:
            raise RuntimeError("on_lag is down")

        def on_end(
            self, topics: tuple[str, ...], reason: SubscriptionEnd, events: int, size: int
        ) -> None:
            raise RuntimeError("on_end is down")

    hub = Hub(observer=Broken())
    async with hub:
        app = SSEEndpoint(
            lambda request: hub.subscribe("news", last_event_id=request.last_event_id)
        )
        async with connect(app) as live, connect(app, last_event_id="nope") as reset:
            await live.wait_started()
            assert (await reset.next_event()).event == "reset"
            await hub.publish("news", "one")
            assert (await live.next_event()).data == "one"
            assert (await reset.next_event()).data == "one"
            await hub.close("news")
            await live.wait_finished()
            await reset.wait_finished()
        assert live.complete
        assert reset.complete
    stats = hub.stats()
    assert (stats.subscribers, stats.resets) == (0, {"malformed": 1})
    for hook in ("on_subscribe", "on_reset", "on_lag", "on_end"):
        assert f"HubObserver.{hook} raised; ignored" in caplog.text


async def test_memory_per_idle_subscriber_is_a_few_hundred_bytes() -> None:
    hub = Hub()
    await hub.publish("news", "warm up")
    count = 2000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        subs = [hub.subscribe("news") for _ in range(count)]
        for sub in subs:
            await sub.prepare_stream()
            ready(sub)
        per_subscriber = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    print(f"\nmemory per idle subscriber (tracemalloc, cursor only): {per_subscriber:.0f} B")
    assert per_subscriber < 1000
    for sub in subs:
        sub.close()


@contract
async def test_a_subscription_iterated_directly_resolves_itself(make_hub: MakeHub) -> None:
    hub = await make_hub()
    first = await hub.publish("news", "a")
    sub = hub.subscribe("news", last_event_id=first)
    await hub.publish("news", "b")
    frames = await take(sub, 1)
    assert frames_of(frames)[0].data == "b"
    await sub.aclose()
    await sub.aclose()  # idempotent


@contract
async def test_a_handler_returning_a_subscription_streams_through_sse_endpoint(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()

    def handler(request: SSERequest) -> Subscription:
        return hub.subscribe("chat", last_event_id=request.last_event_id)

    async with connect(SSEEndpoint(handler), "/") as stream:
        await stream.wait_started()
        event_id = await hub.publish("chat", "hello")
        event = await stream.next_event()
    assert (event.data, event.id) == ("hello", event_id)


async def test_hub_lifespan_runs_the_hub_for_the_life_of_the_server() -> None:
    hub = Hub()
    inner_calls: list[str] = []
    seen: dict[str, Any] = {}

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        inner_calls.append(scope["type"])
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                seen["thread_id"] = await anyio.to_thread.run_sync(
                    hub.publish_from_thread, "news", "from a thread"
                )
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})

    app = hub.lifespan(inner)
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Any] = []

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert seen["thread_id"] == hub.head("news")
    with pytest.raises(TopicClosed):  # stopped with the server
        await hub.publish("news", "late")
    async with connect(app, "/") as stream:  # http goes straight through
        await stream.wait_finished()
    assert inner_calls == ["lifespan", "http"]


@contract
async def test_dropping_a_subscription_ends_its_stream_and_it_resumes_exactly(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    subs: list[Subscription] = []

    def handler(request: SSERequest) -> Subscription:
        subs.append(hub.subscribe("news", last_event_id=request.last_event_id))
        return subs[-1]

    app = SSEEndpoint(handler)
    async with connect(app, "/") as stream:
        await stream.wait_started()
        first = await hub.publish("news", tick(1))
        assert (await stream.next_event()).id == first
        subs[-1].drop()
        await stream.wait_finished()
    assert stream.complete
    missed = await hub.publish("news", tick(2))
    async with connect(app, "/", last_event_id=stream.last_event_id) as again:
        assert (await again.next_event()).id == missed
    assert hub.stats().dropped == {"dropped": 1}


async def test_a_backend_assigns_ids_and_says_where_clients_resume() -> None:
    from asgi_sse.backends import LogBounds, ResumePoint, TopicLog

    calls: list[str] = []

    class Recording:
        """A backend of its own, public imports only: the memory backend underneath,
        every call recorded; declared like a backend on the network (no synchronous
        append, logs fed from `attach` on)."""

        logs_are_the_store = False
        can_append_nowait = False

        def __init__(self) -> None:
            self.memory = MemoryBackend()

        async def start(self, bounds: LogBounds) -> None:
            calls.append("start")

        async def stop(self) -> None:
            calls.append("stop")

        async def append(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
            calls.append(f"append {log.name}")
            return self.memory.append_nowait(log, prefix, suffix)

        def append_nowait(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
            raise NotImplementedError  # pragma: no cover - never called: declared above

        async def close(self, log: TopicLog) -> None:
            calls.append(f"close {log.name}")
            await self.memory.close(log)

        async def attach(self, log: TopicLog) -> None:
            calls.append(f"attach {log.name}")
            await self.memory.attach(log)

        def forget(self, log: TopicLog) -> None:
            calls.append(f"forget {log.name}")
            self.memory.forget(log)

        async def locate(self, log: TopicLog, position: str) -> ResumePoint:
            calls.append(f"locate {position}")
            return await self.memory.locate(log, position)

        async def available(self) -> None:
            calls.append("available")
            await self.memory.available()

    backend: HubBackend = Recording()  # type-checked against the protocol
    async with Hub(backend=backend, max_topics=1) as hub:
        first = await hub.publish("t", "a")
        await hub.publish("t", "b")
        with pytest.raises(TypeError, match="publishes asynchronously"):
            hub.publish_nowait("t", "c")
        assert hub.head("t") is None  # not followed yet: its backend feeds it from now
        sub = hub.subscribe("t", last_event_id=first)
        await sub.prepare_stream()
        assert [e.data for e in frames_of(ready(sub))] == ["b"]
        assert hub.head("t") is not None
        sub.close()
        earliest = hub.subscribe("t", last_event_id=Hub.EARLIEST)
        await earliest.prepare_stream()
        assert [e.data for e in frames_of(ready(earliest))] == ["a", "b"]
        earliest.close()
        await hub.close("t")
        await hub.publish("u", "x")  # one topic at most: the idle "t" is forgotten
    assert calls == [
        "start",
        "append t",
        "append t",
        "attach t",
        f"locate {first}",
        "locate earliest",
        "close t",
        "forget t",
        "append u",
        "stop",
    ]


@contract
async def test_dropping_before_the_response_starts_is_no_204(make_hub: MakeHub) -> None:
    hub = await make_hub()
    first = await hub.publish("news", "a")
    sub = hub.subscribe("news", last_event_id=first)
    sub.drop()
    assert await sub.prepare_stream()  # streams (nothing), ends: the browser comes back


@contract
async def test_the_stream_is_closed_when_the_headers_cannot_be_sent(make_hub: MakeHub) -> None:
    hub = await make_hub()
    server_scope = {"type": "http", "method": "GET", "path": "/", "headers": []}

    async def gone(message: Any) -> None:
        raise OSError("the client left before the headers")

    async def failing(message: Any) -> None:
        raise RuntimeError("the server's send broke")

    async def receive() -> Any:
        await anyio.sleep_forever()

    await EventSourceResponse(hub.subscribe("news"))(server_scope, receive, gone)
    with pytest.raises(RuntimeError, match="send broke"):
        await EventSourceResponse(hub.subscribe("news"))(server_scope, receive, failing)
    assert hub.stats().subscribers == 0


def test_one_hub_serves_whichever_event_loop_runs_it() -> None:
    """A hub made at import time (the README's pattern) with several event loops in
    turn, as in-process tests run one loop per test."""
    hub = Hub()

    async def round_trip() -> None:
        async with hub:
            sub = hub.subscribe("news")
            await sub.prepare_stream()
            ready(sub)
            async with anyio.create_task_group() as group:

                async def publish_later() -> None:
                    await anyio.sleep(0.01)
                    await hub.publish("news", "x")

                group.start_soon(publish_later)
                assert frames_of(await take(sub, 1))[0].data == "x"
            sub.close()

    for backend in ("asyncio", "trio", "asyncio"):
        anyio.run(round_trip, backend=backend)  # entered again after each stop


@pytest.mark.parametrize("reads_first", [False, True])
async def test_hub_lifespan_answers_for_an_app_that_does_not(reads_first: bool) -> None:
    """ASGI: an app without lifespan raises on it; the hub must run all the same."""
    hub = Hub()

    async def no_lifespan(scope: Any, receive: Any, send: Any) -> None:
        if reads_first:
            await receive()
        raise RuntimeError("lifespan not supported")

    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []
    published: list[str] = []

    async def receive() -> Any:
        if incoming[0]["type"] == "lifespan.shutdown":
            published.append(await hub.publish("t", "while running"))
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    await hub.lifespan(no_lifespan)({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert len(published) == 1


async def test_hub_lifespan_lets_an_error_after_startup_through() -> None:
    hub = Hub()

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        raise LookupError("broke while running")

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        pass

    with pytest.raises(LookupError):
        await hub.lifespan(failing)({"type": "lifespan"}, receive, send)


async def test_a_subscription_at_max_topics_never_evicts_its_own_topics() -> None:
    """Making the log of its second topic must not push out the log of its first (made
    a moment before): either both are held, or HubFull - never an orphan log."""
    hub = Hub(max_topics=2)
    busy = hub.subscribe("busy")
    with pytest.raises(HubFull):
        hub.subscribe("a", "b")
    assert hub._core.logs["busy"].subscribers == 1
    assert all(log.subscribers == 0 for name, log in hub._core.logs.items() if name != "busy")
    busy.close()
    sub = hub.subscribe("a", "b")  # "busy" is idle now: it makes room
    assert await sub.prepare_stream()
    ready(sub)
    await hub.publish("a", "hello")
    assert [event.data for event in frames_of(ready(sub))] == ["hello"]
    assert hub._core.logs["a"] is sub._topics[0]
    sub.close()
