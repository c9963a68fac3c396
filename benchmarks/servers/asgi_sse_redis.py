"""asgi-sse's `Hub` on Redis Streams, for `benchmarks/redis_fanout.py` (run under
``uvicorn --workers 2`` with its lifespan on: the hub must be entered).

- `/hub`: the topic `ticks`, published by a separate process (`redis_fanout.py
  publish`) through Redis; every worker's reader fans it out to its subscribers.
- `/stats`: RSS and tasks of the worker that answers.

``BENCH_REDIS_URL`` and ``BENCH_REDIS_PREFIX`` say where the streams are.
"""

from __future__ import annotations

import os

from asgi_sse import EventSourceResponse, Hub
from asgi_sse.redis import RedisStreamsBackend

from ._common import Receive, Scope, Send, send_json, send_not_found, stats_body

__all__ = ("HUB_TOPIC", "app", "hub")

HUB_TOPIC = "ticks"
hub = Hub(
    backend=RedisStreamsBackend(
        os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        prefix=os.environ.get("BENCH_REDIS_PREFIX", "asgi-sse-bench:"),
    )
)


async def _routes(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/hub":
        await EventSourceResponse(hub.subscribe(HUB_TOPIC))(scope, receive, send)
    elif path == "/stats":
        await send_json(send, stats_body())
    else:
        await send_not_found(send)


app = hub.lifespan(_routes)
