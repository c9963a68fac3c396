"""asgi-sse inside the real frameworks, in-process through `asgi_sse.testing.connect`.

For each way of mounting (Starlette, FastAPI, Quart, Litestar, and `SSEMiddleware`
around each), one check: several typed events arrive end to end, the SSE headers are
intact (and no `connection`), and after the client leaves the stream's `finally` ran.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

import anyio
import anyio.lowlevel
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, Header, Response
from litestar import Litestar, asgi, get
from litestar.params import FromQuery
from pydantic import BaseModel
from quart import Quart
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from asgi_sse import BaseEvent, SSEEndpoint, SSEMiddleware, SSERequest, event_stream
from asgi_sse import EventSourceResponse as CoreEventSourceResponse
from asgi_sse.starlette import EventSourceResponse
from asgi_sse.testing import TestStream, connect

pytestmark = pytest.mark.anyio

# Note: mounting needs no `# type: ignore` below: asgi-sse's ASGI entry points take any
# framework's scope/receive/send types (see asgi_sse/_types.py), and `mypy --strict`
# checks this file. The one ignore is for Quart's own pattern of assigning to a method.

COUNT = 3


class EchoPayload(BaseModel):
    message: str
    n: int


class Echo(BaseEvent[EchoPayload]):
    pass


class Probe:
    """What one test's streams did: the messages they were opened with, the cleanups."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[str] = []

    def echoes(self, message: str) -> AsyncGenerator[Echo, None]:
        """COUNT typed events, then an endless wait (a live stream) until closed."""
        self.opened.append(message)
        return self._echoes(message)

    @event_stream  # ids 0, 1, 2...
    async def _echoes(self, message: str) -> AsyncIterator[Echo]:
        try:
            for n in range(COUNT):
                yield Echo(data=EchoPayload(message=message, n=n))
                await anyio.lowlevel.checkpoint()
            await anyio.sleep_forever()
        finally:
            self.closed.append(message)

    def handler(self, request: SSERequest) -> AsyncIterator[Echo]:
        return self.echoes(request.query_params.get("message", "hello"))


@pytest.fixture
def probe() -> Probe:
    return Probe()


async def check_stream(
    app: Any, path: str, probe: Probe, message: str, **connect_options: Any
) -> TestStream:
    """Read the typed events, check the headers, leave, and check the cleanup ran."""
    async with connect(app, path, **connect_options) as stream:
        with anyio.fail_after(5):
            echoes = [await stream.next_event(Echo) for _ in range(COUNT)]
        assert [echo.data for echo in echoes] == [
            EchoPayload(message=message, n=n) for n in range(COUNT)
        ]
        assert [echo.id for echo in echoes] == [str(n) for n in range(COUNT)]
        assert stream.status == 200
        assert stream.header("content-type") == "text/event-stream"
        assert stream.header("cache-control") == "no-cache, no-transform"
        assert stream.header("x-accel-buffering") == "no"
        assert stream.header("connection") is None
        assert probe.closed == []  # still streaming
        await stream.disconnect()
        assert probe.closed == [message]
    assert probe.opened == [message]
    assert stream.finished
    assert stream.exception is None
    return stream


async def check_plain(app: Any, path: str, status: int, body: bytes | None = None) -> TestStream:
    """A normal (non-SSE) route of the framework still answers as usual."""
    async with connect(app, path) as stream:
        await stream.wait_finished()
    assert stream.status == status
    assert stream.complete
    if body is not None:
        sent = [m["body"] for m in stream.messages if m["type"] == "http.response.body"]
        assert b"".join(sent) == body
    return stream


# -- Starlette ------------------------------------------------------------------------


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("home")


async def test_starlette_mount(probe: Probe) -> None:
    paths: list[str] = []

    def handler(request: SSERequest) -> AsyncIterator[Echo]:
        paths.append(request.path)
        return probe.handler(request)

    app = Starlette(
        routes=[
            Route("/", homepage),
            Mount("/events", app=SSEEndpoint(handler)),
        ]
    )
    await check_stream(app, "/events/?message=mounted", probe, "mounted")
    assert paths == ["/"]  # relative to the mount point
    await check_plain(app, "/", 200, b"home")
    # Starlette's Mount matches "/events/..."; "/events" itself is redirected there.
    redirect = await check_plain(app, "/events", 307, b"")
    assert redirect.header("location") == "http://testserver/events/"


