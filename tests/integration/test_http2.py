"""HTTP/2: the demo over TLS (``python -m asgi_sse.demo --certfile CERT --keyfile KEY``,
hypercorn, h2 by ALPN), read by the typed client on httpx with ``http2=True`` and by
a real Chromium; and response headers that are valid in HTTP/2 (RFC 9113 8.2).

Over HTTP/1.1 a browser opens at most six connections per host, one per open event
stream; over HTTP/2 every stream of a page is a stream of one connection. The tests
count the TCP connections to the server (``/proc/net/tcp``) to prove it, over httpx and
in Chromium. The certificate is self-signed, made with ``openssl`` (tests/support/certs.py).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

from asgi_sse import EventSourceResponse, SSEEndpoint, SSEMiddleware, SSERequest
from asgi_sse.client import EventSource
from asgi_sse.demo import Echo
from asgi_sse.demo.__main__ import main as demo_main
from asgi_sse.testing import connect
from asgi_sse.types import HeadersLike, Receive, Scope, Send
from tests.docs.source import DOCS, ROOT, blocks, example_path
from tests.support.browser import TIMEOUT_MS, browser
from tests.support.certs import (
    Certificate,
    client_ssl_context,
    require_command,
    running_tls_demo,
    tls_certificate,
    tls_demo_command,
)
from tests.support.helpers import HTTPX_GENERATOR_WARNINGS
from tests.support.servers import HOST, Server, launched, running, wait_until

__all__ = ("browser", "tls_certificate")  # fixtures, imported to be found here

pytestmark = [
    pytest.mark.timeout(60),
    *HTTPX_GENERATOR_WARNINGS,  # httpx's own, under a response closed early (on trio)
]

#: RFC 9113 8.2.2: "An endpoint MUST NOT generate an HTTP/2 message containing
#: connection-specific header fields"; the RFC names these (and TE, but for "trailers").
CONNECTION_SPECIFIC = (
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
)
WAIT = 20.0  # seconds a condition on a server may take on a loaded 2-core machine


@pytest.fixture(scope="module")
def demo(tls_certificate: Certificate) -> Iterator[Server]:
    """``python -m asgi_sse.demo --certfile CERT --keyfile KEY`` on a free port."""
    with running_tls_demo(tls_certificate) as server:
        yield server


def h2_client(
    server: Server, certificate: Certificate, *, http2: bool = True
) -> httpx.AsyncClient:
    """An httpx client of ``server`` that trusts the test certificate."""
    return httpx.AsyncClient(
        base_url=server.base_url, http2=http2, verify=client_ssl_context(certificate)
    )


def connections_to(port: int) -> int:
    """Established TCP connections from any client to 127.0.0.1:``port`` right now, from
    the kernel's table: the client's end of each is the line whose remote is the port."""
    remote = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == remote and fields[3] == "01":  # 01: ESTABLISHED
            count += 1
    return count


# -- the typed client over h2 --------------------------------------------------------------


@pytest.mark.anyio
async def test_typed_client_receives_typed_events_over_http2(
    demo: Server, tls_certificate: Certificate
) -> None:
    async with (
        h2_client(demo, tls_certificate) as http,
        EventSource("/sse2?message=h2&interval=0.01", events=(Echo,), client=http) as source,
    ):
        events = [event async for event in _first(source, 3)]
        assert source.response is not None
        assert source.response.http_version == "HTTP/2"
    assert all(isinstance(event, Echo) for event in events)
    assert [(event.id, event.data.message) for event in events] == [
        ("0", "h2"),
        ("1", "h2"),
        ("2", "h2"),
    ]


@pytest.mark.anyio
async def test_typed_client_resumes_after_last_event_id_over_http2(
    demo: Server, tls_certificate: Certificate
) -> None:
    # count=3: the server ends the stream after three events; the client reconnects
    # (retry: 50 ms) with Last-Event-ID 2 and the demo goes on from 3.
    path = "/sse2?message=resume&interval=0.01&count=3"
    versions: list[str] = []
    async with (
        h2_client(demo, tls_certificate) as http,
        EventSource(path, events=(Echo,), client=http, retry=0.05) as source,
    ):
        ids = []
        async for event in _first(source, 6):
            assert isinstance(event, Echo)
            ids.append(event.id)
            assert source.response is not None
            versions.append(source.response.http_version)
        assert source.connections == 2
    assert ids == ["0", "1", "2", "3", "4", "5"]
    assert set(versions) == {"HTTP/2"}
    async with h2_client(demo, tls_certificate) as http:
        stats = (await http.get("/stats")).json()
    assert "2" in stats["last_event_ids"], stats


async def _first(source: EventSource[Any], count: int) -> AsyncIterator[Any]:
    """The first ``count`` events of ``source``, within `WAIT` seconds."""
    with anyio.fail_after(WAIT):
        async for event in source:
            yield event
            count -= 1
            if count == 0:
                return


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("http2", "version", "connections"), [(True, "HTTP/2", 1), (False, "HTTP/1.1", 6)]
)
async def test_six_streams_share_one_connection_over_http2(
    demo: Server, tls_certificate: Certificate, http2: bool, version: str, connections: int
) -> None:
    # The same six streams from one client: over HTTP/1.1 (ALPN's fallback) each needs
    # a connection of its own; over HTTP/2 they are six streams of one connection.
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(h2_client(demo, tls_certificate, http2=http2))
        with anyio.fail_after(WAIT):
            for n in range(6):
                source = EventSource(
                    f"/sse2?message={n}&interval=0.2", events=(Echo,), client=http
                )
                await stack.enter_async_context(source)
                first = await source.__anext__()
                assert isinstance(first, Echo)
                assert first.data.message == str(n)
                assert source.response is not None
                assert source.response.http_version == version
        assert connections_to(demo.port) == connections


# -- headers valid in HTTP/2 -----------------------------------------------------------------


async def _ticks(request: SSERequest) -> AsyncIterator[str]:
    yield "tick"


async def _one() -> AsyncIterator[str]:
    yield "x"


async def _nothing(request: SSERequest) -> None:
    return None  # 204: nothing to stream


HEADER_OPTIONS: list[HeadersLike | None] = [
    None,
    {"X-Request-Id": "abc", "Cache-Control": "no-store"},
    [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Access-Control-Allow-Origin", "*")],
    [(b"X-Bytes", b"1"), (b"Content-Type", b"text/event-stream; charset=utf-8")],
]


def check_http2_headers(headers: list[tuple[bytes, bytes]] | list[tuple[str, str]]) -> None:
    """RFC 9113 8.2: field names lower-case, no connection-specific field."""
    names = [name.decode("latin-1") if isinstance(name, bytes) else name for name, _ in headers]
    assert [name for name in names if name != name.lower()] == []
    assert [name for name in names if name in CONNECTION_SPECIFIC] == []


@pytest.mark.parametrize("headers", HEADER_OPTIONS)
def test_a_response_header_list_is_valid_in_http2(headers: HeadersLike | None) -> None:
    response = EventSourceResponse(_one(), headers=headers)
    check_http2_headers(response.headers)
    assert dict(response.headers)[b"content-type"].startswith(b"text/event-stream")


@pytest.mark.anyio
@pytest.mark.parametrize("headers", HEADER_OPTIONS)
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/ticks", 200),
        ("HEAD", "/ticks", 200),
        ("OPTIONS", "/ticks", 204),
        ("DELETE", "/ticks", 405),
        ("GET", "/nothing", 204),
    ],
)
async def test_what_an_endpoint_sends_is_valid_in_http2(
    headers: HeadersLike | None, method: str, path: str, status: int
) -> None:
    # Every answer an endpoint makes: a stream, headers only, a CORS preflight, a 405
    # with its Allow header, a 204 for a handler with nothing to stream.
    app = SSEMiddleware(
        _not_found,
        routes={"/ticks": _ticks, "/nothing": _nothing},
        headers=headers,
        methods=("GET", "HEAD"),
    )
    async with connect(app, path, method=method) as response:
        await response.wait_finished()
    assert response.status == status
    starts = [message for message in response.messages if message["type"] == "http.response.start"]
    assert len(starts) == 1
    check_http2_headers(list(starts[0]["headers"]))


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("every request here is routed")  # pragma: no cover


@pytest.mark.parametrize(
    "name",
    ["Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "upgrade"],
)
@pytest.mark.parametrize("make", ["response", "endpoint", "middleware"])
def test_a_connection_specific_header_is_refused_at_construction(name: str, make: str) -> None:
    headers = {name: "x"}
    with pytest.raises(ValueError, match=f"header '{name.lower()}'"):
        if make == "response":
            EventSourceResponse(_one(), headers=headers)
        elif make == "endpoint":
            SSEEndpoint(_ticks, headers=headers)
        else:
            SSEMiddleware(_not_found, routes={"/ticks": _ticks}, headers=headers)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sse2?count=1&interval=0.01"),
        ("HEAD", "/sse2"),
        ("OPTIONS", "/sse2"),
        ("GET", "/"),
        ("GET", "/stats"),
        ("GET", "/nowhere"),
    ],
)
async def test_headers_through_hypercorn_are_valid_in_http2(
    demo: Server, tls_certificate: Certificate, method: str, path: str
) -> None:
    # What an h2 client receives (h2 itself refuses an upper-case or connection-specific
    # field in a response, so getting one at all says much; the list is checked too).
    async with h2_client(demo, tls_certificate) as http:
        with anyio.fail_after(WAIT):
            response = await http.request(method, path)
    assert response.http_version == "HTTP/2"
    check_http2_headers(response.headers.raw)
    if path.startswith("/sse2") and method != "OPTIONS":
        assert response.headers["content-type"] == "text/event-stream"


# -- the demo's command line -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--certfile", "c.pem"], "--certfile and --keyfile go together"),
        (["--keyfile", "k.pem"], "--certfile and --keyfile go together"),
        (["--certfile", "c", "--keyfile", "k", "--server", "uvicorn"], "uvicorn does not speak"),
        (["--certfile", "c", "--keyfile", "k", "--workers", "2"], "--workers is uvicorn's"),
        (["--certfile", "/nonexistent/c", "--keyfile", "k"], "/nonexistent/c: no such file"),
    ],
)
def test_the_demo_refuses_tls_options_it_cannot_serve(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        demo_main(argv)
    assert exit_.value.code == 2
    assert error in capsys.readouterr().err


# -- what the server says, and uvicorn -------------------------------------------------------


def test_hypercorn_allows_100_concurrent_streams_per_connection(
    demo: Server, tls_certificate: Certificate
) -> None:
    # The server's first SETTINGS frame, read with the h2 library over a TLS socket
    # that asked for h2 only (ALPN).
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import RemoteSettingsChanged
    from h2.settings import SettingCodes

    context = client_ssl_context(tls_certificate)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((HOST, demo.port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
        connection = H2Connection(H2Configuration(client_side=True))
        connection.initiate_connection()
        tls.sendall(connection.data_to_send())
        settings: dict[int, int] = {}
        while not settings:
            data = tls.recv(65536)  # bounded by the socket's timeout
            assert data, "the server closed the connection before its SETTINGS"
            for event in connection.receive_data(data):
                if isinstance(event, RemoteSettingsChanged):
                    settings = {
                        code: change.new_value for code, change in event.changed_settings.items()
                    }
    assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 100


def test_uvicorn_over_tls_answers_http1_to_an_http2_client(tls_certificate: Certificate) -> None:
    cert, key = tls_certificate

    def uvicorn_tls(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "asgi_sse.demo:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--ssl-certfile",
            str(cert),
            "--ssl-keyfile",
            str(key),
        ]

    with launched("uvicorn-tls", uvicorn_tls) as server:
        verify = client_ssl_context(tls_certificate)
        with httpx.Client(http2=True, verify=verify, timeout=WAIT) as http:
            response = http.get(f"https://{HOST}:{server.port}/stats")
    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"


# -- the page's commands (docs/deploying/http2.md), as written -------------------------------

PAGE = DOCS / "deploying" / "http2.md"


def page_commands() -> dict[str, list[str]]:
    """The page's shell commands by program (openssl, hypercorn, curl, python), one
    each, continuation lines joined."""
    found: dict[str, list[str]] = {}
    for block in blocks(PAGE):
        if block.info != "sh":
            continue
        for line in block.source.replace("\\\n", " ").splitlines():
            if line.strip():
                argv = shlex.split(line)
                assert argv[0] not in found, f"{block.where}: a second {argv[0]} command"
                found[argv[0]] = argv
    assert set(found) == {"openssl", "hypercorn", "curl", "python"}, found
    return found


@pytest.fixture(scope="module")
def page_certificate(
    tls_certificate: Certificate, tmp_path_factory: pytest.TempPathFactory
) -> Certificate:
    """The page's ``openssl`` command, run as written in a directory of its own (after
    `tls_certificate`, which skips, or fails in CI, without openssl)."""
    directory = tmp_path_factory.mktemp("page-tls")
    subprocess.run(page_commands()["openssl"], cwd=directory, check=True, timeout=30)
    return Certificate(directory / "cert.pem", directory / "key.pem")


@pytest.fixture(scope="module")
def page_hypercorn(page_certificate: Certificate) -> Iterator[Server]:
    """The page's ``hypercorn sse2:app --certfile cert.pem --keyfile key.pem`` on a free
    port, with the tutorial's folder on its path and the page's certificate."""
    files = {"cert.pem": str(page_certificate.cert), "key.pem": str(page_certificate.key)}
    argv = [files.get(word, word) for word in page_commands()["hypercorn"][1:]]
    assert argv[0] == "sse2:app"
    folder = str(example_path("sse2").parent)
    env = {"PYTHONPATH": os.pathsep.join([folder, str(ROOT)])}

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "hypercorn", *argv, "--bind", f"{HOST}:{port}"]

    with launched("hypercorn-page", command, env=env) as server:
        yield server


def test_the_pages_curl_command_gets_http2(
    page_hypercorn: Server, page_certificate: Certificate
) -> None:
    # As written, from the folder of cert.pem, on the server's port: the head (-i) and
    # the first event. Then curl is stopped by its PID.
    argv = [
        word.replace(f"{HOST}:8000", f"{HOST}:{page_hypercorn.port}")
        for word in page_commands()["curl"]
    ]
    assert argv[:2] == ["curl", "-N"]
    argv[0] = require_command("curl")
    curl = subprocess.Popen(
        argv, cwd=page_certificate.cert.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        output = read_until(curl, b"\ndata: ", WAIT)
    finally:
        curl.kill()
        curl.wait(WAIT)
        for pipe in (curl.stdout, curl.stderr):
            if pipe is not None:
                pipe.close()
    head, _, body = output.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split() == [b"HTTP/2", b"200"], output
    assert b"content-type: text/event-stream" in head
    assert body.startswith(b"event: echo\nid: 0\ndata: "), output


def read_until(process: subprocess.Popen[bytes], needle: bytes, timeout: float) -> bytes:
    """What ``process`` wrote to stdout until ``needle`` appeared (AssertionError, with
    its stderr, after ``timeout`` seconds or at its exit)."""
    assert process.stdout is not None
    output = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while needle not in output:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise AssertionError(f"no {needle!r} within {timeout}s: {output!r}")
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                assert process.stderr is not None
                raise AssertionError(f"exited: {output!r}\n{process.stderr.read()!r}")
            output += chunk
    return output


@pytest.fixture
def h2_client_example(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """docs/examples/deploying/h2_client.py, imported as a reader's file beside sse2.py."""
    import importlib

    for name in ("h2_client", "sse2"):
        monkeypatch.syspath_prepend(str(example_path(name).parent))
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module("h2_client")
    for name in ("h2_client", "sse2"):
        sys.modules.pop(name, None)


