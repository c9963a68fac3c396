"""The news hub on Redis Streams: run it with several workers, or on several hosts."""

import os

from asgi_sse import GracefulShutdown, Hub, SSEEndpoint, SSERequest, Subscription
from asgi_sse.redis import RedisStreamsBackend

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

hub = Hub(history=1000, backend=RedisStreamsBackend(REDIS_URL))


def events(request: SSERequest) -> Subscription:  # GET /news
    return hub.subscribe(request.path.strip("/"), last_event_id=request.last_event_id)


app = GracefulShutdown(hub.lifespan(SSEEndpoint(events)))
