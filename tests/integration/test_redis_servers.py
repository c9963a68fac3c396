"""The hub on Redis Streams across real server processes, over real sockets on 127.0.0.1.

The app is ``tests.support.redis_app:app`` (``hub_app`` with `RedisStreamsBackend`), run by
uvicorn: several processes on different ports sharing one Redis, and ``uvicorn
--workers 2``. Events are published over HTTP and streams are read as raw bytes
(tests/support/rawclient.py), so what is compared is exactly what went over the wire.

Two kinds of Redis:

* the shared test Redis (tests/support/redisutil.py), with a key prefix per module or test, for
  what needs a healthy Redis (fan-out, resume on another process, connections);
* a ``redis-server`` of the test's own (tests/support/redisproc.py) for the faults: killed with
  SIGKILL and restarted on the same port, with persistence (``appendonly yes``,
  ``appendfsync always``: nothing acknowledged is lost) and without (subscribers get a
  `Reset`), down while clients connect, hung (SIGSTOP: only a socket timeout ends a
  command), and with tight stream trimming (``stream-node-max-entries 10``) for a
  stalled worker;
* no Redis at all: the app must not start.

Every wait has a deadline on a condition; the processes are stopped by their PIDs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from tests.integration.test_hub_servers import (
    assert_streaming,
    events,
    frames_until,
    new_topic,
    publish,
    subscribe,
)
from tests.support import redisutil
from tests.support.rawclient import RawClient, get_json, pump
from tests.support.redis_app import (
    BLOCK_ENV,
    HISTORY,
    HISTORY_ENV,
    PING_ENV,
    PREFIX_ENV,
    RECONNECT_MAX_ENV,
    URL_ENV,
)
from tests.support.redisproc import RedisProcess, redis_process
from tests.support.redisutil import REDIS_URL, delete_prefix, require_redis
from tests.support.servers import (
    ROOT,
    START_TIMEOUT,
    Server,
    ServerError,
    command,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

APP = "tests.support.redis_app:app"
TIMEOUT = 10.0
PING = 0.2  # keep-alive interval of the fault tests' streams

#: A key prefix of the test's own on the shared Redis (its keys deleted after).
redis_prefix = redisutil.redis_prefix


# -- processes -------------------------------------------------------------------------------


def app_env(
    url: str, prefix: str, *, history: int | None = None, ping: float | None = None
) -> dict[str, str]:
    """The environment that points ``tests.support.redis_app`` at ``url`` under ``prefix``."""
    env = {URL_ENV: url, PREFIX_ENV: prefix, RECONNECT_MAX_ENV: "0.5"}
    if history is not None:
        env[HISTORY_ENV] = str(history)
    if ping is not None:
        env[PING_ENV] = str(ping)
    return env


def with_name(url: str, name: str) -> str:
    """``url`` whose connections are named ``name`` (``CLIENT LIST``)."""
    return f"{url}{'&' if '?' in url else '?'}client_name={name}"


def _server(
    tmp: Path,
    index: int,
    env: Mapping[str, str],
    workers: int | None,
    taken: set[int],
    app: str = APP,
) -> Server:
    port = free_port()
    while port in taken:  # servers started together need ports of their own
        port = free_port()
    taken.add(port)
    argv = command("uvicorn", port, app)
    if workers is not None:
        argv += ["--workers", str(workers)]
    full_env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **env,
    }
    return Server("uvicorn", port, argv, tmp / f"server-{index}.log", full_env)


@contextlib.contextmanager
def uvicorns(
    envs: Sequence[Mapping[str, str]], *, workers: int | None = None, app: str = APP
) -> Iterator[list[Server]]:
    """One uvicorn process of ``app`` per environment in ``envs`` (started at the same
    time, to spare the cold starts), each on a free port; all stopped when the block
    ends. Failures inside the block get every server's output attached."""
    with tempfile.TemporaryDirectory(prefix="asgi-sse-redis-servers-") as tmp:
        taken: set[int] = set()
        servers = [_server(Path(tmp), n, env, workers, taken, app) for n, env in enumerate(envs)]
        errors: list[BaseException] = []

        def start(server: Server) -> None:
            try:
                server.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(server,)) for server in servers]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(START_TIMEOUT + 5)
            if errors:
                raise errors[0]
            yield servers
        except AssertionError as exc:
            if isinstance(exc, ServerError):
                raise
            outputs = "\n".join(server.describe() for server in servers)
            raise AssertionError(f"{exc}\n{outputs}") from exc
        finally:
            for server in servers:
                with contextlib.suppress(ProcessLookupError, AssertionError):
                    server.send_signal(signal.SIGCONT)  # in case a test left it stopped
                server.stop()


