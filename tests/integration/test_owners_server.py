"""`Hub.drop(owner)` in a real server process, over real sockets on 127.0.0.1 (issue 21):
uvicorn, and hypercorn's trio worker (the drop's end of a merged response on trio).

The app is ``tests.support.owners_app:app`` on its memory hub: ``GET /stream?owner=O``
opens ``O``'s subscription (403 once ``O`` is revoked), ``POST /drop?owner=O[&revoke=1]``
drops it. Two owners hold several streams each - one on two topics, one merged with a
ticker, one still replaying a long history to a client that reads slowly - while
events are published before, during and after the drop. The drop ends every stream
of its owner within `BOUND` of the POST, cleanly, and none of the other owner's; the
dropped clients resume exactly with their Last-Event-ID, or get 403 once revoked. The
typed client (`asgi_sse.client.EventSource`) goes through the same and stops at the
403. Streams are read as raw bytes (tests/support/rawclient.py); every wait has a
deadline; the server is a subprocess stopped by its PID.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urlencode

import anyio
import httpx
import pytest

from asgi_sse import ParsedEvent, Reset
from asgi_sse.client import EventSource, EventSourceError
from tests.integration.test_hub_servers import assert_streaming, id_of, new_topic
from tests.support.rawclient import RawClient, pump, request_once
from tests.support.servers import Server, running
from tests.support.sse_app import Note

pytestmark = pytest.mark.timeout(60)

APP = "tests.support.owners_app:app"
TIMEOUT = 10.0
BOUND = 1.0  # seconds from the POST /drop to the end of each of the owner's streams
# The topic a slow client replays from the earliest: more than the kernel buffers on
# loopback (the sender's buffer grows to 4 MB), so the replay is still under way, and
# waiting for the client, when the drop comes.
BIG = 3500  # events
SIZE = 2400  # bytes of each
SLOW_RATE = 200_000  # bytes per second the slow client reads: the replay takes ~40 s
SLOW_RCVBUF = 8192


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn-trio"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running(str(request.param), APP) as server:
        yield server


def new_owner() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def stream_path(owner: str, *topics: str, merged: bool = False) -> str:
    query = [("owner", owner), *(("topic", topic) for topic in topics)]
    if merged:
        query.append(("merged", "1"))
    return "/stream?" + urlencode(query)


def open_stream(
    server: Server,
    clients: list[RawClient],
    owner: str,
    *topics: str,
    merged: bool = False,
    last_event_id: str | None = None,
    rcvbuf: int | None = None,
) -> RawClient:
    """Open ``owner``'s stream of ``topics`` on ``server`` (as a browser resumes, with
    ``Last-Event-ID``)."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    raw = RawClient(server.port, rcvbuf=rcvbuf)
    clients.append(raw)
    raw.request("GET", stream_path(owner, *topics, merged=merged), headers)
    return raw


def events(stream: RawClient) -> list[tuple[str, str | None, str]]:
    """(event, id or None, data) of every frame with data (not the priming frame)."""
    found: list[tuple[str, str | None, str]] = []
    for frame in stream.frames:
        if frame.field_values(b"data"):
            ids = frame.field_values(b"id")
            event_id = ids[-1].decode() if ids else None
            found.append(((frame.event or b"message").decode(), event_id, frame.data.decode()))
    return found


def notes(stream: RawClient) -> list[tuple[str, str]]:
    """(id, text) of every published event the stream got, in order."""
    found = []
    for kind, event_id, data in events(stream):
        if kind == "note":
            assert event_id is not None, "a published event without its id"
            found.append((event_id, json.loads(data)))
    return found


def count_notes(stream: RawClient) -> int:
    return sum(1 for frame in stream.frames if frame.event == b"note")


def texts(stream: RawClient) -> list[str]:
    return [text for _, text in notes(stream)]


def last_id(stream: RawClient) -> str:
    """The id a browser would send back: that of the last frame with one."""
    return [id_of(frame) for frame in stream.frames if frame.field_values(b"id")][-1]


def ticks(stream: RawClient) -> int:
    return sum(1 for kind, _, _ in events(stream) if kind == "tick")


def drop(http: httpx.Client, owner: str, *, revoke: bool = False) -> httpx.Response:
    params = {"owner": owner, **({"revoke": "1"} if revoke else {})}
    return http.post("/drop", params=params)


class Paced:
    """Reads ``client`` at ``rate`` bytes per second from `tick` (a slow client, read
    alongside the others by `pump`'s ``on_tick``); the client is frozen for `pump`."""

    def __init__(self, client: RawClient, rate: float, chunk: int = 4096) -> None:
        self.client = client
        self.rate = rate
        self.chunk = chunk
        self.started = time.monotonic()
        self.taken = 0
        client.freeze()

    def stop(self) -> None:
        """Read at full speed from now on (with the others, in `pump`)."""
        self.client.frozen = False

    def tick(self) -> None:
        client = self.client
        allowed = (time.monotonic() - self.started) * self.rate
        while not client.done and self.taken < allowed and client.wait_readable(0):
            read = client.on_readable(self.chunk)
            if not read:
                break
            self.taken += read


