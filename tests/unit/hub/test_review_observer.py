"""Review of `HubCore.observe` (every HubObserver hook logged and ignored): observers
that are not plain subclasses (a mock, a ``__getattr__`` proxy, hooks as instance
attributes), hooks raising BaseException, an observer swapped mid-stream, the Redis
reader's lag sampling, the otel observer, and what ``on_end`` sees.

Every wait is bounded (`anyio.fail_after`) and waits on a condition.
"""

from __future__ import annotations

import types
from typing import Any
from unittest import mock

import anyio
import anyio.lowlevel
import pytest

from asgi_sse import Hub, HubObserver, SSEEndpoint
from asgi_sse.testing import connect
from tests.support.redisutil import REDIS_URL, redis_prefix
from tests.unit.hub.test_hub import reached

__all__ = ("redis_prefix",)  # a fixture, imported to be found here

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


class GetattrObserver:
    """A proxy-style observer: every attribute is a hook that records its call (what a
    fan-out to several observers, or a recording double, often looks like)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def hook(*args: object) -> None:
            self.calls.append(name)

        return hook


class ConfiguredObserver(HubObserver):
    """``lag_every`` read from the environment/config, left a str."""

    lag_every = "10"  # type: ignore[assignment]


def odd_observers() -> list[Any]:
    return [
        pytest.param(lambda: mock.Mock(spec=HubObserver), id="Mock(spec=HubObserver)"),
        pytest.param(lambda: mock.Mock(), id="Mock()"),
        pytest.param(GetattrObserver, id="__getattr__"),
        pytest.param(ConfiguredObserver, id="lag_every-str"),
    ]


async def call_every_hook(hub: Hub) -> None:
    """Make ``hub`` call each hook once: a Reset (an unreadable id) on subscribing, a
    publish taken (sampled for its lag), and the end."""
    async with hub:
        sub = hub.subscribe("news", last_event_id="nope")
        await sub.prepare_stream()
        assert sub.next_ready() is not None  # the Reset
        await hub.publish("news", "x")
        assert sub.next_ready() is not None
        sub.close()


# -- what the review found (fixed) -----------------------------------------------


@pytest.mark.parametrize("make_observer", odd_observers())
async def test_an_odd_observer_does_not_fail_the_publish(make_observer: Any) -> None:
    """HubObserver's docstring: "metrics never end a subscription or fail a publish".
    ``lag_every`` was read unguarded in `TopicLog.append`: ``newest % lag_every`` raised
    TypeError after the event was stored - the "retry publishes it twice" case
    on_publish's guard is for. Now anything but a non-negative int counts as 0."""
    hub = Hub(observer=make_observer())
    async with hub:
        sub = hub.subscribe("news")
        try:
            await sub.prepare_stream()
            with anyio.fail_after(5):
                event_id = await hub.publish("news", "one")
            assert hub.head("news") == event_id
        finally:
            sub.close()


@pytest.mark.parametrize("make_observer", odd_observers()[:1])
async def test_a_parked_subscriber_gets_what_an_odd_observer_publish_stored(
    make_observer: Any,
) -> None:
    """When that publish raised (before the fix), the event was already in the log but
    `TopicLog.append` raised before its wake-up: a subscriber parked at that moment was
    never woken (a lost wake-up). Now the odd rate counts as 0 and the event arrives."""
    hub = Hub(observer=make_observer())
    async with hub:
        app = SSEEndpoint(lambda request: hub.subscribe("news"))
        async with connect(app) as live:
            await live.wait_started()
            log = hub._core.logs["news"]
            with anyio.fail_after(5):  # the response's pump parks on the log
                while not (log.parked or log.next_change_event is not None or log.waiters):
                    await anyio.lowlevel.checkpoint()
            await hub.publish("news", "one")
            assert hub.head("news") is not None  # stored
            with anyio.fail_after(3):
                assert (await live.next_event()).data == "one"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_redis_hub_reader_survives_an_odd_observer(redis_prefix: str) -> None:
    """On Redis the same TypeError is raised in the reader (`Reader.feed` is outside
    `Reader.run`'s try): the reader's task dies ("Task exception was never retrieved")
    and every topic of its group stops receiving - publishes still succeed."""
    from asgi_sse.redis import RedisStreamsBackend

    backend = RedisStreamsBackend(REDIS_URL, prefix=redis_prefix)
    async with Hub(backend=backend, observer=mock.Mock(spec=HubObserver)) as hub:
        sub = hub.subscribe("news")
        try:
            await sub.prepare_stream()
            assert sub.next_ready() is not None  # the priming frame
            ids = [await hub.publish("news", "one"), await hub.publish("news", "two")]
            got: list[bytes] = []
            with anyio.fail_after(5):
                while len(got) < 2:
                    got.append(await sub.__anext__())
            assert [ids[0] in got[0].decode(), ids[1] in got[1].decode()] == [True, True]
        finally:
            sub.close()


