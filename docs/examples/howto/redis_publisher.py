"""Publishing to the hubs' topics from code that has no hub: a Celery task, a Django
view, a cron script. ``python redis_publisher.py 42`` publishes one event."""

import os
import sys

from asgi_sse import BaseEvent
from asgi_sse.redis import Publisher

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# The prefix and the length cap of the hubs' RedisStreamsBackend (their defaults here:
# "asgi-sse:" and the hub's history, 1000), so that these events are the topic's like
# the hubs' own. One publisher per process: it is safe to share between threads.
publisher = Publisher(REDIS_URL, prefix="asgi-sse:", maxlen=1000)


class Shipped(BaseEvent[str]):  # event: shipped, data: "the tracking number"
    pass


def order_shipped(order_id: str, tracking: str) -> str:  # @celery_app.task, a view...
    """Tell the order's page, on whichever worker streams it; returns the event's id."""
    return publisher.publish(f"orders-{order_id}", Shipped(data=tracking))


def order_done(order_id: str) -> None:
    """No more events for the order: its streams end, everywhere."""
    publisher.close_topic(f"orders-{order_id}")


if __name__ == "__main__":
    print(order_shipped(sys.argv[1], "1Z999"))
