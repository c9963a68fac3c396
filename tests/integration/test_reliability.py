"""Reliability against real uvicorn processes on 127.0.0.1, through raw sockets.

The app is tests/support/reliability_app.py, started by its own launcher (a listening socket
with a small SO_SNDBUF, so that a client that stops reading fills the server's buffers
after a few kB); the clients are tests/support/rawclient.py. What is checked:

1. A stream that ends while its client has stopped reading releases its request task
   within send_timeout + 1 s.
2. SIGTERM (``GracefulShutdown``, ``--timeout-graceful-shutdown 2``): with one frozen
   client the process exits within stream end + 2 s + slack; with many open streams
   and no frozen client within about a second.
3. An endless generator that never awaits, and a client that leaves: the worker goes
   on serving, the generator's ``finally`` runs, SIGTERM works.
4. Fairness: a huge ready burst on one connection does not stall a 50 Hz stream on
   another (the largest gap the client sees is printed).
5. A 10 MB event and 5 small ones reach a client reading ~1.5 MB/s with
   send_timeout=2, with a clean end of stream.
6. Churn: connections that leave at random points (before the request ends, after the
   headers, mid-frame; by FIN, close or RST) leak no task, no open stream and no
   memory, and every cleanup runs exactly once.
7. Idle connections with ping=1 all get a keep-alive within 1.5 s.
8. Frozen clients among readers are dropped within send_timeout + 1 s of their stall;
   the readers are not slowed.
9. Hostile requests (huge or non-UTF-8 Last-Event-ID, NUL, CR/LF in the query, unread
   or abandoned bodies, HEAD, OPTIONS, odd paths): the server keeps serving, logs no
   traceback, and a UTF-8 Last-Event-ID comes back intact.
10. Injection: attacker-like text through every field of an event; three parsers (ours,
    httpx-sse's, and a WHATWG one written here) see exactly the events sent.

Every wait polls a condition under a deadline. The scenario drivers return their
figures, so benchmarks/stress.py runs the same code at full size. ``-s`` shows the
measured numbers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import re
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from asgi_sse import Comment, EventStreamParser, ParsedEvent
from tests.support.rawclient import RawClient, get_json, pump, request_once
from tests.support.reliability_app import ATTACKS, injection_cases, serving
from tests.support.servers import Server, wait_until

SEND_TIMEOUT = 1.0
GRACE = 2  # uvicorn's --timeout-graceful-shutdown in these tests
_cids = iter(range(1, 1 << 30))


def new_cid(prefix: str) -> str:
    return f"{prefix}{next(_cids)}"


# -- the server and what it says about itself -------------------------------------------


@pytest.fixture(scope="module")
def shared_server() -> Iterator[Server]:
    with serving(timeout_graceful_shutdown=GRACE) as server:
        yield server


@pytest.fixture
def server(shared_server: Server) -> Iterator[Server]:
    """The module's server, quiet at the start; its log must show no traceback for
    what the test did."""
    quiet(shared_server)
    start = len(shared_server.output())
    yield shared_server
    new = shared_server.output()[start:]
    assert "Traceback" not in new, f"the server logged a traceback:\n{new}"


def stats(server: Server, *, log: bool = False, gc: bool = False) -> dict[str, Any]:
    query = "&".join(name for name, on in (("log=1", log), ("gc=1", gc)) if on)
    result: dict[str, Any] = get_json(server.port, "/stats" + (f"?{query}" if query else ""))
    return result


def quiet(server: Server, timeout: float = 15.0) -> dict[str, Any]:
    """Wait until no request but ours is in flight and no stream is open."""
    latest: dict[str, Any] = {}

    def is_quiet() -> bool:
        latest.update(stats(server))
        return bool(latest["active"] == 0 and latest["open"] == 0)

    try:
        wait_until(is_quiet, timeout, "a quiet server", interval=0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {latest}") from None
    return latest


def events_of(snapshot: dict[str, Any], cid: str) -> list[tuple[float, str]]:
    """(server time, what) logged for ``cid``."""
    return [(at, what) for at, logged, what in snapshot["log"] if logged == cid]


def first(snapshot: dict[str, Any], cid: str, prefix: str) -> float | None:
    for at, what in events_of(snapshot, cid):
        if what.startswith(prefix):
            return at
    return None


def assert_no_traceback(server: Server, since: int = 0) -> None:
    output = server.output()[since:]
    assert "Traceback" not in output, f"the server logged a traceback:\n{output}"


def max_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


# -- 1. the final send is bounded too ---------------------------------------------------------


@pytest.mark.timeout(30)
def test_stream_ending_while_client_frozen_releases_its_task(
    server: Server, clients: list[RawClient]
) -> None:
    before = stats(server)
    cid = new_cid("end-frozen-")
    client = RawClient(server.port, rcvbuf=4096)
    clients.append(client)
    # 100 kB: more than the socket buffers and the transport's 64 kB high-water mark
    # hold, so the transport is paused once it is written - but the send that writes it
    # does not wait (uvicorn waits for a paused transport *before* writing). The stream
    # then ends on its own, and the final `more_body=False` send finds the transport
    # paused: only a bound on that send releases the request task.
    client.request(
        "GET", f"/stream?kind=big&size=100000&small=0&send_timeout={SEND_TIMEOUT}&cid={cid}"
    )
    client.freeze()
    wait_until(
        lambda: first(stats(server, log=True), cid, "cleanup") is not None, 10, "the stream's end"
    )
    snapshot = stats(server, log=True)
    ended = first(snapshot, cid, "cleanup")
    assert ended is not None
    assert first(snapshot, cid, "cleanup:end") == ended, (
        f"the stream did not end on its own, so this does not test the final send: "
        f"{events_of(snapshot, cid)}"
    )
    bound = SEND_TIMEOUT + 1.0
    try:
        wait_until(
            lambda: first(stats(server, log=True), cid, "released") is not None,
            bound + 1.0,
            "the request task to be released",
            interval=0.05,
        )
    except AssertionError:
        snapshot = stats(server, log=True)
        waited = snapshot["now"] - ended
        raise AssertionError(
            f"the stream ended {waited:.1f}s ago while its client did not read, and the "
            f"request task is still running (bound: send_timeout + 1 = {bound}s): the "
            f"final send is not bounded; log: {events_of(snapshot, cid)}"
        ) from None
    snapshot = stats(server, log=True)
    released = first(snapshot, cid, "released")
    assert released is not None
    print(f"\nfinal send to a frozen client: task released {released - ended:.2f}s after the end")
    assert released - ended <= bound
    wait_until(lambda: stats(server)["tasks"] <= before["tasks"], 5, "the tasks to finish")


# -- 2. SIGTERM -----------------------------------------------------------------------------


@dataclass
class ShutdownResult:
    streams: int
    frozen: int
    clean_ends: int
    last_end: float  # signal -> the last reader's end of body
    exited: float  # signal -> the process exit
    code: int | None


def run_shutdown(server: Server, streams: int, frozen: int) -> ShutdownResult:
    """Open ``streams`` readers and ``frozen`` clients that stop reading, SIGTERM the
    server once the frozen ones have stalled, and time the ends and the exit."""
    readers = [
        RawClient(server.port, keep_frames=False).request("GET", "/stream?kind=ticks&hz=10")
        for _ in range(streams)
    ]
    stuck = [
        RawClient(server.port, rcvbuf=4096, keep_body=False, parse_frames=False)
        for _ in range(frozen)
    ]
    cids = [new_cid("sigterm-frozen-") for _ in stuck]
    try:
        for client, cid in zip(stuck, cids, strict=True):
            client.request("GET", f"/stream?kind=ticks&hz=50&size=16384&cid={cid}")
            client.freeze()
        pump(
            readers,
            lambda: all(r.frame_count >= 1 for r in readers),
            30,
            "every reader's first event",
        )

        def stalled() -> bool:
            snapshot = stats(server)
            progress = snapshot["progress"]
            return all(
                cid in progress and snapshot["now"] - progress[cid][1] > 0.3 for cid in cids
            )

        wait_until(stalled, 15, "the frozen clients' streams to stall", interval=0.05)
        exited: list[float] = []

        def note_exit() -> None:
            if not exited and server.returncode() is not None:
                exited.append(time.monotonic())

        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        pump(
            readers,
            lambda: all(r.done for r in readers) and bool(exited),
            GRACE + 10,
            "every reader's end and the process exit",
            on_tick=note_exit,
        )
        ends = [r.ended_at - signalled for r in readers if r.ended_at is not None]
        return ShutdownResult(
            streams=streams,
            frozen=frozen,
            clean_ends=sum(r.complete for r in readers),
            last_end=max(ends, default=0.0),
            exited=exited[0] - signalled,
            code=server.returncode(),
        )
    finally:
        for client in readers + stuck:
            client.close()


@pytest.mark.timeout(60)
def test_sigterm_with_a_frozen_client_exits_after_the_grace_period() -> None:
    with serving(timeout_graceful_shutdown=GRACE) as server:
        result = run_shutdown(server, streams=10, frozen=1)
        print(
            f"\nSIGTERM, {result.streams} readers + {result.frozen} frozen: last end "
            f"{result.last_end:.2f}s, exit {result.exited:.2f}s, code {result.code}"
        )
        assert result.clean_ends == result.streams
        assert result.last_end <= 1.0
        assert result.exited <= result.last_end + GRACE + 1.0, server.describe()
        assert "Traceback" not in server.output(), server.describe()


@pytest.mark.timeout(60)
def test_sigterm_with_many_open_streams_exits_within_a_second() -> None:
    with serving(timeout_graceful_shutdown=GRACE) as server:
        result = run_shutdown(server, streams=100, frozen=0)
        print(
            f"\nSIGTERM, {result.streams} open streams: last end {result.last_end:.2f}s, "
            f"exit {result.exited:.2f}s, code {result.code}"
        )
        assert result.clean_ends == result.streams
        assert result.exited <= 1.5, server.describe()
        assert "Traceback" not in server.output(), server.describe()


# -- 3. an endless generator that never awaits ----------------------------------------------


class _Reader(threading.Thread):
    """Reads one client as fast as it can, in a thread, until told to stop."""

    def __init__(self, client: RawClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and not self.client.done:
            if self.client.wait_readable(0.05):
                self.client.on_readable()


def _answers(server: Server, timeout: float) -> tuple[bool, float]:
    started = time.monotonic()
    try:
        get_json(server.port, "/stats", timeout=timeout)
    except (AssertionError, OSError):
        return False, time.monotonic() - started
    return True, time.monotonic() - started


@pytest.mark.timeout(60)
def test_endless_generator_that_never_awaits_and_a_client_that_leaves() -> None:
    with serving(timeout_graceful_shutdown=GRACE) as server:
        try:
            cid = new_cid("endless-")
            client = RawClient(server.port, keep_body=False, parse_frames=False)
            client.request("GET", f"/stream?kind=endless&cid={cid}")
            reader = _Reader(client)
            reader.start()
            wait_until(lambda: client.body_bytes > 1_000_000, 10, "the first megabyte")
            during_ok, during = _answers(server, 3.0)
            reader.stop.set()
            reader.join(5)
            client.close()
            after_ok, after = _answers(server, 3.0)
            cleaned = False
            if after_ok:
                try:
                    wait_until(
                        lambda: first(stats(server, log=True), cid, "cleanup") is not None,
                        5,
                        "the generator's finally",
                    )
                    cleaned = True
                except (AssertionError, OSError):
                    pass
            signalled = time.monotonic()
            server.send_signal(signal.SIGTERM)
            try:
                server.wait_exit(5)
                exit_after: float | None = time.monotonic() - signalled
            except AssertionError:
                exit_after = None
            print(
                f"\nendless never-awaiting generator: /stats while streaming "
                f"{f'{during:.3f}s' if during_ok else 'no answer'}, after the client left "
                f"{f'{after:.3f}s' if after_ok else 'no answer'}, finally ran: {cleaned}, "
                f"SIGTERM exit: {f'{exit_after:.2f}s' if exit_after is not None else 'never'}"
            )
            problems = []
            if not during_ok:
                problems.append("the worker served nothing else while the stream ran")
            if not after_ok:
                problems.append(
                    "the worker served nothing after the client left (/stats: no answer in 3s)"
                )
            if not cleaned:
                problems.append("the generator's finally did not run")
            if exit_after is None:
                problems.append("SIGTERM did not stop the process within 5s")
            assert not problems, "; ".join(problems)
            assert_no_traceback(server)
        finally:
            if server.returncode() is None:  # wedged: do not wait for a SIGTERM to work
                server.send_signal(signal.SIGKILL, group=True)


# -- 4. fairness ------------------------------------------------------------------------------


@dataclass
class FairnessResult:
    burst_seconds: float
    burst_frames_ok: bool
    max_gap: float
    ticks_during: int


def run_fairness(server: Server, *, merged: bool, count: int = 100_000) -> FairnessResult:
    ticker = RawClient(server.port).request("GET", "/stream?kind=ticks&hz=50")
    burst = RawClient(server.port, keep_body=False, parse_frames=False)
    try:
        pump([ticker], lambda: ticker.frame_count >= 5, 10, "the 50 Hz stream")
        burst.request("GET", f"/stream?kind=burst&n={count}&merge={int(merged)}")
        started = time.monotonic()
        pump([ticker, burst], lambda: burst.done, 60, "the end of the burst")
        ended = time.monotonic()
        after = ticker.frame_count + 3
        pump([ticker], lambda: ticker.frame_count >= after, 5, "ticks after the burst")
        times = [f.at for f in ticker.frames if started - 0.1 <= f.at <= ended + 0.1]
        # The gap that spans the burst's start or end counts too.
        before = [f.at for f in ticker.frames if f.at < started - 0.1][-1:]
        later = [f.at for f in ticker.frames if f.at > ended + 0.1][:1]
        return FairnessResult(
            burst_seconds=ended - started,
            burst_frames_ok=burst.complete,
            max_gap=max_gap(before + times + later),
            ticks_during=len(times),
        )
    finally:
        ticker.close()
        burst.close()


FAIR_GAP = 0.150  # the target is 50 ms; generous for a loaded 2-core CI machine


@pytest.mark.timeout(60)
@pytest.mark.parametrize("merged", [False, True], ids=["plain-generator", "merge"])
def test_a_huge_ready_burst_does_not_stall_another_stream(server: Server, merged: bool) -> None:
    result = run_fairness(server, merged=merged)
    print(
        f"\nfairness ({'merge()' if merged else 'plain generator'}, 100,000 ready events): "
        f"burst took {result.burst_seconds:.2f}s, largest gap of the 50 Hz stream "
        f"{result.max_gap * 1000:.0f} ms (target 50 ms, bound {FAIR_GAP * 1000:.0f} ms)"
    )
    assert result.burst_frames_ok
    assert result.max_gap <= FAIR_GAP


# -- 5. a big event to a slow reader ------------------------------------------------------------


@pytest.mark.timeout(60)
def test_big_event_reaches_a_slow_steady_reader(server: Server, clients: list[RawClient]) -> None:
    size, rate = 10_000_000, 1_500_000
    client = RawClient(server.port, rcvbuf=4096)
    clients.append(client)
    client.request("GET", f"/stream?kind=big&size={size}&small=5&send_timeout=2")
    started = time.monotonic()
    client.read_paced(rate, lambda c: c.done, timeout=size / rate * 3)
    took = time.monotonic() - started
    names = [f.event for f in client.frames]
    print(
        f"\n10 MB event at {rate / 1e6:.1f} MB/s: {client.body_bytes} bytes in {took:.1f}s, "
        f"frames {len(names)}, clean end: {client.complete}"
    )
    assert client.status == 200
    assert names == [b"big"] + [b"small"] * 5, (
        f"got {len(names)} frames ({client.body_bytes} body bytes), eof={client.eof}, "
        f"complete={client.complete}: the response was cut off"
    )
    assert len(client.frames[0].data) == size
    assert client.complete, "no clean end of stream (terminating chunk)"


# -- 6. churn -----------------------------------------------------------------------------------

_POINTS = ("request", "partial-request", "headers", "mid-frame")
_HOWS = ("fin", "close", "rst")


@dataclass
class ChurnResult:
    cycles: int
    seconds: float
    modes: Counter[str]
    baseline: dict[str, Any]
    after: dict[str, Any]

    @property
    def rss_growth(self) -> int:
        return int(self.after["rss"] - self.baseline["rss"])

    @property
    def task_growth(self) -> int:
        return int(self.after["tasks"] - self.baseline["tasks"])


def _churn_batch(server: Server, rng: random.Random, size: int, modes: Counter[str]) -> None:
    pending: list[tuple[RawClient, str, str, int]] = []
    for _ in range(size):
        point, how = rng.choice(_POINTS), rng.choice(_HOWS)
        shape = rng.choice(("gen", "merge", "iter"))
        path = f"/stream?kind=churn&shape={shape}&seed={rng.randrange(1 << 30)}"
        client = RawClient(server.port, keep_frames=False, keep_body=False, timeout=5)
        modes[f"{point}/{how}"] += 1
        if point == "partial-request":
            client.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode())
        else:
            client.request("GET", path)
        pending.append((client, point, how, rng.randrange(1, 60_000)))

    def reached(client: RawClient, point: str, threshold: int) -> bool:
        if point in ("request", "partial-request") or client.done:
            return True
        if point == "headers":
            return client.status is not None
        return client.body_bytes >= threshold

    def leave_where_due() -> None:
        for client, point, how, threshold in pending:
            if not client.closed and reached(client, point, threshold):
                {"fin": client.close_fin, "close": client.close, "rst": client.close_rst}[how]()

    try:
        leave_where_due()
        pump(
            [c for c, *_ in pending],
            lambda: all(c.closed for c, *_ in pending),
            10,
            "every churn client to reach its point",
            on_tick=leave_where_due,
        )
    finally:
        for client, *_ in pending:
            client.close()


def settle(server: Server, baseline_tasks: int, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until every stream is cleaned up and the task count is back (or time out)."""
    latest: dict[str, Any] = {}

    def settled() -> bool:
        latest.update(stats(server, gc=True))
        return bool(
            latest["active"] == 0
            and latest["open"] == 0
            and latest["started"] == latest["cleaned"]
            and latest["tasks"] <= baseline_tasks
        )

    with contextlib.suppress(AssertionError):  # the caller asserts on the figures
        wait_until(settled, timeout, "the server to settle", interval=0.1)
    return latest