async def test_starlette_mount_sub_paths_reach_the_handler(probe: Probe) -> None:
    paths: list[str] = []

    def handler(request: SSERequest) -> AsyncIterator[Echo]:
        paths.append(request.path)
        return probe.echoes(request.path.strip("/"))

    app = Starlette(routes=[Mount("/rooms", app=SSEEndpoint(handler))])
    await check_stream(app, "/rooms/kitchen", probe, "kitchen")
    assert paths == ["/kitchen"]


async def test_starlette_route_returning_a_response(probe: Probe) -> None:
    background: list[str] = []

    async def events(request: Request) -> EventSourceResponse:
        message = request.query_params.get("message", "hello")
        return EventSourceResponse(
            probe.echoes(message),
            headers={"X-Room": "lobby"},
            background=BackgroundTask(background.append, "ran"),
        )

    app = Starlette(routes=[Route("/", homepage), Route("/events", events)])
    stream = await check_stream(app, "/events?message=route", probe, "route")
    assert stream.header("x-room") == "lobby"
    assert background == ["ran"]  # after the stream, as Starlette's responses do
    await check_plain(app, "/", 200, b"home")


async def test_starlette_response_headers_added_later_are_sent(probe: Probe) -> None:
    async def events(request: Request) -> EventSourceResponse:
        response = EventSourceResponse(probe.echoes("later"))
        response.headers["x-added"] = "yes"
        response.set_cookie("session", "abc", httponly=True)
        return response

    app = Starlette(routes=[Route("/events", events)])
    stream = await check_stream(app, "/events", probe, "later")
    assert stream.header("x-added") == "yes"
    assert stream.header("set-cookie") == "session=abc; HttpOnly; Path=/; SameSite=lax"


async def test_starlette_wrapped_in_sse_middleware(probe: Probe) -> None:
    app = SSEMiddleware(
        Starlette(routes=[Route("/", homepage)]),
        routes={"/events": probe.handler},
    )
    await check_stream(app, "/events?message=wrapped", probe, "wrapped")
    await check_plain(app, "/", 200, b"home")
    await check_plain(app, "/missing", 404, b"Not Found")


# -- FastAPI --------------------------------------------------------------------------


async def test_fastapi_route_returning_a_response(probe: Probe) -> None:
    # The tutorial's own pattern: the route returns the response.
    app = FastAPI()

    @app.get("/sse")
    async def sse(message: str = "hello") -> EventSourceResponse:
        return EventSourceResponse(probe.echoes(message))

    await check_stream(app, "/sse?message=article", probe, "article")


# Note: FastAPI resolves the string annotations of this module (`from __future__ import
# annotations`) in the module's globals, so dependencies are module-level, as in an app.
async def greeting(x_user: Annotated[str, Header()]) -> str:
    return f"hello {x_user}"


async def tagged(response: Response) -> str:
    response.headers["x-dependency"] = "dep"
    return "tagged"


async def test_fastapi_dependency_provides_the_message(probe: Probe) -> None:
    app = FastAPI()

    @app.get("/sse")
    async def sse(message: Annotated[str, Depends(greeting)]) -> EventSourceResponse:
        return EventSourceResponse(probe.echoes(message))

    await check_stream(app, "/sse", probe, "hello ada", headers={"X-User": "ada"})
    # A failing dependency answers before any stream is opened.
    async with connect(app, "/sse") as stream:
        await stream.wait_finished()
    assert stream.status == 422
    assert probe.opened == ["hello ada"]


