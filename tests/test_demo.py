"""The demo app in-process (the same app runs under uvicorn and in Chromium in
test_servers.py and test_browser.py): its routes, its options, its stats."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asgi_sse.demo import Echo, ReverseEcho, app, stats
from asgi_sse.testing import connect

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def test_sse_plain_events_count_and_resume() -> None:
    path = "/sse?message=hi&interval=0.01&count=2"
    async with connect(app, path, last_event_id="4") as stream:
        events = await stream.events(2)
        await stream.wait_finished()
    assert [(e.event, e.id) for e in events] == [("echo", "5"), ("echo", "6")]
    assert json.loads(events[0].data)["message"] == "hi"
    assert stats["last_event_ids"][-1] == "4"


async def test_sse2_typed_events() -> None:
    async with connect(app, "/sse2?message=typed&interval=0.01&count=1") as stream:
        echo = await stream.next_event(Echo)
    assert echo.data.message == "typed"
    assert echo.id == "0"


async def test_sse3_merges_echo_and_reverse_echo() -> None:
    async with connect(app, "/sse3?message=abc&interval=0.01&count=2") as stream:
        names = [(await stream.next_event()).event for _ in range(4)]
        await stream.wait_finished()
    assert sorted(names) == ["echo", "echo", "reverse_echo", "reverse_echo"]
    assert ReverseEcho.event_name == "reverse_echo"


async def test_a_non_numeric_last_event_id_starts_from_zero() -> None:
    async with connect(app, "/sse?interval=0.01&count=1", last_event_id="x") as stream:
        assert (await stream.next_event()).id == "0"


@pytest.mark.parametrize(
    ("path", "status", "content_type"),
    [
        ("/", 200, "text/html; charset=utf-8"),
        ("/stats", 200, "application/json"),
        ("/nowhere", 404, "text/plain"),
    ],
)
async def test_site_routes(path: str, status: int, content_type: str) -> None:
    async with connect(app, path) as response:
        await response.wait_finished()
    assert response.status == status
    assert response.header("content-type") == content_type


async def test_lifespan_is_answered() -> None:
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
