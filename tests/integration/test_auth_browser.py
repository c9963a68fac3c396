"""The authorization guide's Starlette app (docs/examples/howto/auth_starlette.py) under
uvicorn, read by the page it serves in a real headless Chromium.

What a browser's EventSource does with each answer: a stream that ends (a `hub.drop`)
makes it reconnect after the server's ``retry`` with its Last-Event-ID, and a user who
may still read resumes with no gap; a 403 on that reconnection fails the EventSource
for good (readyState CLOSED) and it makes no request again. The requests are counted
on the server, in uvicorn's access log. Chromium as in tests/integration/test_browser.py:
without one these tests skip, unless ``ASGI_SSE_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.docs.source import EXAMPLES
from tests.support.browser import TIMEOUT_MS, browser
from tests.support.servers import HOST, Server, launched, wait_until

__all__ = ("browser",)  # a fixture, imported to be found here

# The browser first: without one, skip (or fail) before starting any server.
pytestmark = [pytest.mark.usefixtures("browser"), pytest.mark.timeout(60)]

RETRY = 1.0  # stream_auth.RECONNECT_MS, the `retry:` the app sends, in seconds
STREAM_REQUEST = re.compile(r'"GET /events HTTP/1\.1" (\d{3})')


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """``uvicorn auth_starlette:app``, from the examples' folder, access log on."""

    def argv(port: int) -> list[str]:
        app = ["--app-dir", str(EXAMPLES / "howto"), "auth_starlette:app"]
        return [sys.executable, "-m", "uvicorn", *app, "--host", HOST, "--port", str(port)]

    with launched("uvicorn", argv) as running:
        yield running


@pytest.fixture
def admin(server: Server) -> Iterator[httpx.Client]:
    """alice, an admin, signed in."""
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        session = client.post("/login", params={"user": "alice"}).cookies["session"]
        client.headers["cookie"] = f"session={session}"
        yield client


def stream_answers(server: Server) -> list[int]:
    """The status of every ``GET /events`` the server answered so far, in order."""
    return [int(status) for status in STREAM_REQUEST.findall(server.output())]


def open_page_as(browser: Any, server: Server, user: str) -> Any:
    """A new browser context signed in as ``user``, on the app's page."""
    context = browser.new_context()
    context.request.post(server.url(f"/login?user={user}"))  # the cookie is the context's
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.url("/"))
    page.wait_for_function("() => status.textContent === 'open'")
    return page


def messages(page: Any) -> list[tuple[str, str]]:
    items = page.evaluate("Array.from(messages.children, li => [li.dataset.id, li.textContent])")
    return [(str(event_id), str(text)) for event_id, text in items]


def post(admin: httpx.Client, path: str, method: str = "POST") -> Any:
    response = admin.request(method, path)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_dropped_user_who_may_still_read_resumes_with_no_gap(
    browser: Any, server: Server, admin: httpx.Client
) -> None:
    post(admin, "/admin/rooms/general/carol", "PUT")  # carol may read general
    before = len(stream_answers(server))
    page = open_page_as(browser, server, "carol")
    try:
        post(admin, "/rooms/general/messages?text=one")
        page.wait_for_function("() => messages.children.length === 1")
        # Access to one more room: her stream is dropped, so that it follows it.
        assert post(admin, "/admin/rooms/staff/carol", "PUT") == {"dropped": 1}
        page.wait_for_function("() => status.textContent === 'reconnecting'")
        post(admin, "/rooms/general/messages?text=two")  # while she is away
        post(admin, "/rooms/general/messages?text=three")
        assert stream_answers(server)[before:] == [200], "reconnected before the test published"
        page.wait_for_function("() => status.textContent === 'open'")
        post(admin, "/rooms/staff/messages?text=four")
        page.wait_for_function("() => messages.children.length === 4")
        shown = messages(page)
        # Each room in its publish order (rooms interleave as they come): nothing
        # missed, nothing twice.
        texts = [text for _, text in shown]
        assert [text for text in texts if text.startswith("general ")] == [
            "general alice: one",
            "general alice: two",
            "general alice: three",
        ]
        assert [text for text in texts if text.startswith("staff ")] == ["staff alice: four"]
        assert len({event_id for event_id, _ in shown}) == 4
        assert stream_answers(server)[before:] == [200, 200]  # one reconnection, allowed
    finally:
        page.context.close()


