"""The typed client (asgi_sse.client.EventSource) and the streaming httpx transport
(asgi_sse.testing.ASGIStreamTransport).

Most tests run the client in-process through `ASGIStreamTransport` against small raw
ASGI apps written here (`App`: the n-th request is answered by the n-th handler), so
that statuses, headers, bodies, ``retry:``, ids, redirects and silences are exactly
what a test says. Waits between reconnections go through a recording fake ``sleep``
(`Clock`), so the backoff sequence is measured, not waited for; only the read-timeout
tests wait (a fraction of a second). The status/redirect table of the web-platform-tests
(eventsource/request-status-error, request-redirect) and the resume-after-Last-Event-ID
loop also run against a real uvicorn process (tests/support/client_app.py).
"""

from __future__ import annotations

import email.utils
import random
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import anyio
import anyio.lowlevel
import httpx
import pytest
from pydantic import BaseModel, ValidationError
from typing_extensions import assert_type

from asgi_sse import (
    BaseEvent,
    EventSourceResponse,
    ParsedEvent,
    Reset,
    ResetInfo,
    ServerSentEvent,
)
from asgi_sse.client import EventSource, EventSourceError, InvalidEventData, UnknownEvent
from asgi_sse.testing import ASGIStreamTransport
from tests.support.helpers import HTTPX_GENERATOR_WARNINGS
from tests.support.servers import Server, free_port, running

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.timeout(30),
    *HTTPX_GENERATOR_WARNINGS,
]

BASE = "http://testserver"
TIMEOUT = 5.0  # every in-process wait
REAL_TIMEOUT = 15.0  # every wait on a real server (a loaded 2-core machine)


# -- events ------------------------------------------------------------------------------


class Msg(BaseModel):
    text: str


class Echo(BaseEvent[Msg]):
    """event: echo"""


class ReverseEcho(BaseEvent[Msg]):
    """event: reverse_echo"""


class Tick(BaseEvent[int]):
    """event: tick (tests/support/client_app.py numbers them)"""


def echo(text: str, id: str | None = None) -> bytes:
    return Echo(data=Msg(text=text), id=id).encode()


def reverse(text: str, id: str | None = None) -> bytes:
    return ReverseEcho(data=Msg(text=text), id=id).encode()


def text(event: object) -> str:
    """The text of an `Echo` (anything else fails the test)."""
    assert isinstance(event, Echo), event
    return event.data.text


RESET = Reset(data=ResetInfo(reason="gone", topics=["t"], resume_from="5"), id="5")


# -- the in-process apps -----------------------------------------------------------------


@dataclass
class Request:
    """What the app received: header names lower-case, values as bytes."""

    method: str
    path: str
    query: str
    headers: dict[str, bytes]
    body: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.lower())
        return None if value is None else value.decode()


