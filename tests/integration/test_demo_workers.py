"""The demo's "drop my connection" under ``--redis --workers 2``, in a real Chromium
(issue 21): every drop - ten sent to a worker the test chose, two more wherever
Chromium sent them - answers 204 and ends the page's connection, and the page resumes
every time with no gap and nothing twice.

The server is ``python -m asgi_sse.demo --redis URL --workers 2``: uvicorn's two worker
processes accept on one port, and the kernel gives each new TCP connection to either.
The page's stream is served by the worker that accepted its connection; a drop POST
by the one that accepted the POST's. Chromium keeps its connections alive and reuses
them, so which of the two cases a click meets is decided by its connection pool, often
the same way for a whole run. So the page's fetch is routed through the test
(`page.route`): each drop is sent on a connection the test made to the worker it
chose, half of them to the worker that does not hold the page's stream (the drop
reaches it through Redis) and half to the one that does, and the server's answer goes
back to the page as it came. Workers are told apart by ``/stats``' ``pid``, and the
page's stream is found by its subscription (``/stats``' chat ``subscribers``).

While the page waits to reconnect, four streams the test opens in it hold the
browser's idle connections, so that the reconnect opens a new one, which either worker
may accept: the page's stream moves to the other worker in some rounds (a few in ten,
as the kernel hands the connections out; not asserted) and resumes there the same way.
Two more drops are then left to the page's own fetch, wherever Chromium sends it.

Chat messages are published through both workers before, during and after each drop;
the page gets each one once, in the order of the hub's ids. Keys go under a prefix of
this module's own on the test Redis and are deleted afterwards.

Needs Redis (`tests.support.redisutil`) and Chromium (`tests.support.browser`): without
them these tests skip, unless ``ASGI_SSE_REQUIRE_REDIS=1`` / ``ASGI_SSE_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import itertools
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.browser import TIMEOUT_MS, browser
from tests.support.redisutil import REDIS_URL, delete_prefix, require_redis
from tests.support.servers import Server, launched, wait_until

__all__ = ("browser",)  # a fixture, imported to be found here

pytestmark = pytest.mark.timeout(90)

ROUNDS = 10
#: Then drops that the page's fetch sends itself, to whichever worker Chromium's
#: connection pool reaches.
UNROUTED = 2
TIMEOUT = 10.0  # seconds for one HTTP request, or for a worker to be found
STREAMS = ("sse", "sse2", "sse3")
#: While the page waits to reconnect, streams of its own take every idle connection
#: of the browser, so the reconnect opens a new one, which either worker may accept.
HOLD = "() => { window.held = [0, 1, 2, 3].map(() => new EventSource('/sse?interval=30')); }"
HELD = "() => window.held.every(source => source.readyState === EventSource.OPEN)"
RELEASE = "() => window.held.forEach(source => source.close())"
FEEDBACK = "document.querySelector('#chat-feedback')"
#: The page's chat messages whose text starts with a prefix: [id, text] each.
MESSAGES = """prefix => window.demo.chat.messages
    .filter(m => m.text.startsWith(prefix)).map(m => [m.id, m.text])"""


@dataclass
class Demo:
    server: Server
    #: The two worker processes' pids.
    pids: tuple[int, int]


def demo_argv(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "asgi_sse.demo",
        "--redis",
        REDIS_URL,
        "--workers",
        "2",
        "--port",
        str(port),
    ]


def on_worker(server: Server, pid: int | None) -> tuple[httpx.Client, dict[str, Any]]:
    """A client whose one connection was accepted by the worker ``pid`` (any if None),
    and that worker's ``/stats``: fresh connections until the kernel hands one to it."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        client = httpx.Client(base_url=server.base_url, timeout=TIMEOUT)
        try:
            response = client.get("/stats")
            assert response.status_code == 200, response.text
            stats: dict[str, Any] = response.json()
            if pid is None or stats["pid"] == pid:
                stats["client_addr"] = local_address(response)
                return client, stats
        except BaseException:
            client.close()
            raise
        client.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"no connection reached worker {pid} in {TIMEOUT}s")


