"""SSEEndpoint, SSERequest and SSEMiddleware in-process: the request view, every handler
form, the plain answers (204, 405, 500), the request body, the scopes the endpoint
answers itself, and what the middleware passes through untouched.

Where the exact ASGI exchange matters, a scripted `Peer` plays the server: it hands the
app the messages the test pushes and records every message the app sends, in order.
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asgi_sse import (
    BaseEvent,
    ClientDisconnected,
    Comment,
    EventSourceResponse,
    ServerSentEvent,
    SSEEndpoint,
    SSEError,
    SSEMiddleware,
    SSERequest,
    merge,
)
from asgi_sse._util.asgi import ASGIReceiveCallable, ASGISendCallable, Scope
from asgi_sse._util.lifespan import answer_lifespan
from asgi_sse.testing import connect
from tests.support.helpers import server_scope

pytestmark = pytest.mark.anyio

App = Callable[..., Awaitable[None]]


class Tick(BaseEvent[int]):
    pass


DEFAULT_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


class Peer:
    """The server side of one ASGI call, scripted by the test."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.receive_calls = 0
        self.finished = False
        self._inbox: deque[dict[str, Any]] = deque()
        self._changed = anyio.Event()
        # Bound once, so a test can check that the very same callables were passed on.
        self.receive: Callable[[], Awaitable[Any]] = self._receive
        self.send: Callable[[Any], Awaitable[None]] = self._send

    def push(self, *messages: dict[str, Any]) -> None:
        """Messages for the app's next `receive()` calls."""
        self._inbox.extend(messages)
        self._notify()

    async def run(self, app: App, scope: dict[str, Any]) -> None:
        try:
            await app(scope, self.receive, self.send)
        finally:
            self.finished = True
            self._notify()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        with anyio.fail_after(5):
            while not condition():
                await self._changed.wait()

    async def _receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        self._notify()
        while not self._inbox:
            await self._changed.wait()
        return self._inbox.popleft()

    async def _send(self, message: Any) -> None:
        self.sent.append(dict(message))
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


async def serve(app: App, scope: dict[str, Any], *messages: dict[str, Any]) -> Peer:
    """Run ``app`` for one scope to completion, with ``messages`` to receive."""
    peer = Peer()
    peer.push(*messages)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(peer.run, app, scope)
        await peer.wait_until(lambda: peer.finished)
    return peer


HTTP_REQUEST = {"type": "http.request", "body": b"", "more_body": False}