class Conn:
    """One request, as a handler answers it."""

    def __init__(self, app: App, request: Request, receive: Any, send: Any) -> None:
        self.app = app
        self.request = request
        self._receive = receive
        self._send = send

    async def start(
        self, status: int = 200, headers: Sequence[tuple[str, str]] | None = None
    ) -> None:
        if headers is None:
            headers = [("content-type", "text/event-stream")]
        raw = [(name.encode(), value.encode()) for name, value in headers]
        await self._send({"type": "http.response.start", "status": status, "headers": raw})

    async def send(self, body: bytes, *, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    async def wait_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass  # pragma: no cover - the request body was read already
        self.app.disconnects += 1
        self.app.changed()


Handler = Callable[[Conn], Awaitable[None]]


class App:
    """A raw ASGI app whose n-th request is answered by the n-th handler (the last one
    answers every request after it). Records every request, how many saw the client
    disconnect, and how many finished (their ``finally`` ran)."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = handlers
        self.requests: list[Request] = []
        self.disconnects = 0
        self.finished = 0
        self._changed = anyio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        request = Request(
            scope["method"],
            scope["path"],
            scope["query_string"].decode(),
            {name.decode("latin-1"): value for name, value in scope["headers"]},
            message.get("body", b""),
        )
        self.requests.append(request)
        handler = self.handlers[min(len(self.requests), len(self.handlers)) - 1]
        try:
            await handler(Conn(self, request, receive, send))
        finally:
            self.finished += 1
            self.changed()

    def changed(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds (TimeoutError after a second)."""
        with anyio.fail_after(1):
            while not condition():
                await self._changed.wait()

    def last_event_ids(self) -> list[str | None]:
        return [request.header("last-event-id") for request in self.requests]


def stream(
    *frames: bytes | str, hold: bool = False, headers: Sequence[tuple[str, str]] | None = None
) -> Handler:
    """An event stream of ``frames`` (one body chunk each); then the body ends, or with
    ``hold`` the stream stays open and silent until the client leaves."""

    async def handler(conn: Conn) -> None:
        await conn.start(headers=headers)
        for frame in frames:
            await conn.send(frame.encode() if isinstance(frame, str) else frame)
        if hold:
            await conn.wait_disconnect()
        else:
            await conn.send(b"", more=False)

    return handler


def silent() -> Handler:
    """The headers of an event stream, then nothing until the client leaves."""
    return stream(hold=True)


def answer(status: int, *, headers: Sequence[tuple[str, str]] = (), body: bytes = b"") -> Handler:
    """A plain (not event-stream) response."""

    async def handler(conn: Conn) -> None:
        await conn.start(status, [("content-type", "text/plain"), *headers])
        await conn.send(body, more=False)

    return handler


def redirect(status: int, to: str) -> Handler:
    return answer(status, headers=[("location", to)])


class Clock:
    """A fake ``sleep`` that records the waits it was asked for and returns at once."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await anyio.lowlevel.checkpoint()


def no_jitter() -> float:
    return 0.0


@asynccontextmanager
async def client_for(app: Any, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client to ``app`` in this process, through `ASGIStreamTransport`."""
    transport = ASGIStreamTransport(app, **options)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


class Failing(httpx.AsyncBaseTransport):
    """Raises ``errors`` (one per request, in order) before passing requests on to
    ``inner``: network errors before any response."""

    def __init__(self, inner: ASGIStreamTransport, *errors: Exception) -> None:
        self.inner = inner
        self.errors = list(errors)
        self.requests: list[httpx.Request] = []

    async def __aenter__(self) -> Failing:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.inner.__aexit__(exc_type, exc, traceback)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.errors:
            raise self.errors.pop(0)
        return await self.inner.handle_async_request(request)


class BrokenBody(httpx.AsyncByteStream):
    """A body that sends ``chunks`` and then fails as a reset connection does."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        raise httpx.ReadError("connection reset by peer")


# -- typing ------------------------------------------------------------------------------


class E3(BaseEvent[int]):
    pass


class E4(BaseEvent[int]):
    pass


class E5(BaseEvent[int]):
    pass


class E6(BaseEvent[int]):
    pass


async def test_the_iterated_type_is_the_union_of_the_classes() -> None:
    """Checked by mypy (``assert_type``) as well as at run time."""
    clock = Clock()
    app = App(
        stream(echo("a", "1"), reverse("b", "2"), b"event: other\ndata: x\n\n", RESET.encode()),
        answer(204),
    )
    got: list[Echo | ReverseEcho | Reset | ParsedEvent] = []
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            source = EventSource("/", events=(Echo, ReverseEcho), client=client, sleep=clock.sleep)
            assert_type(source, EventSource[Echo | ReverseEcho | Reset | ParsedEvent])
            async with source:
                async for event in source:
                    assert_type(event, Echo | ReverseEcho | Reset | ParsedEvent)
                    got.append(event)
    assert got == [
        Echo(data=Msg(text="a"), id="1"),
        ReverseEcho(data=Msg(text="b"), id="2"),
        ParsedEvent("other", "x", "2"),
        RESET,
    ]
    assert_type(EventSource(BASE), EventSource[Reset | ParsedEvent])
    assert_type(EventSource(BASE, events=(Echo,)), EventSource[Echo | Reset | ParsedEvent])
    assert_type(
        EventSource(BASE, events=(Echo, ReverseEcho, E3)),
        EventSource[Echo | ReverseEcho | E3 | Reset | ParsedEvent],
    )
    assert_type(
        EventSource(BASE, events=(Echo, ReverseEcho, E3, E4, E5)),
        EventSource[Echo | ReverseEcho | E3 | E4 | E5 | Reset | ParsedEvent],
    )
    # More classes than the overloads spell out: still typed, as any BaseEvent.
    assert_type(
        EventSource(BASE, events=(Echo, ReverseEcho, E3, E4, E5, E6)),
        EventSource[BaseEvent[Any] | ParsedEvent],
    )


# -- decoding ----------------------------------------------------------------------------


async def test_events_decode_into_their_classes_in_stream_order() -> None:
    clock = Clock()
    app = App(
        stream(
            ": a comment is never an event\n\n",
            echo("a", "1"),
            b"data: 5\n\n",  # no event name: "message", BaseEvent[int] itself
            reverse("b"),
            RESET.encode(),
            b"event: other\ndata: raw\n\n",
        ),
        answer(204),
    )
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/", events=(Echo, ReverseEcho, BaseEvent[int]), client=client, sleep=clock.sleep
            ) as source,
        ):
            got = [event async for event in source]
    assert got == [
        Echo(data=Msg(text="a"), id="1"),
        BaseEvent[int](data=5, id="1"),  # the last event id is sticky (WHATWG)
        ReverseEcho(data=Msg(text="b"), id="1"),
        RESET,
        ParsedEvent("other", "raw", "5"),
    ]
    assert source.last_event_id == "5"
    assert source.connections == 2


async def test_a_frame_split_across_many_chunks_is_one_event() -> None:
    clock = Clock()
    frame = echo("split é", "1") + b'event: echo\r\ndata: {"text": "crlf"}\r\n\r\n'
    app = App(stream(*[frame[i : i + 1] for i in range(len(frame))]), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", events=(Echo,), client=client, sleep=clock.sleep) as source,
        ):
            got = [event async for event in source]
    assert got == [Echo(data=Msg(text="split é"), id="1"), Echo(data=Msg(text="crlf"), id="1")]


async def test_unknown_event_names_come_out_raw_or_raise() -> None:
    app = App(stream(b"event: surprise\nid: 3\ndata: {}\n\n", echo("after"), hold=True))
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            async with EventSource("/", events=(Echo,), client=client) as raw:
                assert await anext(raw) == ParsedEvent("surprise", "{}", "3")
            source = EventSource("/", events=(Echo,), client=client, on_unknown="raise")
            async with source:
                with pytest.raises(UnknownEvent, match="'surprise'") as info:
                    await anext(source)
                assert info.value.event == ParsedEvent("surprise", "{}", "3")
                # The stream goes on after the error.
                assert await anext(source) == Echo(data=Msg(text="after"), id="3")


async def test_reset_is_always_known_even_when_unknown_names_raise() -> None:
    clock = Clock()
    app = App(stream(RESET.encode()), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", client=client, on_unknown="raise", sleep=clock.sleep) as source,
        ):
            assert [event async for event in source] == [RESET]


@pytest.mark.parametrize("data", ['{"nope": 1}', "not json", '{"text": 5}'])
async def test_invalid_data_raises_an_error_naming_the_event(data: str) -> None:
    clock = Clock()
    app = App(stream(f"event: echo\nid: 7\ndata: {data}\n\n", echo("ok")), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", events=(Echo,), client=client, sleep=clock.sleep) as source,
        ):
            with pytest.raises(InvalidEventData, match=r"'echo' event \(id '7'\).*valid Echo"):
                await anext(source)
            # The next event still comes.
            assert await anext(source) == Echo(data=Msg(text="ok"), id="7")
    with pytest.raises(InvalidEventData) as info:
        async with client_for(App(stream(f"event: echo\ndata: {data}\n\n"))) as client:
            async with EventSource("/", events=(Echo,), client=client) as source:
                await anext(source)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value.__cause__, ValidationError)
    assert info.value.event == ParsedEvent("echo", data)
    assert "(id" not in str(info.value)  # no id: none named


async def test_invalid_data_comes_out_raw_with_on_invalid_raw() -> None:
    clock = Clock()
    app = App(stream(b"event: echo\ndata: [1]\n\n", echo("ok")), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/", events=(Echo,), client=client, on_invalid="raw", sleep=clock.sleep
            ) as source,
        ):
            got = [event async for event in source]
    assert got == [ParsedEvent("echo", "[1]"), Echo(data=Msg(text="ok"))]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"retry": -1}, ValueError),
        ({"retry": float("nan")}, ValueError),
        ({"retry": 5, "max_delay": 1}, ValueError),
        ({"read_timeout": 0}, ValueError),
        ({"max_retries": -1}, ValueError),
        ({"on_unknown": "drop"}, ValueError),
        ({"on_invalid": "skip"}, ValueError),
        ({"content": b"x", "json": {"x": 1}}, ValueError),
        ({"events": (Msg,)}, TypeError),
        ({"events": (Echo(data=Msg(text="x")),)}, TypeError),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        EventSource(BASE, **options)


# -- the request ---------------------------------------------------------------------------


async def test_the_request_says_what_a_browser_says() -> None:
    app = App(stream(echo("a"), hold=True))
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            async with EventSource("/events?x=1", client=client, headers={"X-Token": "t"}) as s:
                await anext(s)
            async with EventSource("/events", client=client, last_event_id="41") as s:
                await anext(s)
    first, resumed = app.requests
    assert (first.method, first.path, first.query) == ("GET", "/events", "x=1")
    assert first.header("accept") == "text/event-stream"
    assert first.header("cache-control") == "no-store"
    assert first.header("x-token") == "t"
    assert first.header("last-event-id") is None  # none yet: no header at all
    assert resumed.header("last-event-id") == "41"


async def test_last_event_id_rules_over_reconnections() -> None:
    """WHATWG: the header only when the last event id is not empty; an empty ``id``
    clears it; an id holding NUL is ignored; an id-only frame sets it; a frame the body
    ended in the middle of is discarded, its id too; an id is sent as UTF-8."""
    clock = Clock()
    app = App(
        stream("id: 1\ndata: a\n\n"),
        stream("id\ndata: b\n\n"),  # `id` with no colon: the empty id
        stream("id: x\0y\ndata: c\n\n"),  # NUL: ignored, the id stays empty
        stream("id: é\n\n"),  # an id, no event
        stream("id: 9\ndata: d\n\nid: 10\ndata: never dispatched"),
        answer(204),
    )
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", client=client, sleep=clock.sleep, jitter=no_jitter) as source,
        ):
            got = [event async for event in source]
    assert got == [
        ParsedEvent("message", "a", "1"),
        ParsedEvent("message", "b", ""),
        ParsedEvent("message", "c", ""),
        ParsedEvent("message", "d", "9"),
    ]
    assert app.last_event_ids() == [None, "1", None, None, "é", "9"]
    assert app.requests[4].headers["last-event-id"] == "é".encode()
    assert source.last_event_id == "9"


async def test_last_event_id_is_that_of_the_last_event_taken() -> None:
    """Several events in one chunk: `last_event_id` follows the events the consumer took,
    so that it can be saved after each event and resumed from without a loss."""
    app = App(stream("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\n", hold=True))
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client, EventSource("/", client=client) as source:
            ids = []
            for _ in range(3):
                await anext(source)
                ids.append(source.last_event_id)
    assert ids == ["1", "2", "3"]


async def test_retry_sets_the_reconnection_delay() -> None:
    clock = Clock()
    app = App(
        stream("retry: 1500\ndata: a\n\n"),
        stream("retry: 2.5\ndata: b\n\nretry: x\n\n"),  # not digits: ignored
        answer(204),
    )
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", client=client, sleep=clock.sleep, jitter=no_jitter) as source,
        ):
            got = [event.data async for event in source]
    assert got == ["a", "b"]
    assert clock.sleeps == [1.5, 1.5]
    assert source.retry == 1.5


async def test_the_first_delay_is_the_retry_option() -> None:
    clock = Clock()
    app = App(stream("data: a\n\n"), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/", client=client, retry=0.25, sleep=clock.sleep, jitter=no_jitter
            ) as source,
        ):
            assert [event.data async for event in source] == ["a"]
    assert clock.sleeps == [0.25]


async def test_compressed_streams_are_decoded() -> None:
    """httpx asks for gzip by default, so a server (or a proxy) may compress the stream:
    the client must parse the decoded bytes, one flushed piece at a time."""
    compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)  # gzip

    def piece(frame: bytes) -> bytes:
        return compressor.compress(frame) + compressor.flush(zlib.Z_SYNC_FLUSH)

    app = App(
        stream(
            piece(echo("a", "1")),
            piece(echo("b", "2")),
            hold=True,
            headers=[("content-type", "text/event-stream"), ("content-encoding", "gzip")],
        )
    )
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", events=(Echo,), client=client) as source,
        ):
            got = [await anext(source), await anext(source)]
    assert got == [Echo(data=Msg(text="a"), id="1"), Echo(data=Msg(text="b"), id="2")]


# -- what reconnects -----------------------------------------------------------------------


async def test_the_end_of_the_body_reconnects_after_the_retry_delay() -> None:
    clock = Clock()
    app = App(stream(echo("a", "1")), stream(echo("b", "2")), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", events=(Echo,), client=client, sleep=clock.sleep) as source,
        ):
            assert [text(event) async for event in source] == ["a", "b"]
    assert source.connections == 3
    assert len(app.requests) == 3
    assert app.last_event_ids() == [None, "1", "2"]
    assert len(clock.sleeps) == 2
    assert all(2.4 <= wait <= 3.0 for wait in clock.sleeps)  # the default 3 s, jittered


async def test_a_network_error_before_the_response_reconnects() -> None:
    clock = Clock()
    app = App(stream(echo("a")), answer(204))
    transport = Failing(ASGIStreamTransport(app), httpx.ConnectError("refused"))
    with anyio.fail_after(TIMEOUT):
        async with (
            httpx.AsyncClient(transport=transport, base_url=BASE) as client,
            EventSource(
                "/", events=(Echo,), client=client, sleep=clock.sleep, jitter=no_jitter
            ) as source,
        ):
            assert [text(event) async for event in source] == ["a"]
    assert len(transport.requests) == 3
    assert clock.sleeps == [3.0, 3.0]


async def test_a_network_error_in_the_body_reconnects_with_the_last_event_id() -> None:
    clock = Clock()
    requests: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) == 1:
            body: httpx.AsyncByteStream = BrokenBody(echo("a", "1"), b"event: echo\ndata: {")
        elif len(requests) == 2:
            body = BrokenBody(echo("b", "2"))
        else:
            return httpx.Response(204)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    with anyio.fail_after(TIMEOUT):
        async with (
            httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url=BASE) as client,
            EventSource(
                "/", events=(Echo,), client=client, sleep=clock.sleep, jitter=no_jitter
            ) as source,
        ):
            got = [event async for event in source]
    assert got == [Echo(data=Msg(text="a"), id="1"), Echo(data=Msg(text="b"), id="2")]
    assert [r.headers.get("last-event-id") for r in requests] == [None, "1", "2"]
    assert clock.sleeps == [3.0, 3.0]  # an event came on each: no backoff


async def test_a_silent_stream_reconnects_after_read_timeout() -> None:
    clock = Clock()
    app = App(silent(), stream(echo("a"), hold=True))
    started = time.monotonic()
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/",
                events=(Echo,),
                client=client,
                read_timeout=0.2,
                sleep=clock.sleep,
                jitter=no_jitter,
            ) as source,
        ):
            assert text(await anext(source)) == "a"
            assert time.monotonic() - started >= 0.2
            assert source.connections == 2
            assert app.disconnects == 1  # the silent one was closed: the app saw it leave
            assert app.finished == 1
    assert clock.sleeps == [3.0]
    assert app.finished == 2


async def test_keep_alive_comments_keep_a_stream_alive() -> None:
    async def pings(conn: Conn) -> None:
        await conn.start()
        for _ in range(16):  # 0.8 s of comments, each well within the read timeout
            await anyio.sleep(0.05)
            await conn.send(b": ping\n\n")
        await conn.send(b"data: after the pings\n\n")
        await conn.wait_disconnect()

    app = App(pings)
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", client=client, read_timeout=0.5) as source,
        ):
            assert (await anext(source)).data == "after the pings"
    assert source.connections == 1


async def test_a_server_that_never_answers_is_a_silence_too() -> None:
    """No response headers for read_timeout (plus connect_timeout): reconnect, as for a
    silent body."""

    async def no_answer(conn: Conn) -> None:
        await conn.wait_disconnect()

    clock = Clock()
    app = App(no_answer, stream(echo("a"), hold=True))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/",
                events=(Echo,),
                client=client,
                read_timeout=0.2,
                connect_timeout=0.1,
                sleep=clock.sleep,
            ) as source,
        ):
            assert text(await anext(source)) == "a"
            assert source.connections == 2
            # The abandoned request is a disconnect.
            await app.until(lambda: app.disconnects == 1)
    assert len(clock.sleeps) == 1


async def test_read_timeout_none_never_times_out() -> None:
    app = App(silent())
    async with client_for(app) as client:
        async with EventSource("/", client=client, read_timeout=None) as source:
            with anyio.move_on_after(0.3) as scope:
                await anext(source)
    assert scope.cancelled_caught
    assert source.connections == 1
    assert app.disconnects == 1  # cancelling the read and leaving closes the stream


# -- statuses ------------------------------------------------------------------------------


async def test_204_ends_cleanly_with_no_further_request() -> None:
    clock = Clock()
    app = App(answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", client=client, sleep=clock.sleep) as source,
        ):
            assert [event async for event in source] == []
            with pytest.raises(StopAsyncIteration):
                await anext(source)
    assert len(app.requests) == 1
    assert clock.sleeps == []


async def test_204_on_a_reconnection_ends_after_the_events() -> None:
    clock = Clock()
    app = App(stream(echo("a", "1")), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", events=(Echo,), client=client, sleep=clock.sleep) as source,
        ):
            assert [text(event) async for event in source] == ["a"]
    assert len(app.requests) == 2
    assert app.last_event_ids() == [None, "1"]


@pytest.mark.parametrize("status", [205, 210, 299, 304, 400, 404, 410, 500, 502, 503, 504])
async def test_other_statuses_fail_with_the_response_and_never_reconnect(status: int) -> None:
    """web-platform-tests eventsource/request-status-error (and 503 without reconnect_on)."""
    clock = Clock()
    body = b"" if status in (205, 304) else b"status %d" % status
    app = App(answer(status, body=body, headers=[("retry-after", "1")]), stream(echo("never")))
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            source = EventSource("/events", client=client, sleep=clock.sleep)
            async with source:
                with pytest.raises(EventSourceError, match=f"answered {status}") as info:
                    await anext(source)
                with pytest.raises(StopAsyncIteration):
                    await anext(source)
    error = info.value
    assert error.response.status_code == status
    assert error.response.is_closed
    assert error.body == body
    assert f"{BASE}/events" in str(error)
    assert source.response is error.response
    assert len(app.requests) == 1
    assert clock.sleeps == []


async def test_the_error_keeps_the_first_64_kib_of_the_body() -> None:
    body = bytes(range(256)) * 400  # 100 KiB
    app = App(answer(500, body=body))
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(EventSourceError) as info:
            async with client_for(app) as client, EventSource("/", client=client) as source:
                await anext(source)
    assert info.value.body == body[:65536]
    assert app.finished == 1


@pytest.mark.parametrize("content_type", ["text/plain", None, "text/event-streams"])
async def test_another_content_type_fails(content_type: str | None) -> None:
    headers = [] if content_type is None else [("content-type", content_type)]
    app = App(stream("data: a\n\n", headers=headers))
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client, EventSource("/", client=client) as source:
            with pytest.raises(EventSourceError, match=content_type or "no content type") as info:
                await anext(source)
    assert info.value.response.status_code == 200
    assert info.value.body == b"data: a\n\n"
    assert len(app.requests) == 1


@pytest.mark.parametrize(
    "content_type", ["text/event-stream; charset=utf-8", "Text/Event-Stream", " text/event-stream"]
)
async def test_the_content_type_is_matched_by_its_essence(content_type: str) -> None:
    app = App(stream("data: a\n\n", hold=True, headers=[("content-type", content_type)]))
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client, EventSource("/", client=client) as source:
            assert (await anext(source)).data == "a"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_followed_and_reconnections_start_over(status: int) -> None:
    """web-platform-tests eventsource/request-redirect; a reconnection requests the
    EventSource's own URL again (WHATWG), with the Last-Event-ID."""
    clock = Clock()
    app = App(
        redirect(status, "/stream"),
        stream(echo("a", "1")),
        redirect(status, "/stream"),
        answer(204),
    )
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/start", events=(Echo,), client=client, sleep=clock.sleep) as source,
        ):
            assert [text(event) async for event in source] == ["a"]
    assert [r.path for r in app.requests] == ["/start", "/stream", "/start", "/stream"]
    assert [r.method for r in app.requests] == ["GET"] * 4
    assert app.last_event_ids() == [None, None, "1", "1"]
    assert {r.header("accept") for r in app.requests} == {"text/event-stream"}


