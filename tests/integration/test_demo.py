"""The demo app in-process (the same app runs under uvicorn and in Chromium in
test_servers.py, test_browser.py and test_demo_tabs.py): its routes, its options, its
stats, the chat on its hub (publish, drop and resume, validation, streams owned by their
client), and the page's one connection (``/page``: the streams and the chat merged).

The chat tests build an app per test with `create_app(Hub())`: a hub belongs to the
event loop that first used its topics, and every test here runs in a loop of its own.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

import pytest

from asgi_sse import Hub, ParsedEvent, SSEEndpoint
from asgi_sse._protocol.cursor import parse_cursor, source_key
from asgi_sse.demo import Echo, ReverseEcho, app, create_app, stats
from asgi_sse.demo.answer import MAX_TOKENS, fake_words
from asgi_sse.demo.chat import (
    CHAT_TOPIC,
    MAX_BODY,
    MAX_TEXT,
    RECONNECT_MS,
    ChatMessage,
    ChatRoom,
    Connected,
)
from asgi_sse.testing import TestStream, connect
from asgi_sse.types import ASGIApp

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

FORM = "application/x-www-form-urlencoded"


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


def numbers(events: list[ParsedEvent]) -> list[tuple[str, str]]:
    """(source, its own number) of each /sse3 event, read from the cursor in its id."""
    return [(e.event, (parse_cursor(e.id) or {})[source_key(e.event)]) for e in events]


async def test_sse3_merges_echo_and_reverse_echo() -> None:
    async with connect(app, "/sse3?message=abc&interval=0.01&count=2") as stream:
        events = await stream.events(4)
        await stream.wait_finished()
    assert sorted(numbers(events)) == [
        ("echo", "0"),
        ("echo", "1"),
        ("reverse_echo", "0"),
        ("reverse_echo", "1"),
    ]
    assert ReverseEcho.event_name == "reverse_echo"
    assert {json.loads(e.data)["message"] for e in events if e.event == "reverse_echo"} == {"cba"}


async def test_sse3_resumes_both_sources_after_their_own_last_ids() -> None:
    path = "/sse3?interval=0.01&count=2"
    async with connect(app, path) as first:
        events = await first.events(4)
        await first.wait_finished()
    cursor = first.last_event_id
    assert parse_cursor(cursor) == {source_key("echo"): "1", source_key("reverse_echo"): "1"}
    async with connect(app, path, last_event_id=cursor) as again:
        resumed = await again.events(4)
        await again.wait_finished()
    assert sorted(numbers(resumed)) == [
        ("echo", "2"),
        ("echo", "3"),
        ("reverse_echo", "2"),
        ("reverse_echo", "3"),
    ]
    # Per source, in order, whatever the interleaving.
    for name in ("echo", "reverse_echo"):
        mine = [n for source, n in numbers(events + resumed) if source == name]
        assert mine == ["0", "1", "2", "3"]


@pytest.mark.parametrize("last", ["x", "²", "9" * 5000, "-1"])
async def test_a_last_event_id_that_is_not_a_number_starts_from_zero(last: str) -> None:
    async with connect(app, "/sse?interval=0.01&count=1", last_event_id=last) as stream:
        assert (await stream.next_event()).id == "0"


@pytest.mark.parametrize(
    ("path", "status", "content_type"),
    [
        ("/", 200, "text/html; charset=utf-8"),
        ("/stats", 200, "application/json"),
        ("/nowhere", 404, "text/plain; charset=utf-8"),
    ],
)
async def test_site_routes(path: str, status: int, content_type: str) -> None:
    async with connect(app, path) as response:
        await response.wait_finished()
    assert response.status == status
    assert response.header("content-type") == content_type


async def run_lifespan(target: ASGIApp) -> list[str]:
    sent: list[str] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await target({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    return sent


async def test_lifespan_is_answered_and_runs_the_hub_for_the_life_of_the_server() -> None:
    hub = Hub()
    demo = create_app(hub)
    assert await run_lifespan(demo) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    # The hub stopped with the server: publishing is refused from now on.
    status, _ = await post(demo, "/chat/publish", b"text=late")
    assert status == 409


# -- the chat ---------------------------------------------------------------------------


async def post(
    target: ASGIApp, path: str, body: bytes = b"", content_type: str = FORM
) -> tuple[int, TestStream]:
    """POST ``body`` to ``path``; (status, the response) once it finished."""
    headers = {"content-type": content_type} if content_type else {}
    async with connect(target, path, method="POST", headers=headers, body=body) as response:
        await response.wait_finished()
    assert response.status is not None
    return response.status, response


async def publish(target: ASGIApp, text: str) -> str:
    status, response = await post(target, "/chat/publish", f"text={text}".encode())
    assert status == 204, response.messages
    event_id = response.header("x-event-id")
    assert event_id
    return event_id


async def chat_stats(target: ASGIApp) -> dict[str, Any]:
    async with connect(target, "/stats") as response:
        await response.wait_finished()
    body = b"".join(m["body"] for m in response.messages if m["type"] == "http.response.body")
    result: dict[str, Any] = json.loads(body)["chat"]
    return result


async def connected(stream: TestStream) -> Connected:
    """The first event of a chat connection."""
    event = await stream.next_event()
    assert (event.event, event.retry) == ("connected", RECONNECT_MS)
    return Connected.decode(event.data)


async def test_a_published_message_reaches_every_subscriber_with_the_same_id() -> None:
    demo = create_app(Hub())
    async with (
        connect(demo, "/chat?client=a") as one,
        connect(demo, "/chat?client=b") as two,
    ):
        for stream, client in ((one, "a"), (two, "b")):
            greeting = await connected(stream)
            assert (greeting.data.client, greeting.data.last_event_id) == (client, None)
        assert one.header("content-type") == "text/event-stream"
        event_id = await publish(demo, "hello%20there")
        got = [await stream.next_event(ChatMessage) for stream in (one, two)]
    assert [(m.id, m.data.text) for m in got] == [(event_id, "hello there")] * 2
    assert got[0].data.time.tzinfo is not None


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        (FORM, b"text=caf%C3%A9+%F0%9F%98%80", "café 😀"),
        (f"{FORM}; charset=UTF-8", b"text=%20%20padded%20%20&other=x", "padded"),
        ("application/json", json.dumps({"text": "json ✓"}).encode(), "json ✓"),
        ("Application/JSON; charset=utf-8", b'{"text": "line\\nbreak"}', "line\nbreak"),
        (FORM, f"text={'x' * MAX_TEXT}".encode(), "x" * MAX_TEXT),
    ],
)
async def test_publish_takes_a_form_or_json(content_type: str, body: bytes, text: str) -> None:
    demo = create_app(Hub())
    async with connect(demo, "/chat") as stream:
        await connected(stream)
        status, response = await post(demo, "/chat/publish", body, content_type)
        assert status == 204
        message = await stream.next_event(ChatMessage)
    assert message.data.text == text
    assert message.id == response.header("x-event-id")


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        (FORM, b"text=", 422),
        (FORM, b"text=+++", 422),
        (FORM, f"text={'x' * (MAX_TEXT + 1)}".encode(), 422),
        (FORM, b"nothing=here", 400),
        ("application/json", b'{"text": "\\ud800"}', 422),  # a lone surrogate
        ("application/json", b"not json", 400),
        ("application/json", b'"text"', 400),
        ("application/json", b'{"text": 42}', 400),
        ("application/json", b"\xff\xfe\xfa", 400),
        ("text/plain", b"text=hi", 415),
        ("", b"text=hi", 415),
        (FORM, b"text=" + b"x" * MAX_BODY, 413),
    ],
)
async def test_publish_refuses_what_is_not_a_message(
    content_type: str, body: bytes, status: int
) -> None:
    hub = Hub()
    demo = create_app(hub)
    got, response = await post(demo, "/chat/publish", body, content_type)
    assert got == status
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert hub.stats().published == 0


@pytest.mark.parametrize("path", ["/chat/publish", "/chat/drop?client=a"])
async def test_the_chat_actions_take_post_only(path: str) -> None:
    async with connect(create_app(Hub()), path) as response:
        await response.wait_finished()
    assert (response.status, response.header("allow")) == (405, "POST")


async def test_drop_ends_the_stream_and_a_reconnect_resumes_exactly() -> None:
    demo = create_app(Hub())
    async with connect(demo, "/chat?client=me") as stream:
        await connected(stream)
        seen = await publish(demo, "before")
        assert (await stream.next_event(ChatMessage)).id == seen
        assert (await chat_stats(demo))["subscribers"] == 1
        status, _ = await post(demo, "/chat/drop?client=me")
        assert status == 204
        await stream.wait_finished()
    assert stream.complete  # a clean end of the body: the browser reconnects
    assert stream.last_event_id == seen
    assert (await chat_stats(demo))["subscribers"] == 0
    status, _ = await post(demo, "/chat/drop?client=me")
    assert status == 404  # nothing of that client streams any more
    missed = [await publish(demo, f"missed{n}") for n in range(3)]
    async with connect(demo, "/chat?client=me", last_event_id=seen) as again:
        greeting = await connected(again)
        assert greeting.data.last_event_id == seen
        replayed = [await again.next_event(ChatMessage) for _ in missed]
        live = await publish(demo, "live")
        after = await again.next_event(ChatMessage)
    assert [m.id for m in replayed] == missed
    assert [m.data.text for m in replayed] == ["missed0", "missed1", "missed2"]
    assert after.id == live


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/chat/drop?client=nobody", 404),
        ("/chat/drop", 400),
        ("/chat/drop?client=", 400),
        ("/chat/drop?client=no%20spaces", 400),
        (f"/chat/drop?client={'x' * 65}", 400),
    ],
)
async def test_drop_needs_a_known_client(path: str, status: int) -> None:
    got, _ = await post(create_app(Hub()), path)
    assert got == status


@pytest.mark.parametrize("client", ["bad!id", "", "x" * 65])
async def test_a_stream_with_a_bad_client_id_is_refused(client: str) -> None:
    hub = Hub()
    async with connect(create_app(hub), f"/chat?client={client}") as response:
        await response.wait_finished()
    assert response.status == 400
    assert hub.stats().subscribers == 0


async def test_a_stream_without_a_client_works_but_cannot_be_dropped() -> None:
    demo = create_app(Hub())
    async with connect(demo, "/chat") as stream:
        assert (await connected(stream)).data.client is None
        event_id = await publish(demo, "hi")
        assert (await stream.next_event()).id == event_id
        status, _ = await post(demo, "/chat/drop?client=me")
        assert status == 404
        later = await publish(demo, "still here")
        assert (await stream.next_event()).id == later


async def test_a_closed_chat_is_answered_204_which_stops_the_browser() -> None:
    hub = Hub()
    demo = create_app(hub)
    last = await publish(demo, "last words")
    await hub.close(CHAT_TOPIC)
    async with connect(demo, "/chat?client=me", last_event_id=last) as stream:
        await stream.wait_finished()
    assert stream.status == 204
    assert stream.header("content-type") is None
    assert (await chat_stats(demo))["subscribers"] == 0
    status, _ = await post(demo, "/chat/publish", b"text=more")
    assert status == 409


async def test_a_drop_ends_every_stream_of_that_client_and_only_those() -> None:
    hub = Hub()
    room = ChatRoom(hub)
    endpoint = SSEEndpoint(room.stream)
    async with AsyncExitStack() as stack:
        streams: dict[str, TestStream] = {}
        for name, client in (("a", "a"), ("b1", "b"), ("b2", "b"), ("c", "c")):
            streams[name] = await stack.enter_async_context(
                connect(endpoint, f"/?client={client}")
            )
            await connected(streams[name])
        assert await room.drop("b") == 2
        for name in ("b1", "b2"):
            await streams[name].wait_finished()
            assert streams[name].complete
        assert await room.drop("b") == 0
        event_id = await room.publish("to a and c")
        assert [(await streams[c].next_event()).id for c in "ac"] == [event_id, event_id]
    assert room.stats() == {"subscribers": 0, "published": 1, "head": event_id}


async def test_head_gets_headers_only_and_registers_nothing() -> None:
    hub = Hub()
    demo = create_app(hub)
    async with connect(demo, "/chat?client=me", method="HEAD") as response:
        await response.wait_finished()
    assert response.status == 200
    assert hub.stats().subscribers == 0


async def call(target: ASGIApp, scope: dict[str, Any], incoming: list[Any]) -> list[Any]:
    """Run ``target`` on ``scope`` with these messages to receive; what it sent."""
    sent: list[Any] = []

    async def receive() -> Any:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await target(scope, receive, send)
    return sent


def http_scope(path: str, method: str = "POST") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(b"content-type", FORM.encode())],
    }


async def test_publish_reads_a_body_sent_in_pieces() -> None:
    hub = Hub()
    pieces = [
        {"type": "http.request", "body": b"text=in%20", "more_body": True},
        {"type": "http.request", "body": b"pieces", "more_body": False},
    ]
    sent = await call(create_app(hub), http_scope("/chat/publish"), pieces)
    assert sent[0]["status"] == 204
    assert hub.stats().published == 1


async def test_a_client_that_leaves_mid_body_publishes_nothing_and_gets_no_answer() -> None:
    hub = Hub()
    incoming = [
        {"type": "http.request", "body": b"text=half", "more_body": True},
        {"type": "http.disconnect"},
    ]
    assert await call(create_app(hub), http_scope("/chat/publish"), incoming) == []
    assert hub.stats().published == 0


async def test_a_websocket_is_refused() -> None:
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "path": "/", "headers": []}
    sent = await call(create_app(Hub()), scope, [{"type": "websocket.connect"}])
    assert [m["type"] for m in sent] == ["websocket.close"]


# -- the answers ------------------------------------------------------------------------


async def start_answer(target: ASGIApp, query: str = "tokens=20&interval=0.001") -> str:
    """POST /answer; the stream's path."""
    status, response = await post(target, f"/answer?{query}", b"text=hi%20there")
    assert status == 201, response.messages
    body = b"".join(m["body"] for m in response.messages if m["type"] == "http.response.body")
    started = json.loads(body)
    assert response.header("location") == started["stream"] == f"/answer/{started['topic']}"
    return str(started["stream"])


