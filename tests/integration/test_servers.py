"""The demo and test apps in real server processes (uvicorn, hypercorn, hypercorn's trio
worker), over real sockets on 127.0.0.1.

- The demo's three streams, read with httpx and httpx-sse's parser (independent of
  ours), and as raw bytes the way ``curl -N`` shows them; /sse3's resume from its
  cursor, and the demo's chat (its hub) fanning out.
- A client that leaves mid-stream: the stream's cleanup runs in the server (/stats).
- Graceful shutdown: 50 open streams, then SIGINT or
  SIGTERM; every client must see the chunked body's terminating ``0\\r\\n\\r\\n``, every
  stream's cleanup must run, and the process must exit. Run with ``-s`` for the table
  of measured times.
- Tasks per idle connection under uvicorn.

The servers are plain sync subprocesses (tests/support/servers.py); every wait has a deadline.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import selectors
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import ServerSentEvent as ClientEvent
from httpx_sse import connect_sse

from asgi_sse._protocol.cursor import parse_cursor, source_key
from tests.support.servers import (
    DEMO_APP,
    HOST,
    RECORDED_DEMO_APP,
    TEST_APP,
    Server,
    running,
    wait_until,
)

TIMEOUT = httpx.Timeout(10.0)


# -- a raw HTTP/1.1 client: what the bytes on the wire are, and when they arrived -----


class RawStream:
    """One GET over a plain socket, its chunked body decoded as it arrives.

    `complete` means the terminating chunk (``0\\r\\n\\r\\n``) arrived: a clean end of
    the body. `ended_at` is when the body completed or the connection closed.
    """

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        self.path = path
        self.sock = socket.create_connection((HOST, port), timeout=10)
        lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.sock.setblocking(False)
        self.raw = bytearray()  # everything received
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = bytearray()  # the decoded body
        self.complete = False
        self.eof = False
        self.error: str | None = None
        self.ended_at: float | None = None
        self._pending = bytearray()
        self._head_done = False

    @property
    def done(self) -> bool:
        return self.complete or self.eof

    def frames(self) -> int:
        """Complete SSE frames received so far (blank-line terminated)."""
        return self.body.count(b"\n\n")

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:  # e.g. reset by peer: not a clean end
            self.error = repr(exc)
            data = b""
        if not data:
            self.eof = True
            self._end()
            return
        self.raw += data
        self._pending += data
        self._parse()
        if self.complete:
            self._end()

    def _end(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.monotonic()

    def _parse(self) -> None:
        buf = self._pending
        if not self._head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            self.status = int(head[0].split()[1])
            for line in head[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            self._head_done = True
            assert self.headers.get("transfer-encoding") == "chunked", self.headers
        while not self.complete:
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(buf[:line_end]).split(b";")[0], 16)
            if size == 0:
                if buf[line_end + 2 : line_end + 4] != b"\r\n":  # no trailers are sent
                    return
                del buf[: line_end + 4]
                self.complete = True
                return
            if len(buf) < line_end + 2 + size + 2:
                return
            chunk = buf[line_end + 2 : line_end + 2 + size]
            assert buf[line_end + 2 + size : line_end + 4 + size] == b"\r\n"
            self.body += chunk
            del buf[: line_end + 4 + size]

    def close(self) -> None:
        self.sock.close()


def pump(
    streams: list[RawStream],
    until: Callable[[], bool],
    timeout: float,
    what: str,
    on_tick: Callable[[], None] | None = None,
) -> None:
    """Read every stream as data arrives until ``until()`` (AssertionError after
    ``timeout``). ``on_tick`` runs at least every 10 ms (to notice a process exit)."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            if not stream.done:
                selector.register(stream.sock, selectors.EVENT_READ, stream)
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            for key, _ in selector.select(timeout=0.01):
                stream = key.data
                stream.on_readable()
                if stream.done:
                    selector.unregister(stream.sock)
            if on_tick is not None:
                on_tick()


@pytest.fixture
def raw_streams() -> Iterator[list[RawStream]]:
    streams: list[RawStream] = []
    try:
        yield streams
    finally:
        for stream in streams:
            stream.close()


def get_json(server: Server, path: str) -> Any:
    response = httpx.get(server.url(path), timeout=TIMEOUT)
    response.raise_for_status()
    return response.json()


