"""`Hub.drop(owner)` across two real uvicorn processes on one Redis (issue 21).

The app is ``tests.support.owners_app:app`` on `RedisStreamsBackend`, one process per
port: a drop posted to worker 1 ends the owner's streams on worker 1 at once (the
answer counts those) and on worker 2 through the ``<prefix>drops`` stream, each within
`BOUND` of the POST, while the other owner's streams on both go on with no gap; a
revocation stored by one worker refuses the owner on the other. Then the faults:

* Redis down (a ``redis-server`` of the test's own, stopped with SIGKILL): the drop
  answers 503 saying the other processes could not be told, and the owner's streams on
  the worker that got it end anyway; once Redis is back and worker 2 reconnected, the
  drop posted again ends the owner's streams on worker 2 within `BOUND`.
* Worker 2's own link cut while Redis stays up for worker 1 (worker 2 reaches Redis
  through a TCP relay of the test, `Relay`): the drop posted to worker 1 is stored, worker
  2's reader cannot read it; when the link is restored, the reader reads on from
  where it was and applies the drop it missed within `BOUND`.

Streams are read as raw bytes (tests/support/rawclient.py); every wait has a deadline;
the servers and redis-server are processes of the test, stopped by their PIDs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest

from tests.integration.test_hub_servers import new_topic
from tests.integration.test_owners_server import (
    BOUND,
    Publisher,
    count_notes,
    drop,
    last_id,
    new_owner,
    notes,
    open_stream,
    stream_path,
    until,
)
from tests.integration.test_redis_servers import (
    TIMEOUT,
    app_env,
    http_clients,
    publish_when_up,
    uvicorns,
)
from tests.support.rawclient import RawClient, get_json, request_once
from tests.support.redisproc import redis_process
from tests.support.redisutil import REDIS_URL, delete_prefix, require_redis
from tests.support.servers import HOST, Server

pytestmark = pytest.mark.timeout(60)

APP = "tests.support.owners_app:app"
PING = 0.2  # keep-alive interval: a stream that stays open shows it several times a second
HISTORY = 1000


class Relay:
    """A TCP relay on 127.0.0.1 to ``port``: one process's own way to Redis. `cut`
    breaks every connection through it and closes new ones at once (a link that is
    down for that process only); `restore` lets them through again. Runs in threads of
    the test; `close` stops them."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._links: list[tuple[socket.socket, socket.socket, list[threading.Thread]]] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if not self._open.is_set():
                client.close()  # refused: the process sees its connection closed
                continue
            try:
                upstream = socket.create_connection((HOST, self.target), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            threads = [
                threading.Thread(target=self._pipe, args=(client, upstream), daemon=True),
                threading.Thread(target=self._pipe, args=(upstream, client), daemon=True),
            ]
            with self._lock:
                self._links.append((client, upstream, threads))
            for thread in threads:
                thread.start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:  # one way ended: so does the other
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            links, self._links = self._links, []
        for client, upstream, threads in links:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            for thread in threads:
                thread.join(TIMEOUT)
                assert not thread.is_alive(), "a relay thread did not stop"
            client.close()
            upstream.close()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closing.set()
        self.cut()
        self._acceptor.join(TIMEOUT)
        self.listener.close()


class Pair(NamedTuple):
    servers: list[Server]  # worker 1 (Redis directly), worker 2 (through `relay`)
    relay: Relay
    prefix: str


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """Two uvicorn processes of the app on the shared Redis under one key prefix (its
    keys deleted after the module); the second reaches Redis through a `Relay`."""
    require_redis()
    prefix = f"asgi-sse-test:{uuid.uuid4().hex[:8]}:"
    target = urlsplit(REDIS_URL)
    relay = Relay(target.port or 6379)
    through_relay = f"redis://{HOST}:{relay.port}{target.path or '/0'}"
    envs = [app_env(url, prefix, history=HISTORY, ping=PING) for url in (REDIS_URL, through_relay)]
    try:
        with uvicorns(envs, app=APP) as servers:
            yield Pair(servers, relay, prefix)
    finally:
        relay.close()
        delete_prefix(prefix)


def stats(server: Server) -> dict[str, Any]:
    answer: dict[str, Any] = get_json(server.port, "/hub/stats")
    return answer


def comments_since(stream: RawClient, since: float) -> int:
    """Keep-alives the stream got after ``since`` (it was open then)."""
    return sum(1 for at, _ in stream.comments if at > since)


def texts_on(stream: RawClient, topic: str) -> list[str]:
    """The texts of ``topic``'s events in ``stream``, in order (each topic keeps its own
    order; across topics a process may hand them out in another)."""
    return [text for _, text in notes(stream) if text.startswith(topic + " ")]


def assert_ended_within(streams: Sequence[RawClient], since: float, what: str) -> list[float]:
    """Every stream ended cleanly within `BOUND` of ``since``; how long each took."""
    took = []
    for stream in streams:
        assert stream.complete, f"{what}: {stream.describe()}"
        assert stream.ended_at is not None
        took.append(stream.ended_at - since)
        assert took[-1] < BOUND, f"{what}: ended {took[-1]:.3f}s after: {stream.describe()}"
    return took


def test_a_drop_on_one_worker_ends_the_owners_streams_on_both_and_no_other(
    pair: Pair, clients: list[RawClient]
) -> None:
    one, two = pair.servers
    a, b = new_owner(), new_owner()
    news, alerts = new_topic(), new_topic()
    with http_clients([one, two]) as (http_one, http_two):
        a_one = [
            open_stream(one, clients, a, news, alerts),
            open_stream(one, clients, a, news, merged=True),
        ]
        a_two = [open_stream(two, clients, a, news, alerts)]
        b_one = [open_stream(one, clients, b, news, merged=True)]
        b_two = [open_stream(two, clients, b, news, alerts)]
        live = [*a_one, *a_two, *b_one, *b_two]
        until(live, lambda: all(s.frame_count >= 1 for s in live), "the priming frames")

        publisher = Publisher([http_one, http_two], [news, alerts])
        publisher.start()
        try:
            until(live, lambda: len(publisher.acked) >= 10, "publishes before the drop")
            posted_at = time.monotonic()
            answer = drop(http_one, a)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"ended": 2, "pid": str(one.pid)}  # worker 1's own
            mine = [*a_one, *a_two]
            until(live, lambda: all(s.done for s in mine), "a's streams to end on both")
            took = assert_ended_within(mine, posted_at, "a's stream")
            for stream in (*b_one, *b_two):
                assert not stream.done, stream.describe()
            print(f"\na's streams ended {', '.join(f'{t:.3f}s' for t in took)} after the POST")

            # a's clients come back, each on the other worker, with their Last-Event-ID.
            again = [
                open_stream(two, clients, a, news, alerts, last_event_id=last_id(a_one[0])),
                open_stream(two, clients, a, news, merged=True, last_event_id=last_id(a_one[1])),
                open_stream(one, clients, a, news, alerts, last_event_id=last_id(a_two[0])),
            ]
            live += again
            acked_then = len(publisher.acked)
            until(live, lambda: len(publisher.acked) >= acked_then + 10, "publishes after it")
        finally:
            publisher.stop()

        both, on_news = publisher.on(news, alerts), publisher.on(news)

        def total(*streams: RawClient) -> int:
            return sum(count_notes(stream) for stream in streams)

        until(
            live,
            lambda: (
                total(b_one[0]) >= len(on_news)
                and total(b_two[0]) >= len(both)
                and total(a_one[0], again[0]) >= len(both)
                and total(a_one[1], again[1]) >= len(on_news)
                and total(a_two[0], again[2]) >= len(both)
            ),
            "every event on every stream",
        )
        # b, on both workers: no gap, nothing twice.
        assert notes(b_one[0]) == on_news
        for topic in (news, alerts):
            expected = [text for _, text in publisher.on(topic)]
            assert texts_on(b_two[0], topic) == expected
            # a: the first connection and the resumed one, on the other worker, exactly.
            assert texts_on(a_one[0], topic) + texts_on(again[0], topic) == expected
            assert texts_on(a_two[0], topic) + texts_on(again[2], topic) == expected
        assert notes(a_one[1]) + notes(again[1]) == on_news
        assert stats(two)["drops_received"] >= 1

        # Revoked through worker 2: its own resumed streams end, worker 1's too, and
        # worker 1's handler refuses a (the revoked set is in Redis).
        posted_at = time.monotonic()
        answer = drop(http_two, a, revoke=True)
        assert answer.status_code == 200, answer.text
        assert answer.json()["ended"] == 2
        until(live, lambda: all(s.done for s in again), "a's resumed streams to end")
        assert_ended_within(again, posted_at, "a's resumed stream")
        for server in (one, two):
            refused = request_once(server.port, "GET", stream_path(a, news))
            assert refused.status == 403, refused.describe()
        for stream in (*b_one, *b_two):
            assert not stream.done, stream.describe()