def tokens_of(events: list[ParsedEvent]) -> list[str]:
    assert {e.event for e in events} == {"token"}
    return [json.loads(e.data) for e in events]


async def test_an_answer_streams_its_tokens_then_run_ended_then_ends() -> None:
    hub = Hub()
    demo = create_app(hub)
    async with hub:
        stream_path = await start_answer(demo)
        async with connect(demo, stream_path) as stream:
            events = await stream.events(21)
            await stream.wait_finished()
    assert stream.complete
    assert tokens_of(events[:20]) == fake_words("hi there", 20)
    assert (events[20].event, json.loads(events[20].data)) == ("run_ended", {"reason": "complete"})
    ids = [e.id for e in events]
    assert len(set(ids)) == 21
    assert all(ids)
    # A reconnect that has everything: 204, the browser stops.
    async with connect(demo, stream_path, last_event_id=ids[-1]) as again:
        await again.wait_finished()
    assert again.status == 204


async def test_a_dropped_answer_resumes_after_its_last_event_id_exactly() -> None:
    hub = Hub()
    demo = create_app(hub)
    async with hub:
        stream_path = await start_answer(demo, "tokens=60&interval=0.005")
        async with connect(demo, stream_path) as first:
            before = await first.events(10)
            status, _ = await post(demo, f"{stream_path}/drop")
            assert status == 204
            await first.wait_finished()
        assert first.complete  # a clean end: the browser reconnects
        seen = before + [e async for e in first]  # what came before the drop ended it
        last = first.last_event_id
        async with connect(demo, stream_path, last_event_id=last) as second:
            rest: list[ParsedEvent] = []
            while not rest or rest[-1].event != "run_ended":
                rest.append(await second.next_event())
            await second.wait_finished()
        status, _ = await post(demo, f"{stream_path}/drop")
        assert status == 404  # nothing streams it any more
    assert seen[-1].id == last
    assert len(seen) < 60  # the drop came mid-way
    assert json.loads(rest[-1].data) == {"reason": "complete"}
    assert tokens_of(seen) + tokens_of(rest[:-1]) == fake_words("hi there", 60)


