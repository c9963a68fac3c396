"""The generator ceiling: a trivial raw-socket server, far faster than any ASGI server.

    python benchmarks/ceiling.py <port>

It speaks just enough HTTP/1.1 for the load generator (no chunking; the body ends when
the connection closes) and serves the same endpoints as the real servers:
- `/burst?n=`: pre-built frames written in ~256 KiB blocks, then close. What the load
  generator counts here is its own ceiling in events/s.
- `/fanout`: the same 10 Hz ticker, one write of the same frame per subscriber: the
  latency floor of the load generator (its own scheduling of many sockets).
- `/idle`, `/stats`: as the others.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from urllib.parse import parse_qs, urlsplit

from procs import raise_nofile_limit
from servers._common import TICK_SECONDS, make_payload, manual_frame, stats_body

FRAME = manual_frame(make_payload(0), 0)
FRAMES_PER_BLOCK = 256 * 1024 // len(FRAME)
BLOCK = FRAME * FRAMES_PER_BLOCK
STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"

subscribers: set[asyncio.StreamWriter] = set()


async def tick() -> None:
    loop = asyncio.get_running_loop()
    due = loop.time()
    seq = 0
    while True:
        due += TICK_SECONDS
        await asyncio.sleep(max(0.0, due - loop.time()))
        seq += 1
        frame = manual_frame(make_payload(seq), seq)
        for writer in subscribers:
            writer.write(frame)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        target = urlsplit(head.split(b" ", 2)[1].decode("latin-1"))
        if target.path == "/burst":
            n = int(parse_qs(target.query).get("n", ["100000"])[0])
            writer.write(STREAM_HEAD)
            blocks, rest = divmod(n, FRAMES_PER_BLOCK)
            for _ in range(blocks):
                writer.write(BLOCK)
                await writer.drain()
            writer.write(FRAME * rest)
        elif target.path in ("/fanout", "/idle"):
            writer.write(STREAM_HEAD)
            if target.path == "/fanout":
                subscribers.add(writer)
            await reader.read()  # until the client leaves
        elif target.path == "/stats":
            body = stats_body()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        subscribers.discard(writer)
        writer.close()


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Note: explicit handlers - a process started in the background by a shell may
    # inherit SIGINT as ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ticker = loop.create_task(tick())
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=2048)
    async with server:
        await stop.wait()
    ticker.cancel()


def main() -> None:
    raise_nofile_limit()
    port = int(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    runner(serve(port))


if __name__ == "__main__":
    main()
