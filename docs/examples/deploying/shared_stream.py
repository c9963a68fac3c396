"""One stream for every tab of a browser: the page (shared_stream.html) elects a leader
tab, which holds the only EventSource and relays its events to the other tabs."""

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from asgi_sse import BaseEvent, GracefulShutdown, Hub, SSEEndpoint, SSERequest, Subscription

PAGE = (Path(__file__).parent / "shared_stream.html").read_text(encoding="utf-8")
hub = Hub()


class Price(BaseEvent[float]):  # event: price
    pass


async def quote_prices() -> None:
    """A price every 0.2 s while the app runs: a market feed's stand-in."""
    price = 100.0
    while True:
        price = round(price + random.uniform(-1, 1), 2)
        await hub.publish("prices", Price(data=price))
        await anyio.sleep(0.2)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with hub, anyio.create_task_group() as tasks:
        tasks.start_soon(quote_prices)
        yield
        tasks.cancel_scope.cancel()


def prices(request: SSERequest) -> Subscription:  # GET /prices?lastEventId=...
    # The Last-Event-ID header of a reconnect, else ?lastEventId= (a new leader tab's).
    return hub.subscribe("prices", last_event_id=request.last_event_id)


async def page(request: Request) -> HTMLResponse:  # GET /
    return HTMLResponse(PAGE)


async def streams(request: Request) -> JSONResponse:  # GET /streams: how many are open
    return JSONResponse({"open": hub.stats().subscribers})


routes = [
    Route("/", page),
    Route("/prices", SSEEndpoint(prices)),
    Route("/streams", streams),
]
app = GracefulShutdown(Starlette(routes=routes, lifespan=lifespan))