# -- backoff -------------------------------------------------------------------------------


async def test_the_delay_doubles_per_failure_up_to_max_delay() -> None:
    clock = Clock()
    app = App(*[answer(503)] * 7, answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/",
                client=client,
                retry=1,
                max_delay=10,
                reconnect_on=(503,),
                sleep=clock.sleep,
                jitter=no_jitter,
            ) as source,
        ):
            assert [event async for event in source] == []
    assert clock.sleeps == [1, 2, 4, 8, 10, 10, 10]
    assert len(app.requests) == 8


async def test_jitter_takes_off_at_most_a_fifth() -> None:
    bases = [1, 2, 4, 8, 8, 8]
    for jitter in (random.Random(7).random, lambda: 0.999999):
        clock = Clock()
        app = App(*[answer(503)] * 6, answer(204))
        with anyio.fail_after(TIMEOUT):
            async with (
                client_for(app) as client,
                EventSource(
                    "/",
                    client=client,
                    retry=1,
                    max_delay=8,
                    reconnect_on=(503,),
                    sleep=clock.sleep,
                    jitter=jitter,
                ) as source,
            ):
                assert [event async for event in source] == []
        assert len(clock.sleeps) == len(bases)
        for wait, base in zip(clock.sleeps, bases, strict=True):
            assert 0.8 * base <= wait <= base
        assert any(wait < base for wait, base in zip(clock.sleeps, bases, strict=True))


