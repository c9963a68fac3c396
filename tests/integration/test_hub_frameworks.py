"""The hub inside each framework, in-process through `asgi_sse.testing.connect`.

Each app is a complete module of the docs (docs/examples/howto/, shown on the framework
pages), imported as a server would: the hub is entered in the framework's own lifespan,
one route publishes, one streams `hub.subscribe(...)`. For each: the events arrive under
the ids `publish` returned, a reconnect with Last-Event-ID resumes exactly, a closed
topic answers 204 through the framework's own path, and leaving the lifespan (the hub
stops) ends the open streams cleanly. The lifespan protocol is driven by the test itself.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.to_thread
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from asgi_sse import Hub, SSEMiddleware, SSERequest, Subscription, TopicClosed
from asgi_sse.testing import TestStream, connect
from tests.support.helpers import load

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "howto"


def example(name: str) -> str:
    """The source of one of the docs' examples: the apps are the docs' own."""
    return (EXAMPLES / name).read_text(encoding="utf-8")


STARLETTE = example("starlette_hub.py")  # docs/examples/howto/starlette_hub.py
FASTAPI = example("fastapi_hub.py")  # docs/examples/howto/fastapi_hub.py
LITESTAR = example("litestar_hub.py")  # docs/examples/howto/litestar_hub.py
QUART = example("quart_hub.py")  # docs/examples/howto/quart_hub.py
QUART_HOOKS = example("quart_hub_hooks.py")  # docs/examples/howto/quart_hub_hooks.py
BARE = example("news.py")  # docs/examples/howto/news.py


# -- driving an app ---------------------------------------------------------------------


class Lifespan:
    """The server's side of the ASGI lifespan protocol, for one app."""

    def __init__(
        self,
        to_app: MemoryObjectSendStream[dict[str, Any]],
        from_app: MemoryObjectReceiveStream[dict[str, Any]],
    ) -> None:
        self._to_app = to_app
        self._from_app = from_app
        self.stopped = False

    async def _exchange(self, message: str) -> None:
        await self._to_app.send({"type": f"lifespan.{message}"})
        with anyio.fail_after(5):
            answer = await self._from_app.receive()
        assert answer["type"] == f"lifespan.{message}.complete", answer

    async def shutdown(self) -> None:
        """What a server does when it stops: the app leaves its lifespan."""
        self.stopped = True
        await self._exchange("shutdown")


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[Lifespan]:
    """Run ``app``'s lifespan around the block, as a server does."""
    to_app, app_receives = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_sends, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    life = Lifespan(to_app, from_app)
    with to_app, app_receives, app_sends, from_app:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(app, scope, app_receives.receive, app_sends.send)
            await life._exchange("startup")
            yield life
            if not life.stopped:
                await life.shutdown()


async def request(app: Any, path: str, *, method: str = "GET") -> TestStream:
    """A plain request, answered in full."""
    async with connect(app, path, method=method) as stream:
        await stream.wait_finished()
    assert stream.complete
    return stream


def body_of(stream: TestStream) -> bytes:
    return b"".join(m["body"] for m in stream.messages if m["type"] == "http.response.body")


@dataclass(frozen=True)
class AppModule:
    source: str
    stream_path: Callable[[str], str]
    # Publishes through the app's own route (None: from a worker thread, with
    # `publish_from_thread`, for an app without a publishing route).
    publish_path: Callable[[str, str], str] | None
    backends: tuple[str, ...] = ("asyncio", "trio")


def framework_path(topic: str) -> str:
    return f"/events/{topic}"


def publish_route(topic: str, message: str) -> str:
    return f"/publish/{topic}?message={message}"


# Quart runs on asyncio only (its request handling calls asyncio directly).
APPS = {
    "starlette": AppModule(STARLETTE, framework_path, publish_route),
    "fastapi": AppModule(FASTAPI, framework_path, publish_route),
    "litestar": AppModule(LITESTAR, framework_path, publish_route),
    "quart": AppModule(QUART, lambda t: f"/events?topic={t}", publish_route, ("asyncio",)),
    "quart_hooks": AppModule(
        QUART_HOOKS, lambda t: f"/events?topic={t}", publish_route, ("asyncio",)
    ),
    "bare": AppModule(BARE, lambda t: f"/{t}", None),
}