# -- 1. the demo's three streams under uvicorn, hypercorn and hypercorn's trio worker ----


@pytest.fixture(scope="module", params=["demo", "demo-hypercorn", "hypercorn-trio"])
def demo(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The demo, served by ``python -m asgi_sse.demo`` (uvicorn), by the same with
    ``--server hypercorn``, and by ``hypercorn -k trio asgi_sse.demo:app``."""
    with running(str(request.param), DEMO_APP) as server:
        yield server


def read_events(server: Server, path: str, count: int, **headers: str) -> list[ClientEvent]:
    """The first ``count`` events of ``path``, parsed by httpx-sse; then disconnect."""
    events: list[ClientEvent] = []
    with (
        httpx.Client(timeout=TIMEOUT) as client,
        connect_sse(client, "GET", server.url(path), headers=headers) as source,
    ):
        response = source.response
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache, no-transform"
        assert response.headers["x-accel-buffering"] == "no"
        for event in source.iter_sse():
            events.append(event)
            if len(events) == count:
                break
    return events


def test_sse_plain_events_with_json_data(demo: Server) -> None:
    events = read_events(demo, "/sse?message=hello&interval=0.05", 4)
    assert [(e.event, e.id) for e in events] == [("echo", str(n)) for n in range(4)]
    for event in events:
        payload = json.loads(event.data)  # real JSON, not a Python dict's repr
        assert set(payload) == {"message", "created_at"}
        assert payload["message"] == "hello"
        assert isinstance(payload["created_at"], float)


def test_sse2_typed_events(demo: Server) -> None:
    events = read_events(demo, "/sse2?message=h%C3%A9llo%20w%C3%B6rld&interval=0.05", 4)
    assert [(e.event, e.id) for e in events] == [("echo", str(n)) for n in range(4)]
    stamps = []
    for event in events:
        payload = json.loads(event.data)
        assert payload["message"] == "héllo wörld"
        stamps.append(dt.datetime.fromisoformat(payload["created_at"]))
    assert stamps == sorted(stamps)


def test_the_typed_client_reads_the_demos_sse2(demo: Server) -> None:
    # The typed client's guide (docs/how-to/client.md), against a real demo server.
    from asgi_sse.client import EventSource
    from asgi_sse.demo import Echo

    async def main() -> list[Echo]:
        echoes: list[Echo] = []
        with anyio.fail_after(15):
            url = demo.url("/sse2?message=hello&interval=0.05")
            async with EventSource(url, events=(Echo,)) as source:
                async for echo in source:
                    assert isinstance(echo, Echo), echo
                    echoes.append(echo)
                    if len(echoes) == 3:
                        break
        return echoes

    echoes = anyio.run(main)
    assert [(echo.id, echo.data.message) for echo in echoes] == [
        (str(n), "hello") for n in range(3)
    ]


def source_number(event: ClientEvent) -> str:
    """The number an /sse3 event's own source gave it: its entry in the cursor id."""
    return (parse_cursor(event.id) or {})[source_key(event.event)]


def test_sse3_interleaves_echo_and_reverse_echo(demo: Server) -> None:
    events = read_events(demo, "/sse3?message=hello&interval=0.05", 10)
    kinds = [event.event for event in events]
    assert kinds[0] == "echo"  # reverse_echo starts one interval later
    assert "reverse_echo" in kinds[:4]  # ...and then they alternate, not one after the other
    assert kinds.count("echo") >= 4
    assert kinds.count("reverse_echo") >= 4
    for name, message in (("echo", "hello"), ("reverse_echo", "olleh")):
        mine = [event for event in events if event.event == name]
        assert [source_number(event) for event in mine] == [str(n) for n in range(len(mine))]
        assert {json.loads(event.data)["message"] for event in mine} == {message}


def test_sse3_resumes_each_source_after_its_own_last_id(demo: Server) -> None:
    events = read_events(demo, "/sse3?interval=0.05", 5)
    cursor = events[-1].id
    resumed = read_events(demo, "/sse3?interval=0.05", 4, **{"Last-Event-ID": cursor})
    before = parse_cursor(cursor) or {}
    for name in ("echo", "reverse_echo"):
        mine = [int(source_number(event)) for event in resumed if event.event == name]
        last = int(before.get(source_key(name), "-1"))
        assert mine == list(range(last + 1, last + 1 + len(mine))), (name, cursor, mine)
    assert cursor in get_json(demo, "/stats")["last_event_ids"]


def test_reconnect_resumes_after_last_event_id(demo: Server) -> None:
    events = read_events(demo, "/sse2?interval=0.05", 2, **{"Last-Event-ID": "41"})
    assert [event.id for event in events] == ["42", "43"]
    assert "41" in get_json(demo, "/stats")["last_event_ids"]


FRAME = re.compile(rb"event: echo\nid: (\d+)\ndata: (\{[^\n]*\})\n\n")


@pytest.mark.parametrize("path", ["/sse", "/sse2"])
def test_raw_bytes_look_like_the_tutorials(
    demo: Server, path: str, raw_streams: list[RawStream]
) -> None:
    stream = RawStream(demo.port, f"{path}?message=hello&interval=0.05")
    raw_streams.append(stream)
    pump([stream], lambda: stream.frames() >= 3 or stream.done, 10, "three frames")
    assert stream.status == 200
    assert stream.headers["content-type"] == "text/event-stream"
    body = bytes(stream.body)
    frames = list(FRAME.finditer(body))
    assert len(frames) >= 3, body
    assert body.startswith(frames[0].group(0))  # nothing before the first event
    assert b"".join(frame.group(0) for frame in frames) == body[: frames[-1].end()]
    for n, frame in enumerate(frames):
        assert int(frame.group(1)) == n
        payload = json.loads(frame.group(2))
        assert payload["message"] == "hello"
    if path == "/sse2":  # pydantic's compact JSON, exactly as on the docs' home page
        assert body.startswith(b'event: echo\nid: 0\ndata: {"message":"hello","created_at":"')


# -- 2. a client that leaves mid-stream: the cleanup runs in the server --------------


def test_disconnect_mid_stream_runs_cleanup(demo: Server, raw_streams: list[RawStream]) -> None:
    wait_until(lambda: get_json(demo, "/stats")["open"] == 0, 10, "earlier streams to close")
    closed_before = get_json(demo, "/stats")["closed"]
    paths = ["/sse", "/sse2", "/sse3"] * 4
    streams = [RawStream(demo.port, f"{path}?interval=0.05") for path in paths]
    raw_streams.extend(streams)
    pump(streams, lambda: all(s.frames() >= 2 for s in streams), 15, "two frames on each stream")
    assert get_json(demo, "/stats")["open"] == len(streams)
    for stream in streams:
        stream.sock.shutdown(socket.SHUT_RDWR)  # gone mid-stream, like a closed tab
        stream.close()

    def all_cleaned_up() -> bool:
        stats = get_json(demo, "/stats")
        return bool(stats["open"] == 0 and stats["closed"] == closed_before + len(streams))

    wait_until(all_cleaned_up, 10, f"cleanup of {len(streams)} streams ({demo.kind})")


def test_disconnect_with_httpx_runs_cleanup(demo: Server) -> None:
    wait_until(lambda: get_json(demo, "/stats")["open"] == 0, 10, "earlier streams to close")
    closed_before = get_json(demo, "/stats")["closed"]
    assert len(read_events(demo, "/sse3?interval=0.05", 3)) == 3

    def cleaned_up() -> bool:
        stats = get_json(demo, "/stats")
        return bool((stats["open"], stats["closed"]) == (0, closed_before + 1))

    wait_until(cleaned_up, 10, "the stream's cleanup")


def test_the_demo_chat_fans_out_with_the_same_ids(demo: Server) -> None:
    """Two chat clients and a publish, over HTTP: the demo's hub under each server."""
    with (
        httpx.Client(base_url=demo.base_url, timeout=TIMEOUT) as http,
        connect_sse(http, "GET", "/chat?client=one") as one,
        connect_sse(http, "GET", "/chat?client=two") as two,
    ):
        # As a browser dispatches them: httpx-sse also yields the hub's id-only priming
        # frame, which has no data.
        streams = [(e for e in source.iter_sse() if e.data) for source in (one, two)]
        for stream in streams:  # the `connected` event: both are subscribed now
            assert next(stream).event == "connected"
        published = http.post("/chat/publish", data={"text": "hello, both"})
        assert published.status_code == 204
        got = [next(stream) for stream in streams]
        assert http.post("/chat/drop", params={"client": "one"}).status_code == 204
        with pytest.raises(StopIteration):  # dropped: its body ends cleanly
            next(streams[0])
    assert [(e.event, e.id) for e in got] == [
        ("chat_message", published.headers["x-event-id"])
    ] * 2
    assert {json.loads(e.data)["text"] for e in got} == {"hello, both"}


# -- 3. graceful shutdown with 50 open streams ---------------------------------------

STREAMS = 50
SHUTDOWN_BOUND = 3.0  # streams end "within about a second"; generous for a loaded 2-core machine
EXIT_BOUND = 5.0


class ShutdownCase:
    def __init__(self, kind: str, signum: signal.Signals, group: bool = False) -> None:
        self.kind = kind
        self.signum = signum
        self.group = group

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.signum.name}" + ("-group" if self.group else "")


