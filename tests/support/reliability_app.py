"""The app of the reliability tests, and how to run it in a real uvicorn (not a test module).

Routes (an `SSEMiddleware` in front of a tiny plain-ASGI site, all inside
`GracefulShutdown`):

- ``/stream?kind=K&...`` - one event stream per request, chosen by ``kind`` (see
  `_STREAMS`); every stream takes ``ping`` and ``send_timeout`` (seconds, or ``none``),
  which go to an `EventSourceResponse` built per request, and ``cid``, a connection id
  under which the request, the stream's start and its cleanup are logged with
  `time.monotonic()` (the same clock in every process of the machine, so a test can
  compare the server's times with its own).
- ``/stats`` - JSON: ``tasks`` (``len(asyncio.all_tasks())``), streams ``started``,
  ``cleaned``, ``open`` and cleanups run twice (``doubles``), requests ``active``
  (besides this one), ``rss`` (bytes, /proc/self/statm), ``progress`` per cid (items
  pulled from the stream, and when the last one was), and with ``log=1`` the log.
  ``gc=1`` collects garbage first.

A stream is counted as started when its body begins to run (an async generator's first
line, a class-based iterator's construction) and as cleaned when its cleanup runs (the
generator's ``finally``, the iterator's ``aclose()``). A cleanup that runs twice is
counted in ``doubles``.

Run: ``python -m tests.support.reliability_app --port N [--sndbuf 8192]
[--timeout-graceful-shutdown 2]``. The launcher creates the listening socket itself
with a small SO_SNDBUF - accepted sockets inherit it on Linux - so that a client that
stops reading fills the server's buffers after a few kB, not megabytes; then it runs
`uvicorn.Server(...).run(sockets=[sock])`. `serving()` starts that process for a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

import anyio

from asgi_sse import (
    BaseEvent,
    EventSourceResponse,
    GracefulShutdown,
    ServerSentEvent,
    SSEEndpoint,
    SSEMiddleware,
    SSERequest,
    merge,
)
from asgi_sse._util.lifespan import answer_lifespan
from tests.support.servers import HOST, Server, launched

__all__ = (
    "ATTACKS",
    "RETRIES",
    "Note",
    "app",
    "injection_cases",
    "main",
    "serving",
)

# -- bookkeeping ----------------------------------------------------------------------


class _Stats:
    def __init__(self) -> None:
        self.started = 0
        self.cleaned = 0
        self.doubles = 0
        self.active = 0
        self.requests = 0
        self.log: list[tuple[float, str, str]] = []
        self.progress: dict[str, list[float]] = {}


STATS = _Stats()


def _note(cid: str, what: str) -> None:
    # Only requests that carry a cid are logged: the churn runs many thousands of
    # requests without one, and a growing log would look like a leak.
    if cid:
        STATS.log.append((time.monotonic(), cid, what))


class _Tracker:
    """One stream's start and cleanup; a second cleanup is counted, never hidden."""

    __slots__ = ("cid", "done")

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.done = False
        STATS.started += 1
        _note(cid, "start")

    def end(self, how: str) -> None:
        if self.done:
            STATS.doubles += 1
            _note(self.cid, f"cleanup-again:{how}")
            return
        self.done = True
        STATS.cleaned += 1
        _note(self.cid, f"cleanup:{how}")

    def pulled(self) -> None:
        if self.cid:
            entry = STATS.progress.setdefault(self.cid, [0, 0.0])
            entry[0] += 1
            entry[1] = time.monotonic()


@contextlib.contextmanager
def _tracked(cid: str) -> Iterator[_Tracker]:
    tracker = _Tracker(cid)
    how = "end"
    try:
        yield tracker
    except BaseException as exc:  # GeneratorExit, a cancellation: recorded, re-raised
        how = type(exc).__name__
        raise
    finally:
        tracker.end(how)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _stats(query: Mapping[str, str]) -> dict[str, Any]:
    if query.get("gc") == "1":
        gc.collect()
    try:
        tasks: int | None = len(asyncio.all_tasks())
    except RuntimeError:  # not on asyncio
        tasks = None
    result: dict[str, Any] = {
        "tasks": tasks,
        "started": STATS.started,
        "cleaned": STATS.cleaned,
        "open": STATS.started - STATS.cleaned,
        "doubles": STATS.doubles,
        "active": STATS.active - 1,  # not counting this request
        "requests": STATS.requests,
        "rss": _rss(),
        "now": time.monotonic(),
        "progress": STATS.progress,
    }
    if query.get("log") == "1":
        result["log"] = STATS.log
    return result


# -- the streams -------------------------------------------------------------------------


class Note(BaseEvent[str]):
    pass


def _number(query: Mapping[str, str], name: str, default: float) -> float:
    return float(query.get(name, default))


