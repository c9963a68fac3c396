"""The demo page and tricky payloads in a real headless Chromium (playwright's sync API).

The browser's own EventSource is the client here: the WHATWG parser that matters most
in practice, with its own reconnection and Last-Event-ID. Chromium is Debian's
(``/usr/bin/chromium`` or ``$ASGI_SSE_CHROMIUM``); without one these tests skip,
unless ``ASGI_SSE_REQUIRE_BROWSER=1`` (CI), where they fail instead.

The chat tests drive the hub through a real page: the server drops the page's stream
while events keep being published, and the page's EventSource must resume by itself
with nothing lost and nothing twice; and a closed topic must make it stop for good.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from asgi_sse._protocol.cursor import parse_cursor, source_key
from tests.support.browser import TIMEOUT_MS, browser
from tests.support.servers import DEMO_APP, TEST_APP, Server, running
from tests.support.sse_app import EXPECTED

__all__ = ("browser",)  # a fixture, imported to be found here

CHAT_APP = "tests.support.sse_app:chat_app"
STREAMS = ("sse", "sse2", "sse3")

# The browser first: without one, skip (or fail) before starting any server.
pytestmark = [pytest.mark.usefixtures("browser"), pytest.mark.timeout(90)]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module", params=["demo", "hypercorn-trio"])
def demo(request: pytest.FixtureRequest) -> Iterator[Server]:
    """``python -m asgi_sse.demo`` (uvicorn), and ``hypercorn -k trio asgi_sse.demo:app``."""
    with running(str(request.param), DEMO_APP) as server:
        yield server


def test_page_shows_events_from_all_three_streams(demo: Server, page: Any) -> None:
    page.goto(demo.url("/?interval=0.1"))
    page.wait_for_function(
        """() => ["sse", "sse2", "sse3"].every(name => window.demo.received[name].length >= 4)
              && window.demo.received.sse3.some(event => event.type === "reverse_echo")""",
        timeout=TIMEOUT_MS,
    )
    received = page.evaluate("window.demo.received")
    for name in STREAMS:
        echoes = [event for event in received[name] if event["type"] == "echo"]
        # The page's `number`: the id itself, or /sse3's own entry in its cursor.
        assert [event["number"] for event in echoes[:3]] == ["0", "1", "2"]
        assert {event["payload"]["message"] for event in echoes} == {"hello"}
        assert {"message", "created_at"} <= set(echoes[0]["payload"])
    reverse = [event for event in received["sse3"] if event["type"] == "reverse_echo"]
    assert {event["payload"]["message"] for event in reverse} == {"olleh"}
    assert [event["type"] for event in received["sse"]] == ["echo"] * len(received["sse"])

    # The DOM shows them too (read in one go: events keep arriving meanwhile).
    dom = page.evaluate(
        """() => Object.fromEntries(["sse", "sse2", "sse3"].map(name => {
            const section = document.getElementById(name);
            return [name, {
                count: section.querySelector(".count").textContent,
                state: section.querySelector(".state").textContent,
                items: Array.from(section.querySelectorAll("ol li"),
                                  li => [li.className, li.textContent]),
            }];
        }))"""
    )
    for name in STREAMS:
        shown = dom[name]
        assert int(shown["count"]) >= 4
        assert shown["state"] == "open"
        assert len(shown["items"]) >= 4
        oldest_class, oldest = shown["items"][-1]  # newest first
        assert (oldest_class, oldest.startswith("echo #0: hello @ ")) == ("echo", True), oldest
    assert any(cls == "reverse_echo" for cls, _ in dom["sse3"]["items"])


def test_browser_reconnects_and_resumes_after_last_event_id(demo: Server, page: Any) -> None:
    # count=3: the server ends each stream after three events (of each source, for
    # /sse3); EventSource reconnects by itself (after its default delay, ~3 s in
    # Chromium) and sends Last-Event-ID.
    page.goto(demo.url("/?interval=0.05&count=3"))
    page.wait_for_function(
        """() => ["sse", "sse2", "sse3"].every(name =>
                window.demo.opens[name] >= 2
                && window.demo.received[name].filter(e => e.type === "echo").length >= 6)
              && window.demo.received.sse3.filter(e => e.type === "reverse_echo").length >= 6""",
        timeout=TIMEOUT_MS,
    )
    received = page.evaluate("window.demo.received")
    opens = page.evaluate("window.demo.opens")
    for name in STREAMS:
        assert opens[name] >= 2, opens
        echo_numbers = [event["number"] for event in received[name] if event["type"] == "echo"]
        # No gap, no repeat: the second connection went on after number 2.
        assert echo_numbers[:6] == ["0", "1", "2", "3", "4", "5"], (name, echo_numbers)
    # /sse3: both merged sources went on after their own last number, from one cursor.
    reverse = [event for event in received["sse3"] if event["type"] == "reverse_echo"]
    assert [event["number"] for event in reverse[:6]] == ["0", "1", "2", "3", "4", "5"]
    for event in received["sse3"]:  # the page's number is the sender's entry in the id
        assert (parse_cursor(event["id"]) or {})[source_key(event["type"])] == event["number"]
    stats = httpx.get(demo.url("/stats"), timeout=10).json()
    assert "2" in stats["last_event_ids"], stats
    resumed = {source_key("echo"): "2", source_key("reverse_echo"): "2"}
    assert any(parse_cursor(last) == resumed for last in stats["last_event_ids"]), stats


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn-trio"])
def test_app(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running(str(request.param), TEST_APP) as server:
        yield server


def test_tricky_payloads_reach_the_browser_exactly(test_app: Server, page: Any) -> None:
    page.goto(test_app.url("/tricky.html"))
    page.wait_for_function("() => window.finished", timeout=TIMEOUT_MS)
    received = page.evaluate("window.received")
    expected = [
        {"type": kind, "data": data, "lastEventId": last_id} for kind, data, last_id in EXPECTED
    ]
    for n, (got, want) in enumerate(zip(received, expected, strict=False)):
        assert got == want, f"event {n}: the browser dispatched {got!r}, expected {want!r}"
    assert len(received) == len(expected)


# -- the chat: the hub through a real EventSource -------------------------------------

#: The page's chat state, without its EventSource object (which cannot be serialised).
CHAT_STATE = "() => { const { source, ...state } = window.demo.chat; return state; }"
PUBLISH_EVERY = 0.02  # seconds between two publishes


class Publisher(threading.Thread):
    """Publishes numbered chat messages over HTTP, one every ~20 ms, until stopped, and
    records the ids the server gave them."""

    def __init__(self, server: Server, prefix: str, limit: int = 2000) -> None:
        super().__init__(name="publisher", daemon=True)
        self.server = server
        self.prefix = prefix
        self.limit = limit
        self.published: list[tuple[str, str]] = []  # (id, text), in publish order
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def count(self) -> int:
        with self._lock:
            return len(self.published)

    def stop(self) -> list[tuple[str, str]]:
        """Stop, and return everything published (AssertionError if publishing failed)."""
        self._stopping.set()
        self.join(timeout=10)
        assert not self.is_alive(), "the publisher did not stop"
        if self.error is not None:
            raise AssertionError(f"publishing failed: {self.error!r}") from self.error
        return list(self.published)

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.server.base_url, timeout=10) as client:
                for n in range(self.limit):
                    if self._stopping.is_set():
                        return
                    text = f"{self.prefix} {n}"
                    response = client.post("/chat/publish", data={"text": text})
                    assert response.status_code == 204, response.text
                    with self._lock:
                        self.published.append((response.headers["x-event-id"], text))
                    self._stopping.wait(PUBLISH_EVERY)  # pacing, not synchronisation
        except BaseException as exc:  # reported by stop(), in the test's thread
            self.error = exc


def test_a_dropped_chat_stream_resumes_by_itself_with_every_event_once(
    demo: Server, page: Any
) -> None:
    page.goto(demo.url("/"))
    page.wait_for_function("() => window.demo.chat.connections.length === 1")
    prefix = uuid.uuid4().hex[:8]

    # One message through the page's own form first.
    page.fill("#chat-text", f"{prefix} typed")
    page.press("#chat-text", "Enter")
    page.wait_for_function(
        "text => window.demo.chat.messages.some(m => m.text === text)", arg=f"{prefix} typed"
    )
    # The message can arrive on the stream before the publish's answer does.
    page.wait_for_function(
        "() => document.querySelector('#chat-feedback').textContent.startsWith('sent as ')"
    )
    typed_id = page.text_content("#chat-feedback").removeprefix("sent as ")

    publisher = Publisher(demo, prefix)
    publisher.start()
    try:
        page.wait_for_function("() => window.demo.chat.messages.length >= 10")
        # The server ends the page's stream mid-flow, while events keep coming.
        page.click("#chat-drop")
        page.wait_for_function("() => window.demo.chat.errors.length === 1")  # it ended
        away_from = publisher.count()
        page.wait_for_function("() => window.demo.chat.connections.length === 2")
        away_until = publisher.count()
        page.wait_for_function(
            "() => window.demo.chat.messages.filter(m => m.connection === 2).length >= 10"
        )
        assert page.text_content("#chat-feedback").startswith("dropped by the server")
    finally:
        published = publisher.stop()
    expected = [(typed_id, f"{prefix} typed"), *published]
    page.wait_for_function("count => window.demo.chat.messages.length >= count", arg=len(expected))

    chat = page.evaluate(CHAT_STATE)
    got = [(m["id"], m["text"]) for m in chat["messages"]]
    assert got == expected  # every event exactly once, in publish order, with its id
    first = [m for m in chat["messages"] if m["connection"] == 1]
    # The browser reconnected by itself, once, with the id of the last event it had.
    assert chat["connections"] == [None, first[-1]["id"]]
    assert chat["errors"] == [0]  # one error event, while reconnecting (not closed)
    assert chat["resets"] == []
    resume = page.text_content("#chat-resume")
    assert resume == f"reconnect #1: resumed after Last-Event-ID {first[-1]['id']}"
    # Events were published while the page had no connection (the browser waits the
    # server's `retry`, 1 s, before it reconnects): those came back as the replay.
    print(f"\n{demo.kind}: {away_until - away_from} events published while away")
    assert away_until - away_from >= 10
    stats = httpx.get(demo.url("/stats"), timeout=10).json()["chat"]
    assert stats["head"] == expected[-1][0]


@pytest.fixture(params=["uvicorn", "hypercorn-trio"])
def chat_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The demo around a hub of its own, with ``POST /close`` (tests/support/sse_app.py): one
    server per test, since a closed topic stays closed."""
    with running(str(request.param), CHAT_APP) as server:
        yield server


