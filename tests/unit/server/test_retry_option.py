"""The ``retry=`` response option: the reconnection delay as the body's first line,
before any event, whatever the stream is (a generator, a hub subscription, a merge),
without changing what the stream's preparation decides (204 for a closed topic)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from asgi_sse import (
    EventSourceResponse,
    Hub,
    InvalidEventError,
    ServerSentEvent,
    SSEEndpoint,
    SSERequest,
    StreamObserver,
)
from asgi_sse.starlette import EventSourceResponse as StarletteResponse
from asgi_sse.testing import connect

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def _two() -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent("one", id="1")
    yield ServerSentEvent("two", id="2")


def _bodies(messages: list[Any]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


class Counts(StreamObserver):
    def __init__(self) -> None:
        self.events: list[int] = []

    def on_close(
        self, scope: Mapping[str, Any], reason: str, events: int, size: int, seconds: float
    ) -> None:
        self.events.append(events)


async def test_the_retry_line_goes_first_and_is_not_counted_as_an_event(
    anyio_backend: str,
) -> None:
    counts = Counts()
    app = EventSourceResponse(_two(), retry=1500, observer=counts)
    async with connect(app) as stream:
        await stream.wait_finished()
    body = _bodies(stream.messages)
    assert body == b"retry: 1500\n\nid: 1\ndata: one\n\nid: 2\ndata: two\n\n"
    assert counts.events == [2]


async def test_without_retry_nothing_is_added(anyio_backend: str) -> None:
    async with connect(EventSourceResponse(_two())) as stream:
        await stream.wait_finished()
    assert _bodies(stream.messages) == b"id: 1\ndata: one\n\nid: 2\ndata: two\n\n"


def test_a_bad_retry_is_refused_at_construction() -> None:
    with pytest.raises(InvalidEventError, match="retry must be >= 0"):
        EventSourceResponse(_two(), retry=-1)
    for bad in (1.5, True, "1000"):
        with pytest.raises(TypeError, match="retry must be an int"):
            EventSourceResponse(_two(), retry=bad)  # type: ignore[arg-type]
    assert EventSourceResponse(_two(), retry=0).options.retry_frame == b"retry: 0\n\n"


async def test_a_hub_subscription_keeps_its_preparation(anyio_backend: str) -> None:
    async with Hub() as hub:
        head = hub.publish_nowait("open", "x")

        def handler(request: SSERequest) -> Any:
            return hub.subscribe(request.query_params["topic"])

        app = SSEEndpoint(handler, retry=250)
        async with connect(app, "/?topic=open") as stream:
            await stream.wait_started()
            event_id = hub.publish_nowait("open", "live")
            event = await stream.next_event()
            assert (event.id, event.data) == (event_id, "live")
        assert _bodies(stream.messages).startswith(b"retry: 250\n\nid: " + head.encode())
        await hub.close("closed")
        async with connect(app, "/?topic=closed") as closed:
            await closed.wait_finished()
        assert closed.status == 204  # nothing to send: still 204, no retry line
        assert _bodies(closed.messages) == b""
        async with connect(app, "/?topic=open", method="HEAD") as head_only:
            await head_only.wait_finished()
        assert _bodies(head_only.messages) == b""


async def test_starlettes_response_takes_it_too(anyio_backend: str) -> None:
    async def events(request: Request) -> StarletteResponse:
        return StarletteResponse(_two(), retry=3000)

    app = Starlette(routes=[Route("/events", events)])
    async with connect(app, "/events") as stream:
        await stream.wait_finished()
    assert _bodies(stream.messages).startswith(b"retry: 3000\n\nid: 1\n")
