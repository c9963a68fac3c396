"""Runs and publishers across real worker processes on one Redis (issue 19):

* the typed client (`asgi_sse.client.EventSource`) follows a run started on worker A
  through worker B while B is stopped (SIGTERM) and started again on the same port: it
  reconnects with its Last-Event-ID and gets every event once, in order, then
  `RunEnded` ``complete``, then 204 - the end of its iteration;
* `asgi_sse.redis.Publisher` from a thread of the test and from another process (the
  plain script tests/support/publish_script.py), interleaved with `Hub.publish` through
  both workers' ``/hub/publish`` route, on one topic: a subscriber on each worker gets
  every event once, in the same order.

The app is ``tests.support.runs_app:app`` (redis_app plus ``/runs/count``, a run that
completes) under uvicorn, one process per port. The servers are processes; the typed
client's test runs on asyncio and trio.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import anyio
import anyio.to_thread
import httpx
import pytest

from asgi_sse import ParsedEvent, Reset, RunEnded
from asgi_sse.client import EventSource
from asgi_sse.redis import Publisher
from tests.integration.test_hub_servers import events, new_topic, subscribe
from tests.integration.test_redis_servers import (
    TIMEOUT,
    app_env,
    sort_key,
    uvicorns,
    wait_streams,
)
from tests.support.helpers import HTTPX_GENERATOR_WARNINGS
from tests.support.rawclient import RawClient
from tests.support.redis_app import PREFIX_ENV
from tests.support.redisutil import REDIS_URL, delete_prefix, require_redis
from tests.support.servers import ROOT, Server
from tests.support.sse_app import Note

pytestmark = [pytest.mark.timeout(90), *HTTPX_GENERATOR_WARNINGS]

APP = "tests.support.runs_app:app"


def workers(prefix: str, count: int = 2) -> contextlib.AbstractContextManager[list[Server]]:
    """``count`` uvicorn processes of the app on the shared Redis under ``prefix``
    (a history that holds every event of a test), started together, all stopped at the
    end."""
    return uvicorns([app_env(REDIS_URL, prefix, history=1000)] * count, app=APP)


@pytest.fixture
def pair() -> Iterator[list[Server]]:
    require_redis()
    prefix = f"asgi-sse-test:{uuid.uuid4().hex[:8]}:"
    try:
        with workers(prefix) as servers:
            yield servers
    finally:
        delete_prefix(prefix)


@pytest.fixture
def prefix_of_pair(pair: list[Server]) -> str:
    """The key prefix the pair's processes use."""
    return pair[0].env[PREFIX_ENV]


# -- the typed client follows a run across a worker's restart ------------------------------

TICKS = 80
EVERY = 0.1  # seconds between ticks: the run lasts 8 s, longer than B's restart
RESTART_AFTER = 15  # ticks received before B is restarted


def restart(server: Server) -> None:
    """SIGTERM (a deploy's graceful stop: the streams end cleanly), then the same
    command on the same port."""
    server.send_signal(signal.SIGTERM, group=True)
    server.wait_exit(15)
    server.start()


async def start_run_when_primed(
    source: EventSource[Note | RunEnded | Reset | ParsedEvent], url: str
) -> None:
    """Start the run once the client's stream is open (the hub's priming id arrived):
    from then on nothing the run publishes is missed."""
    while not source.last_event_id:  # noqa: ASYNC110 - no event to wait on: the client's state
        await anyio.sleep(0.005)  # polling a condition, under the test's deadline
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        response = await http.post(url)
    assert response.status_code == 200, response.text


@pytest.mark.anyio
async def test_the_typed_client_follows_a_run_across_a_worker_restart(
    pair: list[Server],
) -> None:
    a, b = pair
    topic = new_topic()
    received: list[Note | RunEnded | Reset | ParsedEvent] = []
    restarted = False
    async with EventSource(
        f"{b.base_url}/hub?topic={topic}",
        events=(Note, RunEnded),
        retry=0.05,
        max_delay=0.5,
        read_timeout=5,
    ) as source:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                run_url = a.url(f"/runs/count?topic={topic}&count={TICKS}&every={EVERY}")
                tasks.start_soon(start_run_when_primed, source, run_url)
                async for event in source:  # until the 204 after RunEnded
                    received.append(event)
                    if len(received) == RESTART_AFTER:
                        await anyio.to_thread.run_sync(restart, b)
                        restarted = True
    assert restarted
    notes = [event for event in received if isinstance(event, Note)]
    assert [note.data for note in notes] == [f"tick {n}" for n in range(TICKS)]
    assert isinstance(received[-1], RunEnded), received[-1]
    assert received[-1].data.reason == "complete"
    assert len(received) == TICKS + 1  # nothing else: no Reset, no unknown event
    ids = [str(event.id) for event in received]
    assert ids == sorted(ids, key=sort_key)
    assert len(set(ids)) == len(ids)  # once each
    assert source.connections >= 2  # it did reconnect, to the restarted B
    assert source.last_event_id == ids[-1]