@pytest.mark.anyio
async def test_the_h2_client_example_reads_the_pages_server_over_http2(
    page_hypercorn: Server, page_certificate: Certificate, h2_client_example: ModuleType
) -> None:
    client = h2_client_example.http2_client(page_hypercorn.base_url, str(page_certificate.cert))
    with anyio.fail_after(WAIT):
        async with client as http:
            version, echoes = await h2_client_example.first_echoes(http, 2)
    assert version == "HTTP/2"
    assert [(echo.id, echo.data.message) for echo in echoes] == [("0", "h2"), ("1", "h2")]


def test_the_pages_demo_command_is_the_one_tested() -> None:
    # The demo fixture runs tls_demo_command: the page's command, on a free port.
    page = page_commands()["python"]
    assert page == [
        "python",
        "-m",
        "asgi_sse.demo",
        "--certfile",
        "cert.pem",
        "--keyfile",
        "key.pem",
    ]
    tested = tls_demo_command(Certificate(Path("cert.pem"), Path("key.pem")), 8000)
    assert tested == [sys.executable, *page[1:3], "--port", "8000", *page[3:]]


# -- Chromium --------------------------------------------------------------------------------


@pytest.fixture
def h2_page(browser: Any) -> Iterator[Any]:
    # The certificate is self-signed: this context accepts it.
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


