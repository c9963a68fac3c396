"""``tests.support.redis_app:app`` plus a route for runs that end by themselves, for
tests/integration/test_runs_workers.py (same environment variables as redis_app).

``POST /runs/count?topic=T&count=N[&every=S]`` starts a run on the app's hub that
publishes the notes ``tick 0`` ... ``tick <N-1>``, one every ``S`` seconds (0.05 by
default), and then completes; it answers ``{"topic": ..., "pid": ...}``, or 409 when a
run is alive on ``T`` (here or in another process). Every other request goes to
redis_app's app.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import anyio

from asgi_sse._util.asgi import ASGIReceiveCallable, ASGISendCallable, Scope
from tests.support.redis_app import app as redis_app
from tests.support.redis_app import hub
from tests.support.sse_app import Note, _plain

__all__ = ("app",)

_PID = str(os.getpid())


async def _counted(count: int, every: float) -> AsyncIterator[Note]:
    for number in range(count):
        yield Note(data=f"tick {number}")
        await anyio.sleep(every)


async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] != "http" or scope["path"] != "/runs/count":
        await redis_app(scope, receive, send)
        return
    query = {key: values[-1] for key, values in parse_qs(scope["query_string"].decode()).items()}
    topic = query.get("topic", "")
    producer = _counted(int(query["count"]), float(query.get("every", "0.05")))
    try:
        await hub.run(producer, topic=topic)
    except ValueError as exc:
        await _plain(send, 409, str(exc).encode())
        return
    answer = {"topic": topic, "pid": _PID}
    await _plain(send, 200, json.dumps(answer).encode(), b"application/json")
