"""`Hub.subscribe(owner=)` and `Hub.drop(owner)` on one process (issue 21).

An owner's every stream ends - one topic, several topics, merged with another stream,
still replaying, still waiting for an unreachable backend - and nobody else's; the
whole response ends cleanly (``dropped``), also when the subscription is one branch of
a ``merge()``; the handler runs again on reconnect and decides (resume exactly, or
403). Both anyio backends, in-process (`asgi_sse.testing.connect`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asgi_sse import (
    EventSourceResponse,
    Hub,
    HubUnavailable,
    ServerSentEvent,
    SSERequest,
    StreamObserver,
    Subscription,
    merge,
)
from asgi_sse.backends import MemoryBackend, ResumePoint, TopicLog
from asgi_sse.testing import connect

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


class Closes(StreamObserver):
    """Records why each response ended."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def on_close(
        self, scope: Mapping[str, Any], reason: str, events: int, size: int, seconds: float
    ) -> None:
        self.reasons.append(reason)


async def _ticks() -> AsyncIterator[ServerSentEvent]:
    number = 0
    while True:
        yield ServerSentEvent(f"tick {number}", event="tick")
        number += 1
        await anyio.sleep(0.05)


def owners_app(hub: Hub, revoked: set[str], closes: Closes) -> Any:
    """``?owner=O&topic=T[&topic=U][&merged=1]``: 403 for a revoked owner; else the
    owner's subscription, merged with a ticker when ``merged``."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        request = SSERequest(scope, receive)
        owner = request.query_params["owner"]
        if owner in revoked:
            await send({"type": "http.response.start", "status": 403, "headers": []})
            await send({"type": "http.response.body", "body": b"revoked"})
            return
        topics = [value for name, value in request.query_list if name == "topic"]
        subscription = hub.subscribe(*topics, last_event_id=request.last_event_id, owner=owner)
        stream: Any = subscription
        if request.query_params.get("merged"):
            stream = merge(subscription, _ticks())
        await EventSourceResponse(stream, observer=closes)(scope, receive, send)

    return app


async def test_owner_must_be_a_non_empty_str(anyio_backend: str) -> None:
    async with Hub() as hub:
        for bad in ("", 3, None.__class__):
            with pytest.raises(ValueError, match="owner must be a non-empty str"):
                hub.subscribe("t", owner=bad)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="owner must be a non-empty str"):
                await hub.drop(bad)  # type: ignore[arg-type]
        assert hub.stats().subscribers == 0


async def test_drop_ends_every_stream_of_the_owner_and_none_of_the_others(
    anyio_backend: str,
) -> None:
    closes, revoked = Closes(), set[str]()
    async with Hub(history=5000) as hub:
        for n in range(3000):
            hub.publish_nowait("big", f"{n} " + "x" * 1000)
        app = owners_app(hub, revoked, closes)
        async with (
            connect(app, "/?owner=a&topic=t") as one,
            connect(app, "/?owner=a&topic=t&topic=u") as several,
            connect(app, "/?owner=a&topic=t&merged=1") as merged,
            connect(app, "/?owner=b&topic=t") as other,
        ):
            for stream in (one, several, merged, other):
                await stream.wait_started()
            await merged.next_event()  # a tick: the merge's branches run
            first = hub.publish_nowait("t", "before")
            for stream in (one, several, merged, other):
                while True:
                    event = await stream.next_event()
                    if event.data == "before":
                        break
            # Replaying: 3 MB from the log's start, and the client stops reading at once.
            async with connect(app, "/?owner=a&topic=big", last_event_id=Hub.EARLIEST) as replay:
                await replay.wait_started()
                replay.freeze()
                assert await hub.drop("a") == 4
                for stream in (one, several, merged):
                    await stream.wait_finished(timeout=1.0)
                    assert stream.complete  # a clean end, not an error
                replay.unfreeze()
                await replay.wait_finished(timeout=1.0)
                assert replay.complete
                replayed = [event async for event in replay]
                assert len(replayed) < 3000  # it was dropped with its replay under way
            assert closes.reasons.count("dropped") == 4
            # b streams on, without a gap.
            second = hub.publish_nowait("t", "after")
            event = await other.next_event()
            assert (event.data, event.id) == ("after", second)
            assert not other.finished
            assert first != second
            assert await hub.drop("a") == 0  # nothing left of a
            assert await hub.drop("nobody") == 0
        assert hub.stats().subscribers == 0
        assert hub._core.owned == {}


async def test_a_dropped_client_resumes_exactly_or_is_refused(anyio_backend: str) -> None:
    closes, revoked = Closes(), set[str]()
    async with Hub() as hub:
        app = owners_app(hub, revoked, closes)
        async with connect(app, "/?owner=a&topic=t&merged=1") as stream:
            await stream.next_event()  # a tick: the merge's branches run
            seen = hub.publish_nowait("t", "one")
            while (await stream.next_event()).data != "one":
                pass
            assert await hub.drop("a") == 1
            await stream.wait_finished(timeout=1.0)
        # Published while the client was away; it resumes after the last id it got.
        missed = [hub.publish_nowait("t", f"missed {n}") for n in range(3)]
        async with connect(app, "/?owner=a&topic=t", last_event_id=seen) as again:
            got = [await again.next_event() for _ in range(3)]
            assert [event.id for event in got] == missed
            assert [event.data for event in got] == [f"missed {n}" for n in range(3)]
        revoked.add("a")
        assert await hub.drop("a") == 0
        async with connect(app, "/?owner=a&topic=t", last_event_id=missed[-1]) as refused:
            await refused.wait_finished()
            assert refused.status == 403


async def test_a_subscription_dropped_before_its_response_starts_ends_at_once(
    anyio_backend: str,
) -> None:
    async with Hub() as hub:
        sub = hub.subscribe("t", owner="a")
        assert await hub.drop("a") == 1
        assert await sub.prepare_stream()
        # At most the priming frame (a new client's position), then the end.
        assert [frame async for frame in sub] in ([], [f"id: {hub.head('t')}\n\n".encode()])
        sub.close()
        sub.drop()  # closed: nothing happens
        assert hub.stats().subscribers == 0


class DownBackend(MemoryBackend):
    """A memory backend whose store cannot be reached: ids never resolve, and
    `available` never returns."""

    async def locate(self, log: TopicLog, position: str) -> ResumePoint:
        raise HubUnavailable("down")

    async def available(self) -> None:
        await anyio.sleep_forever()


async def test_a_stream_waiting_for_an_unreachable_backend_is_dropped(
    anyio_backend: str,
) -> None:
    closes = Closes()
    async with Hub(backend=DownBackend()) as hub:
        hub.publish_nowait("t", "x")
        app = owners_app(hub, set(), closes)
        async with connect(app, "/?owner=a&topic=t", last_event_id="1-1") as stream:
            await stream.wait_started()  # opened: the id resolves once the store answers
            assert await hub.drop("a") == 1
            await stream.wait_finished(timeout=1.0)
            assert stream.complete
        # Iterated by hand, outside any response: the wait ends too.
        sub = hub.subscribe("t", last_event_id="1-1", owner="b")
        assert await sub.prepare_stream()
        ended = anyio.Event()

        async def read() -> None:
            with pytest.raises(StopAsyncIteration):
                await sub.__anext__()
            ended.set()

        async with anyio.create_task_group() as group:
            group.start_soon(read)
            with anyio.fail_after(5):
                while sub._waiting_for_backend is None:
                    await anyio.lowlevel.checkpoint()
            assert await hub.drop("b") == 1
            with anyio.fail_after(1):
                await ended.wait()
        sub.close()
    assert closes.reasons == ["dropped"]


async def test_subscription_drop_ends_a_merged_response(anyio_backend: str) -> None:
    closes = Closes()
    async with Hub() as hub:
        subs: list[Subscription] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            subs.append(hub.subscribe("t"))
            await EventSourceResponse(merge(subs[-1], _ticks()), observer=closes)(
                scope, receive, send
            )

        async with connect(app) as stream:
            await stream.next_event()  # a tick: the merge runs
            with anyio.fail_after(5):
                while subs[0]._end_response is not None and not callable(subs[0]._end_response):
                    await anyio.lowlevel.checkpoint()
            subs[0].drop()
            await stream.wait_finished(timeout=1.0)
            assert stream.complete
    assert closes.reasons == ["dropped"]


async def test_a_subscription_dropped_before_its_merge_runs_it_ends_the_response(
    anyio_backend: str,
) -> None:
    closes = Closes()
    async with Hub() as hub:
        sub = hub.subscribe("t", owner="a")
        assert await hub.drop("a") == 1  # before the response, and its merge, start

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await EventSourceResponse(merge(sub, _ticks()), observer=closes)(scope, receive, send)

        async with connect(app) as stream:
            await stream.wait_finished(timeout=1.0)
            assert stream.complete
    assert closes.reasons == ["dropped"]