def run_churn(
    server: Server, cycles: int, *, seed: int = 1, batch: int = 8, warmup: int = 50
) -> ChurnResult:
    rng = random.Random(seed)
    modes: Counter[str] = Counter()
    # A warm-up: whatever is created once (imports, caches, buffers) is in the baseline.
    for _ in range(0, warmup, batch):
        _churn_batch(server, rng, batch, Counter())
    quiet(server)
    baseline = settle(server, stats(server)["tasks"])
    started = time.monotonic()
    done = 0
    while done < cycles:
        size = min(batch, cycles - done)
        _churn_batch(server, rng, size, modes)
        done += size
    seconds = time.monotonic() - started
    after = settle(server, baseline["tasks"])
    return ChurnResult(cycles, seconds, modes, baseline, after)


CHURN_RSS_BOUND = 2 * 1024 * 1024


@pytest.mark.timeout(90)
def test_churn_leaks_nothing(server: Server) -> None:
    result = run_churn(server, 200)
    base, after = result.baseline, result.after
    opened = after["started"] - base["started"]
    print(
        f"\nchurn: {result.cycles} cycles in {result.seconds:.1f}s, streams started "
        f"{opened}, tasks {base['tasks']} -> {after['tasks']}, open {after['open']}, "
        f"doubles {after['doubles']}, RSS {base['rss'] / 1e6:.1f} -> {after['rss'] / 1e6:.1f} MB "
        f"({result.rss_growth / 1e6:+.2f} MB); modes {dict(result.modes)}"
    )
    assert after["active"] == 0, after
    assert after["open"] == 0, f"{after['open']} streams never cleaned up"
    assert after["started"] == after["cleaned"], after
    assert after["doubles"] == 0, f"{after['doubles']} cleanups ran twice"
    assert result.task_growth <= 0, f"{result.task_growth} asyncio tasks leaked"
    assert result.rss_growth <= CHURN_RSS_BOUND, f"RSS grew by {result.rss_growth / 1e6:.2f} MB"


