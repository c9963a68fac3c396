"""Streams that survive reconnects: each answer runs on the hub, clients subscribe to it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from asgi_sse import BaseEvent, Hub, HubFull, SSEEndpoint, SSERequest, Subscription
from asgi_sse.starlette import EventSourceResponse

# history: a topic's log holds a whole answer, so a client that comes back late
# replays it all; expire_after: a finished answer stays resumable for 10 minutes.
hub = Hub(history=10_000, expire_after=600.0, max_running=100)


class Token(BaseEvent[str]):  # event: token, data: "the text"
    pass


async def answer(prompt: str) -> AsyncIterator[Token]:
    """Stands in for the model's client (an SDK's async stream of text deltas)."""
    for word in f"You said: {prompt}".split(" "):
        await anyio.sleep(0.01)  # the model thinking
        yield Token(data=word + " ")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with hub:  # runs still going when the app stops end with "shutdown"
        yield


async def start(request: Request) -> Response:  # POST /answers {"prompt": "hi"}
    prompt = (await request.json())["prompt"]
    try:
        topic = await hub.run(answer(prompt))  # returns at once; the answer runs on
    except HubFull:
        return JSONResponse({"error": "too many answers running"}, status_code=429)
    location = {"location": f"/answers/{topic}"}  # where to reconnect
    if "text/event-stream" in request.headers.get("accept", ""):
        # Start and read in one request; a reconnect goes to the location.
        stream = hub.subscribe(topic, last_event_id=Hub.EARLIEST)
        return EventSourceResponse(stream, headers=location)
    return JSONResponse({"stream": location["location"]}, status_code=201, headers=location)


async def cancel(request: Request) -> Response:  # DELETE /runs/<topic>
    cancelled = await hub.cancel(request.path_params["topic"])
    return Response(status_code=204 if cancelled else 404)


def stream(request: SSERequest) -> Subscription | None:  # GET /answers/<topic>
    topic = request.path.strip("/")
    if hub.head(topic) is None:
        return None  # no such answer (or it expired): 204, the browser stops
    # First visit: the answer from its start; a reconnect: after its Last-Event-ID.
    return hub.subscribe(topic, last_event_id=request.last_event_id or Hub.EARLIEST)


routes = [
    Route("/answers", start, methods=["POST"]),
    Route("/runs/{topic}", cancel, methods=["DELETE"]),
    Mount("/answers", app=SSEEndpoint(stream)),
]
app = Starlette(routes=routes, lifespan=lifespan)
