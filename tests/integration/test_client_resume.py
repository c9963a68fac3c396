"""The typed client resumes a hub stream exactly when its server dies under it.

* Real processes: two uvicorn servers on one Redis (tests/support/redis_app.py). The client
  follows a topic on A while events are published through B; A is killed with SIGKILL
  mid-stream and started again on the same port. The client reconnects (backoff while
  A is down), sends its Last-Event-ID, and receives every event exactly once, in order.
* In-process, through `ASGIStreamTransport`: a memory hub whose streams are ended by
  the server (`Subscription.drop()`) again and again while events are published; the
  client resumes each time and again receives every event exactly once.

Both on asyncio and trio (the client's side; the servers are processes).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import anyio
import anyio.to_thread
import httpx
import pytest

from asgi_sse import Hub, ParsedEvent, Reset, SSEEndpoint, SSERequest, Subscription
from asgi_sse.client import EventSource
from asgi_sse.testing import ASGIStreamTransport
from tests.integration.test_redis_servers import app_env, uvicorns
from tests.support import redisutil
from tests.support.helpers import HTTPX_GENERATOR_WARNINGS
from tests.support.servers import Server
from tests.support.sse_app import Note

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.timeout(60),
    *HTTPX_GENERATOR_WARNINGS,  # httpx's own, under a response closed early
]

redis_prefix = redisutil.redis_prefix

EVENTS = 60
KILL_AFTER = 20  # events received before the server is killed


class Publisher:
    """Publishes ``EVENTS`` notes through a server, one every few ms, in a thread; the
    ids of the acknowledged ones, in order."""

    def __init__(self, base_url: str, topic: str) -> None:
        self.base_url = base_url
        self.topic = topic
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base_url, timeout=10) as http:
                for n in range(EVENTS):
                    text = f"n{n}"
                    response = http.post(f"/hub/publish?topic={self.topic}", content=text)
                    response.raise_for_status()
                    self.ids.append(response.json()["id"])
                    self.texts.append(text)
                    time.sleep(0.01)
        except BaseException as exc:
            self.error = exc


async def test_the_client_resumes_exactly_across_a_killed_and_restarted_server(
    redis_prefix: str,
) -> None:
    topic = "resume"
    # A history that holds every event: the resume must be exact, not a Reset.
    env = app_env(redisutil.REDIS_URL, redis_prefix, history=1000)
    with uvicorns([env, env]) as (follower, publisher_server):
        received: list[tuple[str, str]] = []
        publisher = Publisher(publisher_server.base_url, topic)
        async with EventSource(
            f"{follower.base_url}/hub?topic={topic}",
            events=(Note,),
            retry=0.05,
            max_delay=0.5,
            read_timeout=5,
        ) as source:
            with anyio.fail_after(40):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(start_when_primed, source, publisher.thread.start)
                    async for event in source:
                        assert isinstance(event, Note), event
                        received.append((str(event.id), event.data))
                        if len(received) == KILL_AFTER:
                            await anyio.to_thread.run_sync(restart, follower)
                        if len(received) == EVENTS:
                            break
        publisher.thread.join(10)
        assert publisher.error is None
    assert [text for _, text in received] == [f"n{n}" for n in range(EVENTS)]
    assert [event_id for event_id, _ in received] == publisher.ids
    assert source.connections >= 2  # it did reconnect
    assert source.last_event_id == publisher.ids[-1]


def restart(server: Server) -> None:
    """SIGKILL the server's process group (no goodbye to its clients), then start it
    again on the same port."""
    server.send_signal(signal.SIGKILL, group=True)
    server.wait_exit(10)
    server.start()


# -- in-process, through the streaming transport ----------------------------------------------


@pytest.fixture
def hub() -> Hub:
    return Hub(history=1000)


async def test_the_client_resumes_exactly_through_the_in_process_transport(hub: Hub) -> None:
    subscriptions: list[Subscription] = []

    def stream(request: SSERequest) -> Subscription:
        subscription = hub.subscribe("news", last_event_id=request.last_event_id)
        subscriptions.append(subscription)
        return subscription

    app = SSEEndpoint(stream)
    published: list[str] = []
    received: list[tuple[str, str]] = []

    async def publish() -> None:
        for n in range(EVENTS):
            published.append(await hub.publish("news", Note(data=f"n{n}")))
            if n % 10 == 9:
                subscriptions[-1].drop()  # the server ends the stream: resume it
            await anyio.sleep(0.002)

    transport = ASGIStreamTransport(app)
    async with (
        hub,
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        EventSource("/news", events=(Note,), client=http, retry=0.01) as source,
    ):
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(start_when_primed, source, lambda: tasks.start_soon(publish))
                async for event in source:
                    assert isinstance(event, Note), event
                    received.append((str(event.id), event.data))
                    if len(received) == EVENTS:
                        break
    assert [text for _, text in received] == [f"n{n}" for n in range(EVENTS)]
    assert [event_id for event_id, _ in received] == published
    assert source.connections >= EVENTS // 10


async def start_when_primed(
    source: EventSource[Note | Reset | ParsedEvent], start: Callable[[], object]
) -> None:
    """``start()`` once the stream's first frame (the hub's priming id) arrived: from
    then on, nothing published is missed."""
    while not source.last_event_id:  # noqa: ASYNC110 - no event to wait on: the client's state
        await anyio.sleep(0.001)  # polling a condition, under the test's deadline
    start()