# -- 7. keep-alives on idle connections -------------------------------------------------------


@dataclass
class IdleResult:
    connections: int
    pinged: int
    first_ping: list[float] = field(default_factory=list)  # after the last event, per client

    @property
    def worst(self) -> float:
        return max(self.first_ping, default=float("inf"))


def run_idle(server: Server, count: int, *, ping: float = 1.0, batch: int = 200) -> IdleResult:
    clients: list[RawClient] = []
    try:
        for start in range(0, count, batch):
            new = [RawClient(server.port) for _ in range(min(batch, count - start))]
            clients += new
            for client in new:
                client.request("GET", f"/stream?kind=idle&ping={ping}")

            # Let the server accept and answer this batch before the next one connects;
            # every client is read meanwhile, so that a ping is timed when it arrives.
            def ready(batch: list[RawClient] = new) -> bool:
                return all(c.frame_count >= 1 for c in batch)

            pump(clients, ready, 60, "the 'ready' events")
        pump(clients, lambda: all(c.comments or c.done for c in clients), ping * 3 + 5, "pings")
        result = IdleResult(count, sum(bool(c.comments) for c in clients))
        for client in clients:
            if client.comments and client.last_frame_at is not None:
                assert client.comments[0][1] == b": ping", client.comments[0]
                result.first_ping.append(client.comments[0][0] - client.last_frame_at)
        return result
    finally:
        for client in clients:
            client.close()


