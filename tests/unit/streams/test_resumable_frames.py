"""resumable_merge() with sources of encoded frames (a hub `Subscription`): the ``id:``
lines become cursors, the priming frame counts, and a reconnect resumes every source
exactly. On asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asgi_sse import (
    EventSourceResponse,
    Hub,
    InvalidEventError,
    ParsedEvent,
    ServerSentEvent,
    resumable_merge,
)
from asgi_sse._protocol.cursor import parse_cursor, source_key
from asgi_sse._protocol.frames import priming_frame
from asgi_sse.testing import TestStream, connect

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]

CHAT = source_key("chat")
TICKS = source_key("ticks")

Start = Callable[[str | None], Any]


def frames(*items: bytes) -> Callable[[str | None], AsyncIterator[bytes]]:
    """A source that yields these bytes items, whatever it is asked to resume after."""

    async def start(last: str | None) -> AsyncIterator[bytes]:
        for item in items:
            yield item
            await anyio.lowlevel.checkpoint()

    return start


async def merged_items(sources: dict[str, Start], last_event_id: str | None = None) -> list[Any]:
    items: list[Any] = []
    async with resumable_merge(sources, last_event_id=last_event_id) as merged:
        items += [item async for item in merged]
    return items


async def test_an_id_line_becomes_the_cursor_and_records_the_position() -> None:
    frame = b"event: note\nid: 3fa9c2d1-7\ndata: hi\n\n"
    [item] = await merged_items({"chat": frames(frame)})
    assert item == f"event: note\nid: {CHAT}~3fa9c2d1-7\ndata: hi\n\n".encode()


async def test_an_id_only_frame_records_the_position_too() -> None:
    [item] = await merged_items({"chat": frames(priming_frame("3fa9c2d1-0"))})
    assert item == f"id: {CHAT}~3fa9c2d1-0\n\n".encode()


async def test_every_frame_of_joined_bytes_gets_the_cursor_as_of_its_own_id() -> None:
    joined = b"id: a-1\ndata: one\n\nid: a-2\ndata: two\n\n"
    [item] = await merged_items({"chat": frames(joined)})
    assert item == f"id: {CHAT}~a-1\ndata: one\n\nid: {CHAT}~a-2\ndata: two\n\n".encode()


@pytest.mark.parametrize(
    "frame",
    [
        b"data: no id here\n\n",
        b"data: id: 5\n\n",  # "id: " inside a data line is data
        b": id: 5\ndata: x\n\n",  # and inside a comment, a comment
        b"event: x\ndata: a\ndata: id: 6\n\n",
        b"",
    ],
)
async def test_frames_without_an_id_line_go_out_as_they_are(frame: bytes) -> None:
    [item] = await merged_items({"chat": frames(frame)})
    assert item is frame


@pytest.mark.parametrize(
    "frame",
    [
        b"id: k7d2mq4x~a-1.b2xw9p0c~a-2\ndata: x\n\n",  # several topics' cursor
        b"id: \ndata: x\n\n",  # an empty id (it resets a browser's last event id)
        b"id: " + b"9" * 41 + b"\ndata: x\n\n",
    ],
)
async def test_a_frame_id_that_cannot_go_into_a_cursor_is_refused(frame: bytes) -> None:
    with pytest.raises(InvalidEventError, match="goes into the cursor"):
        await merged_items({"chat": frames(frame)})


async def test_keys_say_where_each_source_is_in_the_cursor() -> None:
    merged = resumable_merge({"chat": frames(b"id: e-1\n\n"), "ticks": ticks(1)})
    assert merged.keys == {"chat": CHAT, "ticks": TICKS}
    async with merged as events:
        items = [item async for item in events]
    cursor = parse_cursor(cursor_of(items[-1])) or {}
    assert {name: cursor[key] for name, key in merged.keys.items()} == {
        "chat": "e-1",
        "ticks": "0",
    }


def cursor_of(item: ServerSentEvent | bytes) -> str:
    if isinstance(item, ServerSentEvent):
        return str(item.id)
    return item.decode().split("\n")[0].removeprefix("id: ")


async def test_a_frame_source_is_started_after_its_own_position() -> None:
    asked: list[str | None] = []

    def start(last: str | None) -> AsyncIterator[bytes]:
        asked.append(last)
        return frames(b"id: e-5\ndata: x\n\n")(last)

    items = await merged_items({"chat": start, "ticks": ticks(1)})
    last = cursor_of(items[-1])  # the later item's cursor holds both positions
    assert parse_cursor(last) == {CHAT: "e-5", TICKS: "0"}
    merged = resumable_merge({"chat": start, "ticks": ticks(1)}, last_event_id=last)
    assert merged.starts == {"chat": "e-5", "ticks": "0"}
    async with merged as events:
        [tick] = [item async for item in events if isinstance(item, ServerSentEvent)]
    assert asked == [None, "e-5"]
    assert parse_cursor(str(tick.id)) == {CHAT: "e-5", TICKS: "1"}


def ticks(count: int, gate: anyio.Event | None = None) -> Start:
    """Numbered events from after ``last``; waits for ``gate`` (if any) after each."""

    async def start(last: str | None) -> AsyncIterator[ServerSentEvent]:
        first = 0 if last is None else int(last) + 1
        for n in range(first, first + count):
            yield ServerSentEvent(f"tick {n}", event="tick", id=n)
            if gate is not None:
                await gate.wait()

    return start


# -- a hub subscription merged with a stream of the app's own, through the response ----


def page(hub: Hub, count: int, gate: anyio.Event | None = None) -> Callable[..., Any]:
    """An ASGI app: the chat topic merged with ``count`` ticks, resumed by cursor."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        last = dict(scope["headers"]).get(b"last-event-id")
        sources: dict[str, Start] = {
            "chat": lambda last: hub.subscribe("chat", last_event_id=last),
            "ticks": ticks(count, gate),
        }
        merged = resumable_merge(sources, last_event_id=last.decode() if last else None)
        await EventSourceResponse(merged)(scope, receive, send)

    return app


