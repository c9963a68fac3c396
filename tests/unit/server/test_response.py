"""EventSourceResponse at the ASGI level: headers, the ordered messages it sends, and every
point of the lifecycle contract (disconnect, final body, ping, send timeout, errors,
shutdown)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel

from asgi_sse import (
    BaseEvent,
    Comment,
    EventSourceResponse,
    Hub,
    ServerSentEvent,
    ShutdownSignal,
    StreamObserver,
    merge,
)
from asgi_sse._util.asgi import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)
from asgi_sse.starlette import EventSourceResponse as StarletteEventSourceResponse
from asgi_sse.testing import StreamClosed, connect
from tests.support.helpers import first_then_forever

pytestmark = pytest.mark.anyio


class Point(BaseModel):
    x: int


class Moved(BaseEvent[Point]):
    pass


def body_messages(messages: list[Any]) -> list[tuple[bytes, bool]]:
    return [(m["body"], m["more_body"]) for m in messages if m["type"] == "http.response.body"]


async def test_default_headers_and_ordered_messages() -> None:
    async def stream() -> AsyncIterator[Any]:
        # a checkpoint between items: one send each (ready runs are coalesced, below)
        yield Moved(data=Point(x=1), id="1")
        await anyio.lowlevel.checkpoint()
        yield ServerSentEvent("two", event="second")
        await anyio.lowlevel.checkpoint()
        yield "plain"
        await anyio.lowlevel.checkpoint()
        yield b"data: raw\n\n"

    async with connect(EventSourceResponse(stream())) as response:
        await response.wait_finished()
    assert response.status == 200
    assert response.headers == [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache, no-transform"),
        ("x-accel-buffering", "no"),
    ]
    assert response.messages[0]["type"] == "http.response.start"
    assert body_messages(response.messages) == [
        (b'event: moved\nid: 1\ndata: {"x":1}\n\n', True),
        (b"event: second\ndata: two\n\n", True),
        (b"data: plain\n\n", True),
        (b"data: raw\n\n", True),
        (b"", False),
    ]
    assert response.complete


async def test_user_headers_merge_over_defaults() -> None:
    async def stream() -> AsyncIterator[str]:
        yield "x"

    app = EventSourceResponse(
        stream(),
        status_code=201,
        headers={
            "Cache-Control": "no-store",
            "X-Extra": "1",
            "content-type": "text/event-stream; charset=utf-8",
        },
    )
    async with connect(app) as response:
        await response.wait_finished()
    assert response.status == 201
    assert response.header("cache-control") == "no-store"
    assert response.header("x-extra") == "1"
    assert response.header("content-type") == "text/event-stream; charset=utf-8"
    assert response.header("connection") is None


@pytest.mark.parametrize(
    "headers",
    [
        {"connection": "keep-alive"},
        {"Content-Length": "10"},
        {"transfer-encoding": "chunked"},
        {"content-type": "application/json"},
        {"x-bad": "a\r\nset-cookie: evil=1"},
        {"x-bad\n": "1"},
    ],
)
def test_unsafe_headers_rejected(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"."):
        EventSourceResponse(iter_nothing(), headers=headers)


async def iter_nothing() -> AsyncIterator[str]:
    return
    yield ""  # pragma: no cover


async def test_head_gets_headers_only_and_stream_never_runs() -> None:
    started = False

    async def stream() -> AsyncIterator[str]:
        nonlocal started
        started = True
        yield "x"

    async with connect(EventSourceResponse(stream()), method="HEAD") as response:
        await response.wait_finished()
    assert response.status == 200
    assert body_messages(response.messages) == [(b"", False)]
    assert not started


async def test_post_streams_too() -> None:
    async def stream() -> AsyncIterator[str]:
        yield "posted"

    async with connect(EventSourceResponse(stream()), method="POST", body=b"{}") as response:
        assert (await response.next_event()).data == "posted"


async def test_disconnect_cancels_stream_and_runs_cleanup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cleaned = anyio.Event()

    async with connect(EventSourceResponse(first_then_forever(cleaned))) as response:
        assert (await response.next_event()).data == "first"
        await response.disconnect()
        assert cleaned.is_set()
    assert response.exception is None
    assert not response.complete  # nothing is sent to a client that left
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_disconnect_before_first_event_runs_cleanup() -> None:
    entered = anyio.Event()
    cleaned = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        entered.set()
        try:
            await anyio.sleep_forever()
            yield "never"  # pragma: no cover
        finally:
            cleaned.set()

    async with connect(EventSourceResponse(stream())) as response:
        await response.wait_started()
        with anyio.fail_after(5):
            await entered.wait()
        await response.disconnect()
    assert cleaned.is_set()


async def test_disconnect_while_stream_parked_at_yield_runs_cleanup() -> None:
    """The client leaves while the app is blocked sending: the generator sits at its
    yield (not at an await), so only closing it reaches its finally."""
    cleaned = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        try:
            while True:
                yield "x" * 100
        finally:
            cleaned.set()

    async with connect(EventSourceResponse(stream(), send_timeout=None)) as response:
        await response.next_event()
        response.freeze()
        await response.disconnect()
    assert cleaned.is_set()


async def test_normal_end_always_sends_final_body() -> None:
    async def stream() -> AsyncIterator[str]:
        for i in range(100):
            yield str(i)

    for _ in range(20):
        async with connect(EventSourceResponse(stream())) as response:
            await response.wait_finished()
        assert response.messages[-1] == {
            "type": "http.response.body",
            "body": b"",
            "more_body": False,
        }


async def test_ping_only_when_idle() -> None:
    proceed = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        # Busy for > 2 ping intervals: no ping may interleave.
        for i in range(30):
            yield str(i)
            await anyio.sleep(0.02)
        await proceed.wait()
        yield "after idle"

    async with connect(EventSourceResponse(stream(), ping=0.25)) as response:
        items = [await response.next_item() for _ in range(30)]
        assert all(getattr(item, "data", None) == str(i) for i, item in enumerate(items))
        with anyio.fail_after(5):
            comment = await response.next_item()
        assert comment == Comment(text="ping")
        proceed.set()
        assert (await response.next_event()).data == "after idle"
    ping_bodies = [b for b, _ in body_messages(response.messages) if b.startswith(b":")]
    assert ping_bodies == [b": ping\n"]  # one line, no blank line after it


async def test_ping_disabled() -> None:
    async def stream() -> AsyncIterator[str]:
        await anyio.sleep(0.3)
        yield "late"

    async with connect(EventSourceResponse(stream(), ping=None)) as response:
        assert (await response.next_event()).data == "late"
    assert response.comments == []


class Heartbeat(BaseEvent[int]):
    pass


async def test_ping_event_is_an_event_the_browser_sees() -> None:
    """EventSource hides comments from the page; `ping_event` sends an event instead."""
    ping = ServerSentEvent("", event="ping")
    response_app = EventSourceResponse(
        first_then_forever(anyio.Event()), ping=0.05, ping_event=ping
    )
    async with connect(response_app) as response:
        assert (await response.next_event()).data == "first"
        for _ in range(2):
            beat = await response.next_event()
            assert (beat.event, beat.data) == ("ping", "")
    assert response.comments == []


async def test_ping_event_from_a_function_is_made_fresh_each_time() -> None:
    beats = iter(range(100))
    response_app = EventSourceResponse(
        first_then_forever(anyio.Event()),
        ping=0.05,
        ping_event=lambda: Heartbeat(data=next(beats)),
    )
    async with connect(response_app) as response:
        await response.next_event()
        received = [await response.next_event(Heartbeat) for _ in range(3)]
    assert [beat.data for beat in received] == [0, 1, 2]


def test_ping_event_must_be_an_event_or_a_function() -> None:
    with pytest.raises(TypeError, match="ping_event"):
        EventSourceResponse(iter_nothing(), ping_event=b": hi\n")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ping_event"):
        StarletteEventSourceResponse(iter_nothing(), ping_event="ping")  # type: ignore[arg-type]


async def test_a_ping_function_returning_no_event_ends_the_stream_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cleaned = anyio.Event()
    response_app = EventSourceResponse(
        first_then_forever(cleaned),
        ping=0.05,
        ping_event=lambda: "not an event",  # type: ignore[arg-type]
    )
    async with connect(response_app) as response:
        await response.wait_finished()
    assert cleaned.is_set()
    assert response.complete  # the client is still there: a clean end
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["asgi_sse: ping_event failed; ending the stream"]
    assert "ping_event returned str, not an event" in str(errors[0].exc_info)


async def test_send_timeout_closes_frozen_client(caplog: pytest.LogCaptureFixture) -> None:
    cleaned = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        try:
            while True:
                yield "tick"
                await anyio.sleep(0.01)
        finally:
            cleaned.set()

    async with connect(EventSourceResponse(stream(), send_timeout=0.2)) as response:
        await response.next_event()
        response.freeze()
        await response.wait_finished()
        assert cleaned.is_set()
    assert not response.complete
    assert any("did not read" in r.getMessage() for r in caplog.records)


async def test_stream_error_is_logged_once_and_response_ends_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stream() -> AsyncIterator[str]:
        yield "ok"
        raise RuntimeError("boom")

    async with connect(EventSourceResponse(stream())) as response:
        assert (await response.next_event()).data == "ok"
        await response.wait_finished()
        with pytest.raises(StreamClosed):
            await response.next_event()
    assert response.exception is None
    assert response.complete
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "boom" in str(errors[0].exc_info[1])


async def test_bad_item_type_is_reported() -> None:
    async def stream() -> AsyncIterator[Any]:
        yield 42

    async with connect(EventSourceResponse(stream())) as response:
        await response.wait_finished()
    assert response.complete


async def test_shutdown_ends_stream_cleanly_from_another_thread() -> None:
    shutdown = ShutdownSignal()
    cleaned = anyio.Event()

    async with connect(
        EventSourceResponse(first_then_forever(cleaned), shutdown=shutdown)
    ) as response:
        await response.next_event()
        threading.Thread(target=shutdown.trigger).start()
        await response.wait_finished()
    assert cleaned.is_set()
    assert response.complete


async def test_shutdown_signal_found_in_scope() -> None:
    shutdown = ShutdownSignal()
    shutdown.trigger()

    async def stream() -> AsyncIterator[str]:
        yield "never"  # pragma: no cover

    app = EventSourceResponse(stream())
    async with connect(app, scope_extra={"asgi_sse.shutdown": shutdown}) as response:
        await response.wait_finished()
    assert body_messages(response.messages) == [(b"", False)]


async def test_merged_stream_is_entered_and_closed() -> None:
    cleaned: list[str] = []

    async def source(name: str) -> AsyncIterator[str]:
        try:
            yield name
            await anyio.sleep_forever()
            yield "never"  # pragma: no cover
        finally:
            cleaned.append(name)

    async with connect(EventSourceResponse(merge(source("a"), source("b")))) as response:
        assert {(await response.next_event()).data for _ in range(2)} == {"a", "b"}
        await response.disconnect()
    assert sorted(cleaned) == ["a", "b"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # counting uses asyncio.all_tasks
async def test_two_tasks_per_connection_on_asyncio() -> None:
    import asyncio

    async def stream() -> AsyncIterator[str]:
        yield "x"
        await anyio.sleep_forever()

    before = len(asyncio.all_tasks())
    async with connect(EventSourceResponse(stream())) as response:
        await response.next_event()
        # the app's own task (the server's request task) + the disconnect watcher
        assert len(asyncio.all_tasks()) - before == 2


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="ping"):
        EventSourceResponse(iter_nothing(), ping=0)
    with pytest.raises(ValueError, match="send_timeout"):
        EventSourceResponse(iter_nothing(), send_timeout=-1)


async def test_ready_items_of_a_merged_stream_are_coalesced_into_one_send() -> None:
    async def one(name: str) -> AsyncIterator[str]:
        yield name

    async with connect(EventSourceResponse(merge(one("a"), one("b"), one("c")))) as response:
        await response.wait_finished()
    frames = [body for body, more in body_messages(response.messages) if more]
    assert b"".join(frames).count(b"\n\n") == 3
    assert len(frames) < 3  # at least two frames went out in one send
    assert response.complete


async def test_a_plain_generator_is_sent_item_by_item_on_both_backends() -> None:
    """Only what is honestly ready is batched: a generator cannot say whether its next
    item is ready without being stepped, and the response never steps it by hand."""

    async def stream() -> AsyncIterator[str | bytes]:
        for i in range(5):
            yield str(i)
        yield b"data: x\n\ndata: y\n\n"  # bytes the stream joined itself: one send

    async with connect(EventSourceResponse(stream())) as response:
        await response.wait_finished()
    frames = [body for body, more in body_messages(response.messages) if more]
    assert frames == [b"data: %d\n\n" % i for i in range(5)] + [b"data: x\n\ndata: y\n\n"]


async def test_frames_before_an_error_still_reach_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stream() -> AsyncIterator[str]:
        yield "a"
        yield "b"
        raise RuntimeError("after two ready items")

    async with connect(EventSourceResponse(stream())) as response:
        await response.wait_finished()
    assert [e.data for e in await response.events(2)] == ["a", "b"]
    assert response.complete
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


async def test_big_bursts_are_split_into_bounded_sends() -> None:
    async def stream() -> AsyncIterator[str]:
        for _ in range(200):
            yield "x" * 1000

    async with connect(EventSourceResponse(stream())) as response:
        await response.wait_finished()
    bodies = [body for body, more in body_messages(response.messages) if more]
    assert sum(body.count(b"\n\n") for body in bodies) == 200
    assert max(len(body) for body in bodies) < 64 * 1024 + 1100


async def test_disconnect_while_flushing_closes_the_waiting_stream() -> None:
    """The stream suspends right after ready items; the flush blocks (frozen client);
    the client leaves: the stream's pending await must get the cancellation."""
    cleaned = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "a"
            yield "b"
            await anyio.sleep_forever()
            yield "never"  # pragma: no cover
        finally:
            cleaned.set()

    async with connect(EventSourceResponse(stream(), send_timeout=None)) as response:
        await response.wait_started()
        response.freeze()
        await anyio.sleep(0.05)
        await response.disconnect()
    assert cleaned.is_set()