# Note: hypercorn's CLI runs the app in a worker process it spawns (-w 1 by default);
# "pid" signals only the process we started (kill PID, docker stop), "group" signals
# its process group (Ctrl+C in a terminal; systemd's default KillMode=control-group).
_PID_ONLY = pytest.mark.xfail(
    strict=True,
    reason=(
        "limitation (documented in docs/how-to/shutdown.md): under hypercorn's "
        "multi-process CLI a signal to the supervisor alone never reaches "
        "GracefulShutdown in the worker "
        "(hypercorn stops workers through a multiprocessing event the app cannot see); "
        "hypercorn waits its graceful_timeout (3 s) and cancels the streams, which then "
        "end cleanly - but after 3 s, not at once"
    ),
)

# Note: not in the table - `hypercorn -k trio -w 0` with SIGINT. hypercorn's in-process
# trio worker installs no signal handler, so trio's own SIGINT handler raises
# KeyboardInterrupt in whatever code runs at that moment (GracefulShutdown calls it
# after ending the streams); where it lands decides whether the process exits: flaky.
SHUTDOWN_CASES = [
    pytest.param(
        ShutdownCase(kind, signum, group), id=ShutdownCase(kind, signum, group).id, marks=marks
    )
    for kind, signum, group, marks in [
        ("demo", signal.SIGINT, False, ()),
        ("demo", signal.SIGTERM, False, ()),
        ("demo-hypercorn", signal.SIGINT, False, ()),
        ("demo-hypercorn", signal.SIGTERM, False, ()),
        ("uvicorn", signal.SIGINT, False, ()),
        ("uvicorn", signal.SIGTERM, False, ()),
        ("hypercorn-w0", signal.SIGINT, False, ()),
        ("hypercorn-w0", signal.SIGTERM, False, ()),
        ("hypercorn-trio-w0", signal.SIGTERM, False, ()),
        ("hypercorn", signal.SIGINT, True, ()),
        ("hypercorn", signal.SIGTERM, True, ()),
        ("hypercorn", signal.SIGINT, False, (_PID_ONLY,)),
        ("hypercorn", signal.SIGTERM, False, (_PID_ONLY,)),
        ("hypercorn-trio", signal.SIGINT, True, ()),
        ("hypercorn-trio", signal.SIGTERM, True, ()),
        ("hypercorn-trio", signal.SIGINT, False, (_PID_ONLY,)),
        ("hypercorn-trio", signal.SIGTERM, False, (_PID_ONLY,)),
    ]
]

