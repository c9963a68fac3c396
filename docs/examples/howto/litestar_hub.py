"""Litestar: a hub entered in the app's lifespan, a publishing route, a resumable stream."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from litestar import Litestar, get, post
from litestar.params import FromPath, FromQuery, HeaderParameter

from asgi_sse import EventSourceResponse, Hub

hub = Hub()
LastEventId = Annotated[str | None, HeaderParameter(name="last-event-id")]


@asynccontextmanager
async def run_hub(app: Litestar) -> AsyncIterator[None]:
    async with hub:  # runs while the app does; its streams end when it stops
        yield


@post("/publish/{topic:str}")
async def publish(topic: FromPath[str], message: FromQuery[str]) -> dict[str, str]:
    return {"id": await hub.publish(topic, message)}


@get("/events/{topic:str}")
async def events(topic: FromPath[str], last_event_id: LastEventId = None) -> EventSourceResponse:
    return EventSourceResponse(hub.subscribe(topic, last_event_id=last_event_id))


app = Litestar(route_handlers=[publish, events], lifespan=[run_hub])