@contextlib.contextmanager
def http_clients(servers: Sequence[Server]) -> Iterator[list[httpx.Client]]:
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(httpx.Client(base_url=server.base_url, timeout=TIMEOUT))
            for server in servers
        ]


# -- streams ---------------------------------------------------------------------------------


def notes(stream: RawClient) -> list[tuple[str, str]]:
    """(id, text) of every published event the stream got, in order."""
    return [
        (event_id, json.loads(data)) for kind, event_id, data in events(stream) if kind == "note"
    ]


def resets(stream: RawClient) -> list[dict[str, Any]]:
    """The data of every `Reset` event the stream got, with its ``id`` added."""
    found = []
    for kind, event_id, data in events(stream):
        if kind == "reset":
            info = json.loads(data)
            info["id"] = event_id
            found.append(info)
    return found


def wait_streams(
    streams: Sequence[RawClient],
    condition: Callable[[RawClient], bool],
    what: str,
    timeout: float = TIMEOUT,
) -> None:
    pump(streams, lambda: all(condition(s) or s.done for s in streams), timeout, what)
    for stream in streams:
        assert condition(stream), f"{what}: {stream.describe()}"


def drain(streams: Sequence[RawClient], seconds: float) -> None:
    """Read whatever the streams get for ``seconds``."""
    end = time.monotonic() + seconds
    pump(streams, lambda: time.monotonic() >= end, seconds + 1, "the end of a pause")


def sort_key(event_id: str) -> tuple[int, int]:
    milliseconds, sequence = event_id.split("-")
    return int(milliseconds), int(sequence)


def try_publish(http: httpx.Client, topic: str, text: str) -> httpx.Response:
    return http.post("/hub/publish", params={"topic": topic}, content=text.encode())


def publish_when_up(http: httpx.Client, topic: str, text: str, timeout: float = TIMEOUT) -> str:
    """Publish, trying again while the app answers 503 (Redis not back yet)."""
    deadline = time.monotonic() + timeout
    while True:
        response = try_publish(http, topic, text)
        if response.status_code == 200:
            event_id: str = response.json()["id"]
            return event_id
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, f"publish still refused after {timeout}s"
        time.sleep(0.05)


# -- several processes, one Redis ---------------------------------------------------------------


class Trio(NamedTuple):
    servers: list[Server]  # A, B, C
    names: list[str]  # the client name of each one's Redis connections
    prefix: str  # their key prefix


@pytest.fixture(scope="module")
def trio() -> Iterator[Trio]:
    """Three uvicorn processes on the shared Redis, with one key prefix (its keys are
    deleted after the module)."""
    require_redis()
    tag = uuid.uuid4().hex[:8]
    prefix = f"asgi-sse-test:{tag}:"
    names = [f"asgi-sse-proc-{letter}-{tag}" for letter in "abc"]
    envs = [app_env(with_name(REDIS_URL, name), prefix) for name in names]
    try:
        with uvicorns(envs) as servers:
            yield Trio(servers, names, prefix)
    finally:
        delete_prefix(prefix)


@pytest.mark.timeout(30)
def test_an_event_published_through_one_process_reaches_every_process(
    trio: Trio, clients: list[RawClient]
) -> None:
    servers = trio.servers
    topic = new_topic()
    streams = [subscribe(server, clients, topic) for server in servers]
    frames_until(streams, 1, "the priming frames")
    for stream, server in zip(streams, servers, strict=True):
        assert_streaming(stream)
        assert stream.header("x-pid") == str(server.pid)
    with http_clients(servers) as (_, http_b, http_c):
        published = [
            (publish(http, topic, f"event {n} ✓"), f"event {n} ✓")
            for n, http in enumerate([http_b, http_c] * 3)
        ]
    wait_streams(streams, lambda s: len(notes(s)) >= len(published), "every event everywhere")
    for stream in streams:
        assert notes(stream) == published
        assert not resets(stream)
    # One encoding, one id per event in every process: the very same bytes everywhere.
    assert streams[0].body == streams[1].body == streams[2].body