#: Eight EventSources on the page, each kept open once it has three events: over
#: HTTP/1.1 the seventh and eighth would wait for a connection (six per host).
OPEN_STREAMS = """() => {
    window.h2test = [];
    for (let n = 0; n < 8; n++) {
        const received = [];
        window.h2test.push(received);
        const source = new EventSource(`/sse2?message=tab${n}&interval=0.05`);
        source.addEventListener("echo", (event) => {
            received.push([event.lastEventId, JSON.parse(event.data).message]);
        });
    }
}"""


def test_chromium_loads_the_demo_over_h2_and_its_streams_share_one_connection(
    demo: Server, h2_page: Any
) -> None:
    h2_page.goto(demo.url("/"))
    protocol = h2_page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
    assert protocol == "h2"
    h2_page.evaluate(OPEN_STREAMS)
    h2_page.wait_for_function(
        "() => window.h2test.every(received => received.length >= 3)", timeout=TIMEOUT_MS
    )
    received = h2_page.evaluate("window.h2test")
    for n, events in enumerate(received):
        assert [event[0] for event in events[:3]] == ["0", "1", "2"]
        assert {event[1] for event in events} == {f"tab{n}"}
    # The page, its own streams and these eight: one TCP connection.
    wait_until(lambda: connections_to(demo.port) == 1, WAIT, "one connection from Chromium")


def test_chromium_speaks_http1_to_a_server_without_tls(h2_page: Any) -> None:
    # hypercorn without a certificate would take cleartext HTTP/2 (h2c); no browser
    # offers it.
    with running("demo-hypercorn") as server:
        h2_page.goto(server.url("/?interval=0.1"))
        protocol = h2_page.evaluate(
            "performance.getEntriesByType('navigation')[0].nextHopProtocol"
        )
        assert protocol == "http/1.1"