@pytest.mark.timeout(60)
def test_idle_connections_all_get_keep_alives(server: Server) -> None:
    result = run_idle(server, 200)
    print(
        f"\nidle: {result.pinged}/{result.connections} got ': ping', first one after "
        f"median {statistics.median(result.first_ping):.2f}s, worst {result.worst:.2f}s"
    )
    assert result.pinged == result.connections
    assert result.worst <= 1.5


# -- 8. frozen clients among readers ------------------------------------------------------------


@dataclass
class FrozenResult:
    readers: int
    frozen: int
    released: int
    release_after_stall: list[float]  # the stalled send's start -> the request released
    release_after_freeze: list[float]
    reader_max_gap: float
    reader_min_rate: float  # events per second of the slowest reader while others froze
    hz: float


def run_frozen(
    server: Server,
    readers: int,
    frozen: int,
    *,
    hz: float = 20,
    size: int = 16384,
    send_timeout: float = SEND_TIMEOUT,
    batch: int = 200,
) -> FrozenResult:
    total = readers + frozen
    cids = [new_cid("frozen-") for _ in range(total)]
    clients: list[RawClient] = []
    try:
        for start in range(0, total, batch):
            new = [
                RawClient(server.port, rcvbuf=4096, keep_body=False, keep_frames=False)
                for _ in range(min(batch, total - start))
            ]
            for client, cid in zip(new, cids[start:], strict=False):
                client.request(
                    "GET",
                    f"/stream?kind=ticks&hz={hz}&size={size}&send_timeout={send_timeout}&cid={cid}",
                )
            clients += new

            # Every reader is read meanwhile: one left unread would be dropped as frozen.
            def ready(batch: list[RawClient] = new) -> bool:
                return all(c.frame_count >= 1 for c in batch)

            pump(clients, ready, 60, "the first events")
        pump(clients, lambda: all(c.frame_count >= 3 for c in clients), 30, "three events each")
        chosen = set(random.Random(7).sample(range(total), frozen))
        frozen_at = time.monotonic()
        for index in chosen:
            clients[index].freeze()
        live = [c for i, c in enumerate(clients) if i not in chosen]
        frozen_cids = [cids[i] for i in sorted(chosen)]

        def all_released() -> bool:
            snapshot = stats(server, log=True)
            return all(first(snapshot, cid, "released") is not None for cid in frozen_cids)

        done_at: list[float] = []
        last_check = [0.0]

        def poll() -> None:
            now = time.monotonic()
            if now - last_check[0] >= 0.2:
                last_check[0] = now
                if all_released():
                    done_at.append(now)

        window = send_timeout + 10 + 0.5 * total / 100
        pump(
            live, lambda: bool(done_at), window, "every frozen client to be dropped", on_tick=poll
        )
        pump(live, lambda: time.monotonic() > done_at[0] + 0.5, 5, "a little more reading")
        ended = time.monotonic()
        snapshot = stats(server, log=True)
        after_stall, after_freeze = [], []
        for cid in frozen_cids:
            released = first(snapshot, cid, "released")
            assert released is not None
            # The generator is resumed after a send completed; the next event's send
            # (the one that blocks) starts one period later.
            stall = snapshot["progress"][cid][1] + 1 / hz
            after_stall.append(released - stall)
            after_freeze.append(released - frozen_at)
        gaps, rates = [], []
        for client in live:
            times = [at for at in client.frame_times if frozen_at <= at <= ended]
            gaps.append(max_gap([frozen_at, *times, ended]))
            rates.append(len(times) / (ended - frozen_at))
        return FrozenResult(
            readers=readers,
            frozen=frozen,
            released=len(after_stall),
            release_after_stall=after_stall,
            release_after_freeze=after_freeze,
            reader_max_gap=max(gaps),
            reader_min_rate=min(rates),
            hz=hz,
        )
    finally:
        for client in clients:
            client.close()


