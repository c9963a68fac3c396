"""The connections page's claims in a real headless Chromium, against the docs' example
apps under a real uvicorn process (docs/deploying/connections.md).

- Over HTTP/1.1 a browser opens at most six connections to one host, for all the tabs
  of a profile (a playwright context) together: a page's EventSources hold them, so a
  second tab's streams and fetches wait, and a third tab cannot even load.
- One stream per page (docs/examples/deploying/one_stream.py and .html): the page
  opens one EventSource, which brings two hub topics and a stream of the connection's
  own, and tells them apart by event name.
- One stream for every tab (shared_stream.py and .html): with three tabs open, the
  server sees one stream; every tab shows the same events; closing the leader tab hands
  the stream to another tab, which resumes after the last id it saw: no event lost,
  none twice. `navigator.locks`, which elects the leader, needs a secure context:
  http://127.0.0.1 is one, plain HTTP to another host is not. Two browser profiles
  elect a leader each, and hold a stream each.

The streams are counted by the apps, on the server, not in the page.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.browser import TIMEOUT_MS, browser
from tests.support.servers import HOST, ROOT, Server, launched, wait_until

__all__ = ("browser",)  # a fixture, imported to be found here

# The browser first: without one, skip (or fail) before starting any server.
pytestmark = [pytest.mark.usefixtures("browser"), pytest.mark.timeout(90)]

EXAMPLES = ROOT / "docs" / "examples" / "deploying"
WAIT = TIMEOUT_MS / 1000  # seconds


def uvicorn(module: str) -> Callable[[int], list[str]]:
    """``uvicorn MODULE:app`` from the examples' folder, on the port it is given."""

    def argv(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            f"{module}:app",
            "--app-dir",
            str(EXAMPLES),
            "--host",
            HOST,
            "--port",
            str(port),
        ]

    return argv


@pytest.fixture(scope="module")
def shared() -> Iterator[Server]:
    with launched("uvicorn", uvicorn("shared_stream")) as server:
        yield server


@pytest.fixture(scope="module")
def one_stream() -> Iterator[Server]:
    with launched("uvicorn", uvicorn("one_stream")) as server:
        yield server


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """One browser profile: its tabs share the connections and the channel."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


def open_streams(server: Server) -> int:
    """The streams the app has open now, as it counts them."""
    count = httpx.get(server.url("/streams"), timeout=5).json()["open"]
    assert isinstance(count, int)
    return count


def wait_for_streams(server: Server, count: int) -> None:
    wait_until(lambda: open_streams(server) == count, WAIT, f"{count} open streams")


# -- six connections ------------------------------------------------------------------

FOUR_STREAMS = """() => {
    window.sources = [1, 2, 3, 4].map(() => new EventSource("/prices"));
}"""
OPEN_SOURCES = "() => window.sources.filter(source => source.readyState === 1).length"
# Whether a fetch is answered within a second (it is not while it waits for a connection).
FETCH_IN_A_SECOND = """() => Promise.race([
    fetch("/streams").then(() => "answered"),
    new Promise(resolve => setTimeout(() => resolve("waiting"), 1000)),
])"""


def test_six_connections_for_all_tabs_and_four_streams_a_page(
    shared: Server, context: Any
) -> None:
    first, second, third = (context.new_page() for _ in range(3))
    url = shared.url("/streams")  # any page of the origin that opens no stream itself
    first.goto(url)
    first.evaluate(FOUR_STREAMS)
    first.wait_for_function(f"() => ({OPEN_SOURCES})() === 4")
    wait_for_streams(shared, 4)

    second.goto(url)
    second.evaluate(FOUR_STREAMS)
    wait_for_streams(shared, 6)  # two of the second tab's four: six in all
    second.wait_for_function(f"() => ({OPEN_SOURCES})() === 2")
    assert second.evaluate(FETCH_IN_A_SECOND) == "waiting"
    assert open_streams(shared) == 6

    from playwright.sync_api import TimeoutError as PageTimeout

    with pytest.raises(PageTimeout):
        third.goto(url, timeout=1500)  # no connection left to load the page with

    first.close()  # its four connections close: the waiting requests go ahead
    second.wait_for_function(f"() => ({OPEN_SOURCES})() === 4")
    assert second.evaluate(FETCH_IN_A_SECOND) == "answered"
    # The third tab's navigation was only given up on by the test, not by the browser:
    # held back until now, it loads by itself (a second navigation, or closing the tab
    # while it went on, raced with it in CI).
    third.wait_for_url(url)
    third.wait_for_load_state("load")


# -- one stream per page --------------------------------------------------------------


def test_one_stream_carries_every_topic_of_the_page(one_stream: Server, context: Any) -> None:
    page = context.new_page()
    page.goto(one_stream.url("/"))
    wait_for_streams(one_stream, 1)
    for topic, text in (("news", "first"), ("alerts", "careful"), ("news", "second")):
        reply = httpx.post(one_stream.url(f"/publish/{topic}"), params={"text": text}, timeout=5)
        reply.raise_for_status()
    page.wait_for_function("() => window.received.length === 3")
    assert page.evaluate("window.received") == [
        {"event": "headline", "text": "first"},
        {"event": "alert", "text": "careful"},
        {"event": "headline", "text": "second"},
    ]
    assert page.locator("#news li").all_text_contents() == ["second", "first"]
    assert page.locator("#alerts li").all_text_contents() == ["careful"]
    # The connection's own stream comes on the same one: a tick a second.
    page.wait_for_function("() => Number(document.getElementById('seconds').textContent) >= 1")
    assert open_streams(one_stream) == 1


# -- one stream for every tab ---------------------------------------------------------


def shown(page: Any) -> list[str]:
    ids: list[str] = page.evaluate("window.shared.events.map(event => event.id)")
    return ids


def role(page: Any) -> str:
    value: str = page.evaluate("window.shared.role")
    return value


def sequence(event_id: str) -> tuple[str, int]:
    """A memory hub's id, ``<epoch>-<n>``: its log's epoch and the event's number."""
    epoch, _, number = event_id.rpartition("-")
    return epoch, int(number)


