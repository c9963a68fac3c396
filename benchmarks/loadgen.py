"""The load generator: a separate process that drives one server over raw sockets.

    python benchmarks/loadgen.py burst  --port P --n 100000 [--sep lf|crlf]
    python benchmarks/loadgen.py fanout --port P --conns 1000 --seconds 10 --server-pid PID
    python benchmarks/loadgen.py idle   --port P --conns 5000
    python benchmarks/loadgen.py broadcast --port P --conns 1000 --n 300 --server-pid PID
    (--server-pid PID,PID: CPU summed over several worker processes)

`--path` points fanout and idle at another route (the hub's `/hub`, `/hub-idle`).
broadcast (the hub's burst publisher): `conns` subscribers of a fresh topic on
`--path` (default `/hub-burst`), then one GET of `--trigger` (default `/hub-publish`)
publishes n events to them as fast as the server can and closes the topic; it times
the publish to the end of the last stream.

Prints one JSON object on stdout. Talks to 127.0.0.1 only.

Strategy: it must be much faster than any server, so it does as little as possible
per byte. HTTP/1.1 requests are written by hand; responses are read by asyncio
`BufferedProtocol`s (on uvloop when installed) into ONE shared 256 KiB buffer (the
loop is single-threaded and each read is handled before the next one starts), so no
bytes object is made per read. Frames are counted with `bytearray.count(separator)`
over the bytes just read, plus a look at the few bytes around the boundary with the
previous read, so a separator split across two reads counts exactly once. HTTP chunked
framing (`\\r\\n<hex>\\r\\n` between chunks) never forms a separator, except the final
`0\\r\\n\\r\\n` chunk with `\\r\\n\\r\\n` separators, which is subtracted. In fan-out, each
frame's `"ts":` float is read straight from the buffer to compute latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar, cast

from procs import raise_nofile_limit

T = TypeVar("T")

RECV_SIZE = 256 * 1024
SEPARATORS = {"lf": b"\n\n", "crlf": b"\r\n\r\n"}
TS_KEY = b'"ts":'
TICK_SECONDS = 0.1  # the servers' fan-out ticker (servers/_common.py)
HOST = "127.0.0.1"
CONNECT_CONCURRENCY = 128
PHASE_TIMEOUT = 60.0  # seconds, for any one phase (connecting, first frames...)
_TERMINAL_CHUNK = b"0\r\n\r\n"

# Note: one receive buffer for every connection of the process; see the module docstring.
_BUFFER = bytearray(RECV_SIZE)
_VIEW = memoryview(_BUFFER)


class Tally:
    """What all connections of one run add up."""

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.closed = 0
        self.measuring = False
        self.latencies: list[float] = []
        self.last_ts = 0.0  # creation time of the newest event seen (server's clock)
        self.ticked = asyncio.Event()  # set by the first event with a `ts`


class StreamCounter(asyncio.BufferedProtocol):
    """One HTTP/1.1 GET whose body is an event stream: counts frames as they arrive."""

    def __init__(self, request: bytes, sep: bytes, tally: Tally, *, parse_ts: bool) -> None:
        self.request = request
        self.sep = sep
        self.tally = tally
        self.parse_ts = parse_ts
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.tail = b""  # the last len(sep) - 1 body bytes seen
        self.last5 = b""  # the last 5 body bytes seen (for the terminal chunk)
        self.frames = 0
        self.closing = False
        loop = asyncio.get_running_loop()
        self.headers_done: asyncio.Future[None] = loop.create_future()
        self.first_frame: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Note: uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _VIEW

    def buffer_updated(self, nbytes: int) -> None:
        if self.headers_done.done():
            self._count(_BUFFER, 0, nbytes)
            return
        self.head += _BUFFER[:nbytes]
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        status = self.head.split(b" ", 2)[1]
        if status != b"200":
            line = self.head.split(b"\r\n", 1)[0].decode("latin-1")
            self._fail(ConnectionError(f"the server answered {line!r}"))
            return
        self.headers_done.set_result(None)
        body = bytearray(self.head[end + 4 :])
        self.head = b""
        self._count(body, 0, len(body))

    def _count(self, data: bytearray, start: int, end: int) -> None:
        if end <= start:
            return
        sep = self.sep
        k = len(sep) - 1
        chunk_head = bytes(data[start : start + k])
        chunk_end = bytes(data[max(start, end - 5) : end])
        n = data.count(sep, start, end)
        if self.tail:
            # A window of 2k bytes cannot hold a (k+1)-byte separator on one side only.
            n += (self.tail + chunk_head).count(sep)
        self.tail = (self.tail + chunk_end)[-k:]
        self.last5 = (self.last5 + chunk_end)[-5:]
        tally = self.tally
        tally.bytes += end - start
        if not n:
            return
        self.frames += n
        tally.frames += n
        if not self.first_frame.done():
            self.first_frame.set_result(None)
        if self.parse_ts:
            _read_ts(data, start, end, tally)

    def eof_received(self) -> bool:
        if self.sep == SEPARATORS["crlf"] and self.last5 == _TERMINAL_CHUNK:
            self.frames -= 1  # the end of the chunked body, not a frame
            self.tally.frames -= 1
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing:
            return  # we closed it
        self.tally.closed += 1
        if exc is not None:
            self._fail(exc)
            return
        for future in (self.headers_done, self.first_frame):
            _fail_future(future, ConnectionError("closed by the server"))
        if not self.done.done():
            self.done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        for future in (self.headers_done, self.first_frame, self.done):
            _fail_future(future, exc)
        self.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


def _fail_future(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # marked as retrieved: whoever waits on it still gets it


def _read_ts(data: bytearray, start: int, end: int, tally: Tally) -> None:
    """Note the newest `"ts":<float>,` in data[start:end] (JSON as pydantic dumps it)
    and, while measuring, the latency (now - ts) of every one."""
    now = time.monotonic()
    i = data.find(TS_KEY, start, end)
    while i >= 0:
        j = data.find(b",", i + 5, end)
        if j < 0:
            return  # the float is split across reads: this sample is skipped
        ts = float(data[i + 5 : j])
        if tally.measuring:
            tally.latencies.append(now - ts)
        if ts > tally.last_ts:
            if not tally.last_ts:
                tally.ticked.set()
            tally.last_ts = ts
        i = data.find(TS_KEY, j, end)


def _request(path: str, *, close: bool = False) -> bytes:
    connection = b"connection: close\r\n" if close else b""
    return b"GET %s HTTP/1.1\r\nhost: %s\r\n%s\r\n" % (path.encode(), HOST.encode(), connection)


async def _open_many(
    port: int,
    path: str,
    sep: bytes,
    tally: Tally,
    count: int,
    *,
    close: bool = False,
    parse_ts: bool = True,
) -> list[StreamCounter]:
    """Open `count` streams, at most CONNECT_CONCURRENCY waiting for headers at a time."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    request = _request(path, close=close)

    async def one() -> StreamCounter:
        async with gate:
            protocol = StreamCounter(request, sep, tally, parse_ts=parse_ts)
            await loop.create_connection(lambda: protocol, HOST, port)
            await protocol.headers_done
            return protocol

    return await _bounded(asyncio.gather(*(one() for _ in range(count))))


