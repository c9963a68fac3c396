"""Many tabs of the demo page in one browser profile (one playwright context: one
connection pool), in a real Chromium.

Over HTTP/1.1 a browser opens at most six connections to a host, for all its tabs
together. The page reads the three streams and the chat through one EventSource
(``/page``), so four tabs hold four connections and their chat POSTs still find one:
every tab streams, every tab's message reaches all four, and a tab whose connection the
server drops resumes it with no gap and nothing twice while the others stream on. Over
HTTP/2 (TLS, hypercorn) all tabs share one connection: ten tabs, whose context accepts
the self-signed certificate.

Chromium is Debian's; without it these tests skip, unless ``ASGI_SSE_REQUIRE_BROWSER=1``
(CI), where they fail (tests/support/browser.py, tests/support/certs.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.browser import TIMEOUT_MS, browser
from tests.support.certs import Certificate, running_tls_demo, tls_certificate
from tests.support.servers import DEMO_APP, Server, running

__all__ = ("browser", "tls_certificate")  # fixtures, imported to be found here

pytestmark = pytest.mark.timeout(60)

STREAMS = ("sse", "sse2", "sse3")
#: Every tab's streams received at least ``n`` events (per stream) more than ``counts``.
GREW = """([counts, n]) => ["sse", "sse2", "sse3"].every(
    (name, i) => window.demo.received[name].length >= counts[i] + n)"""
COUNTS = '() => ["sse", "sse2", "sse3"].map(name => window.demo.received[name].length)'
#: The tab's chat messages that start with a prefix: [id, text] each.
MESSAGES = """prefix => window.demo.chat.messages
    .filter(m => m.text.startsWith(prefix)).map(m => [m.id, m.text])"""


def open_tabs(context: Any, url: str, count: int) -> list[Any]:
    """``count`` pages of ``context`` on ``url``, each once its connection is open."""
    tabs = []
    for _ in range(count):
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(url)
        tabs.append(tab)
    for tab in tabs:
        tab.wait_for_function("() => window.demo.connections.length >= 1")
    return tabs


def wait_all_streaming(tabs: list[Any], events: int = 3) -> None:
    """Wait until every tab got ``events`` more events of each stream, from now: all
    the tabs' connections are live at once."""
    counts = [tab.evaluate(COUNTS) for tab in tabs]
    for tab, before in zip(tabs, counts, strict=True):
        tab.wait_for_function(GREW, arg=[before, events])


def say_from_each(tabs: list[Any], prefix: str) -> list[tuple[str, str]]:
    """Each tab sends a message through its own form; [id, text] of each, in order."""
    sent = []
    for n, tab in enumerate(tabs):
        text = f"{prefix} from tab {n}"
        tab.fill("#chat-text", text)
        tab.press("#chat-text", "Enter")
        tab.wait_for_function(
            "() => document.querySelector('#chat-feedback').textContent.startsWith('sent as ')"
        )
        sent.append((tab.text_content("#chat-feedback").removeprefix("sent as "), text))
    return sent


def wait_for_messages(tabs: list[Any], prefix: str, count: int) -> None:
    for tab in tabs:
        tab.wait_for_function(
            "([prefix, count]) => window.demo.chat.messages"
            ".filter(m => m.text.startsWith(prefix)).length >= count",
            arg=[prefix, count],
        )


def messages(tab: Any, prefix: str) -> list[tuple[str, str]]:
    return [(m[0], m[1]) for m in tab.evaluate(MESSAGES, prefix)]


def assert_no_gap_no_repeat(tab: Any) -> None:
    """Each stream's own numbers, per event type, are 0, 1, 2, ... in order."""
    received = tab.evaluate("window.demo.received")
    for name in STREAMS:
        for kind in ("echo", "reverse_echo"):
            numbers = [int(e["number"]) for e in received[name] if e["type"] == kind]
            assert numbers == list(range(len(numbers))), (name, kind, numbers)


