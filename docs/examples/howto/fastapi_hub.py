"""FastAPI: a hub entered in the app's lifespan, a publishing route, a resumable stream."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Header

from asgi_sse import Hub
from asgi_sse.starlette import EventSourceResponse

hub = Hub()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with hub:  # runs while the app does; its streams end when it stops
        yield


app = FastAPI(lifespan=lifespan)


@app.post("/publish/{topic}")
async def publish(topic: str, message: str) -> dict[str, str]:
    return {"id": await hub.publish(topic, message)}


@app.get("/events/{topic}")
async def events(
    topic: str, last_event_id: Annotated[str | None, Header()] = None
) -> EventSourceResponse:
    return EventSourceResponse(hub.subscribe(topic, last_event_id=last_event_id))