async def test_the_default_jitter_is_random_within_bounds() -> None:
    clock = Clock()
    app = App(*[answer(503)] * 20, answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/", client=client, retry=1, max_delay=1, reconnect_on=(503,), sleep=clock.sleep
            ) as s,
        ):
            assert [event async for event in s] == []
    assert all(0.8 <= wait <= 1 for wait in clock.sleeps)
    assert len(set(clock.sleeps)) > 1


async def test_an_event_resets_the_backoff() -> None:
    clock = Clock()
    app = App(
        answer(503),
        answer(503),
        stream(echo("a")),  # an event: healthy again; the end of its body is one failure
        answer(503),
        answer(204),
    )
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/",
                events=(Echo,),
                client=client,
                retry=1,
                reconnect_on=(503,),
                sleep=clock.sleep,
                jitter=no_jitter,
            ) as source,
        ):
            assert [text(event) async for event in source] == ["a"]
            assert source.failures == 2
    assert clock.sleeps == [1, 2, 1, 2]


async def test_a_stream_that_ends_without_an_event_counts_as_a_failure() -> None:
    clock = Clock()
    app = App(stream(": only a comment\n\n"), stream(), stream("id: 3\n\n"), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", client=client, retry=1, sleep=clock.sleep, jitter=no_jitter) as s,
        ):
            assert [event async for event in s] == []
    assert clock.sleeps == [1, 2, 4]
    assert app.last_event_ids() == [None, None, None, "3"]


