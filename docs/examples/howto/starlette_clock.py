"""Starlette: a route that returns the response, and a mounted endpoint."""

import itertools
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount, Route

from asgi_sse import BaseEvent, SSEEndpoint, SSERequest
from asgi_sse.starlette import EventSourceResponse


class Tick(BaseEvent[int]):
    pass


async def ticks(start: int) -> AsyncIterator[Tick]:
    for n in itertools.count(start):
        yield Tick(data=n)
        await anyio.sleep(1)


async def clock(request: Request) -> EventSourceResponse:
    return EventSourceResponse(ticks(int(request.query_params.get("start", "0"))))


def tick_stream(request: SSERequest) -> AsyncIterator[Tick]:
    return ticks(int(request.query_params.get("start", "0")))


app = Starlette(
    routes=[
        Route("/clock", clock),  # GET /clock?start=5
        Mount("/ticks", app=SSEEndpoint(tick_stream)),  # GET /ticks/ (Mount redirects /ticks)
    ]
)
