"""The demo behind nginx, as issue 20 asks: the documentation's nginx configuration
(docs/examples/deploying/nginx.conf, its location widened to the whole app) in front of
the demo under uvicorn, opened in Chromium.

nginx buffers responses by default, and with ``gzip on`` for event streams it holds an
app's stream whole until it ends (tests/integration/test_proxies.py shows it with an app
that does not send ``X-Accel-Buffering: no``). Here, with that gzip setting on: the page's
one stream goes live, a chat message reaches the page while its connection stays open,
and a drop through nginx resumes with the Last-Event-ID nginx passes on, with no gap.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import proxies
from tests.support.browser import TIMEOUT_MS, browser
from tests.support.servers import DEMO_APP, Server, running

__all__ = ("browser",)  # a fixture, imported to be found here

pytestmark = pytest.mark.timeout(60)

GREW = """([counts, n]) => ["sse", "sse2", "sse3"].every(
    (name, i) => window.demo.received[name].length >= counts[i] + n)"""
COUNTS = '() => ["sse", "sse2", "sse3"].map(name => window.demo.received[name].length)'
MESSAGES = """prefix => window.demo.chat.messages
    .filter(m => m.text.startsWith(prefix)).map(m => [m.id, m.text])"""


@pytest.fixture(scope="module")
def demo() -> Iterator[Server]:
    with running("uvicorn", DEMO_APP) as server:
        yield server


@pytest.fixture(scope="module")
def nginx(demo: Server) -> Iterator[Server]:
    """The docs' nginx config for the whole demo, in an http block that gzips event
    streams (what buffers a stream whole when the app does not opt out)."""
    with proxies.nginx(demo.port, gzip=True, location="/") as server:
        yield server


def test_the_demo_streams_through_nginx_and_resumes_after_a_drop(
    nginx: Server, browser: Any
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(nginx.url("/"))
        page.wait_for_function("() => window.demo.connections.length >= 1")
        before = page.evaluate(COUNTS)
        page.wait_for_function(GREW, arg=[before, 3])  # live through nginx
        prefix = f"through-nginx-{uuid.uuid4().hex[:8]}"
        published = []
        with httpx.Client(base_url=nginx.base_url, timeout=10) as http:
            for round_ in range(3):
                response = http.post("/chat/publish", data={"text": f"{prefix} {round_}"})
                assert response.status_code in (200, 201, 204), response.text
                published.append((response.headers["x-event-id"], f"{prefix} {round_}"))
                page.wait_for_function(
                    "([prefix, n]) => window.demo.chat.messages"
                    ".filter(m => m.text.startsWith(prefix)).length >= n",
                    arg=[prefix, round_ + 1],
                )
                if round_ == 1:
                    page.click("#chat-drop")
                    page.wait_for_function("() => window.demo.connections.length >= 2")
            got = page.evaluate(MESSAGES, prefix)
            connections = page.evaluate("window.demo.connections")
            headers = http.get("/page", params={"client": "probe", "count": "1"}).headers
        assert [tuple(message) for message in got] == published  # once each, in order
        assert len(connections) >= 2  # the drop: a second connection, resumed
        assert connections[-1] is not None  # after the Last-Event-ID nginx passed on
        # nginx takes X-Accel-Buffering for itself (the client never sees it); it still
        # gzips the stream, but, told not to buffer, flushes each write: the page above
        # got every event live.
        assert "x-accel-buffering" not in headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["content-encoding"] == "gzip"
    finally:
        context.close()
