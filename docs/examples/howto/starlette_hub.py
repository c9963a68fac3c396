"""Starlette: a hub entered in the app's lifespan, a publishing route, a resumable stream."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_sse import Hub, SSEEndpoint, SSERequest, Subscription

hub = Hub()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with hub:  # runs while the app does; its streams end when it stops
        yield


async def publish(request: Request) -> JSONResponse:  # POST /publish/news?message=hi
    message = request.query_params.get("message", "")
    return JSONResponse({"id": await hub.publish(request.path_params["topic"], message)})


def events(request: SSERequest) -> Subscription:  # GET /events/news
    return hub.subscribe(request.path.strip("/"), last_event_id=request.last_event_id)


routes = [
    Route("/publish/{topic}", publish, methods=["POST"]),
    Mount("/events", app=SSEEndpoint(events)),
]
app = Starlette(routes=routes, lifespan=lifespan)