async def test_stop_cancels_the_run() -> None:
    hub = Hub()
    demo = create_app(hub)
    async with hub:
        stream_path = await start_answer(demo, "tokens=1000&interval=0.01")
        async with connect(demo, stream_path) as stream:
            await stream.events(2)
            status, _ = await post(demo, f"{stream_path}/stop")
            assert status == 204
            events = [await stream.next_event()]
            while events[-1].event != "run_ended":
                events.append(await stream.next_event())
            await stream.wait_finished()
        assert json.loads(events[-1].data) == {"reason": "cancelled"}
        status, _ = await post(demo, f"{stream_path}/stop")
        assert status == 404  # not running any more


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/answer?tokens=0", b"text=hi", 400),
        ("POST", f"/answer?tokens={MAX_TOKENS + 1}", b"text=hi", 400),
        ("POST", "/answer?tokens=x", b"text=hi", 400),
        ("POST", "/answer?interval=0", b"text=hi", 400),
        ("POST", "/answer?interval=nan", b"text=hi", 400),
        ("POST", "/answer", b"text=", 422),
        ("POST", "/answer", b"nothing=here", 400),
        ("GET", "/answer/chat", b"", 404),  # not an answer's topic: no other topic is read
        ("GET", "/answer/answer-short", b"", 404),
        ("POST", "/answer/answer-aaaaaaaaaaaaaaaaaaaaaa/stop", b"", 404),
        ("POST", "/answer/answer-aaaaaaaaaaaaaaaaaaaaaa/drop", b"", 404),
        ("POST", "/answer/answer-aaaaaaaaaaaaaaaaaaaaaa/other", b"", 404),
        ("GET", "/answer/answer-aaaaaaaaaaaaaaaaaaaaaa/stop", b"", 405),
    ],
)
async def test_answer_refuses_bad_input(method: str, path: str, body: bytes, status: int) -> None:
    hub = Hub()
    demo = create_app(hub)
    headers = {"content-type": FORM}
    async with hub:
        async with connect(demo, path, method=method, headers=headers, body=body) as response:
            await response.wait_finished()
        assert response.status == status
        assert hub.stats().runs == 0


async def test_the_answer_page_is_served() -> None:
    async with connect(app, "/answer") as response:
        await response.wait_finished()
    assert response.status == 200
    assert response.header("content-type") == "text/html; charset=utf-8"
    page = b"".join(m["body"] for m in response.messages if m["type"] == "http.response.body")
    assert page.count(b"new EventSource(") == 1