async def test_streams_own_timeouts_and_scopes_keep_working() -> None:
    """The stream's own cancel scopes fire inside it, not on the response (on asyncio the
    request task takes the stream's steps itself when it coalesces)."""
    gate = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        with anyio.move_on_after(0.05) as scope:
            await anyio.sleep_forever()
        yield f"timed out: {scope.cancelled_caught}"
        with anyio.fail_after(5):
            await gate.wait()
        yield "gate opened"
        async with anyio.create_task_group() as group:  # a task group inside one step
            group.start_soon(anyio.sleep, 0.01)
        yield "group done"

    async with connect(EventSourceResponse(stream())) as response:
        assert (await response.next_event()).data == "timed out: True"
        gate.set()
        assert (await response.next_event()).data == "gate opened"
        assert (await response.next_event()).data == "group done"
        await response.wait_finished()
    assert response.complete


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_wait_for_and_shield_inside_the_stream() -> None:
    import asyncio

    async def slow() -> str:
        await asyncio.sleep(0.01)
        return "shielded"

    async def stream() -> AsyncIterator[str]:
        try:
            await asyncio.wait_for(asyncio.Event().wait(), 0.02)
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            yield "wait_for timed out"
        yield await asyncio.shield(slow())

    async with connect(EventSourceResponse(stream())) as response:
        assert [e.data for e in await response.events(2)] == ["wait_for timed out", "shielded"]