@pytest.mark.timeout(60)
def test_frozen_clients_are_dropped_and_readers_not_slowed(server: Server) -> None:
    result = run_frozen(server, readers=45, frozen=5)
    print(
        f"\nfrozen: {result.frozen} of {result.readers + result.frozen} dropped "
        f"{max(result.release_after_stall):.2f}s after their stall at worst "
        f"({max(result.release_after_freeze):.2f}s after freezing); readers: largest gap "
        f"{result.reader_max_gap * 1000:.0f} ms, slowest {result.reader_min_rate:.1f} ev/s "
        f"(nominal {result.hz:.0f})"
    )
    assert max(result.release_after_stall) <= SEND_TIMEOUT + 1.0
    assert result.reader_max_gap <= 0.5
    assert result.reader_min_rate >= 0.8 * result.hz


# -- 9. hostile requests ----------------------------------------------------------------------


def echo(
    server: Server, headers: list[tuple[str, str | bytes]] | None = None, query: bytes = b""
) -> RawClient:
    """/stream?kind=echo: the request's Last-Event-ID etc. as one JSON event."""
    return request_once(server.port, "GET", b"/stream?kind=echo" + query, headers or (), timeout=5)


def echoed(client: RawClient) -> dict[str, Any]:
    assert client.status == 200, client.describe()
    assert client.complete, client.describe()
    assert len(client.frames) == 1, client.describe()
    payload: dict[str, Any] = json.loads(client.frames[0].data)
    return payload


