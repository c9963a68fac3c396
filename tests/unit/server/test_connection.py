"""The connection's rules, driven through `EventSourceResponse` with a scripted server:
bodies go out in bounded pieces and `send_timeout` measures progress per piece, the
final body is bounded, a burst gives other tasks their turn, a never-awaiting stream
still sees its client leave, and the watcher never spins."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asgi_sse import EventSourceResponse, ServerSentEvent, ShutdownSignal
from asgi_sse._server.connection import FAIR_SHARE, PIECE, SHUTDOWN_FINAL_SEND, Connection
from asgi_sse._server.state import ConnectionState, IllegalTransition
from asgi_sse._util.asgi import ASGIReceiveEvent, ASGISendEvent
from tests.support.helpers import server_scope

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


class Server:
    """A scripted ASGI server side for one request.

    `delay` seconds per body send; `frozen`: body sends block until `thaw()`; once the
    client `leave()`s, `receive()` says http.disconnect and sends are dropped silently,
    as uvicorn does (or raise OSError with ``raise_after_leaving``).
    """

    def __init__(self, *, delay: float = 0.0, raise_after_leaving: bool = False) -> None:
        self.scope = server_scope()
        self.delay = delay
        self.raise_after_leaving = raise_after_leaving
        self.bodies: list[tuple[bytes, bool]] = []
        self.in_send = 0
        self.max_in_send = 0
        self.left = anyio.Event()
        self.first_body = anyio.Event()
        self._thawed = anyio.Event()
        self._thawed.set()
        self._request_sent = False

    def freeze(self) -> None:
        self._thawed = anyio.Event()

    def thaw(self) -> None:
        self._thawed.set()

    def leave(self) -> None:
        self.left.set()
        self._thawed.set()

    async def receive(self) -> ASGIReceiveEvent:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] != "http.response.body":
            return
        self.in_send += 1
        self.max_in_send = max(self.max_in_send, self.in_send)
        try:
            if self.left.is_set():
                if self.raise_after_leaving:
                    raise OSError("client gone")
                return
            if self.delay:
                await anyio.sleep(self.delay)
            await self._thawed.wait()
            if self.left.is_set():
                return
            self.bodies.append((message["body"], message.get("more_body", False)))
            self.first_body.set()
        finally:
            self.in_send -= 1

    @property
    def complete(self) -> bool:
        return bool(self.bodies) and self.bodies[-1] == (b"", False)

    async def run(self, response: EventSourceResponse) -> None:
        await response(self.scope, self.receive, self.send)


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_large_event_goes_out_in_bounded_pieces() -> None:
    big = "x" * (3 * PIECE)

    async def stream() -> AsyncIterator[str]:
        yield big
        yield "after"

    server = Server()
    await server.run(EventSourceResponse(stream()))
    sizes = [len(body) for body, more in server.bodies if more]
    assert max(sizes) <= PIECE
    assert b"".join(body for body, _ in server.bodies) == (
        b"data: " + big.encode() + b"\n\ndata: after\n\n"
    )
    assert server.complete


async def test_a_slow_but_steady_reader_is_never_dropped_by_a_large_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each piece takes 0.06 s, the whole event 0.3 s: longer than send_timeout (0.15 s),
    yet the client makes progress all along, so it is kept."""

    async def stream() -> AsyncIterator[str]:
        yield "y" * (4 * PIECE)
        for n in range(3):
            yield str(n)

    server = Server(delay=0.06)
    with anyio.fail_after(10):
        await server.run(EventSourceResponse(stream(), send_timeout=0.15))
    assert server.complete
    assert b"".join(body for body, _ in server.bodies).endswith(b"data: 2\n\n")
    assert warnings_in(caplog) == []


