"""Litestar 2.x: its `ServerSentEvent` response streaming `ServerSentEventMessage`s.

The payload is dumped by `model_dump_json()` into the message's `data` (its encoder
calls `str()` on data). Defaults kept: `\\r\\n` line separator; Litestar has no
keep-alive. In `/fanout` each subscriber builds its own message from the shared payload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar import Litestar, MediaType, Response, get
from litestar.response import ServerSentEvent, ServerSentEventMessage

from ._common import BURST_DEFAULT, Ticker, make_payload, stats_body, wait_forever

__all__ = ("app",)

ticker = Ticker()


async def burst_messages(n: int) -> AsyncIterator[ServerSentEventMessage]:
    for i in range(n):
        yield ServerSentEventMessage(data=make_payload(i).model_dump_json(), event="tick", id=i)


async def fanout_messages() -> AsyncIterator[ServerSentEventMessage]:
    async for payload, _ in ticker.subscribe():
        yield ServerSentEventMessage(data=payload.model_dump_json(), event="tick", id=payload.seq)


async def idle_messages() -> AsyncIterator[ServerSentEventMessage]:
    await wait_forever()
    yield ServerSentEventMessage(comment="never reached")


@get("/burst")
async def burst(n: int = BURST_DEFAULT) -> ServerSentEvent:
    return ServerSentEvent(burst_messages(n))


@get("/fanout")
async def fanout() -> ServerSentEvent:
    return ServerSentEvent(fanout_messages())


@get("/idle")
async def idle() -> ServerSentEvent:
    return ServerSentEvent(idle_messages())


@get("/stats", media_type=MediaType.JSON)
async def stats() -> Response[bytes]:
    return Response(stats_body(), media_type=MediaType.JSON)


app = Litestar(route_handlers=[burst, fanout, idle, stats])