async def test_disconnect_reaches_a_stream_waiting_with_awaits_in_its_finally() -> None:
    """Cleanup that awaits under the cancellation is cancelled again (level-triggered, as
    anyio does), so it cannot hang the connection; shielded cleanup runs to the end."""
    steps: list[str] = []

    async def stream() -> AsyncIterator[str]:
        try:
            yield "x"
            await anyio.sleep_forever()
        finally:
            try:
                await anyio.sleep(10)
            except BaseException:
                steps.append("unshielded await cancelled")
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)
                steps.append("shielded cleanup ran")

    async with connect(EventSourceResponse(stream())) as response:
        await response.next_event()
        await response.disconnect()
    assert steps == ["unshielded await cancelled", "shielded cleanup ran"]


async def test_cancelled_by_the_server_still_ends_the_body_cleanly() -> None:
    """uvicorn's --timeout-graceful-shutdown or hypercorn's graceful_timeout cancel the
    request task: the stream is closed and the client still gets the end of the body."""
    cleaned = anyio.Event()
    # The server's deadline, fired by the test once the first event is through (a timed
    # deadline raced the first event on a loaded CI machine).
    server_deadline = anyio.CancelScope()

    async def server_with_timeout(
        scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        with server_deadline:
            await EventSourceResponse(first_then_forever(cleaned))(scope, receive, send)

    async with connect(server_with_timeout) as response:
        assert (await response.next_event()).data == "first"
        server_deadline.cancel()
        await response.wait_finished()
    assert cleaned.is_set()
    assert response.complete


async def test_a_failing_receive_ends_the_stream_once_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without receive() a disconnect would go unnoticed: the stream must not outlive it."""
    cleaned = anyio.Event()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        async def broken_receive() -> ASGIReceiveEvent:
            raise RuntimeError("the server's receive broke")

        await EventSourceResponse(first_then_forever(cleaned))(scope, broken_receive, send)

    async with connect(app) as response:
        await response.wait_finished()
    assert cleaned.is_set()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["asgi_sse: receive() raised; ending the stream"]


async def test_a_failing_keep_alive_send_ends_the_stream_once_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cleaned = anyio.Event()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        async def send_without_pings(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.body" and message["body"] == b": ping\n":
                raise RuntimeError("the server's send broke")
            await send(message)

        await EventSourceResponse(first_then_forever(cleaned), ping=0.05)(
            scope, receive, send_without_pings
        )

    async with connect(app) as response:
        assert (await response.next_event()).data == "first"
        await response.wait_finished()
    assert cleaned.is_set()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["asgi_sse: sending the keep-alive failed; ending the stream"]


class Note(BaseEvent[str]):
    pass


async def test_an_event_that_cannot_be_encoded_is_left_out_and_the_rest_still_goes_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lone surrogate in typed data (a broken decoder upstream) fails at send time; the
    event is left out with one error line naming it, every other event is delivered."""

    async def stream() -> AsyncIterator[Any]:
        yield Note(data="before")
        yield Note(data="x\ud800", id="7")
        yield "plain \udfff"
        yield Note(data="after")

    async with connect(EventSourceResponse(stream())) as response:
        await response.wait_finished()
    assert [e.data for e in await response.events(2)] == ['"before"', '"after"']
    assert response.complete
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert "Note (id '7') cannot be encoded" in errors[0].getMessage()
    assert "lone surrogate" in errors[1].getMessage()
    assert all(r.exc_info is None for r in errors)  # the reason, not a traceback


def test_an_unencodable_event_raises_where_it_is_encoded() -> None:
    from asgi_sse import InvalidEventError

    with pytest.raises(InvalidEventError, match="Note cannot be encoded"):
        Note(data="x\ud800").encode()
    with pytest.raises(InvalidEventError, match="Note cannot be encoded"):
        Note.frame("x\ud800")


async def test_options_gets_headers_only_and_the_stream_never_runs() -> None:
    started = False

    async def stream() -> AsyncIterator[str]:
        nonlocal started
        started = True
        yield "x"

    async with connect(EventSourceResponse(stream()), method="OPTIONS") as response:
        await response.wait_finished()
    assert body_messages(response.messages) == [(b"", False)]
    assert not started


async def test_an_oserror_of_the_stream_itself_is_a_stream_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OSError from send means the client left (ASGI 2.4); from the stream it is the
    stream's own failure: logged, and the client still gets a clean end."""

    async def stream() -> AsyncIterator[str]:
        yield "a"
        raise ConnectionRefusedError("the database is down")

    async with connect(EventSourceResponse(stream())) as response:
        await response.wait_finished()
    assert response.complete
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ping": 0}, ValueError),
        ({"ping": float("nan")}, ValueError),
        ({"send_timeout": -1}, ValueError),
        ({"ping": "15"}, TypeError),
        ({"send_timeout": True}, TypeError),
        ({"ping_event": "ping"}, TypeError),
    ],
)
def test_options_are_checked_at_construction(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        EventSourceResponse(iter_nothing(), **options)


# -- an observer that raises -----------------------------------------------------------


class RaisingObserver(StreamObserver):
    """Raises from ``failing`` (``on_open`` or ``on_close``); records every end."""

    def __init__(self, failing: str) -> None:
        self.failing = failing
        self.opened = 0
        self.closed: list[tuple[str, int]] = []

    def on_open(self, scope: Any) -> None:
        self.opened += 1
        if self.failing == "on_open":
            raise LookupError("on_open failed")

    def on_close(self, scope: Any, reason: Any, events: int, size: int, seconds: float) -> None:
        self.closed.append((reason, events))
        if self.failing == "on_close":
            raise LookupError("on_close failed")


def hook_failures(caplog: pytest.LogCaptureFixture, hook: str) -> list[logging.LogRecord]:
    """The log records of ``hook`` raising: logger asgi_sse, with the traceback."""
    return [
        record
        for record in caplog.records
        if record.name == "asgi_sse"
        and hook in record.getMessage()
        and record.exc_info is not None
        and isinstance(record.exc_info[1], LookupError)
    ]


async def test_an_observer_whose_on_open_raises_does_not_break_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Logged with its traceback; the stream runs and ends as ever (its finally runs)
    and on_close is told once."""
    cleaned = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "a"
            yield "b"
        finally:
            cleaned.set()

    observer = RaisingObserver("on_open")
    async with connect(EventSourceResponse(stream(), observer=observer)) as response:
        events = await response.events(2)
        await response.wait_finished()
    assert [event.data for event in events] == ["a", "b"]
    assert response.complete
    assert cleaned.is_set()
    assert (observer.opened, observer.closed) == (1, [("stream_end", 2)])
    assert len(hook_failures(caplog, "on_open")) == 1


async def test_an_observer_whose_on_open_raises_leaves_no_hub_subscriber(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The subscription streams, and is closed when the client leaves: not counted."""
    observer = RaisingObserver("on_open")
    async with Hub() as hub:
        response_app = EventSourceResponse(hub.subscribe("news"), observer=observer)
        async with connect(response_app) as response:
            await response.wait_started()  # the subscription is at the head
            event_id = await hub.publish("news", "hello")
            event = await response.next_event()
            assert (event.id, event.data) == (event_id, "hello")
            await response.disconnect()  # waits for the app to finish
        assert hub.stats().subscribers == 0
    assert observer.closed == [("client_left", 2)]
    assert len(hook_failures(caplog, "on_open")) == 1


async def test_an_observer_whose_on_close_raises_leaves_the_response_as_it_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stream() -> AsyncIterator[str]:
        yield "a"

    observer = RaisingObserver("on_close")
    async with connect(EventSourceResponse(stream(), observer=observer)) as response:
        event = await response.next_event()
        await response.wait_finished()
    assert event.data == "a"
    assert response.complete
    assert observer.closed == [("stream_end", 1)]
    assert len(hook_failures(caplog, "on_close")) == 1


async def test_an_observer_whose_on_close_raises_does_not_mask_a_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server cancels the response (its graceful-shutdown timeout): the
    cancellation propagates as itself, not on_close's error."""
    started = anyio.Event()
    cleaned = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "a"
            await anyio.sleep_forever()
        finally:
            cleaned.set()

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            started.set()

    observer = RaisingObserver("on_close")
    app = EventSourceResponse(stream(), observer=observer, ping=None)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:

            async def serve() -> None:
                with anyio.CancelScope() as server_scope:
                    server_scopes.append(server_scope)
                    await app(scope, receive, send)
                cancelled.append(server_scope.cancelled_caught)

            server_scopes: list[anyio.CancelScope] = []
            cancelled: list[bool] = []
            group.start_soon(serve)
            await started.wait()
            server_scopes[0].cancel()
    assert cancelled == [True]
    assert cleaned.is_set()
    assert observer.closed == [("server_cancelled", 1)]
    assert len(hook_failures(caplog, "on_close")) == 1