# Note: on trio, BaseHTTPMiddleware leaves Starlette's own `Request.stream` generator
# unfinished after the disconnect, and trio's finaliser reports it when it is collected
# (on Python 3.10 within this test). Starlette's generator, not ours: ignored here only.
@pytest.mark.filterwarnings("ignore:Exception ignored in. <async_generator object Request.stream")
@pytest.mark.filterwarnings("ignore:Async generator 'starlette.requests.Request.stream'")
async def test_fastapi_behind_http_middleware_and_gzip(probe: Probe) -> None:
    """The common FastAPI stack: an `@app.middleware("http")` function (Starlette's
    BaseHTTPMiddleware, which wraps receive and re-streams the body) and GZipMiddleware.
    Events must still arrive one by one, uncompressed, and the disconnect must still
    reach the stream (sse-starlette#7, #39: generators that outlive their client)."""
    app = FastAPI()
    app.add_middleware(GZipMiddleware, minimum_size=10)

    @app.middleware("http")
    async def stamp(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-stamped"] = "yes"
        return response

    @app.get("/sse")
    async def sse(message: str = "hello") -> EventSourceResponse:
        return EventSourceResponse(probe.echoes(message))

    headers = {"Accept-Encoding": "gzip"}
    async with connect(
        app, "/sse?message=stacked", headers=headers, raise_app_exceptions=False
    ) as stream:
        with anyio.fail_after(5):
            echoes = [await stream.next_event(Echo) for _ in range(COUNT)]
        assert [echo.data.n for echo in echoes] == list(range(COUNT))
        assert stream.header("content-type") == "text/event-stream"
        assert stream.header("content-encoding") is None  # GZip skips text/event-stream
        assert stream.header("x-stamped") == "yes"
        assert probe.closed == []
        await stream.disconnect()
    assert probe.closed == ["stacked"]
    # Note: BaseHTTPMiddleware re-sends the body and ends it itself, after the client
    # left; the test client raises OSError for that late send (ASGI 2.4), uvicorn drops
    # it silently. That is Starlette's send, not the stream's: nothing else may fail.
    assert stream.exception is None or isinstance(stream.exception, OSError)
    gc.collect()  # any report of Starlette's generator comes now, under this test's filters


async def test_fastapi_mount(probe: Probe) -> None:
    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"page": "home"}

    app.mount("/events", SSEEndpoint(probe.handler))
    await check_stream(app, "/events/?message=mounted", probe, "mounted")
    await check_plain(app, "/", 200, b'{"page":"home"}')


async def test_fastapi_injected_response_headers_are_sent(probe: Probe) -> None:
    # Note: FastAPI copies the headers of an injected `Response` only into responses
    # it builds itself; a route that returns a Response gets none of them
    # (fastapi/routing.py, get_request_handler). So they are handed on explicitly.
    app = FastAPI()

    @app.get("/sse")
    async def sse(response: Response, message: Annotated[str, Depends(tagged)]) -> Any:
        response.headers["x-route"] = "route"
        return EventSourceResponse(probe.echoes(message), headers=response.headers)

    stream = await check_stream(app, "/sse", probe, "tagged")
    assert stream.header("x-dependency") == "dep"
    assert stream.header("x-route") == "route"


async def test_fastapi_background_tasks_run_after_the_stream(probe: Probe) -> None:
    app = FastAPI()
    done: list[str] = []

    @app.get("/sse")
    async def sse(tasks: BackgroundTasks) -> EventSourceResponse:
        tasks.add_task(done.append, "background")
        return EventSourceResponse(probe.echoes("tasks"))

    await check_stream(app, "/sse", probe, "tasks")
    assert done == ["background"]


# Note: FastAPI never closes the route's own generator (see below); on trio, when it is
# collected before the run ends, trio's finaliser reports it. FastAPI's, not ours.
@pytest.mark.filterwarnings("ignore:Exception ignored in. <async_generator object test_fastapi")
@pytest.mark.filterwarnings(
    "ignore:Async generator 'tests.integration.test_frameworks.test_fastapi"
)
async def test_fastapi_generator_route_with_response_class(probe: Probe) -> None:
    app = FastAPI()

    @app.get("/sse", response_class=EventSourceResponse)
    async def sse(message: Annotated[str, Depends(tagged)]) -> AsyncIterator[Echo]:
        async with aclosing(probe.echoes(message)) as echoes:
            async for echo in echoes:
                yield echo

    async with connect(app, "/sse") as stream:
        with anyio.fail_after(5):
            echoes = [await stream.next_event(Echo) for _ in range(COUNT)]
        assert [echo.data.n for echo in echoes] == list(range(COUNT))
        assert stream.header("content-type") == "text/event-stream"
        assert stream.header("x-dependency") == "dep"
        # Note: the cleanup is not checked here: FastAPI iterates the route's generator
        # through a wrapper generator that does not close it, so it is left to the event
        # loop's async generator finalizer (it usually runs at once, but not by design).
    assert stream.exception is None
    gc.collect()  # any report of that generator comes now, under this test's filters