@pytest.mark.timeout(30)
def test_a_client_resumes_on_another_process_with_no_gap_and_no_duplicate(
    trio: Trio, clients: list[RawClient]
) -> None:
    a, b, c = trio.servers
    topic = new_topic()
    first = subscribe(a, clients, topic)
    follower = subscribe(c, clients, topic)  # C follows the topic all along
    frames_until([first, follower], 1, "the priming frames")
    with http_clients([a, b, c]) as (http_a, http_b, http_c):
        seen = [publish(http_b, topic, f"seen {n}") for n in range(3)]
        wait_streams([first], lambda s: len(notes(s)) == 3, "the first events on A")
        first.close()  # the client leaves A; events go on, through C
        missed = [(publish(http_c, topic, f"missed {n}"), f"missed {n}") for n in range(4)]
        # B never followed the topic: it reads the missed events from Redis. C did: it
        # resumes from its own log.
        on_b = subscribe(b, clients, topic, last_event_id=seen[-1])
        on_c = subscribe(c, clients, topic, last_event_id=seen[-1])
        wait_streams([on_b, on_c], lambda s: len(notes(s)) == len(missed), "the replays")
        live = (publish(http_a, topic, "live"), "live")
    wait_streams([on_b, on_c], lambda s: len(notes(s)) == len(missed) + 1, "the live event")
    for stream in (on_b, on_c):
        assert_streaming(stream)
        # No priming frame, no reset: the replay, then live.
        assert stream.frame_count == len(missed) + 1, stream.describe()
        assert notes(stream) == [*missed, live]
    assert on_b.body == on_c.body


@pytest.mark.timeout(30)
def test_a_composite_cursor_resumes_on_another_process(
    trio: Trio, clients: list[RawClient]
) -> None:
    a, b, c = trio.servers
    news, alerts = new_topic(), new_topic()
    first = subscribe(a, clients, news, alerts)
    frames_until([first], 1, "the priming frame")
    with http_clients([b, c]) as (http_b, http_c):
        publish(http_b, news, "news 1")
        publish(http_c, alerts, "alert 1")
        wait_streams([first], lambda s: len(notes(s)) == 2, "one event of each topic")
        cursor = events(first)[-1][1]
        assert cursor.count("~") == 2  # a position per topic
        first.close()
        missed = [(publish(http_b, news, "news 2"), "news 2")]
        missed.append((publish(http_c, alerts, "alert 2"), "alert 2"))
    again = subscribe(c, clients, news, alerts, last_event_id=cursor)
    wait_streams([again], lambda s: len(notes(s)) == 2, "the missed events of both topics")
    assert sorted(text for _, text in notes(again)) == ["alert 2", "news 2"]
    assert not resets(again)


@pytest.mark.timeout(30)
def test_a_topic_closed_through_one_process_ends_everywhere(
    trio: Trio, clients: list[RawClient]
) -> None:
    a, b, c = trio.servers
    topic = new_topic()
    stream = subscribe(a, clients, topic)
    frames_until([stream], 1, "the priming frame")
    with http_clients([b]) as (http_b,):
        ids = [publish(http_b, topic, f"n{n}") for n in range(2)]
        wait_streams([stream], lambda s: len(notes(s)) == 2, "the events")
        assert http_b.post("/hub/close", params={"topic": topic}).status_code == 204
        refused = http_b.post("/hub/publish", params={"topic": topic}, content=b"late")
        assert refused.status_code == 409
    pump([stream], lambda: stream.done, TIMEOUT, "the stream on A to end")
    assert stream.complete, stream.describe()
    for server in (a, c):  # C never followed the topic
        at_head = subscribe(server, clients, topic, last_event_id=ids[-1])
        behind = subscribe(server, clients, topic, last_event_id=ids[0])
        wait_streams([at_head, behind], lambda s: s.done, "the ends")
        assert at_head.status == 204, at_head.describe()
        assert behind.status == 200, behind.describe()
        assert behind.complete
        assert [event_id for event_id, _ in notes(behind)] == ids[1:]


def append_burst(prefix: str, topic: str, count: int) -> list[tuple[str, str]]:
    """What a burst of publishes through other processes leaves in ``topic``'s stream:
    ``count`` events appended by the backend's own script (as `Hub.publish` does, with
    the app's length cap), pipelined, so they land faster than any reader reads them.
    Returns (id, text) of each."""
    import redis

    from asgi_sse._redis.entries import append_script

    client = redis.Redis.from_url(REDIS_URL)
    try:
        script = client.register_script(append_script())
        pipe = client.pipeline(transaction=False)
        texts = [f"burst {n}" for n in range(count)]
        for text in texts:
            tail = b"data: " + json.dumps(text).encode() + b"\n\n"
            args = [str(HISTORY).encode(), b"event: note\n", tail, b"0", b"0"]
            script(keys=[f"{prefix}t:{topic}".encode()], args=args, client=pipe)
        ids = [entry_id.decode() for entry_id in pipe.execute()]
    finally:
        client.close()
    return list(zip(ids, texts, strict=True))


