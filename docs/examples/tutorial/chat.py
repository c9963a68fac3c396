"""Step 4 of the tutorial: a chat on a hub; a client that reconnects misses nothing."""

from pydantic import BaseModel

from asgi_sse import BaseEvent, GracefulShutdown, Hub, SSEEndpoint, SSERequest, Subscription


class Said(BaseModel):
    text: str


class ChatMessage(BaseEvent[Said]):  # sent as "chat_message"
    pass


hub = Hub(history=1000)  # the topic's log keeps the last 1,000 messages


async def chat(request: SSERequest) -> Subscription | None:
    if request.method == "POST":  # curl -d 'hello' http://127.0.0.1:8000/chat
        text = (await request.body()).decode("utf-8", "replace")
        await hub.publish("chat", ChatMessage(data=Said(text=text)))
        return None  # answered 204 No Content
    # GET: every message after the client's Last-Event-ID, then live.
    return hub.subscribe("chat", last_event_id=request.last_event_id)


# hub.lifespan: the hub runs while the server does; GracefulShutdown: Ctrl+C ends
# every open stream at once.
app = GracefulShutdown(hub.lifespan(SSEEndpoint(chat)))
