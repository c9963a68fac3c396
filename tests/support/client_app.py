"""A raw ASGI app for the typed client's real-server tests
(tests/unit/client/test_client.py), run as
``python -m uvicorn tests.support.client_app:app``.

Every request may carry ``key=K``: the requests of a key are recorded (path, query,
``Last-Event-ID``) and ``GET /hits?key=K`` answers them as JSON, so that a test can see
how many requests the client made and what it sent.

- ``/status/<code>``: answers that status (an empty body for 204, 205 and 304; else a
  short text/plain body); ``retry_after=S`` adds a ``Retry-After`` header.
- ``/redirect/<code>?to=URL``: answers that status with ``Location: URL``.
- ``/numbered?total=N&per=P``: the events 1..N as ``tick`` frames (``id: i``,
  ``data: i``), resumed after the request's ``Last-Event-ID``; each response sends at
  most P of them and then ends the body (the client reconnects); once all N were sent,
  answers 204 (the client stops). ``retry=MS`` adds a ``retry:`` line.
- ``/silent``: the headers of an event stream, then nothing until the client leaves.
- ``/hits?key=K``: the requests recorded for K.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from asgi_sse._util.lifespan import answer_lifespan

__all__ = ("app",)

_HITS: dict[str, list[dict[str, Any]]] = {}
_EMPTY_BODY = {204, 205, 304}


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    assert scope["type"] == "http"
    path: str = scope["path"]
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
    last_event_id = headers.get("last-event-id")
    key = query.get("key")
    if key is not None and path != "/hits":
        _HITS.setdefault(key, []).append(
            {
                "method": scope["method"],
                "path": path,
                "query": scope["query_string"].decode(),
                "last_event_id": None if last_event_id is None else last_event_id.decode(),
                "accept": headers.get("accept", b"").decode(),
            }
        )

    async def answer(status: int, extra: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": body})

    if path == "/hits":
        body = json.dumps(_HITS.get(query.get("key", ""), [])).encode()
        await answer(200, [(b"content-type", b"application/json")], body)
    elif path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        extra = [(b"content-type", b"text/plain")]
        if "retry_after" in query:
            extra.append((b"retry-after", query["retry_after"].encode()))
        await answer(code, extra, b"" if code in _EMPTY_BODY else f"status {code}".encode())
    elif path.startswith("/redirect/"):
        code = int(path.rsplit("/", 1)[1])
        await answer(code, [(b"location", query["to"].encode())], b"")
    elif path == "/numbered":
        total, per = int(query["total"]), int(query.get("per", query["total"]))
        after = int(last_event_id) if last_event_id else 0
        if after >= total:
            await answer(204, [], b"")
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        if "retry" in query:
            await send(
                {
                    "type": "http.response.body",
                    "body": b"retry: %s\n\n" % query["retry"].encode(),
                    "more_body": True,
                }
            )
        for number in range(after + 1, min(after + per, total) + 1):
            frame = b"event: tick\nid: %d\ndata: %d\n\n" % (number, number)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/silent":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
    else:
        await answer(404, [(b"content-type", b"text/plain")], b"no such route")
