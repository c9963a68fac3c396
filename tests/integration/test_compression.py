"""Event streams behind the common ASGI compression middlewares, under a real uvicorn.

For each middleware (tests/support/compression_app.py) and each Accept-Encoding a
client may send, the gated stream of tests/support/proxy_app.py shows whether the first
frame reaches the client, decoded, while the app still holds back the second: a
middleware that compressed without flushing would hold it. The table pins what each
one does with ``text/event-stream`` (which Content-Encoding it answers), as
docs/deploying/compression.md says; the docs' example (docs/examples/deploying/
compressed_site.py) is served as a reader would serve it.

Middlewares (versions as resolved by the test extra): Starlette's GZipMiddleware,
brotli-asgi, starlette-compress (Python >= 3.11), zstd-asgi, asgi-compression.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import starlette

from tests.support.arrival import WAIT, Decoded, gated, log, new_key, release
from tests.support.rawclient import RawClient, request_once
from tests.support.servers import HOST, ROOT, Server, launched, running, wait_until

pytestmark = pytest.mark.timeout(60)

APP = "tests.support.compression_app:app"
EXAMPLE = ROOT / "docs" / "examples" / "deploying"
GZIP = "gzip"
GZIP_BR = "gzip, br"
CHROMIUM = "gzip, deflate, br, zstd"  # what Chromium sends

# (middleware, Accept-Encoding, the stream's Content-Encoding: None = not compressed)
CASES = [
    # Starlette >= 0.46 leaves text/event-stream alone (in its exclude_content_types).
    ("starlette-gzip", GZIP, None),
    ("starlette-gzip", CHROMIUM, None),
    # brotli-asgi compresses with br and flushes each message; its gzip fallback is
    # Starlette's, which leaves event streams alone.
    ("brotli-asgi", GZIP, None),
    ("brotli-asgi", GZIP_BR, "br"),
    ("brotli-asgi", CHROMIUM, "br"),
    ("brotli-asgi-excluded", CHROMIUM, None),
    # starlette-compress compresses event streams and flushes each message; it
    # prefers zstd, then br, then gzip, whatever the client's order.
    ("starlette-compress", GZIP, "gzip"),
    ("starlette-compress", GZIP_BR, "br"),
    ("starlette-compress", CHROMIUM, "zstd"),
    # zstd-asgi: zstd only (a gzip fallback through Starlette's), flushed per message.
    ("zstd-asgi", GZIP_BR, None),
    ("zstd-asgi", CHROMIUM, "zstd"),
    ("zstd-asgi-excluded", CHROMIUM, None),
    # asgi-compression leaves text/event-stream alone.
    ("asgi-compression", GZIP_BR, None),
    ("asgi-compression", CHROMIUM, None),
]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running("uvicorn", APP) as server:
        yield server


@pytest.mark.parametrize(("middleware", "accept", "encoding"), CASES)
def test_each_frame_arrives_before_the_next_is_produced(
    server: Server, middleware: str, accept: str, encoding: str | None
) -> None:
    if middleware == "starlette-compress" and sys.version_info < (3, 11):
        pytest.skip("starlette-compress needs Python >= 3.11")
    seen = gated(server, server, f"/{middleware}/events/gated", hold=WAIT, accept_encoding=accept)
    assert seen.early, "the first event waited for the second"
    assert seen.decoded.encoding == encoding


STARLETTE = tuple(int(part) for part in starlette.__version__.split(".")[:2])
# (Python 3.10 gets Starlette 1.7 at most: 1.8 needs 3.11.)

# Does the middleware hold the response's headers until the first piece of body? An
# asgi-sse response sends them at once, then a frame when an event (or a keep-alive)
# comes. (middleware, whether the headers reach the client before the first frame)
HEADERS = [
    ("none", True),
    # From 1.8 it sees text/event-stream in the headers and lets them go at once.
    ("starlette-gzip", STARLETTE >= (1, 8)),
    ("brotli-asgi", False),
    ("brotli-asgi-excluded", True),
    ("starlette-compress", True),
    ("zstd-asgi", False),
    ("zstd-asgi-excluded", True),
    ("asgi-compression", False),
]


@pytest.mark.parametrize(("middleware", "early"), HEADERS)
def test_when_the_headers_arrive(server: Server, middleware: str, early: bool) -> None:
    if middleware == "starlette-compress" and sys.version_info < (3, 11):
        pytest.skip("starlette-compress needs Python >= 3.11")
    key = new_key()
    client = RawClient(server.port, timeout=WAIT, parse_frames=False)
    decoded = Decoded(client)
    try:
        client.request(
            "GET", f"/{middleware}/events/late?key={key}", {"Accept-Encoding": CHROMIUM}
        )
        wait_until(lambda: log(server, key) == ["started"], WAIT, "the stream started")
        # Bounded: 1 s for headers that a holding middleware never lets through.
        try:
            client.read_until(lambda c: c.status is not None, WAIT if early else 1.0, "headers")
        except AssertionError as exc:
            if "timed out" not in str(exc):
                raise
        assert (client.status is not None) == early, client.describe()
        release(server, key)
        client.read_to_end(WAIT)
    finally:
        client.close()
    assert client.status == 200
    assert decoded.data() == ["first"]


# -- the docs' example ----------------------------------------------------------------------


def uvicorn(target: str) -> Iterator[Server]:
    def argv(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--app-dir",
            str(EXAMPLE),
            "--host",
            HOST,
            "--port",
            str(port),
        ]

    with launched("uvicorn", argv) as server:
        yield server


@pytest.fixture(scope="module", params=["compressed_site:app", "compressed_site:excluding"])
def example(request: pytest.FixtureRequest) -> Iterator[Server]:
    yield from uvicorn(str(request.param))


def test_the_example_compresses_its_pages(example: Server) -> None:
    page = request_once(example.port, "GET", "/", {"Accept-Encoding": CHROMIUM})
    assert page.status == 200, page.describe()
    assert page.header("content-encoding") == "br"


def test_the_example_leaves_its_streams_uncompressed(example: Server) -> None:
    client = RawClient(example.port, timeout=WAIT, parse_frames=False)
    decoded = Decoded(client)
    try:
        client.request("GET", "/events/", {"Accept-Encoding": CHROMIUM})
        assert decoded.wait_events(2, WAIT) == ["0", "1"]
    finally:
        client.close()
    assert client.header("content-type") == "text/event-stream"
    assert client.header("content-encoding") is None