async def test_the_final_body_is_bounded_when_the_client_stops_reading_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The stream ends while the client is frozen: the request task is released after
    send_timeout, with one warning line, instead of waiting for the client forever."""
    cleaned = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "last"
        finally:
            cleaned.set()

    server = Server()
    server.freeze()  # frozen from the start: "last" cannot even be sent
    started = anyio.current_time()
    with anyio.fail_after(5):
        await server.run(EventSourceResponse(stream(), send_timeout=0.2))
    took = anyio.current_time() - started
    assert cleaned.is_set()
    assert took < 0.2 + 1.0
    assert not server.complete
    assert len(warnings_in(caplog)) == 1
    assert "did not read for 0.2s" in warnings_in(caplog)[0]


async def test_the_final_body_alone_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """Every event was sent; only the final empty body finds the client frozen."""

    async def stream() -> AsyncIterator[str]:
        yield "only"

    server = Server()
    original_send = server.send

    async def send(message: ASGISendEvent) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            server.freeze()
        await original_send(message)

    with anyio.fail_after(5):
        await EventSourceResponse(stream(), send_timeout=0.2)(server.scope, server.receive, send)
    assert server.bodies == [(b"data: only\n\n", True)]
    assert len(warnings_in(caplog)) == 1


async def test_shutdown_with_a_frozen_client_does_not_wait_for_send_timeout() -> None:
    shutdown = ShutdownSignal()
    cleaned = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "first"
            await anyio.sleep_forever()
        finally:
            cleaned.set()

    server = Server()

    async def stop_when_frozen() -> None:
        await server.first_body.wait()
        server.freeze()
        shutdown.trigger()

    started = anyio.current_time()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(stop_when_frozen)
            await server.run(EventSourceResponse(stream(), send_timeout=60, shutdown=shutdown))
    assert cleaned.is_set()
    assert anyio.current_time() - started < SHUTDOWN_FINAL_SEND + 1.0


async def test_the_client_leaving_during_the_final_body_ends_it_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stream() -> AsyncIterator[str]:
        yield "only"

    server = Server()
    original_send = server.send

    async def send(message: ASGISendEvent) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            server.freeze()
            server.left = anyio.Event()  # the watcher now waits on this one
        await original_send(message)

    async def leave_soon() -> None:
        await server.first_body.wait()
        await anyio.sleep(0.05)  # the final send is blocked by now
        server.leave()

    started = anyio.current_time()
    async with anyio.create_task_group() as group:
        group.start_soon(leave_soon)
        await EventSourceResponse(stream(), send_timeout=30)(server.scope, server.receive, send)
    assert anyio.current_time() - started < 5
    assert warnings_in(caplog) == []  # the client left: nothing to warn about


async def test_a_stream_that_never_awaits_still_sees_its_client_leave() -> None:
    """uvicorn's send does not suspend below its high-water mark and drops sends after a
    disconnect silently: without a turn for the watcher now and then, a generator that
    never awaits would hold the event loop forever and its finally would never run."""
    cleaned = anyio.Event()
    sent_after_leaving = 0

    async def stream() -> AsyncIterator[ServerSentEvent]:
        try:
            while True:
                yield ServerSentEvent("h")
        finally:
            cleaned.set()

    server = Server()
    original_send = server.send

    async def send(message: ASGISendEvent) -> None:
        nonlocal sent_after_leaving
        if server.left.is_set():
            sent_after_leaving += 1
        elif len(server.bodies) == 1000:
            server.leave()  # no task switch: only the response can notice it
        await original_send(message)

    with anyio.fail_after(10):
        await EventSourceResponse(stream())(server.scope, server.receive, send)
    assert cleaned.is_set()
    # noticed at the next turn it gave the watcher: within one fair share of sends
    assert sent_after_leaving <= FAIR_SHARE // 1024


async def test_a_burst_gives_other_tasks_their_turn() -> None:
    """A burst of ready items on one connection (sends that never suspend) lets other
    tasks run at least once every FAIR_SHARE bytes."""
    turns = 0
    seen: list[int] = []
    done = False

    async def other_connection() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await anyio.lowlevel.checkpoint()

    async def stream() -> AsyncIterator[str]:
        for _ in range(5000):
            yield "z" * 100

    server = Server()
    original_send = server.send

    async def send(message: ASGISendEvent) -> None:
        seen.append(turns)
        await original_send(message)

    async with anyio.create_task_group() as group:
        group.start_soon(other_connection)
        await anyio.lowlevel.checkpoint()
        await EventSourceResponse(stream())(server.scope, server.receive, send)
        done = True
    # the longest run of sends during which the other task never ran
    longest = run = 0
    for before, after in itertools.pairwise(seen):
        run = run + 1 if after == before else 0
        longest = max(longest, run)
    assert longest <= FAIR_SHARE // (100 + 8)


async def test_never_two_sends_at_once_while_keep_alives_are_due() -> None:
    """A send blocks longer than the ping interval: no keep-alive is sent beside it."""

    async def stream() -> AsyncIterator[str]:
        yield "a"
        yield "b"
        await anyio.sleep(0.2)  # idle: keep-alives now
        yield "c"

    server = Server(delay=0.1)
    await server.run(EventSourceResponse(stream(), ping=0.02, send_timeout=1))
    assert server.max_in_send == 1
    assert server.complete
    data = b"".join(body for body, _ in server.bodies)
    assert b": ping\n" in data
    assert data.replace(b": ping\n", b"") == b"data: a\n\ndata: b\n\ndata: c\n\n"


async def test_the_watcher_does_not_spin_while_a_send_outlasts_the_ping_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wakes = 0
    next_wake = Connection.next_wake

    def counting(conn: Connection) -> float:
        nonlocal wakes
        wakes += 1
        return next_wake(conn)

    monkeypatch.setattr(Connection, "next_wake", counting)

    async def stream() -> AsyncIterator[str]:
        yield "slow to send"

    server = Server(delay=0.3)
    await server.run(EventSourceResponse(stream(), ping=0.01, send_timeout=None))
    assert server.complete
    assert wakes < 0.3 / 0.01 * 3  # about one per ping interval, not a busy loop


async def test_send_timeout_none_never_drops() -> None:
    async def stream() -> AsyncIterator[str]:
        yield "a"

    server = Server(delay=0.3)
    await server.run(EventSourceResponse(stream(), send_timeout=None, ping=None))
    assert server.complete


async def test_next_wake_without_ping_or_timeout_is_never() -> None:
    async def noop(message: Any) -> None:
        pass

    from asgi_sse._server.options import StreamOptions

    conn = Connection(noop, StreamOptions(ping=None, send_timeout=None), {})
    assert conn.next_wake() == math.inf
    conn.state = "sending_frames"
    assert conn.next_wake() == math.inf
    assert conn.describe_client() == "a client on ?"


def direct_connection(
    ping: float | None = None, send_timeout: float | None = None, observer: Any = None
) -> tuple[Connection, list[bytes]]:
    """A connection driven by hand, and the bodies handed to its `send`."""
    from asgi_sse._server.options import StreamOptions

    sent: list[bytes] = []

    async def send(message: Any) -> None:
        sent.append(message["body"])

    options = StreamOptions(ping=ping, send_timeout=send_timeout, observer=observer)
    return Connection(send, options, {}), sent


async def test_a_frame_for_a_client_that_is_gone_is_not_sent() -> None:
    """The watcher ended the connection while the request task ran on (trio resumes a
    task whose send completed before it delivers the cancellation): the next frame is
    not handed to send, and the pending cancellation ends the stream right there."""
    conn, sent = direct_connection()
    with conn.scope:
        conn.end("client_left")
        await conn.send_frames(b"data: late\n\n")
        pytest.fail("the cancellation should have ended the stream")  # pragma: no cover
    assert conn.scope.cancelled_caught
    assert sent == []
    assert (conn.state, conn.ended_by) == ("gone", "client_left")


async def test_sending_where_the_state_forbids_it_is_an_error() -> None:
    """A frame after the final body, or to a gone client with no cancellation on its
    way, is a bug of the response's lifecycle: it raises instead of sending."""
    conn, sent = direct_connection()
    await conn.finish()
    assert conn.state == "finished"
    with pytest.raises(IllegalTransition, match="from finished to sending_frames"):
        await conn.send_frames(b"data: late\n\n")
    conn.record_end("client_left")  # after the last byte: recorded, nothing to do
    with pytest.raises(IllegalTransition, match="from gone to sending_frames"):
        await conn.send_frames(b"data: late\n\n")
    assert sent == [b""]