def own_ids(events: list[ParsedEvent], key: str) -> list[str]:
    """Each event's own id: its source's entry in the cursor."""
    return [(parse_cursor(event.id) or {})[key] for event in events]


async def wait_for_position(stream: TestStream, key: str) -> str:
    """Wait until the client's last event id holds ``key``; its position there."""
    with anyio.fail_after(5):
        while key not in (parse_cursor(stream.last_event_id) or {}):  # noqa: ASYNC110
            # Polled under the deadline: the client shows no event for an id-only frame.
            await anyio.sleep(0.005)
    return (parse_cursor(stream.last_event_id) or {})[key]


async def test_a_reconnect_before_the_first_message_still_gets_every_message() -> None:
    hub = Hub()
    gate = anyio.Event()  # the ticks wait here: the stream stays open
    app = page(hub, count=1, gate=gate)
    async with connect(app) as first:
        tick = await first.next_event()
        primed = await wait_for_position(first, CHAT)  # the priming frame, not an event
        assert primed == hub.head("chat")
    cursor = first.last_event_id
    assert parse_cursor(cursor) == {TICKS: "0", CHAT: primed}
    assert tick.event == "tick"
    missed = [await hub.publish("chat", f"missed {n}") for n in range(3)]
    gate.set()
    async with connect(page(hub, count=2), last_event_id=cursor) as again:
        events = await again.events(5)
        await again.disconnect()
    chat = [event for event in events if event.event == "message"]
    assert [event.data for event in chat] == ["missed 0", "missed 1", "missed 2"]
    assert own_ids(chat, CHAT) == missed  # each message under its hub id, in order
    tick_events = [event for event in events if event.event == "tick"]
    assert own_ids(tick_events, TICKS) == ["1", "2"]  # after its own last id


async def test_a_reconnect_mid_chat_resumes_both_sources_with_no_gap_and_no_repeat() -> None:
    hub = Hub()
    app = page(hub, count=1000, gate=anyio.Event())  # one tick per connection
    said = [await hub.publish("chat", "before")]  # not for this client: it starts live
    received: list[ParsedEvent] = []
    async with connect(app) as first:
        await wait_for_position(first, CHAT)
        said += [await hub.publish("chat", f"one {n}") for n in range(3)]
        while len([e for e in received if e.event == "message"]) < 3:
            received.append(await first.next_event())
    cursor = first.last_event_id
    said += [await hub.publish("chat", f"away {n}") for n in range(2)]
    async with connect(app, last_event_id=cursor) as again:
        while len([e for e in received if e.event == "message"]) < 5:
            received.append(await again.next_event())
        said.append(await hub.publish("chat", "live"))
        while len([e for e in received if e.event == "message"]) < 6:
            received.append(await again.next_event())
        await again.disconnect()
    chat = [event for event in received if event.event == "message"]
    assert own_ids(chat, CHAT) == said[1:]
    texts = [event.data for event in chat]
    assert texts == ["one 0", "one 1", "one 2", "away 0", "away 1", "live"]
    # The ticks resumed after their own last id too (one per connection here).
    assert own_ids([e for e in received if e.event == "tick"], TICKS) == ["0", "1"]