async def test_fastapi_wrapped_in_sse_middleware(probe: Probe) -> None:
    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"page": "home"}

    app.add_middleware(SSEMiddleware, routes={"/events": probe.handler})
    await check_stream(app, "/events?message=middleware", probe, "middleware")
    await check_plain(app, "/", 200, b'{"page":"home"}')


async def test_fastapi_outside_sse_middleware(probe: Probe) -> None:
    inner = FastAPI()

    @inner.get("/")
    async def index() -> dict[str, str]:
        return {"page": "home"}

    app = SSEMiddleware(inner, routes={"/events": probe.handler})
    await check_stream(app, "/events?message=outside", probe, "outside")
    await check_plain(app, "/", 200, b'{"page":"home"}')


# -- Quart ----------------------------------------------------------------------------


# Quart runs on asyncio only (its request handling calls asyncio.wait and
# asyncio.ensure_future directly), so its tests run on asyncio alone.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_quart_asgi_app_wrapped_in_sse_middleware(probe: Probe) -> None:
    app = Quart(__name__)

    @app.get("/hello")
    async def hello() -> str:
        return "hi from quart"

    # Quart's documented place for ASGI middleware: its `asgi_app` attribute.
    app.asgi_app = SSEMiddleware(  # type: ignore[method-assign]
        app.asgi_app,
        routes={"/events": probe.handler},
    )
    await check_stream(app, "/events?message=quart", probe, "quart")
    hello_page = await check_plain(app, "/hello", 200, b"hi from quart")
    assert hello_page.header("content-type") == "text/html; charset=utf-8"
    await check_plain(app, "/missing", 404)


# -- Litestar -------------------------------------------------------------------------


@get("/hello")
async def litestar_hello() -> str:
    return "hi from litestar"


async def test_litestar_asgi_mount(probe: Probe) -> None:
    paths: list[str] = []

    def handler(request: SSERequest) -> AsyncIterator[Echo]:
        paths.append(request.path)
        return probe.handler(request)

    # copy_scope=True: without it Litestar 2 warns that the default changes in 3.
    events = asgi("/events", is_mount=True, copy_scope=True)(SSEEndpoint(handler))
    app = Litestar(route_handlers=[events, litestar_hello])
    await check_stream(app, "/events?message=litestar", probe, "litestar")
    assert paths == ["/"]  # Litestar hands the mounted app the rest of the path
    await check_plain(app, "/hello", 200, b"hi from litestar")


async def test_litestar_route_returning_the_core_response(probe: Probe) -> None:
    # Litestar sends any ASGI app a route returns (return annotation: an async
    # callable), so the pure-ASGI response needs no adapter here.
    @get("/sse")
    async def sse(message: FromQuery[str] = "hello") -> CoreEventSourceResponse:
        return CoreEventSourceResponse(probe.echoes(message))

    app = Litestar(route_handlers=[sse, litestar_hello])
    await check_stream(app, "/sse?message=returned", probe, "returned")
    await check_plain(app, "/hello", 200, b"hi from litestar")


async def test_litestar_wrapped_in_sse_middleware(probe: Probe) -> None:
    app = SSEMiddleware(
        Litestar(route_handlers=[litestar_hello]),
        routes={"/events": probe.handler},
    )
    await check_stream(app, "/events?message=wrapped", probe, "wrapped")
    await check_plain(app, "/hello", 200, b"hi from litestar")
