"""Tests of the tutorial's sse2.py: an endless stream, read one event at a time."""

import httpx
import pytest

from asgi_sse.client import EventSource
from asgi_sse.testing import ASGIStreamTransport, connect

from sse2 import Echo, app

pytestmark = pytest.mark.anyio  # anyio's pytest plugin runs the async tests


async def test_echoes_are_numbered_from_zero() -> None:
    async with connect(app, "/sse2?message=hi") as stream:
        first = await stream.next_event(Echo)  # decoded into the typed event
        second = await stream.next_event(Echo)
        assert stream.status == 200
        assert stream.header("content-type") == "text/event-stream"
        await stream.disconnect()  # and wait for the app to finish
    assert (first.id, second.id) == ("0", "1")
    assert first.data.message == "hi"


async def test_the_typed_client_reads_it_in_process() -> None:
    transport = ASGIStreamTransport(app)  # the app runs in the client's lifetime
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        EventSource("/sse2?message=hi", events=(Echo,), client=http) as source,
    ):
        echo = await anext(source)
    assert isinstance(echo, Echo)
    assert echo.data.message == "hi"
