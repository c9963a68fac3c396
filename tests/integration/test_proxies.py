"""Event streams through real reverse proxies: nginx and Caddy, each run with the
documentation's own configuration (docs/examples/deploying/, see
tests/support/proxies.py) in front of a real uvicorn serving tests/support/proxy_app.py.

What a proxy can break, each shown with the frames' arrival against the upstream's own
log (no timing guesses): a frame held back until more comes (buffering), the
``Last-Event-ID`` of a reconnect, and a quiet stream cut by the proxy's read timeout.
The controls show the tests can fail: nginx does buffer an event stream that does not
say ``X-Accel-Buffering: no``, and does cut a stream without keep-alives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import proxies
from tests.support.arrival import WAIT, gated, log, new_key
from tests.support.browser import TIMEOUT_MS, browser
from tests.support.rawclient import Frame, RawClient
from tests.support.servers import Server, running

__all__ = ("browser",)  # a fixture, imported to be found here

pytestmark = pytest.mark.timeout(60)

APP = "tests.support.proxy_app:app"
PROXIES = ("nginx", "caddy")


@pytest.fixture(scope="module")
def upstream() -> Iterator[Server]:
    with running("uvicorn", APP) as server:
        yield server


@pytest.fixture(scope="module")
def nginx(upstream: Server) -> Iterator[Server]:
    """nginx with docs/examples/deploying/nginx.conf as it is (only the ports changed)."""
    with proxies.nginx(upstream.port) as server:
        yield server


@pytest.fixture(scope="module")
def nginx_gzip(upstream: Server) -> Iterator[Server]:
    """The same, in an http block that gzips event streams (``gzip_types``)."""
    with proxies.nginx(upstream.port, gzip=True) as server:
        yield server


@pytest.fixture(scope="module")
def caddy(upstream: Server) -> Iterator[Server]:
    """Caddy with docs/examples/deploying/Caddyfile as it is (only the addresses changed)."""
    with proxies.caddy(upstream.port) as server:
        yield server


@pytest.fixture(params=PROXIES)
def proxy(request: pytest.FixtureRequest) -> Server:
    server: Server = request.getfixturevalue(str(request.param))
    return server


def events(client: RawClient) -> list[Frame]:
    """The frames that are events (keep-alive comments left out)."""
    return [frame for frame in client.frames if frame.field_values(b"data")]


def open_stream(proxy: Server, path: str, headers: dict[str, str] | None = None) -> RawClient:
    client = RawClient(proxy.port, timeout=WAIT)
    client.request("GET", path, headers or {})
    return client


def read_events(client: RawClient, count: int, timeout: float = WAIT) -> list[Frame]:
    client.read_until(lambda c: len(events(c)) >= count, timeout, f"{count} events")
    return events(client)


# -- buffering ----------------------------------------------------------------------------


def test_each_frame_reaches_the_client_before_the_next_is_produced(
    proxy: Server, upstream: Server
) -> None:
    seen = gated(proxy, upstream, hold=WAIT)
    assert seen.early, "the first event waited for the second"


def test_nginx_gzip_flushes_each_frame_of_an_asgi_sse_stream(
    nginx_gzip: Server, upstream: Server
) -> None:
    # With `gzip on` for text/event-stream, X-Accel-Buffering: no (unbuffered proxying)
    # makes nginx flush its gzip stream after every piece the app sends.
    seen = gated(nginx_gzip, upstream, hold=WAIT, accept_encoding="gzip")
    assert seen.early, "the first event waited for the second"
    assert seen.decoded.encoding == "gzip"


def test_nginx_gzip_holds_a_stream_that_does_not_say_no(
    nginx_gzip: Server, upstream: Server
) -> None:
    # The control: the same stream without X-Accel-Buffering: no (any other app's) is
    # held whole, headers too, until it ends.
    seen = gated(nginx_gzip, upstream, hold=1.0, buffering="absent", accept_encoding="gzip")
    assert not seen.early, "nginx passed the first event on: the control shows nothing"
    assert not seen.headers_early
    assert seen.decoded.encoding == "gzip"


def test_nginx_with_proxy_buffering_off_streams_any_app(upstream: Server) -> None:
    # What the docs tell apps that do not send X-Accel-Buffering: no. (An app that
    # sends "yes" turns buffering back on: nginx obeys the header over the directive.)
    with proxies.nginx(upstream.port, buffering_off=True, gzip=True) as nginx:
        seen = gated(nginx, upstream, hold=WAIT, buffering="absent", accept_encoding="gzip")
    assert seen.early, "the first event waited for the second"
    assert seen.decoded.encoding == "gzip"


def test_nginx_buffering_without_gzip_passes_small_frames_on(
    nginx: Server, upstream: Server
) -> None:
    # Observed with nginx 1.22: proxy_buffering alone reads ahead but does not hold a
    # frame back; it is buffering and gzip together that hold a stream.
    seen = gated(nginx, upstream, hold=WAIT, buffering="absent")
    assert seen.early, "the first event waited for the second"


def test_caddy_streams_an_app_without_x_accel_buffering(caddy: Server, upstream: Server) -> None:
    # Caddy flushes text/event-stream as it comes, whatever the app's headers say.
    seen = gated(caddy, upstream, hold=WAIT, buffering="absent", accept_encoding="gzip")
    assert seen.early, "the first event waited for the second"
    assert seen.decoded.encoding is None  # no `encode` directive: nothing compressed


# -- resume -------------------------------------------------------------------------------


def test_last_event_id_reaches_the_app_and_the_stream_resumes_after_it(
    proxy: Server, upstream: Server
) -> None:
    key = new_key()
    client = open_stream(proxy, f"/events/count?key={key}")
    try:
        assert [frame.data for frame in read_events(client, 3)] == [b"1", b"2", b"3"]
    finally:
        client.close()
    last = events(client)[-1].field_values(b"id")[-1].decode()
    resumed = open_stream(proxy, f"/events/count?key={key}", {"Last-Event-ID": last})
    try:
        frames = read_events(resumed, 3)
    finally:
        resumed.close()
    assert [frame.field_values(b"id") for frame in frames] == [[b"4"], [b"5"], [b"6"]]
    assert log(upstream, key) == ["last-event-id: None", "last-event-id: 3"]


# -- keep-alive against the proxy's read timeout ---------------------------------------------


def test_keepalive_beats_a_shorter_nginx_read_timeout(upstream: Server) -> None:
    # proxy_read_timeout 2s; the stream is silent for 5 s but pings every 0.5 s.
    with proxies.nginx(upstream.port, read_timeout="2s") as nginx:
        client = open_stream(nginx, "/events/silent?silence=5&ping=0.5")
        try:
            client.read_to_end(15.0)
        finally:
            client.close()
    assert client.complete, client.describe()
    assert [frame.event for frame in events(client)] == [b"ready", b"after"]
    assert len(client.comments) >= 5, "not a keep-alive every 0.5 s through 5 s of silence"


def test_without_keepalive_nginx_cuts_a_quiet_stream(upstream: Server) -> None:
    # The control: the same stream without pings is cut after nginx's 2 s.
    with proxies.nginx(upstream.port, read_timeout="2s") as nginx:
        client = open_stream(nginx, "/events/silent?silence=5&ping=none")
        try:
            [ready] = read_events(client, 1)
            client.read_to_end(15.0)
        finally:
            client.close()
    assert ready.event == b"ready"
    assert not client.complete, "the response ended cleanly: nginx did not cut it"
    assert [frame.event for frame in events(client)] == [b"ready"]
    assert client.ended_at is not None
    assert 1.5 < client.ended_at - ready.at < 4.5, "cut, but not by the 2 s read timeout"


def test_a_browser_resumes_through_nginx_after_its_read_timeout_cuts_the_stream(
    upstream: Server, browser: Any
) -> None:
    # Chromium's own EventSource through nginx (proxy_read_timeout 2s): the stream sends
    # three events and falls silent without keep-alives, nginx cuts it, the browser
    # reconnects with Last-Event-ID and the app resumes right after it - what a stream
    # cut by any proxy or platform timeout (Cloud Run's) goes through.
    key = new_key()
    with proxies.nginx(upstream.port, read_timeout="2s") as nginx:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(nginx.url(f"/events/page.html?key={key}"))
            page.wait_for_function("window.got.length >= 6")
            got = page.evaluate("window.got.slice(0, 6)")
            opens = page.evaluate("window.opens")
        finally:
            context.close()
    assert got == [[str(n), str(n)] for n in range(1, 7)]
    assert opens >= 2
    assert log(upstream, key)[:2] == ["last-event-id: None", "last-event-id: 3"]