class Publisher(threading.Thread):
    """Publishes through ``https`` and ``topics`` in turn (one event every ``every``
    seconds) until `stop`: what was acknowledged goes to ``acked`` as (topic, id,
    text); anything but a 200 is a failure."""

    def __init__(
        self, https: Sequence[httpx.Client], topics: Sequence[str], every: float = 0.01
    ) -> None:
        super().__init__(daemon=True)
        self.https = https
        self.topics = topics
        self.every = every
        self.acked: list[tuple[str, str, str]] = []
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        number = 0
        while not self._halt.is_set():
            topic = self.topics[number % len(self.topics)]
            text = f"{topic} {number}"
            try:
                http = self.https[number % len(self.https)]
                response = http.post(
                    "/hub/publish", params={"topic": topic}, content=text.encode()
                )
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
                return
            if response.status_code != 200:
                self.failures.append(f"{response.status_code} {response.text}")
                return
            self.acked.append((topic, response.json()["id"], text))
            number += 1
            self._halt.wait(self.every)  # pacing, not synchronisation

    def on(self, *topics: str) -> list[tuple[str, str]]:
        """(id, text) of what was acknowledged on ``topics``, in order."""
        return [(event_id, text) for topic, event_id, text in self.acked if topic in topics]

    def stop(self) -> None:
        self._halt.set()
        self.join(TIMEOUT)
        assert not self.is_alive(), "the publisher did not stop"
        assert not self.failures, self.failures


def until(
    streams: Sequence[RawClient],
    condition: Callable[[], object],
    what: str,
    *,
    paced: Sequence[Paced] = (),
    timeout: float = TIMEOUT,
) -> None:
    """Read ``streams`` (and the ``paced`` ones at their pace) until ``condition()``;
    a timeout says where every stream was."""

    def tick() -> None:
        for slow in paced:
            slow.tick()

    try:
        pump(streams, condition, timeout, what, on_tick=tick)
    except AssertionError as exc:
        states = "\n".join(stream.describe() for stream in [*streams, *(s.client for s in paced)])
        raise AssertionError(f"{exc}\n{states}") from None