@pytest.fixture(scope="module")
def demo() -> Iterator[Server]:
    """``python -m asgi_sse.demo`` (uvicorn: HTTP/1.1)."""
    with running("demo", DEMO_APP) as server:
        yield server


def test_four_tabs_stream_chat_and_one_resumes_after_a_drop_over_http1(
    demo: Server, browser: Any
) -> None:
    context = browser.new_context()
    try:
        tabs = open_tabs(context, demo.url("/?interval=0.1"), 4)
        assert (
            tabs[0].evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
            == "http/1.1"
        )
        wait_all_streaming(tabs)

        # A message from each tab reaches all four, under the same ids, in one order.
        prefix = uuid.uuid4().hex[:8]
        sent = say_from_each(tabs, prefix)
        wait_for_messages(tabs, prefix, len(sent))
        for tab in tabs:
            assert messages(tab, prefix) == sent

        # The server ends tab 0's whole connection; messages are published while it is
        # away (the browser waits the server's `retry`, 1 s, before it reconnects).
        dropped, others = tabs[0], tabs[1:]
        before = [tab.evaluate(COUNTS) for tab in others]
        dropped.click("#chat-drop")
        dropped.wait_for_function("() => window.demo.errors.length === 1")
        with httpx.Client(base_url=demo.base_url, timeout=10) as http:

            def publish(text: str) -> tuple[str, str]:
                response = http.post("/chat/publish", data={"text": text})
                assert response.status_code == 204, response.text
                return response.headers["x-event-id"], text

            away = [publish(f"{prefix} while away {n}") for n in range(5)]
            dropped.wait_for_function("() => window.demo.connections.length === 2")
            back = [publish(f"{prefix} after {n}") for n in range(2)]
        expected = sent + away + back
        wait_for_messages(tabs, prefix, len(expected))
        # The others streamed on meanwhile, on their own connections.
        for tab, counts in zip(others, before, strict=True):
            tab.wait_for_function(GREW, arg=[counts, 3])
        wait_all_streaming(tabs)

        for tab in tabs:  # every message once, in publish order, with its hub id
            assert messages(tab, prefix) == expected
            assert_no_gap_no_repeat(tab)  # every stream resumed after its own number
        chat = dropped.evaluate("window.demo.chat")
        assert chat["connections"] == [None, sent[-1][0]]  # resumed after its last message
        assert [m["connection"] for m in chat["messages"]][-len(back + away) :] == [2] * 7
        assert dropped.evaluate("window.demo.errors") == [0]  # reconnecting, not closed
        assert dropped.evaluate("window.demo.opens") == 2
        assert dropped.text_content("#chat-resume") == (
            f"reconnect #1: the chat resumed after {sent[-1][0]}"
        )
        for tab in others:
            assert tab.evaluate("window.demo.errors") == []
            assert tab.evaluate("window.demo.opens") == 1
    finally:
        context.close()


def test_ten_tabs_share_one_http2_connection_and_chat(
    tls_certificate: Certificate, browser: Any
) -> None:
    with running_tls_demo(tls_certificate) as server:
        # The certificate is self-signed: this context accepts it (as Chromium's
        # --ignore-certificate-errors would; one playwright per process, so the module's
        # browser it is).
        context = browser.new_context(ignore_https_errors=True)
        try:
            tabs = open_tabs(context, server.url("/?interval=0.2"), 10)
            for tab in tabs:
                protocol = "performance.getEntriesByType('navigation')[0].nextHopProtocol"
                assert tab.evaluate(protocol) == "h2"
            wait_all_streaming(tabs, 2)
            prefix = uuid.uuid4().hex[:8]
            sent = say_from_each(tabs, prefix)
            wait_for_messages(tabs, prefix, len(sent))
            for tab in tabs:
                assert messages(tab, prefix) == sent
                assert_no_gap_no_repeat(tab)
                assert tab.evaluate("window.demo.errors") == []
        finally:
            context.close()