def _serves(server: Server) -> None:
    assert stats(server)["requests"] > 0, "the server stopped serving"


@pytest.mark.timeout(60)
def test_utf8_last_event_id_comes_back_intact(server: Server) -> None:
    # Browsers send Last-Event-ID as the UTF-8 bytes of the lastEventId string.
    value = "é😀"
    payload = echoed(echo(server, [("Last-Event-ID", value.encode("utf-8"))]))
    assert payload["last_event_id"] == value, (
        f"sent {value!r} as UTF-8, got back {payload['last_event_id']!r}"
    )


@pytest.mark.timeout(60)
def test_query_last_event_id_is_decoded(server: Server) -> None:
    # CR, LF and NUL can be in no id a server sent: None.
    cases: list[tuple[bytes, tuple[str | None, ...]]] = [
        (b"%0D%0A", (None,)),
        (b"%00", (None,)),
        (b"%C3%A9%F0%9F%98%80", ("é😀",)),
        ("é😀".encode(), ("é😀",)),  # raw UTF-8 bytes in the request line (curl sends them)
        (b"%FF%FEok", ("\ufffd\ufffdok",)),  # not UTF-8: replacement characters
    ]
    wrong = []
    for raw, expected in cases:
        client = echo(server, query=b"&lastEventId=" + raw)
        if client.status == 400 and not raw.isascii():
            continue  # the server's HTTP parser may refuse raw non-ASCII bytes: fine
        if client.status != 200:
            wrong.append(f"{raw!r}: status {client.status}")
            continue
        got = echoed(client)["last_event_id"]
        if got not in expected:
            wrong.append(f"{raw!r}: got {got!r}, expected {expected!r}")
    _serves(server)
    assert not wrong, "; ".join(wrong)


@pytest.mark.timeout(60)
def test_hostile_headers_and_bodies(server: Server) -> None:
    # A huge id: answered (echoed) or refused, never a crash.
    huge = "9" * 100_000
    client = echo(server, [("Last-Event-ID", huge)])
    assert client.status in (200, 400, 413, 431) or client.eof, client.describe()
    if client.status == 200:
        assert echoed(client)["last_event_id"] == huge
    _serves(server)
    # Bytes that are not UTF-8: refused, or a value that UTF-8 can encode (a handler
    # may put it into an event id or data).
    client = echo(server, [("Last-Event-ID", b"\xff\xfe\x80abc")])
    assert client.status in (200, 400) or client.eof, client.describe()
    if client.status == 200:
        assert echoed(client)["utf8"], echoed(client)
    _serves(server)
    # NUL and control bytes in a header value: the HTTP parser's business.
    for value in (b"a\x00b", b"a\x01b\x7f"):
        client = echo(server, [("Last-Event-ID", value)])
        assert client.status in (200, 400) or client.eof, client.describe()
        _serves(server)

    # A large POST body the stream never reads: the response still completes.
    cid = new_cid("unread-body-")
    body = b"z" * 5_000_000
    poster = RawClient(server.port, timeout=10)
    sender = threading.Thread(
        target=lambda: poster.request(
            "POST", f"/stream?kind=ticks&hz=50&n=3&cid={cid}", body=body
        ),
        daemon=True,
    )
    sender.start()
    try:
        poster.read_to_end(15)
        sender.join(10)
    finally:
        poster.close()
    assert poster.status == 200, poster.describe()
    assert poster.complete, poster.describe()
    assert [f.event for f in poster.frames] == [b"tick"] * 3 + [b"end"]
    _serves(server)

    # A client that leaves in the middle of its body: while the stream reads it, and
    # while the stream runs without reading it.
    for kind in ("echo&read_body=1", "ticks&hz=50"):
        cid = new_cid("mid-body-")
        leaver = RawClient(server.port)
        leaver.request(
            "POST",
            f"/stream?kind={kind}&cid={cid}",
            body=b"y" * 100_000,
            content_length=1_000_000,
        )
        wait_until(
            lambda: first(stats(server, log=True), cid, "request") is not None,  # noqa: B023
            5,
            "the app to get the request",
        )
        leaver.close_rst()
        quiet(server, timeout=10)
        snapshot = stats(server, log=True)
        if kind.startswith("ticks"):
            assert first(snapshot, cid, "cleanup") is not None, events_of(snapshot, cid)
    _serves(server)


@pytest.mark.timeout(60)
def test_head_gets_headers_only_and_runs_no_stream(server: Server) -> None:
    cid = new_cid("head-")
    client = request_once(server.port, "HEAD", f"/stream?kind=ticks&hz=50&cid={cid}", timeout=5)
    assert client.status == 200, client.describe()
    assert client.header("content-type") == "text/event-stream"
    assert client.complete
    assert client.body_bytes == 0
    quiet(server)
    assert first(stats(server, log=True), cid, "start") is None, "HEAD ran the stream"


@pytest.mark.timeout(60)
def test_options_does_not_run_the_stream(server: Server, clients: list[RawClient]) -> None:
    cid = new_cid("options-")
    client = RawClient(server.port, timeout=5)
    clients.append(client)
    client.request("OPTIONS", f"/stream?kind=ticks&hz=50&cid={cid}")
    with contextlib.suppress(AssertionError):  # an endless stream: judged below
        client.read_to_end(2)
    ran = first(stats(server, log=True), cid, "start") is not None
    assert not ran, (
        f"OPTIONS ran the event stream (response ended: {client.complete}, "
        f"status {client.status}, {client.frame_count} events in 2s)"
    )
    assert client.complete, client.describe()


