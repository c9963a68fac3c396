"""The hub in real server processes, over real sockets on 127.0.0.1: uvicorn, and
hypercorn's trio worker (so the hub's waits and wake-ups run on trio in a real server).

The app is ``tests.support.sse_app:hub_app`` (`Hub.lifespan` inside `GracefulShutdown`): every
test streams its own topics; events are published over HTTP while the streams are
read as raw bytes (tests/support/rawclient.py), so what is compared is exactly what went over
the wire. Every wait has a deadline; the servers are plain subprocesses
(tests/support/servers.py).
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.support.rawclient import Frame, RawClient, pump, request_once
from tests.support.servers import Server, running
from tests.support.sse_app import HUB_HISTORY

pytestmark = pytest.mark.timeout(60)

HUB_APP = "tests.support.sse_app:hub_app"
TIMEOUT = 10.0


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn-trio"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running(str(request.param), HUB_APP) as server:
        yield server


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as client:
        yield client


def new_topic() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def stream_path(*topics: str, client: str | None = None) -> str:
    query = [("topic", topic) for topic in topics]
    if client is not None:
        query.append(("client", client))
    return "/hub?" + urlencode(query)


def subscribe(
    server: Server,
    clients: list[RawClient],
    *topics: str,
    last_event_id: str | None = None,
    client: str | None = None,
) -> RawClient:
    """Open a stream of ``topics`` (resuming after ``last_event_id``, as a browser does)."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    raw = RawClient(server.port)
    clients.append(raw)
    raw.request("GET", stream_path(*topics, client=client), headers)
    return raw


def publish(http: httpx.Client, topic: str, text: str) -> str:
    response = http.post("/hub/publish", params={"topic": topic}, content=text.encode())
    assert response.status_code == 200, response.text
    event_id: str = response.json()["id"]
    return event_id


def frames_until(streams: list[RawClient], count: int, what: str) -> None:
    pump(streams, lambda: all(s.frame_count >= count or s.done for s in streams), TIMEOUT, what)
    for stream in streams:
        assert stream.frame_count >= count, f"{what}: {stream.describe()}"


def id_of(frame: Frame) -> str:
    return frame.field_values(b"id")[-1].decode()


def events(stream: RawClient) -> list[tuple[str, str, str]]:
    """(event, id, data) of every frame that carries data (the priming frame has none)."""
    return [
        ((frame.event or b"message").decode(), id_of(frame), frame.data.decode())
        for frame in stream.frames
        if frame.field_values(b"data")
    ]


def assert_streaming(stream: RawClient) -> None:
    assert stream.status == 200, stream.describe()
    assert stream.header("content-type") == "text/event-stream"


# -- fan-out -------------------------------------------------------------------------------


def test_two_subscribers_get_the_same_frames_with_the_same_ids(
    server: Server, http: httpx.Client, clients: list[RawClient]
) -> None:
    topic = new_topic()
    one = subscribe(server, clients, topic)
    two = subscribe(server, clients, topic)
    frames_until([one, two], 1, "the priming frames")  # both are at the head now
    for stream in (one, two):
        assert_streaming(stream)
        (line,) = stream.frames[0].lines  # `id: <head>` alone: primes the client's cursor
        assert line.startswith(b"id: ")
        assert line.endswith(b"-0")  # an empty topic's head
    texts = [f"event {n} ✓" for n in range(5)]
    ids = [publish(http, topic, text) for text in texts]
    frames_until([one, two], 1 + len(texts), "every published event on both streams")
    assert one.body == two.body  # the very same bytes on both connections
    assert events(one) == [
        ("note", i, json.dumps(t, ensure_ascii=False)) for i, t in zip(ids, texts, strict=True)
    ]


def test_a_reconnect_gets_exactly_the_missed_events(
    server: Server, http: httpx.Client, clients: list[RawClient]
) -> None:
    topic = new_topic()
    first = subscribe(server, clients, topic)
    frames_until([first], 1, "the priming frame")
    seen = [publish(http, topic, f"seen {n}") for n in range(3)]
    frames_until([first], 4, "the first events")
    assert [event_id for _, event_id, _ in events(first)] == seen
    first.close()  # the client leaves; events go on
    missed = [publish(http, topic, f"missed {n}") for n in range(4)]
    again = subscribe(server, clients, topic, last_event_id=seen[-1])
    frames_until([again], len(missed), "the replay")
    live = publish(http, topic, "live")
    frames_until([again], len(missed) + 1, "the live event after the replay")
    assert_streaming(again)
    # No priming frame, no reset, no gap, no duplicate: the replay, then live.
    assert again.frame_count == len(missed) + 1  # every frame is one of these events
    assert events(again) == [
        ("note", event_id, json.dumps(text))
        for event_id, text in zip(
            [*missed, live], [*(f"missed {n}" for n in range(4)), "live"], strict=True
        )
    ]


@pytest.mark.parametrize("reason", ["gone", "unknown", "malformed"])
def test_a_lost_id_gets_a_reset_first_then_live(
    server: Server, http: httpx.Client, clients: list[RawClient], reason: str
) -> None:
    topic = new_topic()
    ids = [publish(http, topic, f"n{n}") for n in range(HUB_HISTORY + 4)]
    epoch = ids[0].split("-")[0]
    other_epoch = "0" * len(epoch) if epoch != "0" * len(epoch) else "1" * len(epoch)
    last_event_id = {
        "gone": ids[0],  # trimmed out of the log (it holds HUB_HISTORY events)
        "unknown": f"{other_epoch}-3",  # from another epoch: a server restart
        "malformed": "42",  # not an id of the hub
    }[reason]
    stream = subscribe(server, clients, topic, last_event_id=last_event_id)
    frames_until([stream], 1, "the reset")
    live = publish(http, topic, "live")
    frames_until([stream], 2, "the live event")
    (reset_event, reset_id, reset_data), after = events(stream)
    assert (reset_event, reset_id) == ("reset", ids[-1])
    assert json.loads(reset_data) == {"reason": reason, "topics": [topic], "resume_from": ids[-1]}
    assert after == ("note", live, '"live"')  # nothing the log holds was replayed
    assert stream.frame_count == 2


