"""The demo page's one connection, ``/page``, in-process: the three streams and the chat
merged, each resumed after its own id in the cursor; a drop of the client ends the
whole connection; a closed chat is told and the streams go on. In Chromium, with four
and ten tabs: test_demo_tabs.py.

Each test builds an app around a hub of its own (`create_app(Hub())`): a hub belongs to
the event loop that first used its topics, and every test here runs in a loop of its
own.
"""

from __future__ import annotations

import json

import anyio
import pytest

from asgi_sse import Hub, ParsedEvent
from asgi_sse._protocol.cursor import parse_cursor, source_key
from asgi_sse.demo import create_app
from asgi_sse.demo.chat import CHAT_TOPIC, RECONNECT_MS, ChatEnded, ChatMessage
from asgi_sse.demo.page import PageConnected
from asgi_sse.testing import TestStream, connect
from asgi_sse.types import ASGIApp

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

STREAMS = ("sse", "sse2", "sse3_echo", "sse3_reverse_echo")
SOURCES = (*STREAMS, "chat")
#: Which sources send each event type (as the page reads them).
SENDERS = {
    "echo": ("sse", "sse2", "sse3_echo"),
    "reverse_echo": ("sse3_reverse_echo",),
    "chat_message": ("chat",),
    "reset": ("chat",),
}


async def greeting(stream: TestStream) -> PageConnected:
    """The first event of a page connection."""
    event = await stream.next_event()
    assert (event.event, event.retry) == ("page_connected", RECONNECT_MS)
    return PageConnected.decode(event.data)


def senders(events: list[ParsedEvent], before: str = "") -> list[tuple[str, str]]:
    """(source, its own id) of each event, read as the page reads them: the sender is
    the source, among those that send this type, whose entry in the cursor moved."""
    seen = parse_cursor(before) or {}
    result = []
    for event in events:
        now = parse_cursor(event.id) or {}
        candidates = SENDERS[event.event]
        moved = [
            name for name in candidates if now.get(source_key(name)) != seen.get(source_key(name))
        ]
        assert len(moved) == 1, (event, seen)
        result.append((moved[0], now[source_key(moved[0])]))
        seen = now
    return result


def own_ids(pairs: list[tuple[str, str]], name: str) -> list[str]:
    return [own for source, own in pairs if source == name]


async def chat_position(stream: TestStream) -> str:
    """Wait until the client's last event id holds the chat's position (the priming
    frame, which the client does not see as an event); that position."""
    key = source_key("chat")
    with anyio.fail_after(5):
        while key not in (parse_cursor(stream.last_event_id) or {}):  # noqa: ASYNC110
            await anyio.sleep(0.005)  # polled under the deadline
    return (parse_cursor(stream.last_event_id) or {})[key]


async def post(target: ASGIApp, path: str, body: bytes = b"") -> TestStream:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    async with connect(target, path, method="POST", headers=headers, body=body) as response:
        await response.wait_finished()
    return response


async def publish(target: ASGIApp, text: str) -> str:
    response = await post(target, "/chat/publish", f"text={text}".encode())
    assert response.status == 204, response.messages
    event_id = response.header("x-event-id")
    assert event_id
    return event_id


async def test_the_page_streams_everything_and_count_ends_it_then_it_resumes() -> None:
    hub = Hub()
    demo = create_app(hub)
    path = "/page?client=me&message=abc&interval=0.01&count=2"
    async with connect(demo, path) as first:
        info = await greeting(first)
        events = [event async for event in first]
    assert first.complete  # every stream sent its two: a clean end, the browser reconnects
    assert (info.data.client, info.data.last_event_id) == ("me", None)
    assert info.data.starts == dict.fromkeys(SOURCES)
    assert info.data.keys == {name: source_key(name) for name in SOURCES}
    pairs = senders(events)
    for name in STREAMS:
        assert own_ids(pairs, name) == ["0", "1"], name
    messages = {json.loads(e.data)["message"] for e in events if e.event == "reverse_echo"}
    assert messages == {"cba"}
    primed = (parse_cursor(first.last_event_id) or {})[source_key("chat")]
    assert primed == hub.head(CHAT_TOPIC)  # the chat's priming frame went into the cursor

    async with connect(demo, path, last_event_id=first.last_event_id) as again:
        info = await greeting(again)
        resumed = [event async for event in again]
    assert info.data.last_event_id == first.last_event_id
    assert info.data.starts == {**dict.fromkeys(STREAMS, "1"), "chat": primed}
    pairs = senders(resumed, first.last_event_id)
    for name in STREAMS:
        assert own_ids(pairs, name) == ["2", "3"], name  # each after its own last id