async def _idle(cid: str, query: Mapping[str, str]) -> AsyncIterator[ServerSentEvent]:
    with _tracked(cid):
        if query.get("ready", "1") == "1":
            yield ServerSentEvent("ready", event="ready")
        await anyio.sleep_forever()


async def _ticks(cid: str, query: Mapping[str, str]) -> AsyncIterator[ServerSentEvent]:
    """``n`` events (0: endless) at ``hz``, each padded to ``size`` bytes; data starts
    with the event's number and the server's monotonic time. A schedule without drift:
    an event that is late shows as a gap at the client, then the stream catches up."""
    hz = _number(query, "hz", 10)
    count = int(_number(query, "n", 0))
    padding = "x" * int(_number(query, "size", 0))
    with _tracked(cid) as tracker:
        start = time.monotonic()
        number = 0
        while not count or number < count:
            yield ServerSentEvent(f"{number} {time.monotonic():.6f} {padding}", event="tick")
            tracker.pulled()
            number += 1
            await anyio.sleep(max(0.0, start + number / hz - time.monotonic()))
        yield ServerSentEvent("end", event="end")


async def _burst(cid: str, query: Mapping[str, str]) -> AsyncIterator[ServerSentEvent]:
    """``n`` events that are all ready at once: the generator never awaits."""
    count = int(_number(query, "n", 100_000))
    with _tracked(cid):
        for number in range(count):
            yield ServerSentEvent(str(number))
        yield ServerSentEvent("end", event="end")


async def _endless(cid: str, query: Mapping[str, str]) -> AsyncIterator[ServerSentEvent]:
    """Never ends and never awaits: only the response can stop it."""
    with _tracked(cid):
        while True:
            yield ServerSentEvent("h")


async def _big(cid: str, query: Mapping[str, str]) -> AsyncIterator[ServerSentEvent]:
    """``count`` events of ``size`` bytes of data, then ``small`` small events, then the
    end."""
    size = int(_number(query, "size", 10_000_000))
    count = int(_number(query, "count", 1))
    small = int(_number(query, "small", 5))
    with _tracked(cid):
        for _ in range(count):
            yield ServerSentEvent("b" * size, event="big")
        for number in range(small):
            yield ServerSentEvent(str(number), event="small")


class _ChurnIterator:
    """A class-based stream: its cleanup is `aclose()`, which the response must call
    exactly once (a second call is counted as a cleanup run twice)."""

    def __init__(self, cid: str, seed: int) -> None:
        self._tracker = _Tracker(cid)
        self._random = random.Random(seed)

    def __aiter__(self) -> _ChurnIterator:
        return self

    async def __anext__(self) -> ServerSentEvent:
        if self._tracker.done:
            raise StopAsyncIteration
        await anyio.sleep(self._random.choice((0, 0, 0.001)))
        return ServerSentEvent("c" * self._random.randrange(1, 20_000))

    async def aclose(self) -> None:
        self._tracker.end("aclose")


async def _churn_events(cid: str, seed: int) -> AsyncIterator[ServerSentEvent]:
    rng = random.Random(seed)
    with _tracked(cid):
        while True:
            yield ServerSentEvent("c" * rng.randrange(1, 20_000))
            await anyio.sleep(rng.choice((0, 0, 0.001)))


def _churn(cid: str, query: Mapping[str, str]) -> Any:
    """Random frame sizes (so that a client can leave mid-frame) and short waits;
    ``shape`` is ``gen`` (an async generator), ``merge`` (two merged) or ``iter``."""
    seed = int(_number(query, "seed", 0))
    shape = query.get("shape", "gen")
    if shape == "merge":
        return merge(_churn_events(cid, seed), _churn_events(cid, seed + 1))
    if shape == "iter":
        return _ChurnIterator(cid, seed)
    return _churn_events(cid, seed)


async def _echo(cid: str, request: SSERequest, body: bytes) -> AsyncIterator[ServerSentEvent]:
    """What the request looked like, as one JSON event (ASCII-only JSON, so that any
    value can be sent), then the end."""
    last_event_id = request.last_event_id
    utf8 = True
    if last_event_id is not None:
        try:
            last_event_id.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: unusable as an event id or data
            utf8 = False
    with _tracked(cid):
        payload = {
            "last_event_id": last_event_id,
            "utf8": utf8,
            "method": request.method,
            "body": len(body),
        }
        yield ServerSentEvent(json.dumps(payload), event="echo")


