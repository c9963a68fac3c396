"""Quart: the same hub, started and stopped by the app's serving hooks."""

from quart import Quart, request

from asgi_sse import Hub, SSEMiddleware, SSERequest, Subscription

hub = Hub()
app = Quart(__name__)


@app.before_serving
async def start_hub() -> None:
    await hub.__aenter__()


@app.after_serving
async def stop_hub() -> None:
    await hub.stop()


@app.post("/publish/<topic>")
async def publish(topic: str) -> dict[str, str]:
    return {"id": await hub.publish(topic, request.args.get("message", ""))}


def events(sse: SSERequest) -> Subscription:  # GET /events?topic=news
    topic = sse.query_params.get("topic", "news")
    return hub.subscribe(topic, last_event_id=sse.last_event_id)


app.asgi_app = SSEMiddleware(app.asgi_app, routes={"/events": events})  # type: ignore[method-assign]