async def test_a_server_retry_above_max_delay_is_still_the_delay() -> None:
    clock = Clock()
    app = App(stream("retry: 60000\ndata: a\n\n"), answer(503), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/",
                client=client,
                max_delay=30,
                reconnect_on=(503,),
                sleep=clock.sleep,
                jitter=no_jitter,
            ) as s,
        ):
            assert [event.data async for event in s] == ["a"]
    assert clock.sleeps == [60, 60]


async def test_the_backoff_survives_a_very_long_outage() -> None:
    """After ~1000 consecutive failures (8 hours of a server down, at 30 s apart) the
    delay is still max_delay, not an OverflowError from 2.0 ** failures."""
    clock = Clock()
    app = App(answer(503), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            source = EventSource(
                "/",
                client=client,
                max_delay=30,
                reconnect_on=(503,),
                sleep=clock.sleep,
                jitter=no_jitter,
            )
            source.failures = 2000
            async with source:
                assert [event async for event in source] == []
    assert clock.sleeps == [30]


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_reconnect_on_statuses_honours_retry_after(status: int) -> None:
    future = email.utils.format_datetime(
        datetime.now(timezone.utc) + timedelta(seconds=100), usegmt=True
    )
    past = email.utils.format_datetime(
        datetime.now(timezone.utc) - timedelta(seconds=100), usegmt=True
    )
    clock = Clock()
    app = App(
        answer(status, headers=[("retry-after", "7")]),
        answer(status, headers=[("retry-after", "0")]),  # less than the backoff: the backoff
        answer(status, headers=[("retry-after", "120")]),  # more than max_delay: honoured
        answer(status, headers=[("retry-after", future)]),
        answer(status, headers=[("retry-after", past)]),
        answer(status, headers=[("retry-after", "soon")]),  # not a delay: ignored
        answer(204),
    )
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/",
                client=client,
                retry=1,
                max_delay=30,
                reconnect_on=(502, 503, 504),
                sleep=clock.sleep,
                jitter=no_jitter,
            ) as source,
        ):
            assert [event async for event in source] == []
    assert clock.sleeps[:3] == [7, 2, 120]
    assert 95 <= clock.sleeps[3] <= 100
    assert clock.sleeps[4:] == [16, 30]
    assert len(app.requests) == 7


async def test_max_retries_raises_the_last_network_error() -> None:
    clock = Clock()
    app = App(stream(echo("never")))
    errors = [httpx.ConnectError(f"refused {i}") for i in range(3)]
    transport = Failing(ASGIStreamTransport(app), *errors)
    with anyio.fail_after(TIMEOUT):
        async with (
            httpx.AsyncClient(transport=transport, base_url=BASE) as client,
            EventSource("/", client=client, max_retries=2, sleep=clock.sleep) as source,
        ):
            with pytest.raises(httpx.ConnectError, match="refused 2"):
                await anext(source)
            with pytest.raises(StopAsyncIteration):
                await anext(source)
    assert len(transport.requests) == 3
    assert len(clock.sleeps) == 2
    assert app.requests == []