# Attacker-like text: field separators, lookalike separators, fake fields, NUL, lone
# surrogates. Every one goes through every field of an event (see injection_cases()).
ATTACKS: tuple[str, ...] = (
    "plain",
    "cr\rinside",
    "lf\ninside",
    "crlf\r\ninside",
    "\r",
    "\n",
    "\r\n",
    "\n\n",
    "\r\r",
    "\r\n\r\n",
    "x\n\ndata: forged\n\n",
    "x\r\rdata: forged\r\r",
    "x\r\n\r\nevent: forged\r\ndata: forged\r\nid: forged\r\n\r\n",
    "data: forged",
    "event: forged",
    "id: forged",
    "retry: 1",
    ": forged comment",
    "nul\x00inside",
    "\x00",
    "ls\u2028inside",
    "ps\u2029inside",
    "nel\x85inside",
    "vt\x0bff\x0cfs\x1cgs\x1drs\x1e",
    "lone \ud800 surrogate",
    "\udfff",
    "bom\ufeffinside",
    "  two leading spaces",
    " ",
    "",
    ":colon first",
    "trailing cr\r",
)
RETRIES: tuple[int, ...] = (0, 1, 3000, -1, 2**64)
FIELDS = ("data", "str", "event", "id", "comment", "comment+data", "typed", "typed-id")


def injection_cases() -> list[tuple[str, str | int]]:
    """(field, value) in the order the ``inject`` stream tries them."""
    cases: list[tuple[str, str | int]] = [(name, value) for value in ATTACKS for name in FIELDS]
    cases += [("retry", value) for value in RETRIES]
    return cases


def _injected(name: str, value: Any) -> ServerSentEvent | Note | str:
    """The item for one case; raises for what the library refuses to send."""
    item: ServerSentEvent | Note | str
    if name == "data":
        item = ServerSentEvent(value)
    elif name == "str":
        ServerSentEvent(value)  # the same check a str item gets when it is encoded
        item = value
    elif name == "event":
        item = ServerSentEvent("e", event=value)
    elif name == "id":
        item = ServerSentEvent("i", id=value)
    elif name == "comment":
        item = ServerSentEvent(comment=value)
    elif name == "comment+data":
        item = ServerSentEvent("c", comment=value)
    elif name == "typed":
        item = Note(data=value)
    elif name == "typed-id":
        item = Note(data="t", id=value)
    else:
        item = ServerSentEvent("r", retry=value)
    if isinstance(item, Note):
        item.encode()  # pydantic fails on a lone surrogate only when it serialises
    return item


async def _inject(
    cid: str, query: Mapping[str, str]
) -> AsyncIterator[ServerSentEvent | Note | str]:
    """Every case that the library accepts, then a manifest of which it accepted."""
    accepted: list[bool] = []
    with _tracked(cid):
        for name, value in injection_cases():
            try:
                item = _injected(name, value)
            except Exception:  # refused by the library: it must never reach the wire
                accepted.append(False)
                continue
            accepted.append(True)
            yield item
        yield ServerSentEvent(json.dumps(accepted), event="manifest")


class _Boom(Exception):
    """The fault a ``fault`` stream raises (its name shows in the server's log)."""


async def _fault(cid: str, query: Mapping[str, str]) -> AsyncIterator[Any]:
    """A stream that misbehaves as ``mode`` says:

    - ``raise``: ``n`` events, then an exception (``n=0``: before the first event);
    - ``unsupported``: ``n`` events, then an item that is no event (an int);
    - ``never-yields``: awaits forever without yielding anything;
    - ``finally-await`` / ``finally-shielded``: one event, then waits; its ``finally``
      awaits 0.2 s, unshielded (cancelled at once) or shielded (runs to the end).
    """
    mode = query.get("mode", "raise")
    count = int(_number(query, "n", 2))
    with _tracked(cid):
        try:
            if mode in ("raise", "unsupported"):
                for number in range(count):
                    yield ServerSentEvent(str(number))
                    await anyio.sleep(0.01)
                if mode == "raise":
                    raise _Boom(f"raised after {count} events")
                yield 42
            elif mode == "never-yields":
                await anyio.sleep_forever()
            else:
                yield ServerSentEvent("waiting")
                await anyio.sleep_forever()
        finally:
            if mode == "finally-await":
                try:
                    await anyio.sleep(0.2)
                    _note(cid, "finally-await:ran")
                except BaseException:
                    _note(cid, "finally-await:cancelled")
                    raise
            elif mode == "finally-shielded":
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(0.2)
                _note(cid, "finally-shielded:ran")


async def _own_timeouts(cid: str, query: Mapping[str, str]) -> AsyncIterator[ServerSentEvent]:
    """``n`` rounds of two events of ``size`` bytes, ready together; after each round
    the stream waits under its own asyncio deadline (``asyncio.timeout`` on Python >=
    3.11, else ``wait_for``) of 50 ms around a 10 s sleep. Each event says how many of
    those deadlines fired as they should; the last one says it for all of them."""
    count = int(_number(query, "n", 10))
    padding = "p" * int(_number(query, "size", 32_000))
    fired = 0
    with _tracked(cid):
        for number in range(count):
            yield ServerSentEvent(f"{number} {fired} {padding}", event="tick")
            yield ServerSentEvent(f"{number} {fired} {padding}", event="tock")
            try:
                if sys.version_info >= (3, 11):
                    async with asyncio.timeout(0.05):
                        await asyncio.sleep(10)
                else:  # pragma: no cover - Python 3.10
                    await asyncio.wait_for(asyncio.sleep(10), 0.05)
            except (TimeoutError, asyncio.TimeoutError):  # distinct before Python 3.11
                fired += 1
        yield ServerSentEvent(f"{count} {fired}", event="end")