def test_a_composite_cursor_resumes_every_topic(
    server: Server, http: httpx.Client, clients: list[RawClient]
) -> None:
    news, alerts = new_topic(), new_topic()
    first = subscribe(server, clients, news, alerts)
    frames_until([first], 1, "the priming frame")
    publish(http, news, "news 1")
    publish(http, alerts, "alert 1")
    frames_until([first], 3, "one event of each topic")
    cursor = id_of(first.frames[-1])
    assert cursor.count("~") == 2  # a position per topic
    first.close()
    publish(http, news, "news 2")
    publish(http, alerts, "alert 2")
    again = subscribe(server, clients, news, alerts, last_event_id=cursor)
    frames_until([again], 2, "the missed events of both topics")
    assert sorted(data for _, _, data in events(again)) == ['"alert 2"', '"news 2"']


# -- ending --------------------------------------------------------------------------------


def test_after_close_a_reconnect_at_the_head_gets_204(
    server: Server, http: httpx.Client, clients: list[RawClient]
) -> None:
    topic = new_topic()
    stream = subscribe(server, clients, topic)
    frames_until([stream], 1, "the priming frame")
    ids = [publish(http, topic, f"n{n}") for n in range(2)]
    frames_until([stream], 3, "the events")
    assert http.post("/hub/close", params={"topic": topic}).status_code == 204
    pump([stream], lambda: stream.done, TIMEOUT, "the open stream to end")
    assert stream.complete, stream.describe()  # a clean end of the body, after the drain
    for last_event_id in (ids[-1], None):  # at the head, or a new client
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        answer = request_once(server.port, "GET", stream_path(topic), headers)
        assert answer.status == 204, answer.describe()
        assert answer.header("content-type") is None  # not a stream: EventSource stops
        assert answer.body_bytes == 0
    # A client behind the head still gets the tail, then the end.
    behind = request_once(server.port, "GET", stream_path(topic), {"Last-Event-ID": ids[0]})
    assert behind.status == 200
    assert [event_id for _, event_id, _ in events(behind)] == ids[1:]
    assert behind.complete
    refused = http.post("/hub/publish", params={"topic": topic}, content=b"late")
    assert refused.status_code == 409


def test_a_dropped_client_ends_cleanly_and_resumes_exactly(
    server: Server, http: httpx.Client, clients: list[RawClient]
) -> None:
    topic, name = new_topic(), uuid.uuid4().hex
    stream = subscribe(server, clients, topic, client=name)
    frames_until([stream], 1, "the priming frame")
    seen = publish(http, topic, "seen")
    frames_until([stream], 2, "the event")
    assert http.post("/hub/drop", params={"client": name}).status_code == 204
    pump([stream], lambda: stream.done, TIMEOUT, "the dropped stream to end")
    assert stream.complete, stream.describe()
    missed = publish(http, topic, "missed")
    again = subscribe(server, clients, topic, last_event_id=seen)
    frames_until([again], 1, "the missed event")
    assert events(again) == [("note", missed, '"missed"')]
    assert http.post("/hub/drop", params={"client": "nobody"}).status_code == 404


# -- shutdown ------------------------------------------------------------------------------

SIGNAL_STREAMS = 30
# Streams end and the process exits "within about a second" (measured with -s: about
# 0.01 s and 0.2 s on an idle machine, so the bound leaves room for a loaded one).
SHUTDOWN_BOUND = 1.0


@pytest.mark.parametrize("kind", ["uvicorn", "hypercorn-trio-w0"])
def test_sigterm_ends_open_hub_streams_cleanly_and_the_server_exits(
    kind: str, clients: list[RawClient]
) -> None:
    with running(kind, HUB_APP) as server:
        topics = [new_topic() for _ in range(3)]
        streams = [
            subscribe(server, clients, topics[n % len(topics)]) for n in range(SIGNAL_STREAMS)
        ]
        frames_until(streams, 1, "every priming frame")
        with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
            for topic in topics:
                publish(http, topic, "before the signal")
        frames_until(streams, 2, "the event on every stream")
        stats: dict[str, Any] = json.loads(
            request_once(server.port, "GET", "/hub/stats").body.decode()
        )
        assert stats["subscribers"] == SIGNAL_STREAMS

        exited_at: list[float] = []

        def note_exit() -> None:
            if not exited_at and server.returncode() is not None:
                exited_at.append(time.monotonic())

        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        pump(
            streams,
            lambda: all(s.done for s in streams) and bool(exited_at),
            TIMEOUT,
            "every stream to end and the server to exit",
            on_tick=note_exit,
        )
        last_end = max(s.ended_at or 0.0 for s in streams) - signalled
        exit_after = exited_at[0] - signalled
        print(
            f"\n{kind}: SIGTERM with {SIGNAL_STREAMS} hub streams: last stream ended after "
            f"{last_end:.3f} s, exit after {exit_after:.3f} s, code {server.returncode()}"
        )
        unclean = [s.describe() for s in streams if not s.complete]
        assert not unclean, unclean[:3]
        assert last_end <= SHUTDOWN_BOUND
        assert exit_after <= SHUTDOWN_BOUND
        # uvicorn raises SIGTERM again once it shut down (the parent sees "terminated by
        # SIGTERM"); GracefulShutdown does the same where SIGTERM had no handler.
        assert server.returncode() in (0, -signal.SIGTERM)