def test_a_drop_missed_by_a_worker_whose_link_was_down_is_applied_when_it_reads_again(
    pair: Pair, clients: list[RawClient]
) -> None:
    one, two = pair.servers
    a, b = new_owner(), new_owner()
    topic = new_topic()
    with http_clients([one, two]) as (http_one, http_two):
        a_one = open_stream(one, clients, a, topic)
        a_two = open_stream(two, clients, a, topic)
        b_two = open_stream(two, clients, b, topic)
        live = [a_one, a_two, b_two]
        until(live, lambda: all(s.frame_count >= 1 for s in live), "the priming frames")
        before = [
            (publish_when_up(http_one, topic, f"{topic} {n}"), f"{topic} {n}") for n in range(3)
        ]
        until(live, lambda: all(count_notes(s) >= 3 for s in live), "the events before")
        received_before = stats(two)["drops_received"]

        pair.relay.cut()  # worker 2's reader now reconnects, and cannot
        posted_at = time.monotonic()
        answer = drop(http_one, a)  # Redis answers worker 1: the drop is stored
        assert answer.status_code == 200, answer.text
        assert answer.json()["ended"] == 1
        during = [
            (publish_when_up(http_one, topic, f"{topic} {n}"), f"{topic} {n}") for n in (3, 4)
        ]
        until(live, lambda: a_one.done, "a's stream on worker 1 to end")
        assert_ended_within([a_one], posted_at, "a's stream on worker 1")
        # Worker 2 could not read the drop: a's stream there stays open (its keep-alives
        # go on) for longer than a drop takes.
        until(
            live,
            lambda: comments_since(a_two, posted_at + BOUND) >= 2 or a_two.done,
            "keep-alives on worker 2 after the drop",
        )
        assert not a_two.done, a_two.describe()
        assert stats(two)["drops_received"] == received_before

        restored_at = time.monotonic()
        pair.relay.restore()
        until(live, lambda: a_two.done, "a's stream on worker 2 to end once it reads again")
        took = assert_ended_within([a_two], restored_at, "a's stream on worker 2")
        print(f"\nworker 2 applied the missed drop {took[0]:.3f}s after its link came back")
        assert stats(two)["drops_received"] == received_before + 1
        after = (publish_when_up(http_two, topic, f"{topic} 5"), f"{topic} 5")
        until([b_two], lambda: count_notes(b_two) >= 6, "the events on b's stream")
        assert notes(b_two) == [*before, *during, after]  # no gap across the cut
        assert not b_two.done