ODD_REQUESTS: list[bytes] = [
    b"GET //stream?kind=ticks&n=1 HTTP/1.1",
    b"GET /stream/../stats HTTP/1.1",
    b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1",
    b"GET /stream%00?kind=ticks&n=1 HTTP/1.1",
    b"GET /%ff%fe HTTP/1.1",
    b"GET /\xff\xfe HTTP/1.1",
    b"GET /" + b"a" * 60_000 + b" HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    b"GET http://evil.example/stream?kind=ticks&n=1 HTTP/1.1",
    b"GET /stream?kind=ticks&n=1&kind=echo HTTP/1.1",
    b"GET /stream?kind=unknown HTTP/1.1",
    b"GET /stream?%%%=%%%&kind=ticks&n=1 HTTP/1.1",
    b"GET /stream?kind=ticks&n=1 HTTP/1.0",
    b"BREW /stream?kind=ticks&n=1 HTTP/1.1",
    b"GET /stream?kind=ticks&n=1 HTTP/9.9",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
]


@pytest.mark.timeout(60)
def test_odd_requests_leave_the_server_serving(server: Server) -> None:
    answers = []
    for line in ODD_REQUESTS:
        client = RawClient(server.port, timeout=5)
        try:
            client.send(line + b"\r\nHost: x\r\n\r\n")
            with contextlib.suppress(AssertionError):  # no answer at all is fine too
                client.read_to_end(5)
        finally:
            client.close()
        answers.append((line[:40], client.status, client.done))
        _serves(server)
    print("\nodd requests:", *answers, sep="\n  ")
    quiet(server)


# -- 10. injection ---------------------------------------------------------------------------

Seen = tuple[str, Any, str, "int | None"]


def _lone_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def accepts(name: str, value: str | int) -> bool:
    """What the library must refuse, written from the WHATWG rules, not from its code."""
    if isinstance(value, int):
        return value >= 0  # a client ignores a retry that is not all digits
    if _lone_surrogate(value):
        return False  # UTF-8 cannot carry it
    if name == "event" and ("\r" in value or "\n" in value):
        return False  # would end the field and start a forged one
    # CR/LF as above; and a client ignores an id holding NUL.
    return not (name in ("id", "typed-id") and any(c in value for c in "\r\n\x00"))


def expected_events(accepted: list[bool]) -> list[Seen]:
    """(type, data, last event id, retry) a browser dispatches for the accepted cases;
    typed events' data is given decoded from its JSON."""
    out: list[Seen] = []
    last_id = ""
    for (name, value), ok in zip(injection_cases(), accepted, strict=True):
        if not ok:
            continue
        if name == "retry":
            assert isinstance(value, int)
            out.append(("message", "r", last_id, value))
            continue
        assert isinstance(value, str)
        if name in ("data", "str"):
            out.append(("message", value.replace("\r\n", "\n").replace("\r", "\n"), last_id, None))
        elif name == "event":
            out.append((value or "message", "e", last_id, None))
        elif name == "id":
            last_id = value
            out.append(("message", "i", last_id, None))
        elif name == "comment+data":
            out.append(("message", "c", last_id, None))
        elif name == "typed":
            out.append(("note", value, last_id, None))
        elif name == "typed-id":
            last_id = value
            out.append(("note", "t", last_id, None))
    return out


def whatwg_events(body: bytes) -> list[Seen]:
    """A small, independent reading of WHATWG HTML 9.2.6 "Interpreting an event stream"."""
    text = body.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    lines = re.split("\r\n|\r|\n", text)[:-1]  # what follows the last line end is incomplete
    out: list[Seen] = []
    data: list[str] = []
    kind, id_buffer, last_id = "", "", ""
    retry: int | None = None
    for line in lines:
        if not line:
            last_id = id_buffer
            if data:
                out.append((kind or "message", "\n".join(data), last_id, retry))
            data, kind, retry = [], "", None
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and "\x00" not in value:
            id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return out


def ours(body: bytes, rng: random.Random) -> list[Seen]:
    """asgi_sse's parser, fed in random chunks (CRLF and UTF-8 sequences split too)."""
    parser = EventStreamParser()
    items: list[ParsedEvent | Comment] = []
    position = 0
    while position < len(body):
        step = rng.randrange(1, 64)
        items += parser.feed(body[position : position + step])
        position += step
    items += parser.close()
    return [(e.event, e.data, e.id, e.retry) for e in items if isinstance(e, ParsedEvent)]


def httpx_sse_events(body: bytes) -> list[Seen]:
    lines = SSELineDecoder().decode(body.decode("utf-8", "replace"))
    decoder = SSEDecoder()
    out: list[Seen] = []
    for line in lines:
        event = decoder.decode(line)
        if event is not None:
            out.append((event.event or "message", event.data, event.id, event.retry))
    return out


def _decoded(events: list[Seen]) -> list[Seen]:
    return [(t, json.loads(d) if t == "note" else d, i, r) for t, d, i, r in events]