# -- a Publisher in a thread and in a script, and Hub.publish on both workers ----------------

THREAD_EVENTS = 100
SCRIPT_EVENTS = 300
HUB_EVENTS = 60


def text_of(kind: str, data: str) -> str:
    """The published text: a note's data is JSON (the hub app's `Note`), a str published
    with `Publisher` is the data itself."""
    if kind == "note":
        text: str = json.loads(data)
        return text
    return data


def received_texts(stream: RawClient) -> list[tuple[str, str]]:
    """(id, text) of every event with data the stream got."""
    return [(event_id, text_of(kind, data)) for kind, event_id, data in events(stream)]


def test_publishers_in_a_thread_a_script_and_both_workers_reach_both_workers_in_order(
    pair: list[Server], prefix_of_pair: str
) -> None:
    a, b = pair
    topic = new_topic()
    clients: list[RawClient] = []
    try:
        streams = [subscribe(a, clients, topic), subscribe(b, clients, topic)]
        wait_streams(streams, lambda s: s.frame_count >= 1, "the priming frames")

        publisher = Publisher(REDIS_URL, prefix=prefix_of_pair)
        thread_ids: list[str] = []
        thread_errors: list[BaseException] = []
        go = threading.Event()

        def in_a_thread() -> None:
            try:
                go.wait(TIMEOUT)
                for number in range(THREAD_EVENTS):
                    thread_ids.append(publisher.publish(topic, f"thread {number}"))
                    time.sleep(0.002)
            except BaseException as exc:
                thread_errors.append(exc)

        thread = threading.Thread(target=in_a_thread, daemon=True)
        thread.start()
        script = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.publish_script",
                REDIS_URL,
                prefix_of_pair,
                topic,
                str(SCRIPT_EVENTS),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert script.stdout is not None
            script_ids = [script.stdout.readline().strip()]  # the script is publishing
            go.set()
            hub_ids: list[str] = []
            with httpx.Client(timeout=TIMEOUT) as http:
                for number in range(HUB_EVENTS):
                    worker = (a, b)[number % 2]
                    response = http.post(
                        worker.url("/hub/publish"),
                        params={"topic": topic},
                        content=f"hub {number}".encode(),
                    )
                    assert response.status_code == 200, response.text
                    hub_ids.append(response.json()["id"])
            # Not communicate(timeout=...): it reads the pipe's file descriptor itself
            # and loses what readline() above took into the text buffer (a lost id).
            script_ids += script.stdout.read().split()
            assert script.wait(TIMEOUT) == 0
        finally:
            if script.poll() is None:
                script.kill()
                script.wait(10)
            if script.stdout is not None:
                script.stdout.close()
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        assert thread_errors == []
        publisher.close_topic(topic)
        publisher.disconnect()
        total = THREAD_EVENTS + SCRIPT_EVENTS + HUB_EVENTS
        wait_streams(streams, lambda s: s.done, "the end of both streams (the topic closed)")

        first, second = (received_texts(stream) for stream in streams)
        assert first == second  # the same events, the same ids, the same order
        assert len(first) == total
        assert [event_id for event_id, _ in first] == sorted(
            (event_id for event_id, _ in first), key=sort_key
        )
        assert len({event_id for event_id, _ in first}) == total  # once each
        for source, ids, count in (
            ("thread", thread_ids, THREAD_EVENTS),
            ("script", script_ids, SCRIPT_EVENTS),
            ("hub", hub_ids, HUB_EVENTS),
        ):
            mine = [(event_id, text) for event_id, text in first if text.startswith(source)]
            assert [text for _, text in mine] == [f"{source} {n}" for n in range(count)]
            assert [event_id for event_id, _ in mine] == ids  # the acknowledged ids
        # interleaved: the thread's and the workers' publishes overlapped in the stream
        order = [text.split()[0] for _, text in first]
        assert order.index("hub") < max(i for i, s in enumerate(order) if s == "thread")
        assert order.index("thread") < max(i for i, s in enumerate(order) if s == "hub")
    finally:
        for client in clients:
            client.close()
