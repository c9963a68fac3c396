"""The app behind the reverse proxies and compression middlewares (not a test module).

``tests.support.proxy_app:app`` serves three event streams, chosen by the last segment
of the path (so that it answers under any prefix a proxy's ``location`` or a
compression test's mount puts in front: ``/events/gated``, ``/br/events/gated``...):

- ``gated?key=K`` - the event ``first`` (id 1), then nothing until ``POST
  /control/release?key=K``, then ``second`` (id 2), and the end. Whether the first
  frame reaches the client before the second exists is what a buffering proxy changes.
  ``buffering=absent`` leaves out asgi-sse's ``X-Accel-Buffering: no``: the response
  of an event-stream app that does not send it.
- ``late?key=K`` - logs ``started``, sends nothing until the release, then ``first``,
  and the end: when do the response's headers arrive?
- ``count?key=K[&retry=MS]`` - the events after the request's ``Last-Event-ID`` (ids
  1, 2, 3, or n+1, n+2, n+3; the first with ``retry: MS`` if given), then stays open,
  silent. The id it was given is logged.
- ``page.html?key=K`` - a page whose EventSource follows ``count?key=K&retry=100`` (a
  relative URL: through the proxy, as the page came) and records ``window.got``, the
  ``[lastEventId, data]`` of each message, and ``window.opens``.
- ``silent?key=K&silence=S&ping=P`` - ``ready``, then S seconds of nothing from the
  stream (``ping``: the keep-alive interval in seconds, or ``none``), then ``after``,
  and the end.

The streams other than ``silent`` send no keep-alive, so every frame is an event.
``GET /control/log?key=K`` answers the log of stream K as a JSON list (``first
sent``, ``second sent``, ``last-event-id: ...``), talked to directly, not through the
proxy.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import anyio

from asgi_sse import EventSourceResponse, ServerSentEvent, SSERequest
from asgi_sse._util.asgi import ASGIReceiveCallable, ASGISendCallable, Scope
from asgi_sse._util.lifespan import answer_lifespan

__all__ = ("app",)

_gates: dict[str, anyio.Event] = {}
_logs: dict[str, list[str]] = {}


async def _plain(
    send: ASGISendCallable, status: int, body: bytes = b"", content_type: bytes = b"text/plain"
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    start = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)  # type: ignore[arg-type]
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _gate(key: str) -> anyio.Event:
    # Made on first use, inside the server's event loop.
    return _gates.setdefault(key, anyio.Event())


def _log(key: str, entry: str) -> None:
    _logs.setdefault(key, []).append(entry)


async def _gated(key: str) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent("first", id="1")
    _log(key, "first sent")
    await _gate(key).wait()
    yield ServerSentEvent("second", id="2")
    _log(key, "second sent")


async def _late(key: str) -> AsyncIterator[ServerSentEvent]:
    _log(key, "started")
    await _gate(key).wait()
    yield ServerSentEvent("first", id="1")


async def _counted(
    key: str, last_event_id: str | None, retry: int | None
) -> AsyncIterator[ServerSentEvent]:
    _log(key, f"last-event-id: {last_event_id}")
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    for number in range(after + 1, after + 4):
        yield ServerSentEvent(str(number), id=str(number), retry=retry)
        retry = None
    await anyio.sleep_forever()


_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>through the proxy</title>
<script>
window.got = [];
window.opens = 0;
const source = new EventSource("count?key=KEY&retry=100");
source.onopen = () => { window.opens += 1; };
source.onmessage = (event) => { window.got.push([event.lastEventId, event.data]); };
</script>
"""


async def _silent(silence: float) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent("ready", event="ready")
    await anyio.sleep(silence)
    yield ServerSentEvent("after", event="after")


def _without_accel_buffering(send: ASGISendCallable) -> ASGISendCallable:
    async def send_without(message: Any) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message["headers"] if k != b"x-accel-buffering"]
            message = {**message, "headers": headers}
        await send(message)

    return send_without


async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    assert scope["type"] == "http"
    query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    key = query.get("key", "")
    path = scope["path"]
    if path == "/control/release":
        _gate(key).set()
        await _plain(send, 204)
        return
    if path == "/control/log":
        await _plain(send, 200, json.dumps(_logs.get(key, [])).encode(), b"application/json")
        return
    name = path.rpartition("/")[2]
    ping: float | None = None
    stream: AsyncIterator[ServerSentEvent]
    if name == "gated":
        stream = _gated(key)
        if query.get("buffering") == "absent":
            send = _without_accel_buffering(send)
    elif name == "late":
        stream = _late(key)
    elif name == "count":
        retry = int(query["retry"]) if "retry" in query else None
        stream = _counted(key, SSERequest(scope, receive).last_event_id, retry)
    elif name == "page.html":
        assert key.replace("-", "").isalnum(), key  # goes into a script verbatim
        page = _PAGE.replace("KEY", key).encode()
        await _plain(send, 200, page, b"text/html; charset=utf-8")
        return
    elif name == "silent":
        stream = _silent(float(query.get("silence", "5")))
        ping = None if query.get("ping", "none") == "none" else float(query["ping"])
    else:
        await _plain(send, 404, b"not found")
        return
    response = EventSourceResponse(stream, ping=ping)
    await response(scope, receive, send)