async def test_the_client_leaving_during_a_frame_send_keeps_the_connection_gone() -> None:
    """`send` returned normally, but the client left meanwhile: the connection stays
    gone instead of going back to idle, and no final body follows."""
    conn, sent = direct_connection()
    original = conn._send

    async def send(message: Any) -> None:
        await original(message)
        conn.record_end("client_left")

    conn._send = send
    await conn.send_frames(b"data: a\n\n")
    assert conn.state == "gone"
    await conn.finish()
    assert sent == [b"data: a\n\n"]


async def test_a_keepalive_that_is_no_longer_due_is_not_sent() -> None:
    """On asyncio the keep-alive runs in a task started a little after the watcher saw
    it due: if the request task sent meanwhile, or began to end, it does nothing."""
    conn, sent = direct_connection(ping=60)
    assert not conn.keepalive_due()
    assert await conn.send_keepalive()  # idle, just not due yet: the response goes on
    conn.state = "sending_frames"
    assert await conn.send_keepalive()  # a frame is on its way: one send at a time
    conn.state = "idle"
    await conn.finish()
    assert not await conn.send_keepalive()  # the response is complete
    assert sent == [b""]


async def test_what_was_sent_is_counted_only_for_an_observer() -> None:
    from asgi_sse import StreamObserver

    frames = b"data: a\n\ndata: b\n\n"
    unobserved, _ = direct_connection()
    await unobserved.send_frames(frames)
    assert (unobserved.events_sent, unobserved.bytes_sent) == (0, 0)
    observed, _ = direct_connection(observer=StreamObserver())
    await observed.send_frames(frames)
    assert (observed.events_sent, observed.bytes_sent) == (2, len(frames))