async def test_a_drop_ends_the_whole_connection_and_it_resumes_every_source() -> None:
    demo = create_app(Hub())
    path = "/page?client=me&interval=0.02"
    async with connect(demo, path) as first:
        await greeting(first)
        await chat_position(first)
        said = [await publish(demo, "before")]
        events = [await first.next_event()]
        while events[-1].event != "chat_message":
            events.append(await first.next_event())
        assert (await post(demo, "/chat/drop?client=me")).status == 204
        await first.wait_finished()
        events += [event async for event in first]
    assert first.complete  # a clean end, streams and chat alike: the browser reconnects
    missed = [await publish(demo, f"missed{n}") for n in range(3)]
    async with connect(demo, path, last_event_id=first.last_event_id) as again:
        info = await greeting(again)
        resumed: list[ParsedEvent] = []
        while len([e for e in resumed if e.event == "chat_message"]) < 3:
            resumed.append(await again.next_event())
        said += missed
        said.append(await publish(demo, "live"))
        while len([e for e in resumed if e.event == "chat_message"]) < 4:
            resumed.append(await again.next_event())
        while len(own_ids(senders(resumed, first.last_event_id), "sse")) < 2:
            resumed.append(await again.next_event())
    assert info.data.starts["chat"] == said[0]  # the chat resumed after its own last id
    pairs = senders(events) + senders(resumed, first.last_event_id)
    assert own_ids(pairs, "chat") == said  # every message once, in order, with its hub id
    chat = [ChatMessage.decode(e.data) for e in events + resumed if e.event == "chat_message"]
    assert [m.data.text for m in chat] == ["before", "missed0", "missed1", "missed2", "live"]
    for name in ("sse", "sse2", "sse3_echo"):  # the streams went on after their own ids
        numbers = [int(n) for n in own_ids(pairs, name)]
        assert numbers == list(range(len(numbers))), (name, numbers)


async def test_a_closed_chat_is_told_and_the_streams_go_on() -> None:
    hub = Hub()
    demo = create_app(hub)
    last = await publish(demo, "last words")
    await hub.close(CHAT_TOPIC)
    async with connect(demo, "/page?client=me&interval=0.01&count=3") as stream:
        await greeting(stream)
        events = [event async for event in stream]
    assert stream.complete
    ended = [ChatEnded.decode(e.data) for e in events if e.event == "chat_ended"]
    assert [event.data for event in ended] == [last]
    others = [e for e in events if e.event != "chat_ended"]
    for name in STREAMS:
        assert own_ids(senders(others), name) == ["0", "1", "2"]
    assert hub.stats().subscribers == 0


@pytest.mark.parametrize("client", ["bad!id", "", "x" * 65])
async def test_a_page_connection_with_a_bad_client_id_is_refused(client: str) -> None:
    hub = Hub()
    async with connect(create_app(hub), f"/page?client={client}") as response:
        await response.wait_finished()
    assert response.status == 400
    assert hub.stats().subscribers == 0


async def test_head_of_the_page_connection_gets_headers_only() -> None:
    hub = Hub()
    async with connect(create_app(hub), "/page?client=me", method="HEAD") as response:
        await response.wait_finished()
    assert response.status == 200
    assert response.header("content-type") == "text/event-stream"
    assert hub.stats().subscribers == 0


async def test_the_page_opens_one_eventsource() -> None:
    async with connect(create_app(Hub()), "/") as response:
        await response.wait_finished()
    page = b"".join(m["body"] for m in response.messages if m["type"] == "http.response.body")
    assert page.count(b"new EventSource(") == 1
    assert b"new EventSource(`/page?" in page