def start(status: int, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": headers, "trailers": False}


def body(data: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def two_ticks() -> AsyncIterator[Tick]:
    yield Tick(data=1)
    await anyio.lowlevel.checkpoint()
    yield Tick(data=2)


async def request_seen_by(
    path: str = "/events",
    *,
    endpoint_options: dict[str, Any] | None = None,
    **connect_options: Any,
) -> SSERequest:
    """The `SSERequest` an endpoint's handler gets for a request (answered with 204)."""
    seen: list[SSERequest] = []

    def handler(request: SSERequest) -> None:
        seen.append(request)

    app = SSEEndpoint(handler, **(endpoint_options or {}))
    async with connect(app, path, **connect_options) as stream:
        await stream.wait_finished()
    assert stream.status == 204
    [request] = seen
    return request


# -- the request view ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "post", "DELETE"])
async def test_request_method(method: str) -> None:
    request = await request_seen_by(method=method)
    assert request.method == method.upper()


@pytest.mark.parametrize(
    ("path", "root_path", "scope_path", "expected"),
    [
        pytest.param("/events", "", None, "/events", id="no-root-path"),
        pytest.param("/a%20b", "", None, "/a b", id="percent-decoded"),
        # Starlette's Mount and uvicorn >= 0.26: `path` includes `root_path`.
        pytest.param("/events", "/api", None, "/events", id="root-path-in-path"),
        pytest.param("", "/api", None, "/", id="root-path-itself"),
        pytest.param("/", "/api", None, "/", id="root-path-slash"),
        # Older servers: `path` is already relative to `root_path`.
        pytest.param("", "/api", "/events", "/events", id="old-style"),
        # A prefix of a segment is not the root path.
        pytest.param("", "/api", "/apiary", "/apiary", id="not-a-segment-prefix"),
    ],
)
async def test_request_path_is_relative_to_root_path(
    path: str, root_path: str, scope_path: str | None, expected: str
) -> None:
    scope_extra = {} if scope_path is None else {"path": scope_path}
    request = await request_seen_by(path, root_path=root_path, scope_extra=scope_extra)
    assert request.path == expected


async def test_query_params_first_value_wins_and_blanks_are_kept() -> None:
    request = await request_seen_by("/events?a=1&a=2&b=&c&msg=hello%20world&plus=x+y&e=%C3%A9")
    assert request.query_params == {
        "a": "1",
        "b": "",
        "c": "",
        "msg": "hello world",
        "plus": "x y",
        "e": "é",
    }
    assert request.query_list == [
        ("a", "1"),
        ("a", "2"),
        ("b", ""),
        ("c", ""),
        ("msg", "hello world"),
        ("plus", "x y"),
        ("e", "é"),
    ]


async def test_no_query_string() -> None:
    request = await request_seen_by("/events")
    assert request.query_params == {}
    assert request.query_list == []


async def test_headers_lower_cased_and_repeated_ones_joined() -> None:
    raw = [
        (b"X-Custom", b"one"),
        (b"Accept", b"text/event-stream"),
        (b"x-custom", b"two"),
        (b"X-CUSTOM", b"three"),
    ]
    request = await request_seen_by(scope_extra={"headers": raw})
    assert request.headers == {"x-custom": "one, two, three", "accept": "text/event-stream"}


@pytest.mark.parametrize(
    ("path", "header", "endpoint_options", "expected"),
    [
        pytest.param("/events", None, {}, None, id="none"),
        pytest.param("/events", "41", {}, "41", id="header"),
        pytest.param("/events?lastEventId=7", None, {}, "7", id="query-param"),
        pytest.param("/events?lastEventId=7", "41", {}, "41", id="header-wins"),
        pytest.param("/events?lastEventId=", None, {}, "", id="blank-query-param"),
        pytest.param(
            "/events?since=5",
            None,
            {"last_event_id_param": "since"},
            "5",
            id="custom-param",
        ),
        pytest.param(
            "/events?lastEventId=5",
            None,
            {"last_event_id_param": "since"},
            None,
            id="default-param-not-read-when-renamed",
        ),
        pytest.param(
            "/events?lastEventId=5",
            None,
            {"last_event_id_param": ""},
            None,
            id="param-disabled",
        ),
    ],
)
async def test_last_event_id(
    path: str, header: str | None, endpoint_options: dict[str, Any], expected: str | None
) -> None:
    request = await request_seen_by(path, endpoint_options=endpoint_options, last_event_id=header)
    assert request.last_event_id == expected


async def test_last_event_id_header_name_is_case_insensitive() -> None:
    request = await request_seen_by(scope_extra={"headers": [(b"Last-Event-ID", b"9")]})
    assert request.last_event_id == "9"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("é😀".encode(), "é😀", id="utf-8-as-browsers-send-it"),
        pytest.param(b"caf\xe9", "caf\ufffd", id="not-utf-8"),
        pytest.param(b"a\x00b", None, id="nul-is-no-id"),
        pytest.param(b"1" * 100_000, "1" * 100_000, id="100-kb"),
        pytest.param(b"", "", id="empty"),
    ],
)
async def test_last_event_id_header_is_utf_8(raw: bytes, expected: str | None) -> None:
    """Browsers UTF-8 encode the last event id (WHATWG HTML 9.2.4), so an id the server
    sent comes back as itself, not as latin-1 mojibake."""
    request = await request_seen_by(scope_extra={"headers": [(b"last-event-id", raw)]})
    assert request.last_event_id == expected


async def test_a_sent_non_ascii_id_round_trips_through_the_test_client() -> None:
    async with connect(SSEEndpoint(echo_last_id), "/events", last_event_id="é😀") as stream:
        event = await stream.next_event()
    assert (event.id, event.data) == ("é😀", "é😀")