def test_a_drop_ends_every_stream_of_its_owner_within_a_second_and_no_other(
    server: Server, clients: list[RawClient]
) -> None:
    a, b = new_owner(), new_owner()
    news, alerts, big = new_topic(), new_topic(), new_topic()
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
        filled = http.post("/fill", params={"topic": big, "count": BIG, "size": SIZE})
        assert filled.status_code == 200, filled.text
        big_ids: list[str] = filled.json()["ids"]

        a_multi = open_stream(server, clients, a, news, alerts)
        a_merged = open_stream(server, clients, a, news, merged=True)
        a_replay = open_stream(
            server, clients, a, big, last_event_id="earliest", rcvbuf=SLOW_RCVBUF
        )
        b_multi = open_stream(server, clients, b, news, alerts)
        b_merged = open_stream(server, clients, b, alerts, merged=True)
        b_replay = open_stream(server, clients, b, big, last_event_id="earliest")
        live = [a_multi, a_merged, b_multi, b_merged, b_replay]
        slow = Paced(a_replay, SLOW_RATE)
        until(
            live,
            lambda: all(s.frame_count >= 1 for s in live) and a_replay.frame_count >= 20,
            "the priming frames, and the slow replay under way",
            paced=[slow],
        )

        publisher = Publisher([http], [news, alerts])
        publisher.start()
        try:
            until(
                live, lambda: len(publisher.acked) >= 10, "publishes before the drop", paced=[slow]
            )
            posted_at = time.monotonic()
            answer = drop(http, a)
            answered_at = time.monotonic()
            assert answer.status_code == 200, answer.text
            assert answer.json()["ended"] == 3
            mine = [a_multi, a_merged, a_replay]
            # The slow client now reads what the kernel holds for it (megabytes, which
            # it would take seconds to read at its pace) as fast as it can: what is
            # measured is when the server ended its response, not the loopback's buffers.
            slow.stop()
            until([*live, a_replay], lambda: all(s.done for s in mine), "a's streams to end")
            for stream in mine:
                assert stream.complete, stream.describe()  # a clean end of the body
                assert stream.ended_at is not None
                assert stream.ended_at - posted_at < BOUND, (
                    f"ended {stream.ended_at - posted_at:.3f}s after the POST: {stream.describe()}"
                )
            # The slow client was mid-replay: the drop did not wait for it to catch up.
            assert count_notes(a_replay) < BIG, count_notes(a_replay)
            for stream in (b_multi, b_merged, b_replay):
                assert not stream.done, stream.describe()
            print(
                f"\ndrop answered in {answered_at - posted_at:.3f}s; a's streams ended "
                + ", ".join(f"{s.ended_at - posted_at:.3f}s" for s in mine if s.ended_at)
                + f" after it; the slow one after {count_notes(a_replay)}/{BIG} events"
            )

            # a's client reconnects with its Last-Event-ID, while publishes go on.
            a_multi_2 = open_stream(
                server, clients, a, news, alerts, last_event_id=last_id(a_multi)
            )
            a_merged_2 = open_stream(
                server, clients, a, news, merged=True, last_event_id=last_id(a_merged)
            )
            a_replay_2 = open_stream(server, clients, a, big, last_event_id=last_id(a_replay))
            live += [a_multi_2, a_merged_2, a_replay_2]
            acked_then = len(publisher.acked)
            until(live, lambda: len(publisher.acked) >= acked_then + 10, "publishes after it")
        finally:
            publisher.stop()

        both, on_news = publisher.on(news, alerts), publisher.on(news)
        on_alerts = publisher.on(alerts)
        until(
            live,
            lambda: (
                count_notes(b_multi) >= len(both)
                and count_notes(b_merged) >= len(on_alerts)
                and count_notes(a_multi) + count_notes(a_multi_2) >= len(both)
                and count_notes(a_merged) + count_notes(a_merged_2) >= len(on_news)
                and count_notes(b_replay) >= BIG
                and count_notes(a_replay) + count_notes(a_replay_2) >= BIG
            ),
            "every event on every stream",
        )

        # b: no gap, nothing twice, its streams open all along.
        assert texts(b_multi) == [text for _, text in both]
        assert notes(b_merged) == on_alerts
        assert ticks(b_merged) >= 1
        assert [event_id for event_id, _ in notes(b_replay)] == big_ids
        # a: the first connection and the resumed one together, exactly.
        assert texts(a_multi) + texts(a_multi_2) == [text for _, text in both]
        assert notes(a_merged) + notes(a_merged_2) == on_news
        assert [i for i, _ in notes(a_replay) + notes(a_replay_2)] == big_ids
        for stream in (a_multi_2, a_merged_2, a_replay_2):
            assert_streaming(stream)
            assert not [kind for kind, _, _ in events(stream) if kind == "reset"]

        # Revoked: the drop ends the resumed streams, and a's next connection is refused.
        answer = drop(http, a, revoke=True)
        assert answer.status_code == 200, answer.text
        assert answer.json()["ended"] == 3
        until(live, lambda: all(s.done for s in (a_multi_2, a_merged_2, a_replay_2)), "the ends")
        refused = request_once(
            server.port, "GET", stream_path(a, news), {"Last-Event-ID": last_id(a_merged_2)}
        )
        assert refused.status == 403, refused.describe()
        assert drop(http, a).json()["ended"] == 0  # nothing of a's is left
        for stream in (b_multi, b_merged, b_replay):
            assert not stream.done, stream.describe()


@pytest.mark.anyio
async def test_the_typed_client_resumes_exactly_after_a_drop_and_stops_at_403_once_revoked(
    server: Server,
) -> None:
    owner, topic = new_owner(), new_topic()
    received: list[Note | Reset | ParsedEvent] = []
    published: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as http:

        async def publish(text: str) -> None:
            response = await http.post("/hub/publish", params={"topic": topic}, content=text)
            assert response.status_code == 200, response.text
            published.append((response.json()["id"], text))

        async def dropped(*, revoke: bool = False) -> int:
            params = {"owner": owner, **({"revoke": "1"} if revoke else {})}
            response = await http.post("/drop", params=params)
            assert response.status_code == 200, response.text
            ended: int = response.json()["ended"]
            return ended

        async def wait_for(condition: Callable[[], bool]) -> None:
            while not condition():  # noqa: ASYNC110 - the client's state, no event to wait on
                await anyio.sleep(0.005)  # polling a condition, under the test's deadline

        async def script(source: EventSource[Note | Reset | ParsedEvent]) -> None:
            await wait_for(lambda: bool(source.last_event_id))  # primed: the stream is open
            for number in range(3):
                await publish(f"before {number}")
            await wait_for(lambda: len(received) >= 3)
            assert await dropped() == 1
            for number in range(3):  # while the client reconnects
                await publish(f"after {number}")
            await wait_for(lambda: len(received) >= 6)
            assert source.connections == 2  # it did reconnect
            assert await dropped(revoke=True) == 1
            await publish("never seen")

        url = f"{server.base_url}{stream_path(owner, topic)}"
        refusal: EventSourceError | None = None
        with anyio.fail_after(20):
            async with (
                EventSource(
                    url, events=(Note,), retry=0.05, max_delay=0.5, read_timeout=5
                ) as source,
                anyio.create_task_group() as tasks,
            ):
                tasks.start_soon(script, source)
                try:
                    async for event in source:
                        received.append(event)
                except EventSourceError as exc:
                    refusal = exc
    assert refusal is not None
    assert refusal.response.status_code == 403
    assert all(isinstance(event, Note) for event in received), received
    assert [(str(event.id), event.data) for event in received] == published[:6]
