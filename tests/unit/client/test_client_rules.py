"""The client's sans-IO rules, each on its own: the backoff between failures, the
``Retry-After`` header, the inbox that turns the body's bytes into events (every input
also fed one byte at a time), the request a browser sends, and that none of them
imports anything async.

`EventSource` applies them end to end in tests/unit/client/test_client.py; here a table
says what each rule gives for each input.
"""

from __future__ import annotations

import ast
import email.utils
import time
from pathlib import Path

import httpx
import pytest

import asgi_sse._client
from asgi_sse import ParsedEvent
from asgi_sse._client.http import is_event_stream, stream_request
from asgi_sse._client.inbox import Inbox
from asgi_sse._client.reconnect import MIN_BACKOFF, backoff_delay, retry_after_seconds


@pytest.mark.parametrize(
    ("retry", "max_delay", "failures", "jitter", "expected"),
    [
        (1.0, 30.0, 0, 0.0, 1.0),  # the first wait is the reconnection delay
        (1.0, 30.0, 1, 0.0, 2.0),  # then it doubles per consecutive failure
        (1.0, 30.0, 4, 0.0, 16.0),
        (1.0, 30.0, 5, 0.0, 30.0),  # capped at max_delay
        (1.0, 30.0, 10_000, 0.0, 30.0),  # no overflow after a very long outage
        (40.0, 30.0, 3, 0.0, 40.0),  # a server retry above max_delay is still the delay
        (0.0, 30.0, 0, 0.0, 0.0),  # retry: 0 reconnects at once, once
        (0.0, 30.0, 1, 0.0, MIN_BACKOFF * 2),  # then backs off from MIN_BACKOFF
        (1.0, 30.0, 0, 0.5, 0.9),  # jitter takes off up to a fifth
        (1.0, 30.0, 0, 0.999999, 0.8000002),
    ],
)
def test_the_backoff_doubles_from_the_reconnection_delay_up_to_the_cap(
    retry: float, max_delay: float, failures: int, jitter: float, expected: float
) -> None:
    assert backoff_delay(retry, max_delay, failures, jitter) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-1", None),  # neither seconds nor a date
        ("soon", None),
        ("", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: now
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_as_a_future_date_is_the_seconds_until_then() -> None:
    value = email.utils.formatdate(time.time() + 60, usegmt=True)
    seconds = retry_after_seconds(value)
    assert seconds is not None
    assert 55 <= seconds <= 60


BODY = b": keep-alive\n\nevent: a\nid: 1\ndata: x\n\nretry: 2500\ndata: y\n\nid: 9\n\n"


def fed(inbox: Inbox, body: bytes, *, one_byte_at_a_time: bool) -> None:
    chunks = [body[i : i + 1] for i in range(len(body))] if one_byte_at_a_time else [body]
    for chunk in chunks:
        inbox.feed(chunk)


@pytest.mark.parametrize("one_byte_at_a_time", [False, True])
def test_the_inbox_queues_events_with_the_id_each_leaves_behind(
    one_byte_at_a_time: bool,
) -> None:
    inbox = Inbox("0")
    fed(inbox, BODY, one_byte_at_a_time=one_byte_at_a_time)
    assert inbox.retry == 2.5  # seconds
    assert inbox.last_event_id == "9"  # an id-only frame sets it, dispatching nothing
    taken = []
    while inbox:
        taken.append(inbox.take())
    # While others wait, the id left behind is the event's own; after the last one it
    # is the stream's (the id-only frame after it).
    assert taken == [
        (ParsedEvent(event="a", data="x", id="1"), "1"),
        (ParsedEvent(event="message", data="y", id="1", retry=2500), "9"),
    ]


def test_the_inbox_says_whether_an_event_arrived_and_drops_comments() -> None:
    inbox = Inbox()
    assert not inbox.feed(b": ping\n")
    assert not inbox.feed(b"data: half")
    assert inbox.retry is None
    assert inbox.feed(b"\n\n")
    assert inbox.take() == (ParsedEvent(event="message", data="half"), "")


def test_a_reconnected_inbox_parses_a_new_stream_from_the_given_id() -> None:
    inbox = Inbox()
    inbox.feed(b"id: 1\ndata: unfinished")
    inbox.reconnected("1")
    assert inbox.feed(b"data: fresh\n\n")  # the unfinished frame is not continued
    assert inbox.take() == (ParsedEvent(event="message", data="fresh", id="1"), "1")


@pytest.mark.anyio
async def test_the_request_says_what_a_browser_says_and_lets_the_caller_override() -> None:
    async with httpx.AsyncClient() as client:
        request, without_id = [
            stream_request(
                client,
                "GET",
                httpx.URL("http://t/events"),
                last_event_id=last_event_id,
                headers={"Cache-Control": "max-age=0", "X-Trace": "1"},
                content=None,
                json=None,
                connect_timeout=3.0,
            )
            for last_event_id in ("é-1", "")
        ]
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["cache-control"] == "max-age=0"  # the caller's wins
    assert request.headers["x-trace"] == "1"
    sent = [value for name, value in request.headers.raw if name.lower() == b"last-event-id"]
    assert sent == ["é-1".encode()]  # UTF-8, as a browser sends it
    assert request.extensions["timeout"] == {
        "connect": 3.0,
        "read": None,
        "write": 3.0,
        "pool": 3.0,
    }
    assert "last-event-id" not in without_id.headers


@pytest.mark.parametrize(
    ("status", "content_type", "expected"),
    [
        (200, "text/event-stream", True),
        (200, "Text/Event-Stream; charset=utf-8", True),
        (200, "text/plain", False),
        (200, None, False),
        (201, "text/event-stream", False),
        (204, "text/event-stream", False),
    ],
)
def test_an_event_stream_is_a_200_of_that_media_type(
    status: int, content_type: str | None, expected: bool
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    assert is_event_stream(httpx.Response(status, headers=headers)) is expected


@pytest.mark.parametrize("module", ["decode", "errors", "http", "inbox", "options", "reconnect"])
def test_the_rules_import_nothing_async(module: str) -> None:
    # Each module's own imports (its first lines say so): only eventsource and
    # connection wait on anything.
    path = Path(asgi_sse._client.__file__).parent / f"{module}.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"anyio", "asyncio", "trio", "sniffio"}, module