_STREAMS: dict[str, Callable[[str, Mapping[str, str]], Any]] = {
    "idle": _idle,
    "ticks": _ticks,
    "burst": _burst,
    "endless": _endless,
    "big": _big,
    "churn": _churn,
    "inject": _inject,
    "fault": _fault,
    "own-timeouts": _own_timeouts,
}


def _seconds(value: str | None, default: float | None) -> float | None:
    if value is None:
        return default
    return None if value == "none" else float(value)


async def _handler(request: SSERequest) -> EventSourceResponse | None:
    query = request.query_params
    cid = query.get("cid", "")
    kind = query.get("kind", "idle")
    stream: Any
    if kind == "echo":
        # ``read_body=1``: the body is read before the stream starts, as the README
        # says (a client that leaves meanwhile ends the request quietly).
        body = await request.body() if query.get("read_body") == "1" else b""
        stream = _echo(cid, request, body)
    elif kind not in _STREAMS:
        return None  # 204: no such stream
    else:
        stream = _STREAMS[kind](cid, query)
        if kind in ("burst", "endless") and query.get("merge") == "1":
            stream = merge(stream)
    ping_event: Any = None
    if query.get("ping_event") == "fails":

        def ping_event() -> ServerSentEvent:
            raise _Boom("the ping_event function failed")

    return EventSourceResponse(
        stream,
        ping=_seconds(query.get("ping"), 15.0),
        ping_event=ping_event,
        send_timeout=_seconds(query.get("send_timeout"), 30.0),
    )


# -- the ASGI app -------------------------------------------------------------------------


def _query(scope: Mapping[str, Any]) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


async def _site(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1000, "reason": ""})
        return
    if scope["path"] == "/stats":
        body = json.dumps(_stats(_query(scope))).encode()
        status, content_type = 200, b"application/json"
    else:
        body, status, content_type = b"not found", 404, b"text/plain"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Counted:
    """Counts the HTTP requests in flight: a request task that never ends shows up."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw: bytes = scope.get("query_string", b"")
        cid = _query(scope).get("cid", "") if b"cid=" in raw else ""
        STATS.active += 1
        STATS.requests += 1
        _note(cid, f"request:{scope['method']}")
        how = "returned"
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            how = f"raised:{type(exc).__name__}"
            raise
        finally:
            STATS.active -= 1
            _note(cid, f"released:{how}")


app = GracefulShutdown(_Counted(SSEMiddleware(_site, routes={"/stream": SSEEndpoint(_handler)})))


# -- running it ---------------------------------------------------------------------------


def _raise_nofile_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sndbuf", type=int, default=8192, help="SO_SNDBUF; 0: the default")
    parser.add_argument("--timeout-graceful-shutdown", type=float, default=None)
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    parser.add_argument("--backlog", type=int, default=4096)
    args = parser.parse_args(argv)
    _raise_nofile_limit()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.sndbuf)
    sock.bind((args.host, args.port))
    sock.listen(args.backlog)
    config = uvicorn.Config(
        app,
        loop=args.loop,
        http=args.http,
        backlog=args.backlog,
        timeout_graceful_shutdown=(
            None if args.timeout_graceful_shutdown is None else int(args.timeout_graceful_shutdown)
        ),
        access_log=False,
        log_level="info",
    )
    uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def serving(
    *,
    sndbuf: int = 8192,
    timeout_graceful_shutdown: float | None = None,
    loop: str = "auto",
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """Run this app in a real uvicorn process on 127.0.0.1; stop it when the block ends.

    The process discipline of tests/support/servers.py: own session, output captured, started
    under a deadline, stopped by its PID (SIGTERM, then SIGKILL). Failures inside the
    block get the server's output attached."""

    def argv(port: int) -> list[str]:
        args = [sys.executable, "-m", "tests.support.reliability_app", "--port", str(port)]
        args += ["--sndbuf", str(sndbuf), "--loop", loop]
        if timeout_graceful_shutdown is not None:
            args += ["--timeout-graceful-shutdown", str(timeout_graceful_shutdown)]
        return args

    with launched("uvicorn", argv, env=env, prefix="asgi-sse-reliability-") as server:
        yield server


if __name__ == "__main__":
    main()