async def test_max_retries_raises_a_read_timeout() -> None:
    clock = Clock()
    app = App(silent())
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/", client=client, read_timeout=0.1, max_retries=1, sleep=clock.sleep
            ) as source,
        ):
            with pytest.raises(TimeoutError, match=r"nothing arrived for 0\.1 s"):
                await anext(source)
    assert len(app.requests) == 2
    assert app.disconnects == 2


async def test_max_retries_on_a_reconnect_status_raises_its_error() -> None:
    """Giving up on 503s is an error carrying the last response, not a clean end (which
    would look like a 204)."""
    clock = Clock()
    app = App(answer(503, body=b"busy"))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource(
                "/", client=client, max_retries=2, reconnect_on=(503,), sleep=clock.sleep
            ) as source,
        ):
            with pytest.raises(EventSourceError, match="503") as info:
                await anext(source)
    assert info.value.response.status_code == 503
    assert len(app.requests) == 3
    assert len(clock.sleeps) == 2


async def test_max_retries_zero_ends_with_the_body() -> None:
    app = App(stream(echo("a")), stream(echo("never")))
    with anyio.fail_after(TIMEOUT):
        async with (
            client_for(app) as client,
            EventSource("/", events=(Echo,), client=client, max_retries=0) as source,
        ):
            assert [text(event) async for event in source] == ["a"]
    assert len(app.requests) == 1


# -- a request with a body -----------------------------------------------------------------


async def test_a_post_stream_is_not_sent_again_unless_resend() -> None:
    clock = Clock()
    app = App(stream(echo("a", "1")), stream(echo("b", "2")), answer(204))
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            once = EventSource(
                "/mcp",
                events=(Echo,),
                client=client,
                method="post",
                json={"method": "tools/call"},
                sleep=clock.sleep,
            )
            async with once:
                assert [text(event) async for event in once] == ["a"]
            assert len(app.requests) == 1
            again = EventSource(
                "/mcp",
                events=(Echo,),
                client=client,
                method="POST",
                json={"method": "tools/call"},
                resend=True,
                sleep=clock.sleep,
            )
            async with again:
                assert [text(event) async for event in again] == ["b"]
    assert [r.method for r in app.requests] == ["POST"] * 3
    assert {r.body for r in app.requests} == {b'{"method":"tools/call"}'}
    assert {r.header("content-type") for r in app.requests} == {"application/json"}
    assert app.last_event_ids() == [None, None, "2"]
    assert len(clock.sleeps) == 1  # the first source ended without waiting for anything


async def test_a_post_stream_that_failed_raises_instead_of_sending_again() -> None:
    clock = Clock()
    requests: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        stream = BrokenBody(echo("a", "1"))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    with anyio.fail_after(TIMEOUT):
        async with (
            httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url=BASE) as client,
            EventSource(
                "/",
                events=(Echo,),
                client=client,
                method="POST",
                content=b"raw body",
                sleep=clock.sleep,
            ) as source,
        ):
            assert text(await anext(source)) == "a"
            with pytest.raises(httpx.ReadError):
                await anext(source)
            with pytest.raises(StopAsyncIteration):
                await anext(source)
    assert len(requests) == 1
    assert requests[0].method == "POST"
    assert requests[0].content == b"raw body"


# -- lifecycle -----------------------------------------------------------------------------


async def test_leaving_the_block_disconnects() -> None:
    app = App(stream(echo("a"), hold=True))
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            async with EventSource("/", events=(Echo,), client=client) as source:
                async for event in source:
                    assert event == Echo(data=Msg(text="a"))
                    break
            assert app.disconnects == 1
            assert app.finished == 1
            assert source.response is not None
            assert source.response.is_closed
            await source.aclose()  # again: nothing to do
            with pytest.raises(StopAsyncIteration):
                await anext(source)
            assert not client.is_closed  # not the source's own client


async def test_cancelling_a_read_then_leaving_disconnects() -> None:
    app = App(silent())
    async with client_for(app) as client:
        with anyio.move_on_after(0.1):
            async with EventSource("/", client=client) as source:
                await anext(source)
        await app.until(lambda: app.finished == 1)
    assert app.disconnects == 1
    assert source.connections == 1


async def test_without_async_with_there_is_no_client() -> None:
    source = EventSource(BASE)
    with pytest.raises(RuntimeError, match="async with"):
        await anext(source)


# -- the transport -------------------------------------------------------------------------


async def endless(conn: Conn) -> None:
    """Numbered events until the client leaves (a well-behaved app: it watches for the
    disconnect, since a send after it returns at once, as under uvicorn)."""
    await conn.start()
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            await conn.wait_disconnect()
            group.cancel_scope.cancel()

        group.start_soon(watch)
        number = 0
        while True:
            number += 1
            await conn.send(b"data: %d\n\n" % number)
            await anyio.lowlevel.checkpoint()


# The test's own `aiter_lines`, left after a `break` as plain httpx code does.
@pytest.mark.filterwarnings("ignore:Async generator 'httpx\\._models\\.Response\\.aiter_")
async def test_an_endless_stream_is_readable_with_plain_httpx() -> None:
    app = App(endless)
    lines: list[str] = []
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            async with client.stream("GET", "/endless") as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream"
                async for line in response.aiter_lines():
                    lines.append(line)
                    if len(lines) == 6:
                        break
            # Closing the response was the disconnect: the app was stopped, its
            # `finally` ran.
            assert app.finished == 1
            assert app.disconnects == 1
    assert lines == ["data: 1", "", "data: 2", "", "data: 3", ""]


async def test_closing_the_response_is_http_disconnect() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hi", "more_body": True})
        try:
            seen.append((await receive())["type"])
        finally:
            seen.append("finally")

    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            async with client.stream("GET", "/") as response:
                assert await response.aiter_raw().__anext__() == b"hi"
                assert seen == ["http.request"]
            assert seen == ["http.request", "http.disconnect", "finally"]


async def test_an_app_that_ignores_the_disconnect_is_cancelled() -> None:
    cancelled = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(TIMEOUT):
        async with client_for(app, finish_timeout=0.1) as client:
            async with client.stream("GET", "/") as response:
                await response.aiter_raw().__anext__()
            # Closing waited finish_timeout, then cancelled the app.
            with anyio.fail_after(1):
                await cancelled.wait()


