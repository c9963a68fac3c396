"""The demo page and tricky payloads in a real headless Chromium (playwright's sync API).

The browser's own EventSource is the client here: the WHATWG parser that matters most
in practice, with its own reconnection and Last-Event-ID. Chromium is Debian's
(``/usr/bin/chromium`` or ``$ASGI_SSE_CHROMIUM``); without one these tests skip,
unless ``ASGI_SSE_REQUIRE_BROWSER=1`` (CI), where they fail instead.

The demo page reads the three streams and the chat through one EventSource (``/page``,
a `resumable_merge`; several tabs at once: test_demo_tabs.py). The chat tests drive the
hub through a real page: the server drops the page's connection while events keep being
published, and the page's EventSource must resume by itself with nothing lost and
nothing twice; and a closed topic must be told while the streams go on.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from asgi_sse._protocol.cursor import parse_cursor, source_key
from asgi_sse.demo.answer import fake_words
from tests.support.browser import TIMEOUT_MS, browser
from tests.support.redisutil import REDIS_URL, redis_prefix
from tests.support.servers import DEMO_APP, TEST_APP, Server, launched, running
from tests.support.sse_app import EXPECTED

__all__ = ("browser", "redis_prefix")  # fixtures, imported to be found here

CHAT_APP = "tests.support.sse_app:chat_app"
STREAMS = ("sse", "sse2", "sse3")
#: The page connection's stream sources (asgi_sse/demo/page.py).
SOURCES = ("sse", "sse2", "sse3_echo", "sse3_reverse_echo")

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
        # The page's `number`: the sender's own entry in the connection's cursor.
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
    # count=3: the server ends the page's connection once each stream sent three events;
    # EventSource reconnects by itself (after the server's `retry`, 1 s) and sends the
    # last cursor as Last-Event-ID.
    page.goto(demo.url("/?interval=0.05&count=3"))
    page.wait_for_function(
        """() => window.demo.opens >= 2
              && ["sse", "sse2", "sse3"].every(name =>
                 window.demo.received[name].filter(e => e.type === "echo").length >= 6)
              && window.demo.received.sse3.filter(e => e.type === "reverse_echo").length >= 6""",
        timeout=TIMEOUT_MS,
    )
    received = page.evaluate("window.demo.received")
    assert page.evaluate("window.demo.opens") >= 2
    for name in STREAMS:
        echo_numbers = [event["number"] for event in received[name] if event["type"] == "echo"]
        # No gap, no repeat: the second connection went on after number 2.
        assert echo_numbers[:6] == ["0", "1", "2", "3", "4", "5"], (name, echo_numbers)
    # /sse3: both merged sources went on after their own last number, from one cursor.
    reverse = [event for event in received["sse3"] if event["type"] == "reverse_echo"]
    assert [event["number"] for event in reverse[:6]] == ["0", "1", "2", "3", "4", "5"]
    for event in received["sse3"]:  # the page's number is the sender's entry in the id
        key = source_key(f"sse3_{event['type']}")
        assert (parse_cursor(event["id"]) or {})[key] == event["number"]
    stats = httpx.get(demo.url("/stats"), timeout=10).json()
    # The reconnect's Last-Event-ID: a cursor with each stream after its own number 2.
    resumed = [parse_cursor(last) or {} for last in stats["last_event_ids"]]
    assert any(all(c.get(source_key(n)) == "2" for n in SOURCES) for c in resumed), stats


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

#: The page's chat state.
CHAT_STATE = "() => window.demo.chat"
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
        page.wait_for_function("() => window.demo.errors.length === 1")  # it ended
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
    assert page.evaluate("window.demo.errors") == [0]  # once, reconnecting (not closed)
    assert chat["resets"] == []
    resume = page.text_content("#chat-resume")
    assert resume == f"reconnect #1: the chat resumed after {first[-1]['id']}"
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


def test_a_closed_chat_is_told_on_the_page_and_its_streams_go_on(
    chat_server: Server, page: Any
) -> None:
    page.goto(chat_server.url("/?interval=0.05"))
    page.wait_for_function("() => window.demo.chat.connections.length === 1")
    with httpx.Client(base_url=chat_server.base_url, timeout=10) as http:
        response = http.post("/chat/publish", data={"text": "last words"})
        assert response.status_code == 204
        page.wait_for_function("() => window.demo.chat.messages.length === 1")
        assert http.post("/close").status_code == 204
        # The chat's subscription drains and ends: the page is told, and the streams of
        # its connection go on.
        page.wait_for_function("() => window.demo.chat.ended.length === 1")
        streamed = page.evaluate("window.demo.received.sse.length")
        page.wait_for_function(
            "count => window.demo.received.sse.length >= count + 5", arg=streamed
        )
        chat = page.evaluate(CHAT_STATE)
        assert chat["ended"] == [response.headers["x-event-id"]]  # the chat's last event
        assert [m["text"] for m in chat["messages"]] == ["last words"]
        assert chat["messages"][0]["id"] == response.headers["x-event-id"]
        assert page.evaluate("window.demo.errors") == []  # the connection never ended
        assert page.text_content("#chat .state") == "open"
        assert page.text_content("#chat-resume").startswith("the chat ended")
        assert http.post("/chat/publish", data={"text": "too late"}).status_code == 409
        # /chat itself answers a client at the end of a closed chat 204, which stops a
        # browser's EventSource for good.
        last = response.headers["x-event-id"]
        assert http.get("/chat", headers={"Last-Event-ID": last}).status_code == 204


# -- the answer page: a run on the hub, one EventSource ---------------------------------

#: The page's answer state, without its EventSource object.
ANSWER_STATE = "() => { const { source, ...state } = window.answer; return state; }"
PROMPT = "Tell me about server-sent events"


@pytest.fixture(scope="module")
def answer_server() -> Iterator[Server]:
    """``python -m asgi_sse.demo`` (uvicorn)."""
    with running("demo", DEMO_APP) as server:
        yield server


def ask(page: Any, server: Server, query: str) -> str:
    """Open the answer page with ``query``, ask, and return the answer's topic."""
    page.goto(server.url(f"/answer?{query}"))
    page.fill("#prompt", PROMPT)
    page.click("#start")
    page.wait_for_function("() => window.answer.topic !== null")
    return str(page.evaluate("window.answer.topic"))


