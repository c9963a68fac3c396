"""A raw HTTP/1.1 client over plain sockets, for the reliability tests (not a test module).

Why not httpx: these tests need what a real HTTP library hides - a receive buffer made
small *before* connecting (so that a client that stops reading fills the server's
buffers quickly), a client that just stops reading, a reset instead of a close, reads
paced to a byte rate, odd bytes in the request line and headers, and the time at which
each frame arrived.

Sockets are non-blocking once connected; every wait goes through `select` under a
deadline, so no call here can block forever. `pump()` reads many clients at once.

The SSE framing here is deliberately naive (frames end at a blank line, lines at LF):
it is enough to time and count what *our* server sends. Tests that check what a real
client would dispatch parse `body` with real parsers instead.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = (
    "DEFAULT_TIMEOUT",
    "HOST",
    "Frame",
    "RawClient",
    "get_json",
    "pump",
    "request_once",
)

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 10.0
_RECV = 65536


@dataclass
class Frame:
    """One SSE frame as received: its lines (without LF) and when its blank line came."""

    at: float
    lines: list[bytes] = field(default_factory=list)

    def field_values(self, name: bytes) -> list[bytes]:
        prefix = name + b":"
        values = []
        for line in self.lines:
            if line.startswith(prefix):
                value = line[len(prefix) :]
                values.append(value[1:] if value[:1] == b" " else value)
        return values

    @property
    def data(self) -> bytes:
        return b"\n".join(self.field_values(b"data"))

    @property
    def event(self) -> bytes | None:
        values = self.field_values(b"event")
        return values[-1] if values else None


def _encode(value: str | bytes) -> bytes:
    # Browsers send header values and URLs as UTF-8; bytes go out exactly as given.
    return value if isinstance(value, bytes) else value.encode("utf-8")


class RawClient:
    """One connection to ``port``; send a request, then read its response as it arrives.

    ``rcvbuf`` sets SO_RCVBUF before connecting (the kernel doubles it and applies a
    minimum). ``keep_frames=False`` only counts and times frames (memory for big ones);
    ``parse_frames=False`` does not even split them (the fastest reader), and
    ``keep_body=False`` keeps no body.
    """

    def __init__(
        self,
        port: int,
        *,
        rcvbuf: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        host: str = HOST,
        keep_frames: bool = True,
        keep_body: bool = True,
        parse_frames: bool = True,
    ) -> None:
        self.port = port
        self.host = host
        self.timeout = timeout
        self.keep_frames = keep_frames
        self.keep_body = keep_body
        self.parse_frames = parse_frames
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((host, port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.connected_at = time.monotonic()
        self.method = "GET"
        self.path: str | bytes = ""
        self.frozen = False
        self.closed = False
        # What came back.
        self.received = 0  # raw bytes, head included
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.head_at: float | None = None
        self.body = bytearray()  # the decoded body (if keep_body)
        self.body_bytes = 0
        self.complete = False  # the body ended cleanly (terminating chunk, length reached)
        self.eof = False  # the server closed the connection
        self.error: str | None = None  # e.g. reset by peer
        self.ended_at: float | None = None
        self.frames: list[Frame] = []  # if keep_frames
        self.frame_times: list[float] = []  # when each frame's blank line arrived
        self.frame_count = 0
        self.last_frame_at: float | None = None
        self.comments: list[tuple[float, bytes]] = []
        # Parser state.
        self._pending = bytearray()
        self._mode = "head"  # head, chunk-size, chunk-data, chunk-crlf, trailer, length, close
        self._left = 0
        self._line = bytearray()
        self._scanned = 0
        self._frame_lines: list[bytes] = []

    # -- sending ---------------------------------------------------------------------

    def request(
        self,
        method: str = "GET",
        path: str | bytes = "/",
        headers: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]] = (),
        body: bytes = b"",
        *,
        content_length: int | None = None,
        send_body: bool = True,
    ) -> RawClient:
        """Send a request (``content_length`` may promise more than ``body`` holds)."""
        self.method = method
        self.path = path
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        head = [_encode(method) + b" " + _encode(path) + b" HTTP/1.1"]
        head.append(f"Host: {self.host}:{self.port}".encode())
        head += [name.encode("latin-1") + b": " + _encode(value) for name, value in pairs]
        if body or content_length is not None:
            head.append(
                b"Content-Length: %d" % (len(body) if content_length is None else content_length)
            )
        self.send(b"\r\n".join(head) + b"\r\n\r\n" + (body if send_body else b""))
        return self

    def send(self, data: bytes, timeout: float | None = None) -> None:
        """Send all of ``data`` (AssertionError if the server does not take it in time)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the server took no more of the request ({len(view)} bytes left)"
                    ) from None
                with selectors.DefaultSelector() as selector:
                    selector.register(self.sock, selectors.EVENT_WRITE)
                    selector.select(min(left, 0.1))
                continue
            view = view[sent:]

    # -- receiving -------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Nothing more will arrive: a clean end, the server closed, or an error."""
        return self.complete or self.eof or self.error is not None or self.closed

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def on_readable(self, size: int = _RECV) -> int:
        """One non-blocking read; returns the bytes read (0: nothing or the end)."""
        if self.done:
            return 0
        try:
            data = self.sock.recv(size)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:  # reset by peer: not a clean end
            self.error = repr(exc)
            self._ended()
            return 0
        if not data:
            self.eof = True
            if self._mode == "close":
                self.complete = True  # a body delimited by the connection's end
            self._ended()
            return 0
        self.received += len(data)
        self._pending += data
        self._parse()
        return len(data)

    def wait_readable(self, timeout: float) -> bool:
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            return bool(selector.select(max(timeout, 0.0)))

    def read_until(
        self, condition: Callable[[RawClient], object], timeout: float, what: str
    ) -> None:
        """Read until ``condition(self)``; AssertionError after ``timeout`` or at the end
        of the response without it."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            if self.done:
                raise AssertionError(f"the response ended before {what}: {self.describe()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}: {self.describe()}"
                )
            if self.wait_readable(min(left, 0.1)):
                self.on_readable()

    def read_to_end(self, timeout: float) -> RawClient:
        """Read until the response is done (AssertionError after ``timeout``)."""
        with contextlib.suppress(AssertionError):
            self.read_until(lambda c: c.done, timeout, "the end of the response")
        if not self.done:
            raise AssertionError(
                f"timed out after {timeout}s waiting for the end: {self.describe()}"
            )
        return self

    def read_paced(
        self,
        rate: float,
        until: Callable[[RawClient], object],
        timeout: float,
        chunk: int = 16384,
    ) -> None:
        """Read at most ``rate`` bytes per second (a slow client) until ``until(self)``."""
        started = time.monotonic()
        deadline = started + timeout
        taken = 0
        while not until(self) and not self.done:
            now = time.monotonic()
            if now > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s reading at {rate:.0f} B/s: {self.describe()}"
                )
            due = started + taken / rate
            if due > now:
                time.sleep(min(due - now, deadline - now))  # pacing, not synchronisation
                continue
            if self.wait_readable(min(0.1, deadline - now)):
                taken += self.on_readable(chunk)

    def freeze(self) -> None:
        """Stop reading (the socket stays open): a frozen browser tab, a stuck proxy."""
        self.frozen = True

    def close(self) -> None:
        """Close normally (a FIN; the kernel sends a reset if unread data is pending)."""
        if not self.closed:
            self.closed = True
            self.sock.close()

    def close_fin(self) -> None:
        """Half-close first: the server sees a clean FIN even with unread data here."""
        if not self.closed:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            self.close()

    def close_rst(self) -> None:
        """Abort the connection: SO_LINGER (on, 0 s) makes close() send a RST."""
        if not self.closed:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close()

    def json(self) -> Any:
        return json.loads(bytes(self.body))

    def describe(self) -> str:
        return (
            f"{self.method} {self.path!r}: status={self.status} received={self.received} "
            f"body={self.body_bytes} frames={self.frame_count} complete={self.complete} "
            f"eof={self.eof} error={self.error} mode={self._mode} "
            f"tail={bytes(self.body[-80:])!r}"
        )

    # -- parsing ---------------------------------------------------------------------

    def _ended(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.monotonic()

    def _parse(self) -> None:
        buf = self._pending
        while buf and not self.complete:
            mode = self._mode
            if mode == "head":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
                del buf[: end + 4]
                status = int(lines[0].split()[1])
                if 100 <= status < 200:
                    continue  # 100 Continue: the real response follows
                self.status = status
                self.headers = [
                    (name.strip().lower(), value.strip())
                    for name, _, value in (line.partition(":") for line in lines[1:])
                ]
                self.head_at = time.monotonic()
                self._mode = self._body_mode()
                if self._mode == "none":
                    self.complete = True
                    self._ended()
            elif mode == "chunk-size":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";")[0], 16)
                del buf[: end + 2]
                if size == 0:
                    self._mode = "trailer"
                else:
                    self._mode, self._left = "chunk-data", size
            elif mode == "chunk-data":
                take = min(self._left, len(buf))
                self._on_body(bytes(buf[:take]))
                del buf[:take]
                self._left -= take
                if not self._left:
                    self._mode = "chunk-crlf"
            elif mode == "chunk-crlf":
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise AssertionError(f"bad chunk end {bytes(buf[:2])!r}: {self.describe()}")
                del buf[:2]
                self._mode = "chunk-size"
            elif mode == "trailer":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                del buf[: end + 2]
                if end == 0:  # the empty line after the (absent) trailers
                    self.complete = True
                    self._ended()
            elif mode == "length":
                take = min(self._left, len(buf))
                self._on_body(bytes(buf[:take]))
                del buf[:take]
                self._left -= take
                if not self._left:
                    self.complete = True
                    self._ended()
            else:  # close: everything until the connection ends
                self._on_body(bytes(buf))
                buf.clear()

    def _body_mode(self) -> str:
        if self.method == "HEAD" or self.status in (204, 304):
            return "none"
        if (self.header("transfer-encoding") or "").lower() == "chunked":
            return "chunk-size"
        length = self.header("content-length")
        if length is not None:
            self._left = int(length)
            return "length" if self._left else "none"
        return "close"

    def _on_body(self, data: bytes) -> None:
        self.body_bytes += len(data)
        if self.keep_body:
            self.body += data
        if not self.parse_frames:
            return
        line = self._line
        line += data
        start = 0
        position = self._scanned  # no LF before this
        while True:
            end = line.find(b"\n", position)
            if end < 0:
                break
            self._on_line(bytes(line[start:end]))
            start = position = end + 1
        if start:
            del line[:start]
        self._scanned = len(line)

    def _on_line(self, line: bytes) -> None:
        if not line:
            if self._frame_lines:
                now = time.monotonic()
                self.frame_count += 1
                self.last_frame_at = now
                self.frame_times.append(now)
                if self.keep_frames:
                    self.frames.append(Frame(now, self._frame_lines))
                self._frame_lines = []
        elif line[:1] == b":":
            self.comments.append((time.monotonic(), line))
        else:
            self._frame_lines.append(line)


def pump(
    clients: Iterable[RawClient],
    until: Callable[[], object],
    timeout: float,
    what: str,
    on_tick: Callable[[], None] | None = None,
) -> None:
    """Read every client as data arrives until ``until()``; AssertionError naming ``what``
    after ``timeout``. Frozen clients are not read. ``on_tick`` runs every ~10 ms."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for client in clients:
            if not client.done and not client.frozen:
                selector.register(client.sock, selectors.EVENT_READ, client)
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            for key, _ in selector.select(timeout=0.01):
                client = key.data
                if not client.frozen:
                    client.on_readable()
                if client.done or client.frozen:
                    selector.unregister(key.fileobj)
            if on_tick is not None:
                on_tick()


def request_once(
    port: int,
    method: str = "GET",
    path: str | bytes = "/",
    headers: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]] = (),
    body: bytes = b"",
    timeout: float = DEFAULT_TIMEOUT,
) -> RawClient:
    """One request, read to its end, then closed."""
    client = RawClient(port, timeout=timeout)
    try:
        client.request(method, path, headers, body)
        client.read_to_end(timeout)
    finally:
        client.close()
    return client


def get_json(port: int, path: str, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """GET ``path`` and decode its JSON body (AssertionError for a non-200 answer)."""
    client = request_once(port, "GET", path, timeout=timeout)
    if client.status != 200:
        raise AssertionError(f"GET {path}: {client.describe()}")
    return client.json()
