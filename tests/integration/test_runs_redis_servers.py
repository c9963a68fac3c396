"""Runs across real server processes on Redis: a run started on worker A is read on worker
B (resumed there by Last-Event-ID), refused a second time on B, cancelled from B; and
when A is killed (SIGKILL) mid-run, B's subscriber gets `RunEnded` ``lost`` within the
lease and a second, and its stream ends.

The app is ``tests.support.redis_app:app`` (its ``/runs/*`` routes) under uvicorn, one
process per port on the shared Redis, with ``run_lease`` 1 s.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_hub_servers import events, new_topic, subscribe
from tests.integration.test_redis_servers import TIMEOUT, app_env, uvicorns, wait_streams
from tests.support.rawclient import RawClient
from tests.support.redis_app import RUN_LEASE_ENV
from tests.support.redisutil import REDIS_URL, delete_prefix, require_redis
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(60)

LEASE = 1.0


@pytest.fixture
def pair() -> Iterator[list[Server]]:
    """Two uvicorn processes on the shared Redis, one key prefix, ``run_lease`` 1 s."""
    require_redis()
    prefix = f"asgi-sse-test:{uuid.uuid4().hex[:8]}:"
    env = {**app_env(REDIS_URL, prefix), RUN_LEASE_ENV: str(LEASE)}
    try:
        with uvicorns([env, env]) as servers:
            yield servers
    finally:
        delete_prefix(prefix)


def ticks(stream: RawClient) -> list[tuple[str, str]]:
    """(id, text) of the run's ticks the stream got."""
    return [(i, json.loads(data)) for kind, i, data in events(stream) if kind == "note"]


def ended(stream: RawClient) -> str | None:
    """The reason of the `RunEnded` the stream got, if any."""
    for kind, _, data in events(stream):
        if kind == "run_ended":
            reason: str = json.loads(data)["reason"]
            return reason
    return None


def start(server: Server, topic: str) -> httpx.Response:
    return httpx.post(server.url(f"/runs/start?topic={topic}"), timeout=TIMEOUT)


def test_a_run_on_one_worker_is_resumed_and_cancelled_from_another(
    pair: list[Server], clients: list[RawClient]
) -> None:
    a, b = pair
    topic = new_topic()
    first = subscribe(b, clients, topic)  # B follows the topic from before the start
    wait_streams([first], lambda s: s.frame_count >= 1, "the priming frame")
    assert start(a, topic).status_code == 200
    refused = start(b, topic)
    assert refused.status_code == 409
    assert "another process" in refused.text
    wait_streams([first], lambda s: len(ticks(s)) >= 3, "three ticks on B")
    seen = ticks(first)[:3]
    first.close()
    resumed = subscribe(b, clients, topic, last_event_id=seen[-1][0])
    wait_streams([resumed], lambda s: len(ticks(s)) >= 3, "three more ticks on B")
    asked = time.monotonic()
    answer = httpx.post(b.url(f"/runs/cancel?topic={topic}"), timeout=TIMEOUT).json()
    assert answer["cancelled"] is True
    wait_streams([resumed], lambda s: s.done, "the end of the run")
    took = time.monotonic() - asked
    texts = [text for _, text in seen + ticks(resumed)]
    assert texts == [f"tick {n}" for n in range(len(texts))]  # no gap, no duplicate
    assert ended(resumed) == "cancelled"
    assert took < 1.0 + 0.5  # polled every quarter second, plus the stream's way out


def test_a_killed_worker_s_run_ends_lost_on_the_other_worker(
    pair: list[Server], clients: list[RawClient]
) -> None:
    a, b = pair
    topic = new_topic()
    stream = subscribe(b, clients, topic)
    wait_streams([stream], lambda s: s.frame_count >= 1, "the priming frame")
    assert start(a, topic).status_code == 200
    wait_streams([stream], lambda s: len(ticks(s)) >= 5, "five ticks on B")
    a.send_signal(signal.SIGKILL, group=True)
    killed = time.monotonic()
    wait_streams([stream], lambda s: s.done, "the end of the stream", timeout=LEASE + 5)
    took = time.monotonic() - killed
    assert ended(stream) == "lost"
    assert took < LEASE + 1.0, took
    texts = [text for _, text in ticks(stream)]
    assert texts == [f"tick {n}" for n in range(len(texts))]