_TABLE: list[tuple[str, str, str, int, str, str, str, str]] = []


@pytest.fixture(scope="module", autouse=True)
def _print_shutdown_table() -> Iterator[None]:
    yield
    if not _TABLE:
        return
    header = (
        "server",
        "signal",
        "to",
        "streams",
        "clean ends",
        "signal->last end",
        "signal->exit",
        "exit code",
    )
    rows = [header, *[tuple(str(cell) for cell in row) for row in _TABLE]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print(
        "\n\nGraceful shutdown, measured (bound asserted: last end <= "
        f"{SHUTDOWN_BOUND} s, exit <= {EXIT_BOUND} s):"
    )
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def _expected_exit_codes(case: ShutdownCase) -> set[int]:
    if case.signum == signal.SIGTERM:
        # Note: uvicorn (>= 0.29) restores the original handlers after its graceful
        # shutdown and raises the signal it caught again, on purpose, so that the
        # parent sees "terminated by SIGTERM"; GracefulShutdown does the same where
        # SIGTERM had no handler (hypercorn's workers), once the streams ended.
        # SIGINT's default handler raises KeyboardInterrupt: exit code 0.
        return {0, -signal.SIGTERM}
    return {0}


@pytest.mark.parametrize("case", SHUTDOWN_CASES)
def test_graceful_shutdown_with_open_streams(
    case: ShutdownCase, tmp_path: Path, raw_streams: list[RawStream]
) -> None:
    stats_file = tmp_path / "stats.json"
    env = {"ASGI_SSE_TEST_STATS": str(stats_file)}
    with running(case.kind, RECORDED_DEMO_APP, env=env) as server:
        paths = ["/sse", "/sse2", "/sse3"]
        streams = [RawStream(server.port, f"{paths[n % 3]}?interval=0.05") for n in range(STREAMS)]
        raw_streams.extend(streams)
        pump(
            streams,
            lambda: all(s.frames() >= 1 for s in streams),
            20,
            "every stream's first event",
        )
        stats = json.loads(stats_file.read_text())
        assert (stats["open"], stats["closed"]) == (STREAMS, 0)

        exited_at: list[float] = []

        def note_exit() -> None:
            if not exited_at and server.returncode() is not None:
                exited_at.append(time.monotonic())

        signalled = time.monotonic()
        server.send_signal(case.signum, group=case.group)
        try:
            pump(
                streams,
                lambda: all(s.done for s in streams) and bool(exited_at),
                10,
                "every stream to end and the server to exit",
                on_tick=note_exit,
            )
        finally:
            ends = [s.ended_at - signalled for s in streams if s.ended_at is not None]
            last_end = f"{max(ends):.3f} s" if len(ends) == STREAMS else "never"
            exit_after = f"{exited_at[0] - signalled:.3f} s" if exited_at else "never"
            clean = sum(s.complete for s in streams)
            code = server.returncode()
            _TABLE.append(
                (
                    case.kind,
                    case.signum.name,
                    "group" if case.group else "pid",
                    STREAMS,
                    f"{clean}/{STREAMS}",
                    last_end,
                    exit_after,
                    str(code),
                )
            )
            print(
                f"\n{case.id}: {clean}/{STREAMS} clean ends, last stream ended after "
                f"{last_end}, exit after {exit_after} with code {code}"
            )

        unclean = [s for s in streams if not s.complete]
        assert not unclean, (
            f"{len(unclean)} of {STREAMS} streams ended without the terminating chunk, "
            f"e.g. {unclean[0].path}: eof={unclean[0].eof} error={unclean[0].error} "
            f"last bytes {bytes(unclean[0].raw[-40:])!r}"
        )
        assert max(ends) <= SHUTDOWN_BOUND
        assert exited_at[0] - signalled <= EXIT_BOUND
        assert server.returncode() in _expected_exit_codes(case)
        stats = json.loads(stats_file.read_text())
        assert (stats["open"], stats["closed"]) == (0, STREAMS), "a stream's cleanup did not run"


# -- 4. tasks per idle connection under uvicorn --------------------------------------


IDLE = 50


def test_tasks_per_idle_connection_under_uvicorn(raw_streams: list[RawStream]) -> None:
    with running("uvicorn", TEST_APP) as server:
        before = get_json(server, "/tasks")["tasks"]
        streams = [RawStream(server.port, "/idle") for _ in range(IDLE)]
        raw_streams.extend(streams)
        pump(streams, lambda: all(s.frames() >= 1 for s in streams), 20, "every 'ready' event")

        # The streams are parked in anyio.sleep_forever() once the event went out;
        # poll until the count is steady (a task may still be on its way there).
        counts: list[int] = []

        def steady() -> bool:
            counts.append(get_json(server, "/tasks")["tasks"])
            return len(counts) >= 3 and counts[-1] == counts[-2] == counts[-3]

        wait_until(steady, 10, "a steady task count")
        per_connection = (counts[-1] - before) / IDLE
        print(
            f"\ntasks per idle connection under uvicorn: {per_connection:.2f} "
            f"(all_tasks(): {before} before, {counts[-1]} with {IDLE} idle streams)"
        )
        assert per_connection <= 2

        for stream in streams:
            stream.close()
        # And none is left behind once the clients are gone.
        wait_until(
            lambda: get_json(server, "/tasks")["tasks"] == before, 10, "the tasks to finish"
        )