async def _bounded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, PHASE_TIMEOUT)


async def fetch_json(port: int, path: str, timeout: float = PHASE_TIMEOUT) -> dict[str, Any]:
    """GET `path` on a fresh connection; its JSON body."""

    async def get() -> bytes:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(_request(path, close=True))
        raw = await reader.read()
        writer.close()
        return raw

    raw = await asyncio.wait_for(get(), timeout)
    head, _, body = raw.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(f"{path} answered {head[:80]!r}")
    result: dict[str, Any] = json.loads(body)
    return result


async def fetch_stats(port: int) -> dict[str, Any]:
    """GET /stats on a fresh connection: {"tasks": int, "rss": int}."""
    return await fetch_json(port, "/stats")


async def burst(port: int, n: int, sep: bytes) -> dict[str, Any]:
    """One connection, n events as fast as the server sends them: events/s."""
    tally = Tally()
    loop = asyncio.get_running_loop()
    protocol = StreamCounter(_request(f"/burst?n={n}", close=True), sep, tally, parse_ts=False)
    started = time.perf_counter()
    await loop.create_connection(lambda: protocol, HOST, port)
    await _bounded(protocol.done)
    elapsed = time.perf_counter() - started
    if protocol.frames != n:
        raise RuntimeError(f"expected {n} frames, counted {protocol.frames}")
    return {
        "events": n,
        "seconds": elapsed,
        "events_per_s": n / elapsed,
        "mib_per_s": tally.bytes / elapsed / 2**20,
    }


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process: the sum over its threads of /proc/.../schedstat (ns
    resolution), or user + system from /proc/<pid>/stat (clock ticks) without it."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as schedstat:
                total += int(schedstat.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_total(pids: tuple[int, ...]) -> float:
    """CPU seconds summed over the server's processes (several workers)."""
    return sum(_cpu_seconds(pid) for pid in pids)


def _pids(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fanout(
    port: int,
    conns: int,
    seconds: float,
    server_pid: tuple[int, ...],
    sep: bytes,
    path: str = "/fanout",
    side_pid: tuple[int, ...] = (),
) -> dict[str, Any]:
    """`conns` subscribers to the 10 Hz ticker: delivered events/s, server CPU per event,
    latency from creation (server) to receipt (here)."""
    tally = Tally()
    phase_started = time.monotonic()
    protocols = await _open_many(port, path, sep, tally, conns)
    try:
        connected = time.monotonic()
        await _bounded(asyncio.gather(*(p.first_frame for p in protocols)))
        # A stream's first frame may carry no tick (the hub's priming `id:` frame).
        await _bounded(tally.ticked.wait())
        first_frames = time.monotonic()
        # Note: the window opens half a tick after a tick was created (as stamped by the
        # server on the same system-wide clock) and lasts whole ticks, so each edge is
        # 50 ms away from any tick: the count is not off by a tick at either end.
        opens = tally.last_ts + TICK_SECONDS / 2
        opens += math.ceil(max(0.0, time.monotonic() - opens) / TICK_SECONDS) * TICK_SECONDS
        await asyncio.sleep(opens - time.monotonic())
        closed_before = tally.closed
        frames_before = tally.frames
        server_cpu_before = _cpu_total(server_pid)
        side_cpu_before = _cpu_total(side_pid)
        client_before = os.times()
        started = time.monotonic()
        tally.measuring = True
        await asyncio.sleep(seconds)  # the measurement window, not a synchronisation
        tally.measuring = False
        elapsed = time.monotonic() - started
        server_cpu = _cpu_total(server_pid) - server_cpu_before
        side_cpu = _cpu_total(side_pid) - side_cpu_before
        client_after = os.times()
        frames = tally.frames - frames_before
    finally:
        for protocol in protocols:
            protocol.close()
    client_cpu = (client_after.user + client_after.system) - (
        client_before.user + client_before.system
    )
    latencies = tally.latencies
    return {
        "conns": conns,
        "connect_s": connected - phase_started,
        "first_frames_s": first_frames - connected,
        "seconds": elapsed,
        "events": frames,
        "expected_per_s": conns * 10,
        "delivered_per_s": frames / elapsed,
        "delivered_share": frames / elapsed / (conns * 10),
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_event": server_cpu / frames * 1e6 if frames else None,
        "server_cpu_share": server_cpu / elapsed,
        "client_cpu_share": client_cpu / elapsed,
        "side_cpu_us_per_event": side_cpu / frames * 1e6 if frames and side_pid else None,
        "latency_samples": len(latencies),
        "p50_ms": _percentile(latencies, 0.50) * 1e3 if latencies else None,
        "p99_ms": _percentile(latencies, 0.99) * 1e3 if latencies else None,
        "max_ms": max(latencies) * 1e3 if latencies else None,
        "dropped_conns": tally.closed - closed_before,
    }


async def idle(port: int, conns: int, path: str = "/idle") -> dict[str, Any]:
    """`conns` idle streams: server RSS and asyncio tasks per connection.

    A first tenth of the connections is opened before the "before" reading, so that
    one-time costs (lazy imports, caches, first-request set-up) are not charged to them.
    """
    tally = Tally()
    warm = max(1, conns // 10)
    protocols = await _open_many(port, path, SEPARATORS["lf"], tally, warm)
    try:
        before = await fetch_stats(port)
        protocols += await _open_many(port, path, SEPARATORS["lf"], tally, conns - warm)
        after = await fetch_stats(port)
        if tally.closed:
            raise RuntimeError(f"{tally.closed} idle connections were closed by the server")
    finally:
        for protocol in protocols:
            protocol.close()
    measured = conns - warm
    return {
        "conns": measured,
        "rss_before": before["rss"],
        "rss_after": after["rss"],
        "rss_per_conn": (after["rss"] - before["rss"]) / measured,
        "tasks_before": before["tasks"],
        "tasks_after": after["tasks"],
        "tasks_per_conn": (after["tasks"] - before["tasks"]) / measured,
    }


async def broadcast(
    port: int,
    conns: int,
    n: int,
    server_pid: tuple[int, ...],
    sep: bytes,
    *,
    path: str = "/hub-burst",
    trigger: str = "/hub-publish",
    every: int = 1,
    primed: bool = False,
) -> dict[str, Any]:
    """`conns` subscribers of a fresh topic, then n events published to it as fast as
    the server can: delivered events/s and server CPU per delivered event, from the
    trigger to the end of the last stream (the server closes the topic after the last).

    `primed`: each stream starts with a frame of its own (the hub's `id:` frame), which
    is waited for and not counted.
    """
    tally = Tally()
    topic = f"burst-{os.getpid()}"
    phase_started = time.monotonic()
    protocols = await _open_many(
        port, f"{path}?topic={topic}", sep, tally, conns, close=True, parse_ts=False
    )
    try:
        connected = time.monotonic()
        if primed:
            await _bounded(asyncio.gather(*(p.first_frame for p in protocols)))
        counted_before = [p.frames for p in protocols]
        server_cpu_before = _cpu_total(server_pid)
        client_before = os.times()
        started = time.monotonic()
        published = await fetch_json(
            port, f"{trigger}?topic={topic}&n={n}&every={every}", timeout=PHASE_TIMEOUT * 3
        )
        await asyncio.wait_for(asyncio.gather(*(p.done for p in protocols)), PHASE_TIMEOUT * 3)
        elapsed = time.monotonic() - started
        server_cpu = _cpu_total(server_pid) - server_cpu_before
        client_after = os.times()
    finally:
        for protocol in protocols:
            protocol.close()
    client_cpu = (client_after.user + client_after.system) - (
        client_before.user + client_before.system
    )
    received = [p.frames - before for p, before in zip(protocols, counted_before, strict=True)]
    frames = sum(received)
    return {
        "conns": conns,
        "events": n,
        "every": every,
        "connect_s": connected - phase_started,
        "publish_s": published["seconds"],
        "seconds": elapsed,
        "delivered": frames,
        "delivered_per_s": frames / elapsed,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_event": server_cpu / frames * 1e6 if frames else None,
        "server_cpu_share": server_cpu / elapsed,
        "client_cpu_share": client_cpu / elapsed,
        # Subscribers that did not get exactly n events (a hub's Reset counts as one).
        "incomplete": sum(count != n for count in received),
    }


def _run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SSE load generator (see module docstring)")
    parser.add_argument("mode", choices=("burst", "fanout", "idle", "broadcast"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sep", choices=sorted(SEPARATORS), default="lf")
    parser.add_argument("--n", type=int, default=100_000, help="burst, broadcast: events")
    parser.add_argument(
        "--conns", type=int, default=1000, help="fanout/idle/broadcast: connections"
    )
    parser.add_argument("--path", help="fanout, idle, broadcast: the stream's route")
    parser.add_argument("--trigger", default="/hub-publish", help="broadcast: the publisher")
    parser.add_argument(
        "--every", type=int, default=1, help="broadcast: publishes per turn of the loop"
    )
    parser.add_argument(
        "--primed", action="store_true", help="broadcast: streams start with a frame"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="fanout: window (whole ticks of 0.1 s)"
    )
    parser.add_argument(
        "--server-pid",
        type=_pids,
        default=(),
        help="fanout, broadcast: the server's PID (PID,PID,...: its workers) for CPU time",
    )
    parser.add_argument(
        "--side-pid",
        type=_pids,
        default=(),
        help="fanout: other processes (Redis, a publisher) whose CPU is reported apart",
    )
    return parser.parse_args(argv)


def main() -> None:
    args = _parse_args()
    raise_nofile_limit()
    sep = SEPARATORS[args.sep]
    if args.mode == "burst":
        result = _run(burst(args.port, args.n, sep))
    elif args.mode == "fanout":
        path = args.path or "/fanout"
        result = _run(
            fanout(args.port, args.conns, args.seconds, args.server_pid, sep, path, args.side_pid)
        )
    elif args.mode == "idle":
        result = _run(idle(args.port, args.conns, args.path or "/idle"))
    else:
        result = _run(
            broadcast(
                args.port,
                args.conns,
                args.n,
                args.server_pid,
                sep,
                path=args.path or "/hub-burst",
                trigger=args.trigger,
                every=args.every,
                primed=args.primed,
            )
        )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