@pytest.mark.parametrize(
    ("state", "wake"),
    [("finishing", math.inf), ("finished", math.inf), ("gone", math.inf), ("idle", 2.0)],
)
async def test_nothing_is_watched_for_once_the_response_ends(
    state: ConnectionState, wake: float
) -> None:
    conn, _ = direct_connection(ping=5, send_timeout=2)
    conn.state = state
    assert conn.next_wake() == pytest.approx(wake, abs=0.5)
    assert not conn.keepalive_due()
    assert not conn.drop_if_stalled()


async def test_a_broken_server_send_is_not_blamed_on_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A send that raises something else than OSError: logged once as the server's
    failure, the stream is closed at its yield, and no final body is attempted."""
    closed_at_yield = False

    async def stream() -> AsyncIterator[str]:
        nonlocal closed_at_yield
        try:
            yield "a"
        except GeneratorExit:
            closed_at_yield = True
            raise

    attempts: list[bool] = []

    async def send(message: ASGISendEvent) -> None:
        if message["type"] == "http.response.body":
            attempts.append(message.get("more_body", False))
            raise RuntimeError("the server's send broke")

    server = Server()
    await EventSourceResponse(stream())(server.scope, server.receive, send)
    assert closed_at_yield
    assert attempts == [True]  # no final body after the transport broke
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["asgi_sse: the server's send failed; ending the response"]


async def test_the_client_leaving_while_the_stream_reads_the_body_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`request.body()` inside the stream raises ClientDisconnected when the client
    leaves mid-body: a client can do that at will, so it is no error and no traceback."""
    from asgi_sse import SSEEndpoint, SSERequest

    async def handler(request: SSERequest) -> AsyncIterator[str]:
        yield "started"
        yield (await request.body()).decode()

    server = Server()
    server.scope["method"] = "POST"
    messages: list[ASGIReceiveEvent] = [
        {"type": "http.request", "body": b"part", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> ASGIReceiveEvent:
        if messages:
            return messages.pop(0)
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    with anyio.fail_after(5):
        await SSEEndpoint(handler)(server.scope, receive, server.send)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_nothing_is_sent_after_a_keep_alive_timed_out() -> None:
    """The keep-alive finds the client frozen and drops it: the frame the stream made
    meanwhile must not be handed to send()."""
    handed: list[bytes] = []
    release = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        yield "first"
        await release.wait()  # quiet: a keep-alive goes out (and hangs)
        yield "made while the keep-alive hangs"

    async def send(message: ASGISendEvent) -> None:
        if message["type"] != "http.response.body":
            return
        handed.append(message["body"])
        if message["body"] == b": ping\n":
            release.set()
            await anyio.sleep_forever()

    server = Server()
    with anyio.fail_after(5):
        await EventSourceResponse(stream(), ping=0.05, send_timeout=0.2)(
            server.scope, server.receive, send
        )
    assert handed == [b"data: first\n\n", b": ping\n"]


@pytest.mark.parametrize("what", ["keep-alive", "final body"])
async def test_an_oserror_from_send_is_the_client_leaving(
    what: str, caplog: pytest.LogCaptureFixture
) -> None:
    """ASGI 2.4: send raises OSError once the client is gone - quietly the end."""
    cleaned = anyio.Event()
    release = anyio.Event()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "a"
            if what == "keep-alive":
                await release.wait()
        finally:
            cleaned.set()

    attempts: list[bytes] = []

    async def send(message: ASGISendEvent) -> None:
        if message["type"] != "http.response.body":
            return
        attempts.append(message["body"])
        failing = b": ping\n" if what == "keep-alive" else b""
        if message["body"] == failing and len(attempts) > 1:
            raise OSError("client gone")

    server = Server()
    with anyio.fail_after(5):
        await EventSourceResponse(stream(), ping=0.02)(server.scope, server.receive, send)
    assert cleaned.is_set()
    expected = [b"data: a\n\n", b": ping\n"] if what == "keep-alive" else [b"data: a\n\n", b""]
    assert attempts == expected
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_ready_items_are_batched_up_to_a_bound_and_bad_ones_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from asgi_sse import BaseEvent, merge
    from asgi_sse._server.pump import BATCH_BYTES

    class Note(BaseEvent[str]):
        pass

    async def source() -> AsyncIterator[Any]:
        yield Note(data="\ud800")  # the first item of a batch cannot be encoded
        for _ in range(40):
            yield "x" * 4000

    server = Server()
    await server.run(EventSourceResponse(merge(source(), buffer=64)))
    sizes = [len(body) for body, more in server.bodies if more]
    assert sum(sizes) == 40 * len(b"data: " + b"x" * 4000 + b"\n\n")
    assert max(sizes) <= BATCH_BYTES + 4010
    assert len(sizes) >= 3
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


async def test_items_an_iterator_says_are_ready_go_out_in_one_send() -> None:
    """`next_ready()` (None: nothing ready) is preferred to `next_nowait()`; a hub
    subscription offers it. Ready items join the one the pump waited for."""

    class Backlog:
        def __init__(self) -> None:
            self.items = ["a", "b", "c"]

        def __aiter__(self) -> Backlog:
            return self

        async def __anext__(self) -> str:
            if not self.items:
                raise StopAsyncIteration
            return self.items.pop(0)

        def next_ready(self) -> str | None:
            return self.items.pop(0) if len(self.items) > 1 else None

        def next_nowait(self) -> str:  # pragma: no cover - next_ready comes first
            raise AssertionError("next_ready is preferred")

    server = Server()
    await server.run(EventSourceResponse(Backlog()))
    assert server.bodies == [
        (b"data: a\n\ndata: b\n\n", True),
        (b"data: c\n\n", True),
        (b"", False),
    ]


@pytest.mark.parametrize(
    ("item", "sent"),
    [
        (bytearray(b"data: a\n\n"), b"data: a\n\n"),
        (memoryview(b"data: b\n\n"), b"data: b\n\n"),
    ],
)
async def test_bytes_like_items_are_sent_as_bytes(item: object, sent: bytes) -> None:
    async def stream() -> AsyncIterator[Any]:
        yield item

    server = Server()
    await server.run(EventSourceResponse(stream()))
    assert server.bodies[0] == (sent, True)


async def test_the_headers_property_is_a_copy() -> None:
    response = EventSourceResponse(iter(()), headers={"x-a": "1"})  # type: ignore[arg-type]
    headers = response.headers
    headers.clear()
    assert (b"x-a", b"1") in response.headers


async def test_the_final_body_waits_for_a_keep_alive_in_flight() -> None:
    async def stream() -> AsyncIterator[str]:
        yield "a"
        await anyio.sleep(0.1)  # a keep-alive starts meanwhile and takes 0.2 s

    order: list[bytes] = []
    in_send = 0

    async def send(message: ASGISendEvent) -> None:
        nonlocal in_send
        if message["type"] != "http.response.body":
            return
        assert in_send == 0, "two sends at once"
        in_send += 1
        try:
            if message["body"] == b": ping\n":
                await anyio.sleep(0.2)
            order.append(message["body"])
        finally:
            in_send -= 1

    server = Server()
    await EventSourceResponse(stream(), ping=0.05)(server.scope, server.receive, send)
    assert order == [b"data: a\n\n", b": ping\n", b""]


async def test_a_lone_ready_item_that_cannot_be_encoded_sends_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from asgi_sse import BaseEvent, merge

    class Note(BaseEvent[str]):
        pass

    async def source() -> AsyncIterator[Note]:
        yield Note(data="\udc80")

    server = Server()
    await server.run(EventSourceResponse(merge(source())))
    assert server.bodies == [(b"", False)]


async def test_only_http_scopes_are_served() -> None:
    server = Server()
    server.scope["type"] = "websocket"
    with pytest.raises(RuntimeError, match="serves HTTP requests, not 'websocket'"):
        await server.run(EventSourceResponse(iter(())))  # type: ignore[arg-type]