def test_redis_down_ends_the_owners_streams_here_and_says_the_others_were_not_told(
    clients: list[RawClient],
) -> None:
    a, b = new_owner(), new_owner()
    topic = new_topic()
    with redis_process(appendonly=True) as redis_server:
        env = app_env(redis_server.url(), "asgi-sse-test:owners:", history=HISTORY, ping=PING)
        with uvicorns([env, env], app=APP) as (one, two), http_clients([one, two]) as https:
            http_one, http_two = https
            a_one = open_stream(one, clients, a, topic)
            a_two = open_stream(two, clients, a, topic)
            b_one = open_stream(one, clients, b, topic)
            b_two = open_stream(two, clients, b, topic)
            live = [a_one, a_two, b_one, b_two]
            until(live, lambda: all(s.frame_count >= 1 for s in live), "the priming frames")
            first = (publish_when_up(http_two, topic, f"{topic} 0"), f"{topic} 0")
            until(live, lambda: all(count_notes(s) >= 1 for s in live), "the first event")

            redis_server.kill()
            posted_at = time.monotonic()
            refused = drop(http_one, a)
            assert refused.status_code == 503, refused.text
            assert "could not tell the other processes" in refused.text, refused.text
            assert "ended 1 stream(s)" in refused.text, refused.text
            until(live, lambda: a_one.done, "a's stream on worker 1 to end")
            assert_ended_within([a_one], posted_at, "a's stream on worker 1")
            until(
                live,
                lambda: comments_since(a_two, posted_at + BOUND) >= 2 or a_two.done,
                "keep-alives on worker 2 while Redis is down",
            )
            for stream in (a_two, b_one, b_two):
                assert not stream.done, stream.describe()

            redis_server.start()
            # Both workers publish again, and worker 2's readers reconnected (its link
            # is up: the drops reader reads again).
            second = (publish_when_up(http_one, topic, f"{topic} 1"), f"{topic} 1")
            until(live, lambda: stats(two)["reconnects"] >= 1, "worker 2's readers to reconnect")
            posted_at = time.monotonic()
            answer = drop(http_one, a)
            assert answer.status_code == 200, answer.text
            assert answer.json()["ended"] == 0  # worker 1's ended at the first drop
            until(live, lambda: a_two.done, "a's stream on worker 2 to end")
            assert_ended_within([a_two], posted_at, "a's stream on worker 2")
            third = (publish_when_up(http_two, topic, f"{topic} 2"), f"{topic} 2")
            until(live, lambda: all(count_notes(s) >= 3 for s in (b_one, b_two)), "b's events")
            for stream in (b_one, b_two):
                assert notes(stream) == [first, second, third]
                assert not stream.done, stream.describe()
