"""sse-starlette 3.x: its `EventSourceResponse` in a Starlette app, at its defaults.

Events are its `ServerSentEvent` with the payload dumped by `model_dump_json()` (its
encoder calls `str()` on data, which would send a model's repr). Defaults kept: `\\r\\n`
line separator, a keep-alive ping every 15 s. In `/fanout` each subscriber builds its
own event from the shared payload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._common import BURST_DEFAULT, Ticker, make_payload, stats_body, wait_forever

__all__ = ("app",)

ticker = Ticker()


async def burst_events(n: int) -> AsyncIterator[ServerSentEvent]:
    for i in range(n):
        yield ServerSentEvent(data=make_payload(i).model_dump_json(), event="tick", id=str(i))


async def fanout_events() -> AsyncIterator[ServerSentEvent]:
    async for payload, _ in ticker.subscribe():
        yield ServerSentEvent(data=payload.model_dump_json(), event="tick", id=str(payload.seq))


async def idle_events() -> AsyncIterator[ServerSentEvent]:
    await wait_forever()
    yield ServerSentEvent(comment="never reached")


async def burst(request: Request) -> EventSourceResponse:
    return EventSourceResponse(burst_events(int(request.query_params.get("n", BURST_DEFAULT))))


async def fanout(request: Request) -> EventSourceResponse:
    return EventSourceResponse(fanout_events())


async def idle(request: Request) -> EventSourceResponse:
    return EventSourceResponse(idle_events())


async def stats(request: Request) -> Response:
    return Response(stats_body(), media_type="application/json")


app = Starlette(
    routes=[
        Route("/burst", burst),
        Route("/fanout", fanout),
        Route("/idle", idle),
        Route("/stats", stats),
    ]
)
