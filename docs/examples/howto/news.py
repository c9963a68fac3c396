"""A bare hub app for uvicorn or hypercorn: GET /<topic> streams that topic."""

from asgi_sse import GracefulShutdown, Hub, SSEEndpoint, SSERequest, Subscription

hub = Hub()


def events(request: SSERequest) -> Subscription:  # GET /news
    return hub.subscribe(request.path.strip("/"), last_event_id=request.last_event_id)


# hub.lifespan: the hub runs while the server does (its lifespan) and stops with it;
# GracefulShutdown: Ctrl+C or SIGTERM ends every open stream at once.
app = GracefulShutdown(hub.lifespan(SSEEndpoint(events)))

# Publish from the server's event loop (await hub.publish("news", "hello")), or from
# any other thread: hub.publish_from_thread("news", "hello").