def local_address(response: httpx.Response) -> Any:
    """The client's end of the connection ``response`` came on."""
    return response.extensions["network_stream"].get_extra_info("client_addr")


def post_on(server: Server, pid: int, url: str, **kwargs: Any) -> httpx.Response:
    """POST ``url`` to the worker ``pid``, on the connection its ``/stats`` came on."""
    client, stats = on_worker(server, pid)
    try:
        response = client.post(url, **kwargs)
        assert local_address(response) == stats["client_addr"]  # the same connection
    finally:
        client.close()
    return response


def worker_pids(server: Server) -> tuple[int, int]:
    """Both workers' pids, once each answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + TIMEOUT * 2
    while len(seen) < 2:
        client, stats = on_worker(server, None)
        client.close()
        seen.add(stats["pid"])
        assert time.monotonic() < deadline, f"one worker answered in {TIMEOUT * 2}s: {seen}"
    first, second = sorted(seen)
    return first, second


def stream_worker(demo: Demo) -> int:
    """The worker that holds the page's stream: the one with the chat subscription."""
    found: list[int] = []

    def one_subscriber() -> bool:
        counts = {}
        for pid in demo.pids:
            client, stats = on_worker(demo.server, pid)
            client.close()
            counts[pid] = stats["chat"]["subscribers"]
        found[:] = [pid for pid, count in counts.items() if count == 1]
        return sorted(counts.values()) == [0, 1]

    wait_until(one_subscriber, TIMEOUT, "the page's subscription on one worker")
    return found[0]


def publish(demo: Demo, pid: int, text: str) -> tuple[str, str]:
    """Publish ``text`` through worker ``pid``: (its id, the text)."""
    response = post_on(demo.server, pid, "/chat/publish", data={"text": text})
    assert response.status_code == 204, response.text
    return response.headers["x-event-id"], text