@pytest.mark.timeout(60)
def test_injection_through_every_field_forges_nothing(server: Server) -> None:
    client = request_once(server.port, "GET", "/stream?kind=inject", timeout=10)
    assert client.status == 200, client.describe()
    assert client.complete, client.describe()
    body = bytes(client.body)
    cases = injection_cases()
    parsed = {
        "asgi_sse.EventStreamParser": ours(body, random.Random(3)),
        "WHATWG (this test)": whatwg_events(body),
        "httpx_sse.SSEDecoder": httpx_sse_events(body),
    }
    manifest_event = parsed["WHATWG (this test)"][-1]
    assert manifest_event[0] == "manifest", manifest_event
    accepted = json.loads(manifest_event[1])
    rule = [accepts(name, value) for name, value in cases]
    disagree = [
        (name, value, got)
        for (name, value), got, want in zip(cases, accepted, rule, strict=True)
        if got != want
    ]
    assert not disagree, f"accepted/refused differently from the WHATWG-derived rule: {disagree}"
    expected = expected_events(accepted)
    print(
        f"\ninjection: {len(cases)} cases ({len(ATTACKS)} strings x fields), "
        f"{sum(accepted)} sent, {len(cases) - sum(accepted)} refused, "
        f"{len(expected)} events expected"
    )
    for name, events in parsed.items():
        events = events[:-1]  # the manifest
        seen = _decoded(events)
        if seen != expected:
            mismatch = next(
                (n, s, e)
                for n, (s, e) in enumerate(itertools.zip_longest(seen, expected))
                if s != e
            )
            raise AssertionError(f"{name} saw a different stream; first difference {mismatch}")
        # Only a successful injection makes a field exactly "forged".
        forged = [e for e in events if "forged" in (e[0], e[1], e[2])]
        assert not forged, f"{name}: forged events {forged}"


# -- 11. faults in the user's stream ------------------------------------------------------


def fault(
    server: Server, mode: str, extra: str = "", *, leave_after: int | None = None
) -> tuple[RawClient, str]:
    """Run one ``fault`` stream; read it to its end, or leave after ``leave_after``
    events. Returns the client and the cid."""
    cid = new_cid(f"fault-{mode}-")
    client = RawClient(server.port, timeout=10)
    try:
        client.request("GET", f"/stream?kind=fault&mode={mode}&cid={cid}{extra}")
        if leave_after is None:
            client.read_to_end(10)
        else:
            client.read_until(
                lambda c: c.frame_count >= leave_after and c.status == 200, 10, "events"
            )
    finally:
        client.close()
    return client, cid


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("mode", "extra", "events"),
    [
        ("raise", "&n=2", 2),
        ("raise", "&n=0", 0),
        ("unsupported", "&n=1", 1),
    ],
)
def test_a_failing_stream_is_logged_once_and_the_client_gets_a_clean_end(
    shared_server: Server, mode: str, extra: str, events: int
) -> None:
    quiet(shared_server)
    start = len(shared_server.output())
    client, cid = fault(shared_server, mode, extra)
    assert client.complete, client.describe()
    assert client.frame_count == events
    snapshot = quiet(shared_server)
    assert snapshot["doubles"] == 0
    assert first(stats(shared_server, log=True), cid, "cleanup") is not None
    output = shared_server.output()[start:]
    assert output.count("asgi_sse: the event stream raised") == 1, output
    assert output.count("Traceback") == 1, output


@pytest.mark.timeout(60)
def test_a_failing_ping_event_function_ends_the_stream_cleanly(shared_server: Server) -> None:
    quiet(shared_server)
    start = len(shared_server.output())
    client, _ = fault(shared_server, "never-yields", "&ping=0.1&ping_event=fails")
    assert client.complete, client.describe()
    quiet(shared_server)
    output = shared_server.output()[start:]
    assert output.count("asgi_sse: ping_event failed") == 1, output


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("mode", "leave_after", "mark"),
    [
        ("never-yields", 0, None),
        ("finally-await", 1, "finally-await:cancelled"),
        ("finally-shielded", 1, "finally-shielded:ran"),
    ],
)
def test_a_client_leaving_ends_every_kind_of_waiting_stream(
    server: Server, mode: str, leave_after: int, mark: str | None
) -> None:
    client, cid = fault(server, mode, leave_after=leave_after)
    assert client.status == 200
    snapshot = quiet(server)
    assert snapshot["doubles"] == 0
    log = stats(server, log=True)
    assert first(log, cid, "cleanup") is not None, events_of(log, cid)
    if mark is not None:
        assert first(log, cid, mark) is not None, events_of(log, cid)


# -- 12. the stream's own asyncio deadlines next to a slow client ---------------------------


@pytest.mark.timeout(60)
def test_the_streams_own_asyncio_timeouts_fire_as_written_next_to_a_slow_reader(
    server: Server, clients: list[RawClient]
) -> None:
    """The stream yields two 32 kB events at once, then waits under its own 50 ms
    asyncio deadline, and again; the client reads 150 kB/s through a small receive
    buffer, so the server's sends block all along. Every event must arrive, every
    deadline must fire in the stream (and not in the response), and the stream must end
    cleanly - under real uvicorn, on asyncio."""
    count = 12
    client = RawClient(server.port, rcvbuf=4096, timeout=20)
    clients.append(client)
    client.request("GET", f"/stream?kind=own-timeouts&n={count}&size=32000&send_timeout=5")
    client.read_paced(150_000, lambda c: c.complete, 30)
    assert client.complete, client.describe()
    for name in (b"tick", b"tock"):
        frames = [f for f in client.frames if f.event == name]
        assert [int(f.data.split()[0]) for f in frames] == list(range(count))
        assert [int(f.data.split()[1]) for f in frames] == list(range(count))
    end = [f for f in client.frames if f.event == b"end"]
    assert [f.data for f in end] == [f"{count} {count}".encode()]
