"""Quart: a hub run while the app serves, a publishing route, a resumable stream."""

from collections.abc import AsyncGenerator

from quart import Quart, request

from asgi_sse import Hub, SSEMiddleware, SSERequest, Subscription

hub = Hub()
app = Quart(__name__)


@app.while_serving
async def run_hub() -> AsyncGenerator[None, None]:
    async with hub:  # runs while the app does; its streams end when it stops
        yield


@app.post("/publish/<topic>")
async def publish(topic: str) -> dict[str, str]:
    return {"id": await hub.publish(topic, request.args.get("message", ""))}


def events(sse: SSERequest) -> Subscription:  # GET /events?topic=news
    topic = sse.query_params.get("topic", "news")
    return hub.subscribe(topic, last_event_id=sse.last_event_id)


# Quart routes cannot return an ASGI app: the streams are served in front of it.
app.asgi_app = SSEMiddleware(app.asgi_app, routes={"/events": events})  # type: ignore[method-assign]