async def test_leaving_the_client_disconnects_responses_left_open() -> None:
    app = App(endless)
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            response = await client.send(client.build_request("GET", "/"), stream=True)
            assert response.status_code == 200
        assert app.finished == 1
        assert app.disconnects == 1


async def test_an_error_in_the_client_code_comes_out_as_itself() -> None:
    """Not wrapped in an ExceptionGroup by the transport's task group: a failing assert
    reads as itself, ``pytest.raises`` around the client works."""
    app = App(stream(echo("a"), hold=True))
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(LookupError, match="mine"):
            async with client_for(app) as client, client.stream("GET", "/"):
                raise LookupError("mine")
        assert app.disconnects == 1
        with pytest.raises(EventSourceError):
            async with client_for(App(answer(404))) as client:
                async with EventSource("/", client=client) as source:
                    await anext(source)


async def test_a_cancelled_client_block_stops_its_apps() -> None:
    """The apps run in the client's task group: a cancellation around the client block
    reaches them too (their ``finally`` runs), and is not an error."""
    app = App(stream(echo("a"), hold=True))
    with anyio.fail_after(TIMEOUT):
        with anyio.move_on_after(0.1) as scope:
            async with client_for(app) as client, client.stream("GET", "/"):
                await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert app.finished == 1


async def test_an_app_exception_before_the_response_is_raised_from_the_request() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise LookupError("before the start")

    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            with pytest.raises(LookupError, match="before the start"):
                await client.get("/")
        async with client_for(app, raise_app_exceptions=False) as client:
            response = await client.get("/")
    assert response.status_code == 500
    assert response.content == b""


async def test_an_app_that_answers_nothing_is_a_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return

    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            response = await client.get("/")
    assert response.status_code == 500


async def test_an_app_exception_after_the_start_is_raised_at_the_end_of_the_body() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise LookupError("after the start")

    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            async with client.stream("GET", "/") as response:
                assert response.status_code == 200
                chunks: list[bytes] = []
                with pytest.raises(LookupError, match="after the start"):
                    async for chunk in response.aiter_raw():
                        chunks.append(chunk)
                assert chunks == [b"part"]
        async with client_for(app, raise_app_exceptions=False) as client:
            response = await client.get("/")
            assert response.content == b"part"


async def test_other_messages_are_ignored() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.debug", "info": {}})  # an extension's message
        await send({"type": "http.response.body", "body": b"ok"})

    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            response = await client.get("/")
    assert response.content == b"ok"


async def test_the_transport_without_async_with_raises_a_clear_error() -> None:
    client = httpx.AsyncClient(transport=ASGIStreamTransport(App(answer(200))), base_url=BASE)
    try:
        with pytest.raises(RuntimeError, match=r"async with httpx\.AsyncClient"):
            await client.get("/")
    finally:
        await client.aclose()


async def test_the_request_reaches_the_app() -> None:
    scopes: list[dict[str, Any]] = []
    app = App(answer(200, body=b"ok"))

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(dict(scope))
        await app(scope, receive, send)

    with anyio.fail_after(TIMEOUT):
        transport = ASGIStreamTransport(recording, root_path="/root", client=("10.0.0.1", 9))
        async with httpx.AsyncClient(transport=transport, base_url="http://h:8000") as client:
            response = await client.post(
                "/a%20b?x=1", content=b"payload", headers={"X-Test": "yes"}
            )
    assert response.content == b"ok"
    (request,) = app.requests
    assert (request.method, request.body, request.header("x-test")) == ("POST", b"payload", "yes")
    (scope,) = scopes
    assert scope["path"] == "/root/a b"
    assert scope["raw_path"] == b"/root/a%20b"
    assert scope["query_string"] == b"x=1"
    assert scope["root_path"] == "/root"
    assert scope["client"] == ("10.0.0.1", 9)
    assert scope["server"] == ("h", 8000)
    assert scope["scheme"] == "http"
    assert (b"host", b"h:8000") in scope["headers"]


@pytest.mark.parametrize(
    ("target", "path", "raw_path"),
    [
        ("/a%2520b", "/a%20b", b"/a%2520b"),  # decoded once, not twice
        ("/a%2Fb?x=%2F", "/a/b", b"/a%2Fb"),
        ("/caf%C3%A9", "/caf\u00e9", b"/caf%C3%A9"),  # UTF-8
        ("/caf\u00e9", "/caf\u00e9", b"/caf%C3%A9"),  # httpx escapes it as it sends it
    ],
)
async def test_the_path_is_decoded_once_as_uvicorn_does(
    target: str, path: str, raw_path: bytes
) -> None:
    # uvicorn: path = unquote(raw_path.decode("ascii")); raw_path as sent.
    scopes: list[dict[str, Any]] = []
    app = App(answer(200, body=b"ok"))

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(dict(scope))
        await app(scope, receive, send)

    with anyio.fail_after(TIMEOUT):
        transport = ASGIStreamTransport(recording)
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
            response = await client.get(target)
    assert response.content == b"ok"
    (scope,) = scopes
    assert (scope["path"], scope["raw_path"]) == (path, raw_path)