def id_key(event_id: str) -> tuple[int, int]:
    """A Redis stream id's order: milliseconds, then sequence."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """``python -m asgi_sse.demo --redis URL --workers 2``, its keys under a prefix of
    its own (``ASGI_SSE_DEMO_REDIS_PREFIX``), deleted after."""
    require_redis()
    prefix = f"asgi-sse-test:{uuid.uuid4().hex[:12]}:"
    try:
        env = {"ASGI_SSE_DEMO_REDIS_PREFIX": prefix}
        with launched("demo --workers 2", demo_argv, env=env) as server:
            yield Demo(server, worker_pids(server))
    finally:
        delete_prefix(prefix)


@dataclass
class Drop:
    target: int  # the worker the POST was sent to
    stream: int  # the worker that held the page's stream
    status: int


def test_drop_works_ten_times_out_of_ten_across_two_workers(demo: Demo, browser: Any) -> None:
    targets: list[int] = []  # the worker each coming drop goes to
    sent_to: list[tuple[int, int]] = []  # (worker, status) of each drop sent
    failures: list[BaseException] = []

    def forward_drop(route: Any, request: Any) -> None:
        try:
            assert request.method == "POST"
            parts = urlsplit(request.url)
            pid = targets.pop(0)
            response = post_on(demo.server, pid, f"{parts.path}?{parts.query}")
            sent_to.append((pid, response.status_code))
            route.fulfill(status=response.status_code, body=response.content)
        except BaseException as exc:  # the test fails on it, not the route's thread
            failures.append(exc)
            route.abort()

    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)

        def is_drop(url: str) -> bool:
            return urlsplit(url).path == "/chat/drop"

        page.route(is_drop, forward_drop)
        page.goto(demo.server.url("/?interval=0.2"))
        page.wait_for_function("() => window.demo.connections.length === 1")

        prefix = uuid.uuid4().hex[:8]
        published: list[tuple[str, str]] = []
        drops: list[Drop] = []
        one, other = demo.pids
        for n in range(ROUNDS + UNROUTED):
            holder = stream_worker(demo)
            elsewhere = other if holder == one else one
            # Even rounds: the drop goes to the worker without the stream (through
            # Redis to the other one); odd rounds: to the one that holds it.
            target = elsewhere if n % 2 == 0 else holder
            if n < ROUNDS:
                targets.append(target)
            elif n == ROUNDS:
                page.unroute(is_drop, forward_drop)
            published += [publish(demo, pid, f"{prefix} {n} before {pid}") for pid in demo.pids]
            page.evaluate(f"{FEEDBACK}.textContent = ''")
            page.click("#chat-drop")
            page.wait_for_function(f"() => {FEEDBACK}.textContent !== ''")
            assert not failures, failures
            if n < ROUNDS:
                drops.append(Drop(target, holder, sent_to[-1][1]))
            feedback = page.text_content("#chat-feedback")
            assert feedback.startswith("dropped by the server"), (feedback, drops)
            published += [publish(demo, pid, f"{prefix} {n} during {pid}") for pid in demo.pids]
            page.wait_for_function(f"() => window.demo.errors.length === {n + 1}")
            if n < ROUNDS:
                page.evaluate(HOLD)
                page.wait_for_function(HELD)
            published.append(publish(demo, one, f"{prefix} {n} away"))
            page.wait_for_function(f"() => window.demo.connections.length === {n + 2}")
            if n < ROUNDS:
                page.evaluate(RELEASE)
            published.append(publish(demo, other, f"{prefix} {n} after"))
            page.wait_for_function(
                "([prefix, count]) => window.demo.chat.messages"
                ".filter(m => m.text.startsWith(prefix)).length >= count",
                arg=[prefix, len(published)],
            )

        # Twelve drops, each 204 (the page's feedback), each ending the page's
        # connection; of the ten routed, five went to the worker without the stream and
        # five to the one with it, so both workers got some.
        assert [drop.status for drop in drops] == [204] * ROUNDS
        assert [drop.target != drop.stream for drop in drops] == [True, False] * (ROUNDS // 2)
        assert {drop.target for drop in drops} == set(demo.pids), drops
        assert len(sent_to) == ROUNDS  # the unrouted ones went by the browser itself
        total = ROUNDS + UNROUTED
        assert page.evaluate("window.demo.errors") == [0] * total  # reconnecting each time
        assert page.evaluate("window.demo.opens") == total + 1

        # Every message once, in the hub's order, with the id its publish returned.
        received = [(m[0], m[1]) for m in page.evaluate(MESSAGES, prefix)]
        assert received == published
        ids = [id_key(event_id) for event_id, _ in received]
        assert all(a < b for a, b in itertools.pairwise(ids))  # strictly increasing
        chat = page.evaluate("window.demo.chat")
        assert chat["resets"] == []
        assert chat["ended"] == []
        assert chat["connections"][0] is None
        assert None not in chat["connections"][1:]  # every reconnect resumed the chat

        # The three streams resumed after their own numbers: no gap, nothing twice.
        page.wait_for_function(
            '() => ["sse", "sse2", "sse3"].every(s => window.demo.received[s].length >= 3)'
        )
        streams = page.evaluate("window.demo.received")
        for name in STREAMS:
            for kind in ("echo", "reverse_echo"):
                numbers = [int(e["number"]) for e in streams[name] if e["type"] == kind]
                assert numbers == list(range(len(numbers))), (name, kind, numbers)
    finally:
        context.close()


def test_a_drop_is_answered_204_by_either_worker(demo: Demo) -> None:
    """A client's streams may be in the other worker: no worker can tell that none is
    anywhere, so each answers 204 (a hub of one process answers 404)."""
    for pid in demo.pids:
        response = post_on(demo.server, pid, "/chat/drop?client=nobody-anywhere")
        assert response.status_code == 204, response.text
        response = post_on(demo.server, pid, "/chat/drop?client=bad%20id")
        assert response.status_code == 400, response.text