@pytest.mark.timeout(30)
def test_a_burst_longer_than_the_history_reaches_subscribers_that_keep_up(
    trio: Trio, clients: list[RawClient]
) -> None:
    # The subscribers read everything at once: none of them falls behind. Only the
    # processes' readers get the burst in one XREAD reply, longer than the log. (Run
    # with ASGI_SSE_TEST_READ_COUNT=16: replies no longer than the log, and it passes.)
    topic = new_topic()
    streams = [subscribe(server, clients, topic) for server in trio.servers[:2]]
    frames_until(streams, 1, "the priming frames")
    burst = append_burst(trio.prefix, topic, 2 * HISTORY + 8)
    wait_streams(streams, lambda s: len(notes(s)) >= len(burst) or bool(resets(s)), "the burst")
    for stream in streams:
        assert not resets(stream), f"a subscriber that keeps up was reset: {resets(stream)}"
        assert notes(stream) == burst


def connections(names: Sequence[str], *, blocked: bool = False) -> dict[str, int]:
    """Per client name: how many of its connections Redis lists (``blocked``: only those
    blocked in a command, flag b)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        listed = client.client_list()
    finally:
        client.close()
    counts = dict.fromkeys(names, 0)
    for entry in listed:
        if entry["name"] in counts and (not blocked or "b" in entry["flags"]):
            counts[entry["name"]] += 1
    return counts


@pytest.mark.timeout(30)
def test_blocking_reader_connections_do_not_grow_with_subscribers(
    trio: Trio, clients: list[RawClient]
) -> None:
    servers, names = trio.servers, trio.names
    # redis-py names the connections as the URL says.
    named = connections(names)
    assert all(named.values()), named
    topics = [new_topic() for _ in range(4)]
    # A: one subscriber; B: 20 on 4 topics; C: 40 on 4 topics.
    streams = [subscribe(servers[0], clients, topics[0])]
    streams += [subscribe(servers[1], clients, topics[n % 4]) for n in range(20)]
    streams += [subscribe(servers[2], clients, topics[n % 4]) for n in range(40)]
    frames_until(streams, 1, "every priming frame")
    # Two blocking XREADs per process: the topics' reader and the reader of the other
    # processes' drops (`Hub.drop`), whatever the number of subscribers.
    expected = dict.fromkeys(names, 2)
    wait_until(
        lambda: connections(names, blocked=True) == expected,
        TIMEOUT,
        f"two blocking readers per process (now {connections(names, blocked=True)})",
    )
    # 20 more subscribers on A, on more topics: still two.
    more = [subscribe(servers[0], clients, topics[n % 4]) for n in range(20)]
    frames_until(more, 1, "the new priming frames")
    samples = []
    for _ in range(5):
        wait_until(lambda: all(connections(names, blocked=True).values()), TIMEOUT, "the readers")
        samples.append(connections(names, blocked=True))
        time.sleep(0.05)
    assert all(sample == expected for sample in samples), samples
    print(f"\nconnections per process with 1/40/40 subscribers: {connections(names)}")


# -- uvicorn --workers 2 -----------------------------------------------------------------------


@pytest.mark.timeout(45)
def test_workers_share_topics(redis_prefix: str, clients: list[RawClient]) -> None:
    topic = new_topic()
    with uvicorns([app_env(REDIS_URL, redis_prefix)], workers=2) as (server,):
        # Connect until both workers serve some of the streams.
        streams: list[RawClient] = []
        by_worker: dict[str, int] = {}
        deadline = time.monotonic() + 20
        while len(by_worker) < 2 or min(by_worker.values()) < 2 or len(streams) < 6:
            assert time.monotonic() < deadline, f"streams per worker: {by_worker}"
            stream = subscribe(server, clients, topic)
            wait_streams([stream], lambda s: s.frame_count >= 1, "the priming frame")
            pid = stream.header("x-pid")
            assert pid is not None
            by_worker[pid] = by_worker.get(pid, 0) + 1
            streams.append(stream)
        # Publish over new connections until both workers published some.
        published: list[tuple[str, str]] = []
        publishers: dict[str, int] = {}
        while len(published) < 10 or len(publishers) < 2:
            assert time.monotonic() < deadline, f"publishes per worker: {publishers}"
            text = f"n{len(published)}"
            response = httpx.post(
                server.url("/hub/publish"),
                params={"topic": topic},
                content=text.encode(),
                headers={"Connection": "close"},
                timeout=TIMEOUT,
            )
            assert response.status_code == 200, response.text
            answer = response.json()
            published.append((answer["id"], text))
            publishers[answer["pid"]] = publishers.get(answer["pid"], 0) + 1
        assert set(publishers) == set(by_worker)
        wait_streams(streams, lambda s: len(notes(s)) >= len(published), "every event")
        print(f"\nstreams per worker {by_worker}, publishes per worker {publishers}")
        for stream in streams:
            assert notes(stream) == published
            assert not resets(stream)


# -- Redis killed and restarted -----------------------------------------------------------------


class Publisher(threading.Thread):
    """Publishes through the servers in turn, as fast as they answer, until `stop`: an
    acknowledged publish goes to ``acked`` as (id, text) with the time of its answer, a
    refused one (503, naming Redis) to ``refused``; any other answer is a failure."""

    def __init__(self, https: Sequence[httpx.Client], topic: str) -> None:
        super().__init__(daemon=True)
        self.https = https
        self.topic = topic
        self.acked: list[tuple[str, str]] = []
        self.acked_at: list[float] = []
        self.refused: list[str] = []
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            text = f"n{n}"
            try:
                response = try_publish(self.https[n % len(self.https)], self.topic, text)
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
                return
            if response.status_code == 200:
                self.acked.append((response.json()["id"], text))
                self.acked_at.append(time.monotonic())
            elif response.status_code == 503 and "Redis" in response.text:
                self.refused.append(text)
                time.sleep(0.01)
            else:
                self.failures.append(f"{response.status_code} {response.text}")
                return
            n += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(TIMEOUT)
        assert not self.is_alive(), "the publisher did not stop"


@pytest.mark.timeout(45)
@pytest.mark.parametrize("history", [1000, HISTORY], ids=lambda n: f"history-{n}")
def test_a_persisting_redis_restart_loses_no_acknowledged_event(
    history: int, clients: list[RawClient]
) -> None:
    # With a history of 16, the events published while the readers wait to reconnect
    # (up to 0.5 s) outnumber it: see test_a_burst_longer_than_the_history_...
    topic = new_topic()
    with redis_process(appendonly=True) as redis_server:
        env = app_env(redis_server.url(), "asgi-sse-test:", history=history, ping=PING)
        with uvicorns([env, env]) as servers, http_clients(servers) as https:
            streams = [subscribe(server, clients, topic) for server in servers]
            frames_until(streams, 1, "the priming frames")
            publisher = Publisher(https, topic)
            publisher.start()
            try:

                def pump_until(condition: Callable[[], bool], what: str) -> None:
                    pump(streams, lambda: condition() or bool(publisher.failures), TIMEOUT, what)
                    assert not publisher.failures, publisher.failures

                pump_until(lambda: len(publisher.acked) >= 20, "publishes before the crash")
                redis_server.kill()  # while the publisher publishes
                killed_at = time.monotonic()
                pump_until(lambda: time.monotonic() - killed_at > 0.8, "a while down")
                restarted_at = time.monotonic()
                redis_server.start()
                up_at = time.monotonic()
                acked_before = len(publisher.acked)
                pump_until(lambda: len(publisher.acked) >= acked_before + 20, "publishes after it")
            finally:
                publisher.stop()
            acked, refused = publisher.acked, publisher.refused
            wait_streams(
                streams,
                lambda s: {i for i, _ in acked} <= {i for i, _ in notes(s)} or bool(resets(s)),
                "every acknowledged event on every stream",
            )
            drain(streams, 0.3)  # anything more (a duplicate) would show now
            stats = [get_json(server.port, "/hub/stats") for server in servers]
        # Nothing acknowledged while Redis was down (but a reply on its way at the kill).
        assert not [at for at in publisher.acked_at if killed_at + 0.3 < at < restarted_at]
        assert refused, "no publish was refused while Redis was down"
        for stream in streams:
            assert not resets(stream), f"a connected subscriber was reset: {resets(stream)}"
            got = notes(stream)
            ids = [event_id for event_id, _ in got]
            assert ids == sorted(set(ids), key=sort_key), "a duplicate or out of order"
            # Exactly the acknowledged events, in order; anything else must be a publish
            # that failed after Redis wrote it (its reply lost with the connection).
            assert [item for item in got if item in acked] == acked
            extra = [text for event_id, text in got if (event_id, text) not in acked]
            assert set(extra) <= set(refused), extra
            # Still the first connection, kept alive while Redis was down.
            assert not stream.done, stream.describe()
            pings = [at for at, _ in stream.comments if killed_at < at < restarted_at]
            assert pings, "no keep-alive while Redis was down"
        assert all(stat["reconnects"] >= 1 and stat["gaps"] == 0 for stat in stats), stats
        print(
            f"\nacknowledged {len(acked)}, refused {len(refused)} (down {up_at - killed_at:.2f}s)"
            f", delivered unacknowledged: {len(notes(streams[0])) - len(acked)}"
        )


@pytest.mark.timeout(45)
def test_a_redis_restart_without_its_data_is_a_reset_not_silence(
    clients: list[RawClient],
) -> None:
    topic = new_topic()
    with redis_process(appendonly=False) as redis_server:
        env = app_env(redis_server.url(), "asgi-sse-test:", ping=PING)
        with uvicorns([env, env]) as servers, http_clients(servers) as (http_a, http_b):
            streams = [subscribe(server, clients, topic) for server in servers]
            frames_until(streams, 1, "the priming frames")
            before = [(publish(http_a, topic, f"before {n}"), f"before {n}") for n in range(5)]
            wait_streams(streams, lambda s: len(notes(s)) == 5, "the events before")
            redis_server.kill()
            redis_server.start()  # empty: no dump, no append-only file
            wait_streams(streams, lambda s: bool(resets(s)), "a reset on every stream")
            after = (publish_when_up(http_b, topic, "after"), "after")
            wait_streams(streams, lambda s: len(notes(s)) == 6, "the event after")
            # A client that comes back with an id from before the restart: a reset too.
            late = subscribe(servers[0], clients, topic, last_event_id=before[-1][0])
            wait_streams([late], lambda s: bool(resets(s)), "the late client's reset")
        for stream in streams:
            assert notes(stream) == [*before, after]
            (reset,) = resets(stream)
            assert reset["reason"] == "gone"
            assert reset["topics"] == [topic]
            assert reset["resume_from"] == reset["id"]
            kinds = [kind for kind, _, _ in events(stream)]
            assert kinds == ["note"] * 5 + ["reset", "note"]
            assert not stream.done, stream.describe()
        (reset,) = resets(late)
        assert reset["reason"] in ("gone", "unknown")
        assert not notes(late)


@pytest.mark.timeout(45)
def test_a_client_connecting_while_redis_is_down_gets_its_stream_and_later_its_replay(
    clients: list[RawClient],
) -> None:
    topic = new_topic()
    with redis_process(appendonly=True) as redis_server:
        env = app_env(redis_server.url(), "asgi-sse-test:", ping=PING)
        with uvicorns([env]) as (server,), http_clients([server]) as (http,):
            ids = [publish(http, topic, f"n{n}") for n in range(3)]
            redis_server.kill()
            refused = try_publish(http, topic, "while down")
            assert refused.status_code == 503, refused.text
            assert redis_server.url() in refused.text  # says which Redis
            resuming = subscribe(server, clients, topic, last_event_id=ids[0])
            fresh = subscribe(server, clients, topic)
            streams = [resuming, fresh]
            wait_streams(streams, lambda s: len(s.comments) >= 2, "keep-alives while down")
            for stream in streams:
                assert_streaming(stream)
                assert stream.frame_count == 0, stream.describe()
            refused = try_publish(http, topic, "still down")
            assert refused.status_code == 503, refused.text  # an error, never a silent drop
            redis_server.start()
            wait_streams([resuming], lambda s: len(notes(s)) == 2, "the replay")
            wait_streams([fresh], lambda s: s.frame_count >= 1, "the priming frame")
            live = publish_when_up(http, topic, "live")
            wait_streams(streams, lambda s: any(i == live for i, _ in notes(s)), "live")
        assert notes(resuming) == [(ids[1], "n1"), (ids[2], "n2"), (live, "live")]
        assert resuming.frame_count == 3
        # The fresh client starts at the head: primed with the newest id, then live.
        assert fresh.frames[0].lines == [b"id: " + ids[-1].encode()]
        assert notes(fresh) == [(live, "live")]
        for stream in streams:
            assert not resets(stream)
            assert not stream.done


# Redis hung (SIGSTOP: connections open, no answers - a network partition) is not Redis
# down (connections refused): only a socket timeout ends a command. "explicit": the URL
# sets the timeouts (what a user can do today); "default": the backend's defaults.
HUNG_BOUND = 8.0  # seconds for a publish to be refused, a stream to open


@pytest.mark.timeout(45)
@pytest.mark.parametrize("timeouts", ["explicit", "default"])
def test_a_hung_redis_refuses_publishes_and_keeps_streams_open(
    timeouts: str, clients: list[RawClient]
) -> None:
    topic = new_topic()
    with redis_process(appendonly=True) as redis_server:
        env = app_env(redis_server.url(), "asgi-sse-test:", ping=PING)
        if timeouts == "explicit":
            env[URL_ENV] = redis_server.url() + "?socket_timeout=2&socket_connect_timeout=2"
            env[BLOCK_ENV] = "0.5"  # well under the socket timeout
        with uvicorns([env]) as (server,), http_clients([server]) as (http,):
            stream = subscribe(server, clients, topic)
            frames_until([stream], 1, "the priming frame")
            first = (publish(http, topic, "before"), "before")
            wait_streams([stream], lambda s: len(notes(s)) == 1, "the first event")
            redis_server.freeze()
            try:
                frozen_at = time.monotonic()
                try:
                    refused = http.post(
                        "/hub/publish",
                        params={"topic": topic},
                        content=b"while hung",
                        timeout=HUNG_BOUND,
                    )
                except httpx.TimeoutException:
                    pytest.fail(
                        f"a publish with Redis hung got no answer within {HUNG_BOUND}s "
                        "(no socket timeout: it waits as long as Redis does)"
                    )
                assert refused.status_code == 503, refused.text
                late = subscribe(server, clients, topic, last_event_id=first[0])
                wait_streams(
                    [late], lambda s: s.status is not None, "the late stream's head", HUNG_BOUND
                )
                assert_streaming(late)
                wait_streams(
                    [stream, late],
                    lambda s: any(at > frozen_at + 0.5 for at, _ in s.comments),
                    "keep-alives while Redis hangs",
                )
            finally:
                redis_server.thaw()
            live = (publish_when_up(http, topic, "live"), "live")
            wait_streams([stream, late], lambda s: live in notes(s), "the live event")
        # The refused publish may have reached Redis before it hung (its answer did not
        # come back): then it is delivered, once. Nothing acknowledged is missing.
        assert [text for _, text in notes(stream)] in (
            ["before", "live"],
            ["before", "while hung", "live"],
        )
        assert notes(late) == notes(stream)[1:]
        for one in (stream, late):
            assert not resets(one)
            assert not one.done


# -- a stalled worker -----------------------------------------------------------------------------

STALLED_HISTORY = 16


@pytest.mark.timeout(45)
def test_a_stalled_worker_that_falls_behind_the_stream_resets_its_subscribers(
    clients: list[RawClient],
) -> None:
    topic = new_topic()
    published_while_stalled = 120
    # Trimming by whole nodes of 10 entries: the stream keeps 16 to 26 of them.
    tight = ["--stream-node-max-entries", "10"]
    with redis_process(appendonly=False, extra=tight) as redis_server:
        env = app_env(redis_server.url(), "asgi-sse-test:", history=STALLED_HISTORY)
        with uvicorns([env, env]) as (a, b), http_clients([b]) as (http_b,):
            on_a = subscribe(a, clients, topic)
            on_b = subscribe(b, clients, topic)
            frames_until([on_a, on_b], 1, "the priming frames")
            first = (publish(http_b, topic, "before"), "before")
            wait_streams([on_a, on_b], lambda s: len(notes(s)) == 1, "the first event")
            a.send_signal(signal.SIGSTOP)
            try:
                published = [
                    (publish(http_b, topic, f"n{n}"), f"n{n}")
                    for n in range(published_while_stalled)
                ]
                wait_streams([on_b], lambda s: len(notes(s)) == 1 + len(published), "B")
                kept = stream_length(redis_server, topic)
                assert kept < STALLED_HISTORY + 2 * 10, kept  # trimmed: A cannot catch up
            finally:
                a.send_signal(signal.SIGCONT)
            wait_streams([on_a], lambda s: bool(resets(s)), "A's reset")
            live = (publish(http_b, topic, "live"), "live")
            wait_streams([on_a, on_b], lambda s: live in notes(s), "the live event")
            stats_a = get_json(a.port, "/hub/stats")
            stats_b = get_json(b.port, "/hub/stats")
        assert notes(on_b) == [first, *published, live]
        assert not resets(on_b)
        (reset,) = resets(on_a)
        assert reset["reason"] == "gone"
        assert reset["topics"] == [topic]
        # Before the reset, a prefix of what was published (what A read before it
        # stalled); after it, everything after the id it resumes from, with no gap.
        everything = [first, *published, live]
        kinds = [kind for kind, _, _ in events(on_a)]
        at = kinds.index("reset")
        before_reset, after_reset = notes(on_a)[:at], notes(on_a)[at:]
        assert before_reset == everything[: len(before_reset)]
        resumed = [event_id for event_id, _ in everything].index(reset["resume_from"])
        assert len(before_reset) <= resumed  # events were missed: that is the reset
        assert after_reset == everything[resumed + 1 :]
        assert stats_a["gaps"] >= 1
        assert stats_b["gaps"] == 0
        assert not on_a.done
        assert not on_b.done


def stream_length(redis_server: RedisProcess, topic: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_server.url())
    try:
        return int(client.xlen(f"asgi-sse-test:t:{topic}"))
    finally:
        client.close()


# -- Redis unreachable at start -----------------------------------------------------------------


@pytest.mark.timeout(45)
@pytest.mark.parametrize("lifespan", ["auto", "on"])
def test_redis_unreachable_at_start_fails_the_startup_naming_the_url(lifespan: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with tempfile.TemporaryDirectory(prefix="asgi-sse-redis-servers-") as tmp:
        server = _server(Path(tmp), 0, app_env(url, "asgi-sse-test:"), None, set())
        if lifespan != "auto":  # "auto" is uvicorn's default: what a user types
            server.argv += ["--lifespan", lifespan]
        try:
            with contextlib.suppress(ServerError):  # exited at startup: what we want
                server.start()
            # Had it started, it would be serving now: give it a moment to exit anyway.
            code = server.wait_exit(5)
        finally:
            server.stop()
        output = server.output()
    assert code != 0, output
    assert f"cannot reach Redis at {url}" in output, output
    assert "Application startup failed" in output, output


# -- the demo on Redis ------------------------------------------------------------------------


def test_the_demo_runs_on_redis_with_one_option(redis_prefix: str) -> None:
    """`python -m asgi_sse.demo --redis URL --workers 2`: chat streams on either worker
    get every message published through either worker, exactly once, in order."""
    import anyio

    from asgi_sse.client import EventSource
    from asgi_sse.demo.chat import ChatMessage, Connected

    with tempfile.TemporaryDirectory(prefix="asgi-sse-demo-redis-") as tmp:
        port = free_port()
        argv = [sys.executable, "-m", "asgi_sse.demo", "--port", str(port)]
        argv += ["--redis", REDIS_URL, "--workers", "2"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ASGI_SSE_DEMO_REDIS_PREFIX": redis_prefix}
        server = Server("demo", port, argv, Path(tmp) / "demo.log", env)
        server.start()
        try:

            async def main() -> tuple[list[list[tuple[str, str]]], list[str]]:
                got: list[list[tuple[str, str]]] = [[] for _ in range(4)]
                ids: list[str] = []
                with anyio.fail_after(30):
                    async with anyio.create_task_group() as tasks:
                        # `connected` comes after the subscription resolved its start.
                        ready = [anyio.Event() for _ in got]

                        async def follow(n: int) -> None:
                            url = server.url(f"/chat?client=c{n}")
                            async with EventSource(url, events=(ChatMessage, Connected)) as source:
                                async for event in source:
                                    if isinstance(event, Connected):
                                        ready[n].set()
                                    elif isinstance(event, ChatMessage):
                                        got[n].append((str(event.id), event.data.text))
                                        if len(got[n]) == 6:
                                            return

                        for n in range(len(got)):
                            tasks.start_soon(follow, n)
                        for event in ready:
                            await event.wait()
                        async with httpx.AsyncClient(base_url=server.base_url) as http:
                            for n in range(6):
                                response = await http.post(
                                    "/chat/publish",
                                    json={"text": f"m{n}"},
                                    headers={"Connection": "close"},
                                )
                                assert response.status_code == 204, response.text
                                ids.append(response.headers["x-event-id"])
                return got, ids

            got, ids = anyio.run(main)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{server.describe()}") from exc
        finally:
            server.stop()
    expected = [(event_id, f"m{n}") for n, event_id in enumerate(ids)]
    assert all(messages == expected for messages in got), got