async def echo_last_id(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
    last = request.last_event_id
    yield ServerSentEvent(repr(last) if last is None else last, id=last)


@pytest.mark.parametrize(
    "query",
    [
        "lastEventId=%0D%0Aevent:%20forged",
        "lastEventId=a%0Ab",
        "lastEventId=a%00b",
        "lastEventId=x%0D",
    ],
)
async def test_a_last_event_id_with_cr_lf_or_nul_is_none_and_echoing_it_is_safe(
    query: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No server can have sent such an id; a handler that echoes it into `id=` must not
    log a traceback per request (the value is an attacker's)."""
    async with connect(SSEEndpoint(echo_last_id), f"/events?{query}") as stream:
        event = await stream.next_event()
    assert (event.data, event.id) == ("None", "")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(
    ("query_string", "expected"),
    [
        pytest.param(b"lastEventId=%C3%A9", "é", id="percent-escaped"),
        pytest.param("lastEventId=é".encode(), "é", id="raw-utf-8"),
        pytest.param(b"lastEventId=%E9", "\ufffd", id="not-utf-8"),
        pytest.param(b"lastEventId=a+b", "a b", id="plus"),
    ],
)
async def test_query_params_are_utf_8(query_string: bytes, expected: str) -> None:
    request = await request_seen_by(scope_extra={"query_string": query_string})
    assert request.last_event_id == expected


async def test_options_is_answered_without_running_the_handler() -> None:
    """A CORS preflight must not start a stream."""
    called: list[str] = []

    def handler(request: SSERequest) -> AsyncIterator[Tick]:
        called.append(request.method)
        return two_ticks()

    peer = await serve(SSEEndpoint(handler), server_scope(method="OPTIONS"), HTTP_REQUEST)
    assert called == []
    assert peer.sent == [
        start(204, [(b"allow", b"GET, HEAD, POST, OPTIONS")]),
        body(b"", False),
    ]
    peer = await serve(
        SSEEndpoint(handler, methods=("OPTIONS", "GET")),
        server_scope(method="OPTIONS"),
        HTTP_REQUEST,
    )
    assert called == ["OPTIONS"]  # listed explicitly: the user asked for it


# -- handler forms --------------------------------------------------------------------


async def async_generator_handler(request: SSERequest) -> AsyncIterator[Tick]:
    yield Tick(data=1)
    await anyio.lowlevel.checkpoint()
    yield Tick(data=2)


def function_returning_a_stream(request: SSERequest) -> AsyncIterator[Tick]:
    return two_ticks()


async def async_function_returning_a_stream(request: SSERequest) -> AsyncIterator[Tick]:
    await anyio.lowlevel.checkpoint()  # e.g. check something before streaming
    return two_ticks()


class TwoTicks:
    """An async iterable that is not a generator."""

    def __init__(self) -> None:
        self.left = [1, 2]

    def __aiter__(self) -> TwoTicks:
        return self

    async def __anext__(self) -> Tick:
        await anyio.lowlevel.checkpoint()
        if not self.left:
            raise StopAsyncIteration
        return Tick(data=self.left.pop(0))


def function_returning_an_async_iterable(request: SSERequest) -> TwoTicks:
    return TwoTicks()


async def only(n: int) -> AsyncIterator[Tick]:
    yield Tick(data=n)


def function_returning_a_merge(request: SSERequest) -> Any:
    return merge(only(1), only(2))


@pytest.mark.parametrize(
    "handler",
    [
        async_generator_handler,
        function_returning_a_stream,
        async_function_returning_a_stream,
        function_returning_an_async_iterable,
        function_returning_a_merge,
    ],
)
async def test_handler_forms(handler: Any) -> None:
    async with connect(SSEEndpoint(handler)) as stream:
        events = await stream.events(2, timeout=5)
        await stream.wait_finished()
    assert stream.status == 200
    assert sorted(event.data for event in events) == ["1", "2"]
    assert {event.event for event in events} == {"tick"}
    assert stream.complete
    assert stream.messages[-1] == body(b"", False)


async def test_handler_returning_a_response_sets_its_own_status_and_headers() -> None:
    def handler(request: SSERequest) -> EventSourceResponse:
        return EventSourceResponse(
            two_ticks(), status_code=201, headers={"Cache-Control": "no-store", "X-Own": "yes"}
        )

    # The endpoint's own headers= apply to streams it wraps, not to a ready response.
    app = SSEEndpoint(handler, headers={"x-endpoint": "1"})
    async with connect(app) as stream:
        await stream.wait_finished()
    assert stream.messages[0] == start(
        201,
        [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
            (b"x-own", b"yes"),
        ],
    )
    assert stream.messages[1:] == [
        body(b"event: tick\ndata: 1\n\n", True),
        body(b"event: tick\ndata: 2\n\n", True),
        body(b"", False),
    ]


async def test_endpoint_headers_and_ping_apply_to_the_streams_it_wraps() -> None:
    async def quiet(request: SSERequest) -> AsyncIterator[Tick]:
        yield Tick(data=0)
        await anyio.sleep_forever()

    app = SSEEndpoint(quiet, headers={"X-Endpoint": "1"}, ping=0.01)
    async with connect(app) as stream:
        assert (await stream.next_event()).data == "0"
        assert isinstance(await stream.next_item(), Comment)  # the keep-alive
        await stream.disconnect()
    assert stream.headers == [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache, no-transform"),
        ("x-accel-buffering", "no"),
        ("x-endpoint", "1"),
    ]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_handler_returning_none_answers_204_without_body(is_async: bool) -> None:
    def sync_handler(request: SSERequest) -> None:
        return None

    async def async_handler(request: SSERequest) -> None:
        return None

    app = SSEEndpoint(async_handler if is_async else sync_handler)
    peer = await serve(app, server_scope(), HTTP_REQUEST)
    assert peer.sent == [start(204, []), body(b"", False)]


@pytest.mark.parametrize(
    ("methods", "method", "allowed"),
    [
        (("GET",), "GET", True),
        (("get", "post"), "POST", True),
        (("GET", "POST"), "DELETE", False),
        (("POST",), "GET", False),
    ],
)
async def test_methods_limit_answers_405_with_allow(
    methods: tuple[str, ...], method: str, allowed: bool
) -> None:
    called: list[str] = []

    def handler(request: SSERequest) -> AsyncIterator[Tick]:
        called.append(request.method)
        return two_ticks()

    app = SSEEndpoint(handler, methods=methods)
    peer = await serve(app, server_scope(method=method), HTTP_REQUEST)
    if allowed:
        assert called == [method]
        assert peer.sent[0] == start(200, DEFAULT_HEADERS)
        assert peer.sent[-1] == body(b"", False)
    else:
        assert called == []
        allow = ", ".join([*(m.upper() for m in methods), "OPTIONS"]).encode()
        assert peer.sent == [
            start(405, [(b"content-type", b"text/plain; charset=utf-8"), (b"allow", allow)]),
            body(b"Method Not Allowed", False),
        ]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_handler_error_answers_500_and_is_logged_once(
    is_async: bool, caplog: pytest.LogCaptureFixture
) -> None:
    def sync_handler(request: SSERequest) -> AsyncIterator[Tick]:
        raise LookupError("no such topic")

    async def async_handler(request: SSERequest) -> AsyncIterator[Tick]:
        await anyio.lowlevel.checkpoint()
        raise LookupError("no such topic")

    app = SSEEndpoint(async_handler if is_async else sync_handler)
    with caplog.at_level(logging.ERROR, logger="asgi_sse"):
        peer = await serve(app, server_scope("/topics"), HTTP_REQUEST)
    assert peer.sent == [
        start(500, [(b"content-type", b"text/plain; charset=utf-8")]),
        body(b"Internal Server Error", False),
    ]
    [record] = errors(caplog)
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], LookupError)
    assert "/topics" in record.getMessage()


async def test_error_in_an_async_generator_handler_ends_the_stream_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An async generator handler runs only once the response pulls from it: by then
    # the 200 is sent, so the error ends the stream cleanly instead.
    async def handler(request: SSERequest) -> AsyncIterator[Tick]:
        yield Tick(data=1)
        raise LookupError("gone")

    with caplog.at_level(logging.ERROR, logger="asgi_sse"):
        async with connect(SSEEndpoint(handler)) as stream:
            assert (await stream.next_event(Tick)).data == 1
            await stream.wait_finished()
    assert stream.status == 200
    assert stream.complete
    [record] = errors(caplog)
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], LookupError)


