"""FastAPI: a route that returns the response, with a dependency; and a mounted endpoint."""

import itertools
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI

from asgi_sse import BaseEvent, SSEEndpoint, SSERequest
from asgi_sse.starlette import EventSourceResponse


class Tick(BaseEvent[int]):
    pass


async def ticks(start: int) -> AsyncIterator[Tick]:
    for n in itertools.count(start):
        yield Tick(data=n)
        await anyio.sleep(1)


def first_tick(start: int = 0) -> int:  # a dependency, fed by ?start=
    return max(start, 0)


app = FastAPI()


@app.get("/clock")
async def clock(start: Annotated[int, Depends(first_tick)]) -> EventSourceResponse:
    return EventSourceResponse(ticks(start))


def all_ticks(request: SSERequest) -> AsyncIterator[Tick]:
    return ticks(0)


app.mount("/ticks", SSEEndpoint(all_ticks))  # GET /ticks/
