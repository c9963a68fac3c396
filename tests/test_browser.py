"""The demo page and tricky payloads in a real headless Chromium (playwright's sync API).

The browser's own EventSource is the client here: the WHATWG parser that matters most
in practice, with its own reconnection and Last-Event-ID. Chromium is Debian's
(``/usr/bin/chromium`` or ``$ASGI_SSE_CHROMIUM``); without one these tests skip,
unless ``ASGI_SSE_REQUIRE_BROWSER=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.servers import DEMO_APP, TEST_APP, Server, running
from tests.sse_app import EXPECTED

TIMEOUT_MS = 20_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
STREAMS = ("sse", "sse2", "sse3")

# The browser first: without one, skip (or fail) before starting any server.
pytestmark = pytest.mark.usefixtures("browser")


def _unavailable(reason: str) -> None:
    if os.environ.get("ASGI_SSE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (ASGI_SSE_REQUIRE_BROWSER=1: browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = os.environ.get("ASGI_SSE_CHROMIUM") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(path):
        _unavailable("no Chromium: install Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]'")
    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        manager.stop()


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
        assert [event["id"] for event in echoes[:3]] == ["0", "1", "2"]
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
    # count=3: the server ends each stream after three events; EventSource reconnects
    # by itself (after its default delay, ~3 s in Chromium) and sends Last-Event-ID.
    page.goto(demo.url("/?interval=0.05&count=3"))
    page.wait_for_function(
        """() => ["sse", "sse2", "sse3"].every(name =>
                window.demo.opens[name] >= 2
                && window.demo.received[name].filter(e => e.type === "echo").length >= 6)""",
        timeout=TIMEOUT_MS,
    )
    received = page.evaluate("window.demo.received")
    opens = page.evaluate("window.demo.opens")
    for name in STREAMS:
        assert opens[name] >= 2, opens
        echo_ids = [event["id"] for event in received[name] if event["type"] == "echo"]
        # No gap, no repeat: the second connection went on after id 2.
        assert echo_ids[:6] == ["0", "1", "2", "3", "4", "5"], (name, echo_ids)
    stats = httpx.get(demo.url("/stats"), timeout=10).json()
    assert "2" in stats["last_event_ids"], stats


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
