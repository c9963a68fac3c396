"""FastAPI's built-in SSE (`fastapi.sse`), used the documented way.

A generator *path operation* with `response_class=EventSourceResponse` yields
`fastapi.sse.ServerSentEvent(data=<model>, event="tick", id=...)`; FastAPI's routing
layer dumps the model (`model_dump_json()`), formats the frame (`format_sse_event`),
runs the generator in a producer task behind a 1-slot memory stream and inserts a
keep-alive comment after 15 s of silence. In `/fanout` each subscriber builds its own
event from the shared payload.
"""

from collections.abc import AsyncIterable

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from ._common import BURST_DEFAULT, Ticker, make_payload, stats_body, wait_forever

__all__ = ("app",)

app = FastAPI()
ticker = Ticker()


@app.get("/burst", response_class=EventSourceResponse)
async def burst(n: int = BURST_DEFAULT) -> AsyncIterable[ServerSentEvent]:
    for i in range(n):
        yield ServerSentEvent(data=make_payload(i), event="tick", id=str(i))


@app.get("/fanout", response_class=EventSourceResponse)
async def fanout() -> AsyncIterable[ServerSentEvent]:
    async for payload, _ in ticker.subscribe():
        yield ServerSentEvent(data=payload, event="tick", id=str(payload.seq))


@app.get("/idle", response_class=EventSourceResponse)
async def idle() -> AsyncIterable[ServerSentEvent]:
    await wait_forever()
    yield ServerSentEvent(comment="never reached")


@app.get("/stats")
async def stats() -> Response:
    return Response(stats_body(), media_type="application/json")
