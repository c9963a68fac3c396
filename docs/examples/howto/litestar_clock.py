"""Litestar: a route that returns the core response, and a mounted endpoint."""

import itertools
from collections.abc import AsyncIterator

import anyio
from litestar import Litestar, asgi, get
from litestar.params import FromQuery

from asgi_sse import BaseEvent, EventSourceResponse, SSEEndpoint, SSERequest


class Tick(BaseEvent[int]):
    pass


async def ticks(start: int) -> AsyncIterator[Tick]:
    for n in itertools.count(start):
        yield Tick(data=n)
        await anyio.sleep(1)


@get("/clock")
async def clock(start: FromQuery[int] = 0) -> EventSourceResponse:
    return EventSourceResponse(ticks(start))


def all_ticks(request: SSERequest) -> AsyncIterator[Tick]:
    return ticks(0)


# copy_scope=True: the mounted app gets its own scope (Litestar 2 warns without it).
mounted = asgi("/ticks", is_mount=True, copy_scope=True)(SSEEndpoint(all_ticks))

app = Litestar(route_handlers=[clock, mounted])