def test_a_closed_chat_makes_the_browser_stop_reconnecting(chat_server: Server, page: Any) -> None:
    page.goto(chat_server.url("/"))
    page.wait_for_function("() => window.demo.chat.connections.length === 1")
    with httpx.Client(base_url=chat_server.base_url, timeout=10) as http:
        response = http.post("/chat/publish", data={"text": "last words"})
        assert response.status_code == 204
        page.wait_for_function("() => window.demo.chat.messages.length === 1")
        assert http.post("/close").status_code == 204
        # The open stream drains and ends; the browser reconnects at the head (after
        # the server's `retry`), gets 204 No Content, and closes for good.
        page.wait_for_function("() => window.demo.chat.source.readyState === EventSource.CLOSED")
        chat = page.evaluate(CHAT_STATE)
        assert chat["errors"] == [0, 2]  # reconnecting, then closed: no further attempt
        assert chat["connections"] == [None]  # the 204 was no stream: no `connected`
        assert [m["text"] for m in chat["messages"]] == ["last words"]
        assert chat["messages"][0]["id"] == response.headers["x-event-id"]
        assert page.text_content("#chat .state") == "closed"
        assert page.text_content("#chat-resume").startswith("closed for good")
        stats = http.get("/stats").json()["chat"]
        assert (stats["subscribers"], stats["clients"]) == (0, 0)
        assert http.post("/chat/publish", data={"text": "too late"}).status_code == 409
