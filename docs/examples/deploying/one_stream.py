"""One stream per page: the server puts what a page needs into one response, and the
page (one_stream.html) tells the events apart by their names."""

import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from asgi_sse import (
    BaseEvent,
    GracefulShutdown,
    Hub,
    ResumableMerge,
    SSEEndpoint,
    SSERequest,
    StreamObserver,
    Subscription,
    resumable_merge,
)

PAGE = (Path(__file__).parent / "one_stream.html").read_text(encoding="utf-8")
hub = Hub()


class Headline(BaseEvent[str]):  # event: headline (the hub's topic "news")
    pass


class Alert(BaseEvent[str]):  # event: alert (the hub's topic "alerts")
    pass


class Tick(BaseEvent[int]):  # event: tick (made for each connection)
    pass


def updates(request: SSERequest) -> Subscription:  # GET /updates
    # Only topics of the hub: one subscription to all of them; its ids resume each.
    return hub.subscribe("news", "alerts", last_event_id=request.last_event_id)


async def ticks(last: str | None) -> AsyncIterator[Tick]:
    """Seconds since the page connected, resuming after the last one it got."""
    start = int(last) + 1 if last and last.isascii() and last.isdigit() else 0
    for n in itertools.count(start):
        yield Tick(data=n, id=n)
        await anyio.sleep(1)


def page_events(request: SSERequest) -> ResumableMerge[bytes | Tick]:  # GET /events
    # Topics of the hub and a stream of this connection's own, merged: every event's
    # id is a cursor of all three, and each resumes after its own last event.
    return resumable_merge(
        {
            "news": lambda last: hub.subscribe("news", last_event_id=last),
            "alerts": lambda last: hub.subscribe("alerts", last_event_id=last),
            "ticks": ticks,
        },
        last_event_id=request.last_event_id,
    )


class OpenStreams(StreamObserver):
    """How many event streams are open now (GET /streams)."""

    count = 0

    def on_open(self, scope: Mapping[str, Any]) -> None:
        self.count += 1

    def on_close(self, scope: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        self.count -= 1


open_streams = OpenStreams()
EVENTS = {"news": Headline, "alerts": Alert}


async def publish(request: Request) -> JSONResponse:  # POST /publish/news?text=hi
    topic = request.path_params["topic"]
    if topic not in EVENTS:
        return JSONResponse({"error": f"no topic {topic!r}"}, status_code=404)
    event = EVENTS[topic](data=request.query_params.get("text", ""))
    return JSONResponse({"id": await hub.publish(topic, event)})


async def page(request: Request) -> HTMLResponse:  # GET /
    return HTMLResponse(PAGE)


async def streams(request: Request) -> JSONResponse:  # GET /streams
    return JSONResponse({"open": open_streams.count})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with hub:
        yield


routes = [
    Route("/", page),
    Route("/updates", SSEEndpoint(updates, observer=open_streams)),
    Route("/events", SSEEndpoint(page_events, observer=open_streams)),
    Route("/publish/{topic}", publish, methods=["POST"]),
    Route("/streams", streams),
]
app = GracefulShutdown(Starlette(routes=routes, lifespan=lifespan))