def test_a_revoked_user_gets_403_and_the_browser_stops_for_good(
    browser: Any, server: Server, admin: httpx.Client
) -> None:
    post(admin, "/admin/rooms/general/dave", "PUT")
    before = len(stream_answers(server))
    page = open_page_as(browser, server, "dave")
    try:
        post(admin, "/rooms/general/messages?text=hello")
        page.wait_for_function("() => messages.children.length === 1")
        started = time.monotonic()
        assert post(admin, "/admin/ban/dave") == {"dropped": 1}
        page.wait_for_function("() => status.textContent !== 'open'")
        ended_after = time.monotonic() - started
        assert ended_after < 1.0, f"the stream ended {ended_after:.2f}s after the ban"
        # One reconnection, after `retry`; the app answers 403; the EventSource is closed.
        page.wait_for_function("() => source.readyState === EventSource.CLOSED")
        assert page.evaluate("status.textContent") == "closed: sign in again"
        wait_until(lambda: len(stream_answers(server)) > before + 1, 5, "the reconnection")
        assert stream_answers(server)[before:] == [200, 403]
        # And never again: nothing more for two retry intervals (a short, bounded wait for
        # a request that must not come).
        deadline = time.monotonic() + 2 * RETRY
        while time.monotonic() < deadline:
            assert stream_answers(server)[before:] == [200, 403]
            time.sleep(0.1)
        assert page.evaluate("source.readyState") == 2
        assert len(messages(page)) == 1
    finally:
        page.context.close()


def test_logging_out_ends_the_stream_and_its_reconnection_gets_401(
    browser: Any, server: Server
) -> None:
    before = len(stream_answers(server))
    page = open_page_as(browser, server, "alice")
    try:
        # The page's own request, with its cookie: the session ends, then its streams.
        dropped = page.evaluate("fetch('/logout', {method: 'POST'}).then(r => r.json())")
        assert dropped == {"dropped": 1}
        page.wait_for_function("() => source.readyState === EventSource.CLOSED")
        assert page.evaluate("status.textContent") == "closed: sign in again"
        wait_until(lambda: len(stream_answers(server)) > before + 1, 5, "the reconnection")
        assert stream_answers(server)[before:] == [200, 401]
    finally:
        page.context.close()


@pytest.mark.parametrize(
    ("status", "content_type"),
    [(200, "text/plain"), (200, "application/json"), (500, "text/event-stream")],
)
def test_any_answer_but_a_200_event_stream_closes_the_eventsource(
    browser: Any, server: Server, status: int, content_type: str
) -> None:
    """The other answers of the guide's table, from the browser's side (served by
    playwright at the app's origin, so that nothing but the answer differs)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        answered: list[str] = []

        def answer(route: Any) -> None:
            answered.append(route.request.url)
            route.fulfill(status=status, content_type=content_type, body="data: hi\n\n")

        page.route("**/other-answer", answer)
        page.goto(server.url("/"))
        page.evaluate(
            """() => {
                window.other = {errors: [], messages: 0};
                window.otherSource = new EventSource("/other-answer");
                otherSource.onmessage = () => { window.other.messages += 1; };
                otherSource.onerror = () => { window.other.errors.push(otherSource.readyState); };
            }"""
        )
        page.wait_for_function("() => otherSource.readyState === EventSource.CLOSED")
        assert page.evaluate("window.other") == {"errors": [2], "messages": 0}
        assert len(answered) == 1
    finally:
        context.close()