def test_an_answer_resumes_through_three_drops_then_the_servers_204_closes_it(
    answer_server: Server, page: Any
) -> None:
    # keep_open=1: the page leaves its EventSource open after run_ended, so that what
    # stops it is the server's 204 to its reconnect.
    topic = ask(page, answer_server, "tokens=2000&interval=0.002&keep_open=1")
    with httpx.Client(base_url=answer_server.base_url, timeout=10) as http:
        for connection, at in enumerate((500, 1000, 1500), start=1):
            page.wait_for_function(
                "([connection, at]) => window.answer.opens.length === connection"
                " && window.answer.tokens.length >= at",
                arg=[connection, at],
            )
            assert http.post(f"/answer/{topic}/drop").status_code == 204
    page.wait_for_function(
        "() => window.answer.reason !== null"
        " && window.answer.source.readyState === EventSource.CLOSED"
    )
    state = page.evaluate(ANSWER_STATE)
    tokens = state["tokens"]
    # Every token exactly once, in order, each with its own id.
    assert [token["text"] for token in tokens] == fake_words(PROMPT, 2000)
    assert len({token["id"] for token in tokens}) == 2000
    assert state["reason"] == "complete"
    # Four connections: the first, then one per drop, each resuming after the last
    # token it had; then the end of the body after run_ended, a reconnect, and its
    # 204: the EventSource closed for good (readyState 2), with no further attempt.
    assert len(state["opens"]) == 4
    assert state["opens"][0] is None
    ids = [token["id"] for token in tokens]
    for last in state["opens"][1:]:
        assert last in ids
    assert state["errors"] == [0, 0, 0, 0, 2]
    assert page.text_content("#state") == "closed"
    assert page.text_content("#reason") == "the run ended: complete"
    assert page.text_content("#resume").startswith("reconnect #3: resumed after Last-Event-ID ")
    assert page.text_content("#text") == "".join(fake_words(PROMPT, 2000))