@pytest.fixture
def kept_signal_handlers() -> Iterator[None]:
    """`GracefulShutdown` chains its handlers in front of the process's own at startup
    (the test runs in the main thread, as a server does); they are put back after."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


# -- the checks ---------------------------------------------------------------------------


class Client:
    """Talks to one loaded app module: opens streams, publishes."""

    def __init__(self, module: ModuleType, spec: AppModule) -> None:
        self.app = module.app
        self.hub: Hub = module.hub
        self.spec = spec

    def stream(self, topic: str, last_event_id: str | None = None) -> Any:
        return connect(self.app, self.spec.stream_path(topic), last_event_id=last_event_id)

    async def publish(self, topic: str, message: str) -> str:
        if self.spec.publish_path is None:
            # Only works in an entered hub: proof that the lifespan entered it.
            event_id: str = await anyio.to_thread.run_sync(
                self.hub.publish_from_thread, topic, message
            )
            return event_id
        answer = await request(self.app, self.spec.publish_path(topic, message), method="POST")
        assert answer.status in (200, 201), (answer.status, body_of(answer))
        assert answer.header("content-type") == "application/json", answer.headers
        event_id = json.loads(body_of(answer))["id"]
        assert isinstance(event_id, str)
        return event_id


async def check_events_and_resume(client: Client) -> None:
    """Live events under the published ids, then a reconnect that resumes exactly."""
    async with client.stream("news") as first:
        # The subscription is resolved before the headers go out: from here on, nothing
        # published can be missed.
        await first.wait_started()
        assert first.status == 200
        assert first.header("content-type") == "text/event-stream"
        one = await client.publish("news", "one")
        event = await first.next_event()
        assert (event.id, event.data) == (one, "one")
        await first.disconnect()
    assert first.exception is None
    assert first.last_event_id == one
    # Published while the client is away: the reconnect replays exactly these, then live.
    missed = [await client.publish("news", message) for message in ("two", "three")]
    async with client.stream("news", last_event_id=one) as again:
        replayed = [await again.next_event() for _ in missed]
        assert [(e.id, e.data) for e in replayed] == list(
            zip(missed, ["two", "three"], strict=True)
        )
        four = await client.publish("news", "four")
        assert ((live := await again.next_event()).id, live.data) == (four, "four")
    # An id this hub never gave (a restart): a Reset first, then live.
    async with client.stream("news", last_event_id="zzzzzzzz-1") as lost:
        reset = await lost.next_event()
        assert reset.event == "reset"
        assert json.loads(reset.data) == {
            "reason": "unknown",
            "topics": ["news"],
            "resume_from": four,
        }
        assert reset.id == four


async def check_closed_topic_is_204(client: Client) -> None:
    head = client.hub.head("news")
    await client.hub.close("news")
    for last_event_id in (head, None):  # at the head, and a first connection
        async with client.stream("news", last_event_id=last_event_id) as closed:
            await closed.wait_finished()
        assert closed.status == 204, (last_event_id, closed.messages)
        assert closed.header("content-type") is None
        assert closed.complete
        assert body_of(closed) == b""


async def check_shutdown_ends_open_streams(client: Client, life: Lifespan) -> None:
    async with client.stream("other") as open_stream:
        await open_stream.wait_started()
        event_id = await client.publish("other", "last")
        assert (await open_stream.next_event()).id == event_id
        await life.shutdown()  # the server stops: the hub stops with the lifespan
        await open_stream.wait_finished()
    assert open_stream.complete  # a clean end of body, not a dropped connection
    assert open_stream.exception is None
    assert client.hub.stats().dropped.get("stopped") == 1
    assert client.hub.stats().subscribers == 0
    with pytest.raises(TopicClosed):
        await client.hub.publish("other", "too late")


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("kept_signal_handlers")
@pytest.mark.parametrize(
    ("name", "anyio_backend"),
    [
        pytest.param(name, backend, id=f"{name}-{backend}")
        for name, spec in APPS.items()
        for backend in spec.backends
    ],
)
@pytest.mark.anyio
async def test_the_hub_runs_in_the_framework_lifespan(
    name: str, anyio_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = APPS[name]
    client = Client(load(spec.source, f"hub_app_{name}", tmp_path, monkeypatch), spec)
    async with serving(client.app) as life:
        await check_events_and_resume(client)
        await check_closed_topic_is_204(client)
        await check_shutdown_ends_open_streams(client, life)


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("kept_signal_handlers")
@pytest.mark.anyio
async def test_graceful_shutdown_ends_hub_streams_before_the_lifespan_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Servers wait for open responses before they run the lifespan shutdown (uvicorn,
    # hypercorn): it is the signal, not the hub's stop, that must end the streams then.
    client = Client(load(BARE, "hub_app_bare_signal", tmp_path, monkeypatch), APPS["bare"])
    async with serving(client.app):
        async with client.stream("news") as open_stream:
            await open_stream.wait_started()
            event_id = await client.publish("news", "hello")
            assert (await open_stream.next_event()).id == event_id
            client.app.signal.trigger()  # what SIGINT/SIGTERM does
            await open_stream.wait_finished()
        assert open_stream.complete
        assert open_stream.exception is None
        # The hub itself still runs until the lifespan ends.
        assert await client.publish("news", "after the signal")
        assert client.hub.stats().subscribers == 0


@pytest.mark.timeout(30)
@pytest.mark.anyio
async def test_hub_lifespan_around_an_app_without_lifespan_keeps_the_hub_running() -> None:
    hub = Hub()

    async def http_only(scope: Any, receive: Any, send: Any) -> None:
        # Many plain ASGI apps refuse what they do not serve; for a lifespan scope that
        # is how the ASGI spec says "not supported", and servers then go on without it
        # (uvicorn's and hypercorn's default lifespan mode).
        if scope["type"] != "http":
            raise RuntimeError(f"unsupported scope type {scope['type']!r}")

    def news(request: SSERequest) -> Subscription:
        return hub.subscribe("news", last_event_id=request.last_event_id)

    app = hub.lifespan(SSEMiddleware(http_only, routes={"/events": news}))
    # The wrapper answers the lifespan for the app, so the hub runs while the server
    # does and stops with it.
    async with serving(app) as life:
        async with connect(app, "/events") as stream:
            await stream.wait_started()
            event_id = await hub.publish("news", "hello")
            assert (await stream.next_event()).id == event_id
        await life.shutdown()
    with pytest.raises(TopicClosed):
        await hub.publish("news", "after the server stopped")
