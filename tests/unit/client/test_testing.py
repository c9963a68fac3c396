"""asgi_sse.testing: the streaming test client behaves as documented."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel

from asgi_sse import BaseEvent, EventSourceResponse, ParsedEvent, ServerSentEvent
from asgi_sse._util.asgi import ASGIReceiveCallable, ASGISendCallable, Scope
from asgi_sse.testing import StreamClosed, connect

pytestmark = pytest.mark.anyio


class Note(BaseModel):
    text: str


class Noted(BaseEvent[Note]):
    pass


async def test_reads_raw_and_typed_events_and_comments_in_order() -> None:
    async def stream() -> AsyncIterator[Any]:
        yield ServerSentEvent(comment="hello")
        yield Noted(data=Note(text="a"), id="1")
        yield ServerSentEvent("x", event="other", id="2")

    async with connect(EventSourceResponse(stream())) as response:
        await response.wait_started()
        typed = await response.next_event(Noted)
        assert typed == Noted(data=Note(text="a"), id="1")
        raw = await response.next_event()
        assert (raw.event, raw.data, raw.id) == ("other", "x", "2")
        assert response.comments == ["hello"]
        assert response.last_event_id == "2"
        with pytest.raises(StreamClosed):
            await response.next_event()


async def test_typed_read_checks_the_event_name() -> None:
    async def stream() -> AsyncIterator[Any]:
        yield ServerSentEvent('{"text": "a"}', event="wrong")

    async with connect(EventSourceResponse(stream())) as response:
        with pytest.raises(AssertionError, match="noted"):
            await response.next_event(Noted)


async def test_timeout_when_nothing_arrives() -> None:
    async def stream() -> AsyncIterator[str]:
        await anyio.sleep_forever()
        yield ""  # pragma: no cover

    async with connect(EventSourceResponse(stream(), ping=None)) as response:
        with pytest.raises(TimeoutError):
            await response.next_event(timeout=0.05)


async def test_request_details_reach_the_app() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        seen.append(dict(scope))
        seen.append(dict(await receive()))
        await send(
            {"type": "http.response.start", "status": 204, "headers": [], "trailers": False}
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async with connect(
        app,
        "/a%20b?x=1",
        method="post",
        headers={"X-Test": "yes"},
        body=b"payload",
        last_event_id="7",
        root_path="/root",
    ) as response:
        await response.wait_finished()
    scope, message = seen
    assert scope["method"] == "POST"
    assert scope["path"] == "/root/a b"
    assert scope["root_path"] == "/root"
    assert scope["query_string"] == b"x=1"
    assert (b"x-test", b"yes") in scope["headers"]
    assert (b"last-event-id", b"7") in scope["headers"]
    assert message == {"type": "http.request", "body": b"payload", "more_body": False}
    assert response.status == 204


async def test_app_exception_is_reraised_at_exit_unless_disabled() -> None:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        raise LookupError("app failed")

    with pytest.raises(LookupError):
        async with connect(app) as response:
            await response.wait_finished()
    async with connect(app, raise_app_exceptions=False) as response:
        await response.wait_finished()
    assert isinstance(response.exception, LookupError)
    with pytest.raises(StreamClosed):
        await response.wait_started()


async def test_app_that_ignores_disconnect_fails_the_test() -> None:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(1)

    with pytest.raises(TimeoutError):
        async with connect(app, finish_timeout=0.05):
            pass


async def test_freeze_blocks_sends_until_unfrozen() -> None:
    async def stream() -> AsyncIterator[str]:
        for i in range(3):
            yield str(i)
            await anyio.lowlevel.checkpoint()

    async with connect(EventSourceResponse(stream())) as response:
        assert (await response.next_event()).data == "0"
        response.freeze()
        with pytest.raises(TimeoutError):
            await response.wait_finished(timeout=0.05)
        response.unfreeze()
        await response.wait_finished()
        assert [(await response.next_event()).data for _ in range(2)] == ["1", "2"]


async def test_async_iteration_and_events_helper() -> None:
    async def stream() -> AsyncIterator[str]:
        for i in range(4):
            yield str(i)

    async with connect(EventSourceResponse(stream())) as response:
        assert [e.data for e in await response.events(2)] == ["0", "1"]
        assert [e.data async for e in response] == ["2", "3"]
        assert response.json(ParsedEvent(event="message", data='{"a": 1}')) == {"a": 1}


async def test_receive_says_disconnect_once_the_response_is_complete() -> None:
    """ASGI: `http.disconnect` comes after the response was sent; apps such as Quart 0.23
    wait for it before they return."""
    seen: list[str] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        seen.append((await receive())["type"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [], "trailers": False}
        )
        await send({"type": "http.response.body", "body": b"done", "more_body": False})
        seen.append((await receive())["type"])

    async with connect(app, "/") as stream:
        await stream.wait_finished()
    assert seen == ["http.request", "http.disconnect"]
    assert stream.complete