def test_the_answer_page_closes_its_eventsource_on_run_ended(
    answer_server: Server, page: Any
) -> None:
    ask(page, answer_server, "tokens=30&interval=0.005")
    page.wait_for_function("() => window.answer.reason !== null")
    state = page.evaluate(ANSWER_STATE)
    assert state["reason"] == "complete"
    assert [token["text"] for token in state["tokens"]] == fake_words(PROMPT, 30)
    assert page.evaluate("window.answer.source.readyState") == 2  # closed by the page
    assert state["errors"] == []  # it never saw the end of the body
    assert page.text_content("#state") == "closed"


def test_the_stop_button_cancels_the_run(answer_server: Server, page: Any) -> None:
    ask(page, answer_server, "tokens=4000&interval=0.01")
    page.wait_for_function("() => window.answer.tokens.length >= 5")
    page.click("#stop")
    page.wait_for_function("() => window.answer.reason !== null")
    state = page.evaluate(ANSWER_STATE)
    assert state["reason"] == "cancelled"
    assert 5 <= len(state["tokens"]) < 4000
    assert [token["text"] for token in state["tokens"]] == fake_words(PROMPT, len(state["tokens"]))
    assert page.text_content("#reason") == "the run ended: cancelled"
    assert page.evaluate("window.answer.source.readyState") == 2


def test_the_drop_button_resumes_the_answer(answer_server: Server, page: Any) -> None:
    ask(page, answer_server, "tokens=300&interval=0.005")
    page.wait_for_function("() => window.answer.tokens.length >= 20")
    page.click("#drop")
    page.wait_for_function("() => window.answer.reason !== null")
    state = page.evaluate(ANSWER_STATE)
    assert [token["text"] for token in state["tokens"]] == fake_words(PROMPT, 300)
    assert len(state["opens"]) == 2
    assert state["opens"][1] in [token["id"] for token in state["tokens"]]


@pytest.fixture
def answer_workers(redis_prefix: str) -> Iterator[Server]:
    """``python -m asgi_sse.demo --redis URL --workers 2``, its keys under a prefix of
    this test's own."""

    def argv(port: int) -> list[str]:
        demo = [sys.executable, "-m", "asgi_sse.demo", "--port", str(port)]
        return [*demo, "--redis", REDIS_URL, "--workers", "2"]

    with launched("demo", argv, env={"ASGI_SSE_DEMO_REDIS_PREFIX": redis_prefix}) as server:
        yield server


def test_an_answer_on_redis_resumes_across_two_workers(answer_workers: Server, page: Any) -> None:
    topic = ask(page, answer_workers, "tokens=2000&interval=0.004&keep_open=1")
    for connection, at in enumerate((500, 1000, 1500), start=1):
        page.wait_for_function(
            "([connection, at]) => window.answer.opens.length === connection"
            " && window.answer.tokens.length >= at",
            arg=[connection, at],
        )
        # A new connection each time: whichever worker gets the drop, `Hub.drop` ends
        # the page's stream on the worker that holds it.
        status = httpx.post(answer_workers.url(f"/answer/{topic}/drop"), timeout=10).status_code
        assert status == 204
    page.wait_for_function(
        "() => window.answer.reason !== null"
        " && window.answer.source.readyState === EventSource.CLOSED"
    )
    state = page.evaluate(ANSWER_STATE)
    assert [token["text"] for token in state["tokens"]] == fake_words(PROMPT, 2000)
    assert len({token["id"] for token in state["tokens"]}) == 2000
    assert state["reason"] == "complete"
    assert len(state["opens"]) == 4
    assert state["errors"] == [0, 0, 0, 0, 2]