async def test_an_observer_set_mid_stream_with_lag_every_0_gets_no_on_lag() -> None:
    """``lag_every = 0`` means never; but an observer swapped in mid-stream gets
    `on_lag` for samples the previous observer's rate took."""
    lags: list[tuple[str, str]] = []

    class Sampling(HubObserver):
        lag_every = 1

        def on_lag(self, topic: str, seconds: float) -> None:
            lags.append(("first", topic))

    class NoLag(HubObserver):
        lag_every = 0

        def on_lag(self, topic: str, seconds: float) -> None:
            lags.append(("second", topic))

    hub = Hub(observer=Sampling())
    async with hub:
        sub = hub.subscribe("news")
        try:
            await sub.prepare_stream()
            assert sub.next_ready() is not None  # priming
            await hub.publish("news", "sampled under the first")
            hub.observer = NoLag()
            assert sub.next_ready() is not None
        finally:
            sub.close()
    assert lags == []


# -- hazards that hold -----------------------------------------------------------------


async def test_hooks_as_instance_attributes_are_called(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A duck-typed observer (a namespace of functions, no class methods)."""
    calls: list[str] = []
    observer = types.SimpleNamespace(
        lag_every=1,
        on_publish=lambda *a: calls.append("publish"),
        on_subscribe=lambda *a: calls.append("subscribe"),
        on_reset=lambda *a: calls.append("reset"),
        on_lag=lambda *a: calls.append("lag"),
        on_end=lambda *a: calls.append("end"),
    )
    hub = Hub(observer=observer)  # type: ignore[arg-type]
    await call_every_hook(hub)
    assert calls == ["reset", "subscribe", "publish", "lag", "end"]
    assert "raised" not in caplog.text


async def test_a_getattr_observer_with_an_int_lag_every_gets_every_hook() -> None:
    class Proxy(GetattrObserver):
        lag_every = 1

    observer = Proxy()
    hub = Hub(observer=observer)  # type: ignore[arg-type]
    async with hub:
        sub = hub.subscribe("news")
        await sub.prepare_stream()
        assert sub.next_ready() is not None
        await hub.publish("news", "x")
        assert sub.next_ready() is not None
        sub.close()
    assert observer.calls == ["on_subscribe", "on_publish", "on_lag", "on_end"]


async def test_a_hook_missing_on_a_duck_typed_observer_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = types.SimpleNamespace(lag_every=0)  # no hooks at all
    hub = Hub(observer=observer)  # type: ignore[arg-type]
    async with hub:
        sub = hub.subscribe("news")
        await sub.prepare_stream()
        await hub.publish("news", "x")
        assert sub.next_ready() is not None
        sub.close()
    assert "HubObserver.on_subscribe raised; ignored" in caplog.text
    assert "HubObserver.on_end raised; ignored" in caplog.text


@pytest.mark.parametrize("hook", ["on_publish", "on_subscribe", "on_end"])
async def test_a_hook_raising_a_base_exception_is_not_swallowed(hook: str) -> None:
    """KeyboardInterrupt/SystemExit must not be logged and eaten (only Exception is);
    the hub's counts stay right when on_end raises it."""

    class Interrupting(HubObserver):
        pass

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    observer = Interrupting()
    setattr(observer, hook, interrupt)
    hub = Hub(observer=observer)
    async with hub:
        sub = hub.subscribe("news")
        if hook == "on_subscribe":
            with pytest.raises(KeyboardInterrupt):
                await sub.prepare_stream()
        else:
            await sub.prepare_stream()
        if hook == "on_publish":
            with pytest.raises(KeyboardInterrupt):
                await hub.publish("news", "x")
        if hook == "on_end":
            with pytest.raises(KeyboardInterrupt):
                sub.close()
        else:
            sub.close()
        sub.close()  # idempotent after all
        stats = hub.stats()
        assert stats.subscribers == 0
        assert hub._core.logs["news"].subscribers == 0


async def test_on_end_raising_while_the_response_is_cancelled_ends_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client leaves (the response's task is cancelled) and on_end raises: the
    cancellation is not turned into an error, and on_end saw the end."""
    ended: list[str] = []
    told = anyio.Event()

    class Broken(HubObserver):
        def on_end(self, topics: tuple[str, ...], reason: Any, events: int, size: int) -> None:
            ended.append(reason)
            told.set()
            raise RuntimeError("on_end is down")

    hub = Hub(observer=Broken())
    async with hub:
        app = SSEEndpoint(lambda request: hub.subscribe("news"))
        with anyio.fail_after(5):
            async with connect(app) as live:
                await live.wait_started()
                await hub.publish("news", "one")
                assert (await live.next_event()).data == "one"
            await told.wait()  # the response's end runs as the connection closes
    assert ended == ["end"]
    assert hub.stats().subscribers == 0
    assert "HubObserver.on_end raised; ignored" in caplog.text


async def test_on_end_sees_the_hub_without_the_subscription() -> None:
    """on_end runs after the subscription is counted out: the hub's counters in the
    hook already hold its deliveries and no longer count it open; called once."""
    seen: list[tuple[int, int, int]] = []

    hub = Hub()

    class Looking(HubObserver):
        def on_end(self, topics: tuple[str, ...], reason: Any, events: int, size: int) -> None:
            stats = hub.stats()
            seen.append((stats.subscribers, stats.delivered_events, events))

    hub.observer = Looking()
    async with hub:
        sub = hub.subscribe("news")
        await sub.prepare_stream()
        await hub.publish("news", "x")
        while sub.next_ready() is not None:
            pass
        sub.close()
        sub.close()
    assert seen == [(0, 2, 2)]


async def test_observer_swapped_to_none_mid_stream_with_samples_pending() -> None:
    class Sampling(HubObserver):
        lag_every = 1

    hub = Hub(observer=Sampling())
    async with hub:
        sub = hub.subscribe("news")
        await sub.prepare_stream()
        assert sub.next_ready() is not None
        await hub.publish("news", "a")
        await hub.publish("news", "b")
        hub.observer = None
        assert sub.next_ready() is not None
        assert sub.next_ready() is not None
        await hub.publish("news", "c")
        assert sub.next_ready() is not None
        sub.close()


async def test_otel_metrics_with_a_raising_labeler_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from asgi_sse.otel import SSEMetrics

    def labeler(topic: str) -> str:
        raise KeyError(topic)

    metrics = SSEMetrics(topics=labeler, lag_every=1)
    hub = metrics.instrument_hub(Hub())
    await call_every_hook(hub)
    for hook in ("on_publish", "on_subscribe", "on_reset", "on_lag", "on_end"):
        assert f"HubObserver.{hook} raised; ignored" in caplog.text


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_redis_hub_with_raising_on_lag_keeps_streaming(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On Redis the lag is sampled from the entry id's time (`Reader._feed_log`)."""
    from asgi_sse.redis import RedisStreamsBackend

    lags: list[float] = []

    class Broken(HubObserver):
        lag_every = 1

        def on_lag(self, topic: str, seconds: float) -> None:
            lags.append(seconds)
            raise RuntimeError("on_lag is down")

    backend = RedisStreamsBackend(REDIS_URL, prefix=redis_prefix)
    async with Hub(backend=backend, observer=Broken()) as hub:
        sub = hub.subscribe("news")
        try:
            await sub.prepare_stream()
            assert sub.next_ready() is not None
            for data in ("one", "two"):
                event_id = await hub.publish("news", data)
                await reached(hub, "news", event_id)
                frame = sub.next_ready()
                assert frame is not None
                assert event_id in frame.decode()
        finally:
            sub.close()
    assert len(lags) == 2
    assert "HubObserver.on_lag raised; ignored" in caplog.text
