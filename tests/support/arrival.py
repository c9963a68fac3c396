"""Whether each frame reaches the client before the next is produced, through a proxy or
a compression middleware (not a test module).

`gated()` opens tests/support/proxy_app.py's gated stream and reports whether its first
event arrived while the app still held back the second. `Decoded` follows a
`RawClient`'s body (made with ``parse_frames=False``: the raw client's naive framing
cannot see through compression) and decodes whatever came so far with the response's
``Content-Encoding`` - gzip, br, zstd or none - then parses the text with asgi-sse's own
`EventStreamParser`. Every decoder here is incremental: bytes that a middleware or a
proxy flushed decode at once; bytes it holds back never arrive, which is what the tests
look for.
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Callable
from typing import NamedTuple, cast

import brotli  # type: ignore[import-untyped]  # no stubs, no py.typed
import zstandard

from asgi_sse import EventStreamParser, ParsedEvent
from tests.support.rawclient import RawClient, get_json, request_once
from tests.support.servers import Server, wait_until

__all__ = ("WAIT", "Decoded", "Gated", "gated", "log", "new_key", "release")

WAIT = 10.0  # seconds for anything that should happen at once (a loaded 2-core machine)
_keys = itertools.count()


def _decoder(encoding: str | None) -> Callable[[bytes], bytes]:
    if encoding in (None, "identity"):
        return bytes
    if encoding == "gzip":
        return zlib.decompressobj(wbits=31).decompress  # 31: a gzip header and trailer
    if encoding == "br":
        return cast(Callable[[bytes], bytes], brotli.Decompressor().process)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress
    raise AssertionError(f"no decoder for Content-Encoding {encoding!r}")


class Decoded:
    """The events of ``client``'s response so far, whatever its Content-Encoding."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.events: list[ParsedEvent] = []
        self._read = 0
        self._parser = EventStreamParser()
        self._decode: Callable[[bytes], bytes] | None = None

    @property
    def encoding(self) -> str | None:
        return self.client.header("content-encoding")

    def update(self) -> list[ParsedEvent]:
        """Decode and parse what arrived since the last call; return every event so far."""
        if self.client.status is None:
            return self.events
        if self._decode is None:
            self._decode = _decoder(self.encoding)
        fresh = bytes(self.client.body[self._read :])
        self._read += len(fresh)
        if fresh:
            for item in self._parser.feed(self._decode(fresh)):
                if isinstance(item, ParsedEvent):
                    self.events.append(item)
        return self.events

    def data(self) -> list[str]:
        return [event.data for event in self.update()]

    def wait_events(self, count: int, timeout: float) -> list[str]:
        """Read until ``count`` events decoded (AssertionError after ``timeout``)."""
        self.client.read_until(lambda _: len(self.update()) >= count, timeout, f"{count} events")
        return self.data()


def new_key() -> str:
    """A fresh name for one stream's gate and log in the app."""
    return f"k{next(_keys)}-{time.monotonic_ns()}"


def log(upstream: Server, key: str) -> list[str]:
    """What the app's stream ``key`` did so far (asked of the app directly)."""
    entries: list[str] = get_json(upstream.port, f"/control/log?key={key}")
    return entries


def release(upstream: Server, key: str) -> None:
    """Let the app's gated stream ``key`` produce its second event."""
    answer = request_once(upstream.port, "POST", f"/control/release?key={key}")
    assert answer.status == 204, answer.describe()


class Gated(NamedTuple):
    """What `gated()` saw: whether the first event, and the response's headers, came
    before the app was let make the second event; and the decoded response."""

    early: bool
    headers_early: bool
    decoded: Decoded


def gated(
    front: Server,
    upstream: Server,
    path: str = "/events/gated",
    *,
    hold: float,
    buffering: str | None = None,
    accept_encoding: str | None = None,
) -> Gated:
    """Open the gated stream at ``path`` through ``front`` (a proxy, or the app's own
    server); once the app has sent the first event, wait up to ``hold`` seconds for it
    at the client, then release the second and read to the end.
    ``buffering="absent"``: the app leaves out asgi-sse's ``X-Accel-Buffering: no``."""
    key = new_key()
    query = f"key={key}" + (f"&buffering={buffering}" if buffering else "")
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
    client = RawClient(front.port, timeout=WAIT, parse_frames=False)
    decoded = Decoded(client)
    try:
        client.request("GET", f"{path}?{query}", headers)
        wait_until(lambda: log(upstream, key) == ["first sent"], WAIT, "the first event sent")
        try:
            decoded.wait_events(1, hold)
            early = True
        except AssertionError as exc:
            if "timed out" not in str(exc):
                raise
            early = False
        assert log(upstream, key) == ["first sent"]  # the second is not made yet
        headers_early = client.status is not None
        release(upstream, key)
        client.read_to_end(WAIT)
    finally:
        client.close()
    assert client.complete, client.describe()
    assert client.status == 200
    assert client.header("content-type") == "text/event-stream"
    assert decoded.data() == ["first", "second"]
    return Gated(early, headers_early, decoded)
