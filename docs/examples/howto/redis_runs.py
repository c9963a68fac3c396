"""Answers that run on one worker and stream, resume and cancel on any: runs on Redis."""

import os
from collections.abc import AsyncIterator

import anyio

from asgi_sse import GracefulShutdown, Hub, SSEEndpoint, SSERequest, Subscription
from asgi_sse.redis import RedisStreamsBackend

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# run_lease: each worker renews the leases of its runs every third of it; when a worker
# dies (SIGKILL, out of memory), its runs' subscribers on every worker get run_ended
# "lost" within about run_lease, and the topics are closed.
hub = Hub(
    history=10_000,
    expire_after=600.0,
    run_lease=5.0,
    backend=RedisStreamsBackend(REDIS_URL),
)


async def answer(prompt: str) -> AsyncIterator[str]:
    """Stands in for the model's client."""
    for word in f"You said: {prompt}".split(" "):
        await anyio.sleep(0.01)
        yield word + " "


async def start(prompt: str) -> str:  # POST /answers, on whichever worker gets it
    return await hub.run(answer(prompt))  # runs on this worker


async def stop(topic: str) -> bool:  # DELETE /runs/<topic>, on any worker
    # The run's own worker cancels it at once; another worker flags the run in Redis,
    # and the worker running it cancels it within a quarter of a second.
    return await hub.cancel(topic)


def stream(request: SSERequest) -> Subscription:  # GET /answers/<topic>, any worker
    topic = request.path.strip("/")
    return hub.subscribe(topic, last_event_id=request.last_event_id or Hub.EARLIEST)


app = GracefulShutdown(hub.lifespan(SSEEndpoint(stream)))
