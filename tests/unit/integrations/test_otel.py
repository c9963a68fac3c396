"""OpenTelemetry metrics (asgi_sse.otel), read back with the SDK's in-memory reader."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from asgi_sse import Hub, ServerSentEvent, SSEEndpoint, SSERequest, StreamObserver, Subscription
from asgi_sse._hub.backend import BackendCounters
from asgi_sse.backends import MemoryBackend
from asgi_sse.otel import SSEMetrics
from asgi_sse.testing import connect

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


class Metrics:
    """An `SSEMetrics` on a private SDK provider, and what it recorded."""

    def __init__(self, **options: Any) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.metrics = SSEMetrics(self.provider, **options)

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def value(self, name: str, **attributes: str) -> Any:
        """The sum (or count, for a histogram) of the points with these attributes."""
        total = 0
        for point in self.points(name):
            if dict(point.attributes or {}) == attributes:
                total += point.count if hasattr(point, "count") else point.value
        return total

    def attributes(self, name: str) -> list[dict[str, Any]]:
        return [dict(point.attributes or {}) for point in self.points(name)]


async def ticks(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
    for n in range(int(request.query_params.get("n", "3"))):
        yield ServerSentEvent(f"tick {n}", id=n)
    if request.query_params.get("forever"):
        await anyio.sleep_forever()


async def test_connections_are_counted_open_and_closed_by_reason() -> None:
    m = Metrics(routes={"/ticks": "ticks"})
    app = SSEEndpoint(ticks, observer=m.metrics)
    async with connect(app, "/ticks?n=2&forever=1") as stream:
        await stream.events(2)
        assert m.value("asgi_sse.connections.open", route="ticks") == 1
        await stream.disconnect()
    async with connect(app, "/ticks?n=3") as stream:
        await stream.events(3)
        await stream.wait_finished()
    assert m.value("asgi_sse.connections.open", route="ticks") == 0
    assert m.value("asgi_sse.connections.closed", route="ticks", reason="client_left") == 1
    assert m.value("asgi_sse.connections.closed", route="ticks", reason="stream_end") == 1
    assert m.value("asgi_sse.events.sent", route="ticks") == 5
    frames = sum(len(ServerSentEvent(f"tick {n}", id=n).encode()) for n in (0, 1, 0, 1, 2))
    assert m.value("asgi_sse.bytes.sent", route="ticks") == frames
    assert m.value("asgi_sse.connection.duration", route="ticks") == 2  # two recorded


async def test_paths_are_no_attribute_unless_mapped() -> None:
    m = Metrics()
    app = SSEEndpoint(ticks, observer=m.metrics)
    async with connect(app, "/anything/123?n=1") as stream:
        await stream.events(1)
        await stream.wait_finished()
    assert m.attributes("asgi_sse.connections.open") == [{}]
    assert m.attributes("asgi_sse.connections.closed") == [{"reason": "stream_end"}]

    by_scope = Metrics(routes=lambda scope: "user" if scope["path"].startswith("/u/") else None)
    app = SSEEndpoint(ticks, observer=by_scope.metrics)
    for path in ("/u/1?n=1", "/other?n=1"):
        async with connect(app, path) as stream:
            await stream.events(1)
            await stream.wait_finished()
    assert sorted(map(str, by_scope.attributes("asgi_sse.connections.closed"))) == [
        "{'reason': 'stream_end'}",
        "{'route': 'user', 'reason': 'stream_end'}",
    ]


async def test_the_hub_reports_publishes_subscriptions_resets_ends_and_lag() -> None:
    m = Metrics(topics={"news": "news"}, lag_every=1)
    hub = m.metrics.instrument_hub(Hub(history=2))
    subscriptions: dict[str, Subscription] = {}

    def news(request: SSERequest) -> Subscription:
        subscription = hub.subscribe("news", "other", last_event_id=request.last_event_id)
        subscriptions[request.query_params["c"]] = subscription
        return subscription

    app = SSEEndpoint(news)
    async with hub:
        async with (
            connect(app, "/?c=live") as live,
            connect(app, "/?c=reset", last_event_id="junk") as reset,
        ):
            await reset.next_event()  # the Reset (malformed)
            await live.wait_started()  # resolved at the head: what follows is live
            for n in range(3):
                await hub.publish("news", f"n{n}")
            await hub.publish("other", "o")
            await live.events(4)
            assert m.value("asgi_sse.hub.subscribers") == 2
            subscriptions["live"].drop()
            await live.wait_finished()
    news_only = {"topic": "news"}
    assert m.value("asgi_sse.hub.published", **news_only) == 3
    assert m.value("asgi_sse.hub.published") == 1  # "other" is not mapped: no attribute
    assert m.value("asgi_sse.hub.published.size", **news_only) > 0
    assert m.value("asgi_sse.hub.subscriptions", how="live", **news_only) == 1
    assert m.value("asgi_sse.hub.subscriptions", how="reset", **news_only) == 1
    assert m.value("asgi_sse.hub.resets", reason="malformed", **news_only) == 1
    assert m.value("asgi_sse.hub.subscriptions.ended", reason="dropped", **news_only) == 1
    assert m.value("asgi_sse.hub.subscriptions.ended", reason="end", **news_only) == 1
    assert m.value("asgi_sse.hub.subscribers") == 0
    assert m.value("asgi_sse.hub.topics") == 2
    assert m.value("asgi_sse.hub.delivered.events") == hub.stats().delivered_events
    assert m.value("asgi_sse.hub.delivered.bytes") == hub.stats().delivered_bytes
    # Every event was sampled (lag_every=1), once per subscriber that took it.
    lags = m.points("asgi_sse.hub.delivery_lag")
    assert sum(point.count for point in lags) >= 4
    assert all(0 <= point.min <= point.max < 5 for point in lags)


async def test_an_overflowing_subscriber_is_counted_and_lag_is_sampled() -> None:
    m = Metrics(lag_every=4)
    hub = m.metrics.instrument_hub(Hub(history=3, on_overflow="disconnect"))
    async with hub:
        subscription = hub.subscribe("t")
        assert await subscription.prepare_stream()
        assert subscription.next_ready() is not None  # the priming frame
        for n in range(8):
            await hub.publish("t", f"n{n}")  # 8 > history: this subscriber fell out
        with pytest.raises(StopAsyncIteration):
            subscription.next_ready()
        subscription.close()
        reader = hub.subscribe("t", last_event_id=Hub.EARLIEST)
        await reader.prepare_stream()
        taken = 0
        while reader.next_ready() is not None:
            taken += 1
        reader.close()
    assert taken == 3
    assert m.value("asgi_sse.hub.subscriptions.ended", reason="overflow") == 1
    assert m.value("asgi_sse.hub.subscriptions", how="earliest") == 1
    # Sequences 4 and 8 were sampled; 8 is in the log and was taken once.
    assert sum(point.count for point in m.points("asgi_sse.hub.delivery_lag")) == 1


async def test_the_backend_counters_are_observed() -> None:
    from asgi_sse.redis import RedisStreamsBackend

    m = Metrics()
    backend = m.metrics.instrument_backend(RedisStreamsBackend())
    # (reconnects is read-only: the readers' connection to Redis counts them.)
    backend._link.reconnects, backend.gaps = 2, 1
    assert m.value("asgi_sse.redis.reconnects") == 2
    assert m.value("asgi_sse.redis.gaps") == 1
    with pytest.raises(TypeError, match="keeps no fault counters"):
        m.metrics.instrument_backend(object())  # type: ignore[type-var]
    with pytest.raises(ValueError, match="lag_every"):
        SSEMetrics(lag_every=-1)


class PropertyCounters:
    """Counters as read-only properties, as `BackendCounters` declares them."""

    def __init__(self) -> None:
        self.counts = {"reconnects": 0, "gaps": 0}

    @property
    def reconnects(self) -> int:
        return self.counts["reconnects"]

    @property
    def gaps(self) -> int:
        return self.counts["gaps"]


class RenamedCounter:
    """A backend whose ``reconnects`` was renamed: it has no counters to observe."""

    reconnect_count = 3
    gaps = 1


class NotACount:
    reconnects = "3"
    gaps = 1


async def test_instrument_backend_takes_backends_that_declare_counters_only() -> None:
    from asgi_sse.redis import RedisStreamsBackend

    # The Redis backend keeps them, as the typed interface says (checked by mypy here).
    redis_backend: BackendCounters = RedisStreamsBackend()
    assert isinstance(redis_backend, BackendCounters)
    m = Metrics()
    counters = m.metrics.instrument_backend(PropertyCounters())
    m.metrics.instrument_backend(redis_backend)
    counters.counts.update(reconnects=4, gaps=2)
    assert m.value("asgi_sse.redis.reconnects") == 4
    assert m.value("asgi_sse.redis.gaps") == 2
    # Without counters, said at once, never observed as nothing.
    for backend in (MemoryBackend(), RenamedCounter()):
        assert not isinstance(backend, BackendCounters)
        with pytest.raises(TypeError, match="keeps no fault counters"):
            m.metrics.instrument_backend(backend)  # type: ignore[type-var]
    with pytest.raises(TypeError, match=r"NotACount\.reconnects is not an int counter"):
        m.metrics.instrument_backend(NotACount())  # type: ignore[type-var]
    assert m.value("asgi_sse.redis.reconnects") == 4


async def test_without_an_observer_nothing_is_counted() -> None:
    calls: list[str] = []

    class Recording(StreamObserver):
        def on_open(self, scope: Any) -> None:
            calls.append("open")

        def on_close(
            self, scope: Any, reason: str, events: int, size: int, seconds: float
        ) -> None:
            calls.append(f"close {reason} {events} {size}")

    async with connect(SSEEndpoint(ticks), "/?n=2") as stream:
        await stream.events(2)
    assert calls == []
    async with connect(SSEEndpoint(ticks, observer=Recording()), "/?n=2") as stream:
        await stream.events(2)
        await stream.wait_finished()
    size = sum(len(ServerSentEvent(f"tick {n}", id=n).encode()) for n in range(2))
    assert calls == ["open", f"close stream_end 2 {size}"]


def test_import_asgi_sse_works_without_opentelemetry() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'opentelemetry':\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import asgi_sse, asgi_sse.redis, asgi_sse.schema\n"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules)\n"
        "try:\n"
        "    import asgi_sse.otel\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'asgi-sse[otel]'" in out.stdout