def assert_consecutive(ids: list[str]) -> None:
    """One log's events, each once and in order, none missing between the first and last."""
    positions = [sequence(event_id) for event_id in ids]
    assert len({epoch for epoch, _ in positions}) == 1, ids
    numbers = [number for _, number in positions]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), ids


def test_tabs_share_one_stream_and_hand_it_over(shared: Server, context: Any) -> None:
    tabs = [context.new_page() for _ in range(3)]
    tabs[0].goto(shared.url("/"))
    tabs[0].wait_for_function("() => window.shared.role === 'leader'")
    for tab in tabs[1:]:
        tab.goto(shared.url("/"))
    for tab in tabs:
        tab.wait_for_function("() => window.shared.events.length >= 5")
    assert [role(tab) for tab in tabs] == ["leader", "follower", "follower"]
    assert tabs[0].evaluate("window.shared.url") == "/prices"  # it had seen nothing
    assert open_streams(shared) == 1
    # What the followers got before the leader's first relay reached them is not shown
    # there; from then on, every tab shows the same events.
    first = shown(tabs[2])[0]
    lists = [shown(tab) for tab in tabs]
    assert_consecutive(lists[0])
    for ids in lists[1:]:
        assert_consecutive(ids)
        assert ids == lists[0][lists[0].index(ids[0]) :][: len(ids)]
    assert first in lists[0]

    leader, *rest = tabs
    leader.close()
    wait_until(
        lambda: sorted(role(tab) for tab in rest) == ["follower", "leader"],
        5,
        "a new leader",
    )
    before = [len(shown(tab)) for tab in rest]
    for tab, count in zip(rest, before, strict=True):
        tab.wait_for_function(f"() => window.shared.events.length >= {count + 5}")
    wait_for_streams(shared, 1)
    [new_leader] = [tab for tab in rest if role(tab) == "leader"]
    url: str = new_leader.evaluate("window.shared.url")
    path, _, resumed = url.partition("?lastEventId=")
    assert path == "/prices"
    assert resumed in shown(new_leader)[:-1]  # the last id it had seen as a follower
    lists = [shown(tab) for tab in rest]
    for ids in lists:
        assert_consecutive(ids)  # across the handover too: nothing lost, nothing twice
    start = max((ids[0] for ids in lists), key=sequence)
    common = [ids[ids.index(start) :] for ids in lists]
    length = min(len(ids) for ids in common)
    assert common[0][:length] == common[1][:length]


def test_web_locks_need_a_secure_context(shared: Server, context: Any) -> None:
    page = context.new_page()
    page.goto(shared.url("/streams"))
    assert page.evaluate("[isSecureContext, 'locks' in navigator]") == [True, True]
    # Plain HTTP to another host: the test answers for it, nothing leaves the browser.
    insecure = "http://prices.example/"
    page.route(insecure, lambda route: route.fulfill(body="<p>hi</p>", content_type="text/html"))
    page.goto(insecure)
    assert page.evaluate("[isSecureContext, 'locks' in navigator]") == [False, False]
    assert page.evaluate("typeof BroadcastChannel") == "function"


def test_each_browser_profile_has_a_leader_of_its_own(shared: Server, browser: Any) -> None:
    contexts = [browser.new_context() for _ in range(2)]
    try:
        tabs = [context.new_page() for context in contexts]
        for tab in tabs:
            tab.goto(shared.url("/"))
            tab.wait_for_function("() => window.shared.role === 'leader'")
        wait_for_streams(shared, 2)
    finally:
        for context in contexts:
            context.close()
    wait_for_streams(shared, 0)