def sync_generator_handler(request: SSERequest) -> Any:
    yield Tick(data=1)  # `def`, not `async def`: a common slip


@pytest.mark.parametrize(
    "handler",
    [sync_generator_handler, lambda request: [Tick(data=1)]],
    ids=["sync-generator", "list"],
)
async def test_handler_returning_no_async_iterable_answers_500(
    handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="asgi_sse"):
        peer = await serve(SSEEndpoint(handler), server_scope(), HTTP_REQUEST)
    assert peer.sent[0]["status"] == 500
    assert len(errors(caplog)) == 1


async def test_disconnect_closes_the_handlers_stream() -> None:
    cleanup: list[str] = []

    async def handler(request: SSERequest) -> AsyncIterator[Tick]:
        try:
            yield Tick(data=1)
            await anyio.sleep_forever()
        finally:
            cleanup.append("closed")

    async with connect(SSEEndpoint(handler)) as stream:
        await stream.next_event()
        await stream.disconnect()
        assert cleanup == ["closed"]
    assert not stream.complete  # no final body after the client left


async def test_concurrent_requests_get_their_own_streams() -> None:
    async def handler(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(request.query_params["who"])
        await anyio.sleep_forever()

    app = SSEEndpoint(handler)
    async with connect(app, "/?who=a") as a, connect(app, "/?who=b") as b:
        assert (await b.next_event()).data == "b"
        assert (await a.next_event()).data == "a"


@pytest.mark.parametrize(
    "options",
    [{"ping": 0}, {"send_timeout": -1}, {"headers": {"Connection": "keep-alive"}}],
)
def test_bad_options_fail_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is the response's
        SSEEndpoint(function_returning_a_stream, **options)
    with pytest.raises(ValueError):  # noqa: PT011
        SSEMiddleware(Inner(), routes={"/events": function_returning_a_stream}, **options)


# -- the request body -----------------------------------------------------------------


def echo_body(request: SSERequest) -> Awaitable[AsyncIterator[ServerSentEvent]]:
    async def read() -> AsyncIterator[ServerSentEvent]:
        received = await request.body()

        async def stream() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent(received.decode(), event="body")

        return stream()

    return read()


async def test_body_is_read_across_chunks_before_the_stream_starts() -> None:
    peer = Peer()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(peer.run, SSEEndpoint(echo_body), server_scope(method="POST"))
        peer.push({"type": "http.request", "body": b"hello", "more_body": True})
        # The app took the first chunk and waits for more: nothing may be sent yet.
        await peer.wait_until(lambda: peer.receive_calls == 2)
        assert peer.sent == []
        peer.push({"type": "http.request", "body": b"", "more_body": True})
        await peer.wait_until(lambda: peer.receive_calls == 3)
        assert peer.sent == []
        peer.push({"type": "http.request", "body": b" world", "more_body": False})
        await peer.wait_until(lambda: peer.finished)
    assert peer.sent == [
        start(200, DEFAULT_HEADERS),
        body(b"event: body\ndata: hello world\n\n", True),
        body(b"", False),
    ]


async def test_disconnect_after_the_body_still_closes_the_stream() -> None:
    cleanup: list[str] = []

    async def handler(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
        received = await request.body()
        try:
            yield ServerSentEvent(received.decode())
            await anyio.sleep_forever()
        finally:
            cleanup.append("closed")

    peer = Peer()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(peer.run, SSEEndpoint(handler), server_scope(method="POST"))
        peer.push({"type": "http.request", "body": b"x", "more_body": False})
        await peer.wait_until(lambda: len(peer.sent) == 2)
        peer.push({"type": "http.disconnect"})
        await peer.wait_until(lambda: peer.finished)
    assert cleanup == ["closed"]
    assert peer.sent == [start(200, DEFAULT_HEADERS), body(b"data: x\n\n", True)]


async def test_unread_body_chunks_do_not_end_the_stream() -> None:
    cleanup: list[str] = []

    async def handler(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent("streaming")  # the body is never read
            await anyio.sleep_forever()
        finally:
            cleanup.append("closed")

    peer = Peer()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(peer.run, SSEEndpoint(handler), server_scope(method="POST"))
        peer.push(
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b"b", "more_body": False},
        )
        # Both chunks are taken by the response's disconnect watcher, which waits on.
        await peer.wait_until(lambda: len(peer.sent) == 2 and peer.receive_calls == 3)
        assert cleanup == []
        assert not peer.finished
        peer.push({"type": "http.disconnect"})
        await peer.wait_until(lambda: peer.finished)
    assert cleanup == ["closed"]
    assert peer.sent == [start(200, DEFAULT_HEADERS), body(b"data: streaming\n\n", True)]


@pytest.mark.parametrize(
    "before",
    [
        pytest.param([], id="no-body-yet"),
        pytest.param([{"type": "http.request", "body": b"part", "more_body": True}], id="partial"),
    ],
)
async def test_disconnect_while_reading_the_body_ends_quietly(
    before: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    raised: list[BaseException] = []

    async def handler(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
        try:
            await request.body()
        except ClientDisconnected as exc:
            raised.append(exc)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    with caplog.at_level(logging.DEBUG, logger="asgi_sse"):
        peer = await serve(
            SSEEndpoint(handler), server_scope(method="POST"), *before, {"type": "http.disconnect"}
        )
    [exc] = raised
    assert isinstance(exc, SSEError)
    assert peer.sent == []  # nobody to answer
    assert caplog.records == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param({"type": "http.request", "body": b"abc"}, "abc", id="no-more_body"),
        pytest.param({"type": "http.request"}, "", id="no-body-no-more_body"),
    ],
)
async def test_body_accepts_http_request_without_optional_keys(
    message: dict[str, Any], expected: str
) -> None:
    peer = Peer()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(peer.run, SSEEndpoint(echo_body), server_scope(method="POST"))
        peer.push(message)
        await peer.wait_until(lambda: len(peer.sent) >= 2)
        peer.push({"type": "http.disconnect"})
        await peer.wait_until(lambda: peer.finished)
    assert peer.sent[:2] == [
        start(200, DEFAULT_HEADERS),
        body(f"event: body\ndata: {expected}\n\n".encode(), True),
    ]


# -- other scopes ---------------------------------------------------------------------


async def test_endpoint_refuses_websockets() -> None:
    scope = {**server_scope(), "type": "websocket", "subprotocols": []}
    del scope["method"]
    peer = await serve(
        SSEEndpoint(function_returning_a_stream), scope, {"type": "websocket.connect"}
    )
    assert peer.sent == [{"type": "websocket.close", "code": 1000, "reason": ""}]


async def test_endpoint_answers_lifespan() -> None:
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    peer = Peer()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(peer.run, SSEEndpoint(function_returning_a_stream), scope)
        peer.push({"type": "lifespan.startup"})
        await peer.wait_until(lambda: len(peer.sent) == 1)
        assert peer.sent == [{"type": "lifespan.startup.complete"}]
        assert not peer.finished
        peer.push({"type": "lifespan.shutdown"})
        await peer.wait_until(lambda: peer.finished)
    assert peer.sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


# -- the middleware -------------------------------------------------------------------


class Inner:
    """The wrapped app: records every call and answers like a small site."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any, Any]] = []

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        self.calls.append((scope, receive, send))
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
        else:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain")],
                    "trailers": False,
                }
            )
            await send({"type": "http.response.body", "body": b"inner", "more_body": False})


def tick_handler(request: SSERequest) -> AsyncIterator[Tick]:
    return two_ticks()


async def test_middleware_serves_its_routes() -> None:
    inner = Inner()
    app = SSEMiddleware(inner, routes={"/events": tick_handler, "/other": tick_handler})
    for path in ("/events", "/other?x=1"):
        async with connect(app, path) as stream:
            assert [(await stream.next_event(Tick)).data for _ in range(2)] == [1, 2]
            await stream.wait_finished()
        assert stream.complete
    assert inner.calls == []


@pytest.mark.parametrize(
    ("scope", "messages", "expected_sent"),
    [
        pytest.param(
            server_scope("/"),
            [HTTP_REQUEST],
            [start(200, [(b"content-type", b"text/plain")]), body(b"inner", False)],
            id="http-other-path",
        ),
        pytest.param(
            server_scope("/events/"),
            [HTTP_REQUEST],
            [start(200, [(b"content-type", b"text/plain")]), body(b"inner", False)],
            id="http-trailing-slash",
        ),
        pytest.param(
            server_scope("/events/sub"),
            [HTTP_REQUEST],
            [start(200, [(b"content-type", b"text/plain")]), body(b"inner", False)],
            id="http-sub-path",
        ),
        pytest.param(
            server_scope("/api/events"),  # no root_path: "/api/events" is not "/events"
            [HTTP_REQUEST],
            [start(200, [(b"content-type", b"text/plain")]), body(b"inner", False)],
            id="http-prefixed-without-root-path",
        ),
        pytest.param(
            server_scope("/api/other", root_path="/api"),
            [HTTP_REQUEST],
            [start(200, [(b"content-type", b"text/plain")]), body(b"inner", False)],
            id="http-other-path-under-root-path",
        ),
        pytest.param(
            {**server_scope("/events"), "type": "websocket", "subprotocols": []},
            [{"type": "websocket.connect"}],
            [{"type": "websocket.accept", "subprotocol": None, "headers": []}],
            id="websocket-on-an-sse-path",
        ),
        pytest.param(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
            [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
            [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}],
            id="lifespan",
        ),
    ],
)
async def test_middleware_passes_everything_else_through_untouched(
    scope: dict[str, Any], messages: list[dict[str, Any]], expected_sent: list[dict[str, Any]]
) -> None:
    inner = Inner()
    app = SSEMiddleware(inner, routes={"/events": tick_handler})
    scope = copy.deepcopy(scope)  # each run gets its own (the table is shared by backends)
    before = copy.deepcopy(scope)
    peer = Peer()
    peer.push(*messages)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(peer.run, app, scope)
        await peer.wait_until(lambda: peer.finished)
    [(passed_scope, passed_receive, passed_send)] = inner.calls
    assert passed_scope is scope
    assert scope == before  # not modified either
    assert passed_receive is peer.receive
    assert passed_send is peer.send
    assert peer.sent == expected_sent


@pytest.mark.parametrize(
    ("path", "root_path", "scope_path"),
    [
        pytest.param("/events", "", None, id="no-root-path"),
        pytest.param("/events", "/api", None, id="root-path-in-path"),
        pytest.param("", "/api", "/events", id="old-style"),
    ],
)
async def test_middleware_matches_routes_relative_to_root_path(
    path: str, root_path: str, scope_path: str | None
) -> None:
    inner = Inner()
    app = SSEMiddleware(inner, routes={"/events": tick_handler})
    scope_extra = {} if scope_path is None else {"path": scope_path}
    async with connect(app, path, root_path=root_path, scope_extra=scope_extra) as stream:
        assert (await stream.next_event(Tick)).data == 1
    assert stream.header("content-type") == "text/event-stream"
    assert inner.calls == []


@pytest.mark.parametrize("route", ["events", "", "*", "http://host/events"])
def test_middleware_route_must_start_with_a_slash(route: str) -> None:
    with pytest.raises(ValueError, match="must start with '/'") as info:
        SSEMiddleware(Inner(), routes={"/ok": tick_handler, route: tick_handler})
    assert repr(route) in str(info.value)


async def test_middleware_options_apply_to_handlers_and_endpoints_are_kept() -> None:
    own = SSEEndpoint(tick_handler)  # its own (default) options
    app = SSEMiddleware(Inner(), routes={"/posted": tick_handler, "/own": own}, methods=("POST",))
    assert app.routes["/own"] is own
    async with connect(app, "/posted") as stream:
        await stream.wait_finished()
    assert stream.status == 405
    assert stream.header("allow") == "POST, OPTIONS"
    async with connect(app, "/own") as stream:
        assert (await stream.next_event(Tick)).data == 1


@pytest.mark.parametrize("wrap", ["endpoint", "middleware"])
async def test_ping_event_reaches_the_response(wrap: str) -> None:
    async def quiet(request: SSERequest) -> AsyncIterator[str]:
        yield "hello"
        await anyio.sleep_forever()

    async def inner(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        raise AssertionError("the middleware serves / itself")  # pragma: no cover

    options: dict[str, Any] = {"ping": 0.05, "ping_event": ServerSentEvent("", event="ping")}
    app: Any = (
        SSEEndpoint(quiet, **options)
        if wrap == "endpoint"
        else SSEMiddleware(inner, routes={"/": quiet}, **options)
    )
    async with connect(app, "/") as stream:
        assert (await stream.next_event()).data == "hello"
        assert (await stream.next_event()).event == "ping"
    assert stream.comments == []