async def test_an_app_that_waits_for_the_disconnect_after_its_response_finishes() -> None:
    """ASGI servers answer ``http.disconnect`` once the response is complete; apps such
    as Quart wait for it before they return, so the body must not wait for them."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        assert (await receive())["type"] == "http.disconnect"

    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            response = await client.get("/")
    assert response.content == b"done"


async def test_a_request_cancelled_before_the_response_is_a_disconnect() -> None:
    async def no_answer(conn: Conn) -> None:
        await conn.wait_disconnect()

    app = App(no_answer)
    with anyio.fail_after(TIMEOUT):
        async with client_for(app) as client:
            with anyio.move_on_after(0.1):
                await client.get("/")
            await app.until(lambda: app.finished == 1)
    assert app.disconnects == 1


def test_importing_the_package_or_its_test_tools_does_not_import_httpx() -> None:
    code = (
        "import sys, asgi_sse, asgi_sse.testing\n"
        "assert 'httpx' not in sys.modules, 'httpx imported'\n"
        "assert asgi_sse.testing.ASGIStreamTransport.__name__ == 'ASGIStreamTransport'\n"
        "assert 'httpx' in sys.modules\n"
        "try:\n"
        "    asgi_sse.testing.nothing\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- a real server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running("uvicorn", "tests.support.client_app:app") as server:
        yield server


def new_key() -> str:
    return uuid.uuid4().hex[:12]


async def hits(server: Server, key: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=REAL_TIMEOUT) as client:
        response = await client.get(server.url(f"/hits?key={key}"))
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()
    return result


@pytest.mark.parametrize("status", [204, 205, 210, 299, 404, 410, 503])
async def test_real_server_statuses(server: Server, status: int) -> None:
    """web-platform-tests eventsource/request-status-error over a real socket: 204 ends
    cleanly, the others fail with the status; none reconnects."""
    key = new_key()
    clock = Clock()
    with anyio.fail_after(REAL_TIMEOUT):
        async with (
            httpx.AsyncClient() as client,
            EventSource(
                server.url(f"/status/{status}?key={key}"), client=client, sleep=clock.sleep
            ) as source,
        ):
            if status == 204:
                assert [event async for event in source] == []
            else:
                with pytest.raises(EventSourceError) as info:
                    await anext(source)
                assert info.value.response.status_code == status
                if status != 205:
                    assert info.value.body == b"status %d" % status
        seen = await hits(server, key)
    assert len(seen) == 1
    assert seen[0]["accept"] == "text/event-stream"
    assert clock.sleeps == []


async def test_real_server_503_reconnects_when_asked_to(server: Server) -> None:
    key = new_key()
    clock = Clock()
    with anyio.fail_after(REAL_TIMEOUT):
        async with EventSource(
            server.url(f"/status/503?retry_after=2&key={key}"),
            reconnect_on=(503,),
            max_retries=2,
            retry=1,
            sleep=clock.sleep,
            jitter=no_jitter,
        ) as source:
            with pytest.raises(EventSourceError, match="503"):
                await anext(source)
        assert len(await hits(server, key)) == 3
    assert clock.sleeps == [2, 2]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_real_server_redirects(server: Server, status: int) -> None:
    """web-platform-tests eventsource/request-redirect over a real socket."""
    key = new_key()
    clock = Clock()
    target = f"/numbered?total=2&key={key}"
    url = server.url(f"/redirect/{status}?" + urlencode({"to": target, "key": key}))
    with anyio.fail_after(REAL_TIMEOUT):
        async with (
            httpx.AsyncClient() as client,
            EventSource(url, events=(Tick,), client=client, sleep=clock.sleep) as source,
        ):
            assert [event async for event in source] == [
                Tick(data=1, id="1"),
                Tick(data=2, id="2"),
            ]
        seen = await hits(server, key)
    assert [hit["path"] for hit in seen] == [
        f"/redirect/{status}",
        "/numbered",
        f"/redirect/{status}",
        "/numbered",  # answers 204: the end
    ]
    assert [hit["last_event_id"] for hit in seen] == [None, None, "2", "2"]
    assert len(clock.sleeps) == 1


async def test_real_server_stream_resumed_after_last_event_id_loses_nothing(
    server: Server,
) -> None:
    """The server ends the body every 3 events; each reconnection sends the last event
    id and the server goes on after it: every event once, in order. The source makes
    (and closes) its own httpx client."""
    key = new_key()
    clock = Clock()
    with anyio.fail_after(REAL_TIMEOUT):
        async with EventSource(
            server.url(f"/numbered?total=10&per=3&retry=5&key={key}"),
            events=(Tick,),
            sleep=clock.sleep,
            jitter=no_jitter,
        ) as source:
            got = [event async for event in source]
        seen = await hits(server, key)
    assert got == [Tick(data=n, id=str(n)) for n in range(1, 11)]
    assert [hit["last_event_id"] for hit in seen] == [None, "3", "6", "9", "10"]
    assert clock.sleeps == [0.005] * 4  # the server's retry: 5 ms
    assert source.retry == 0.005
    assert source.connections == 5


async def test_real_server_silence_reconnects_after_read_timeout(server: Server) -> None:
    key = new_key()
    clock = Clock()
    with anyio.fail_after(REAL_TIMEOUT):
        async with EventSource(
            server.url(f"/silent?key={key}"), read_timeout=0.3, max_retries=1, sleep=clock.sleep
        ) as source:
            with pytest.raises(TimeoutError):
                await anext(source)
        assert len(await hits(server, key)) == 2
    assert len(clock.sleeps) == 1


async def test_nothing_listening_is_a_network_error_that_reconnects() -> None:
    clock = Clock()
    url = f"http://127.0.0.1:{free_port()}/events"
    with anyio.fail_after(REAL_TIMEOUT):
        async with EventSource(url, max_retries=2, sleep=clock.sleep) as source:
            with pytest.raises(httpx.ConnectError):
                await anext(source)
    assert source.connections == 3
    assert len(clock.sleeps) == 2


# -- a read cancelled from outside --------------------------------------------------------


async def test_a_timeout_around_anext_reconnects_at_once_from_the_last_id() -> None:
    """``move_on_after`` around ``anext(source)`` ends httpx's body iterator under the
    read: the next read reconnects at once (no wait, no failure counted), resuming
    after the last id, so an id-bearing stream loses nothing."""
    requests: list[str | None] = []
    more = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        last = headers.get(b"last-event-id")
        requests.append(None if last is None else last.decode())
        start = 0 if last is None else int(last) + 1

        async def events() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent(f"n{start}", id=start)
            await more.wait()
            yield ServerSentEvent(f"n{start + 1}", id=start + 1)
            await anyio.sleep_forever()

        await EventSourceResponse(events())(scope, receive, send)

    clock = Clock()
    async with client_for(app) as http:
        async with EventSource("/", client=http, sleep=clock.sleep, retry=5.0) as source:
            with anyio.fail_after(TIMEOUT):
                first = await anext(source)
                with anyio.move_on_after(0.05):  # "an event within 50 ms?" - not yet
                    await anext(source)
                more.set()
                second = await anext(source)
    assert isinstance(first, ParsedEvent)
    assert isinstance(second, ParsedEvent)
    assert [(first.id, first.data), (second.id, second.data)] == [("0", "n0"), ("1", "n1")]
    assert requests == [None, "0"]  # reconnected after the cancelled read, from its id
    assert clock.sleeps == []  # at once
    assert source.failures == 0
