"""asgi-sse: `EventSourceResponse` called as a plain ASGI app, typed `Tick` events.

- `/burst`: a generator yielding `Tick(data=Payload(...), id=i)` (built per event).
- `/fanout`: the tick is encoded once (`Tick.frame`) and every subscriber's stream
  yields the same bytes - the library's encode-once broadcast.
- `/idle`: a stream that never yields; keep-alives at the default (15 s).
The hub scenario (run.py `hub`): one `Hub` with its defaults, streams that are
`hub.subscribe(...)` returned as they are to `EventSourceResponse`.
- `/hub`: topic `ticks`; one publisher, started by the first subscriber (or by the
  N-th with `?start_after=N`), publishes a typed `Tick` (the same payload as
  `/fanout`) every 100 ms: the hub encodes it once.
- `/hub-idle`: topic `quiet`, which nobody publishes to (the priming `id:` frame only).
- `/hub-burst?topic=T`: a subscriber of topic T; `/hub-publish?topic=T&n=N&every=E`
  publishes N ticks to T as fast as it can (yielding to the loop after every E), closes
  T (its streams drain, then end) and answers `{"published": N, "seconds": ...}`.
Routing is the same hand-written dispatch as `minimal`, so only the SSE layer differs;
the hub's routes come after the others.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator

from asgi_sse import BaseEvent, EventSourceResponse, Hub, StreamObserver

from ._common import (
    BURST_DEFAULT,
    Payload,
    Receive,
    Scope,
    Send,
    Ticker,
    make_payload,
    query_int,
    query_str,
    send_json,
    send_not_found,
    stats_body,
    ticks,
    wait_forever,
)

__all__ = ("app",)


class Tick(BaseEvent[Payload]):  # event: tick
    pass


def encode_tick(payload: Payload, seq: int) -> bytes:
    return Tick.frame(payload, id=seq)


ticker = Ticker(encode=encode_tick)


async def burst(n: int) -> AsyncIterator[Tick]:
    for i in range(n):
        yield Tick(data=make_payload(i), id=i)


async def idle() -> AsyncIterator[bytes]:
    await wait_forever()
    yield b""  # never reached


hub = Hub()
HUB_TOPIC = "ticks"
# BENCH_OTEL=1: the hub's streams report to OpenTelemetry (asgi_sse.otel on the SDK, an
# in-memory reader), to measure what the metrics cost (benchmarks/redis_fanout.py).
observer: StreamObserver | None = None
if os.environ.get("BENCH_OTEL") == "1":
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from asgi_sse.otel import SSEMetrics

    metrics = SSEMetrics(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    metrics.instrument_hub(hub)
    observer = metrics
_hub_publisher: asyncio.Task[None] | None = None
_hub_requests = 0


async def publish_ticks() -> None:
    """The `/hub` publisher: one typed `Tick` every 100 ms (the hub assigns its id)."""
    async for seq in ticks():
        await hub.publish(HUB_TOPIC, Tick(data=make_payload(seq)))


def start_hub_publisher(start_after: int) -> None:
    """Start the publisher with the ``start_after``-th `/hub` request."""
    global _hub_publisher, _hub_requests
    _hub_requests += 1
    if _hub_publisher is None and _hub_requests >= start_after:
        _hub_publisher = asyncio.get_running_loop().create_task(publish_ticks())


async def publish_burst(topic: str, n: int, every: int) -> float:
    """N ticks to ``topic`` as fast as possible, a turn for the loop after every
    ``every`` (`publish` itself never waits), then close it; seconds it took."""
    started = time.perf_counter()
    for seq in range(1, n + 1):
        await hub.publish(topic, Tick(data=make_payload(seq)))
        if seq % every == 0:
            await asyncio.sleep(0)
    await hub.close(topic)
    return time.perf_counter() - started


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/burst":
        await EventSourceResponse(burst(query_int(scope, "n", BURST_DEFAULT)))(
            scope, receive, send
        )
    elif path == "/fanout":
        # The ticker's own iterator of encoded frames: one async generator layer, as
        # in `minimal`.
        await EventSourceResponse(ticker.frames())(scope, receive, send)
    elif path == "/idle":
        await EventSourceResponse(idle())(scope, receive, send)
    elif path == "/stats":
        await send_json(send, stats_body())
    elif path == "/hub":
        start_hub_publisher(query_int(scope, "start_after", 1))
        await EventSourceResponse(hub.subscribe(HUB_TOPIC), observer=observer)(
            scope, receive, send
        )
    elif path == "/hub-idle":
        await EventSourceResponse(hub.subscribe("quiet"))(scope, receive, send)
    elif path == "/hub-burst":
        topic = query_str(scope, "topic", "burst")
        await EventSourceResponse(hub.subscribe(topic))(scope, receive, send)
    elif path == "/hub-publish":
        n = query_int(scope, "n", 1000)
        seconds = await publish_burst(
            query_str(scope, "topic", "burst"), n, max(1, query_int(scope, "every", 1))
        )
        await send_json(send, json.dumps({"published": n, "seconds": seconds}).encode())
    else:
        await send_not_found(send)
