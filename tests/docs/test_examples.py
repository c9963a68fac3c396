"""Every example file of the docs runs, and does what its page says.

Each file under docs/examples/ is imported as a reader's server would import it (its
folder on ``sys.path``, so that the tutorial's steps import one another), and checked
in-process with `asgi_sse.testing`. Every file must have exactly one entry in
``EXAMPLES``, so a new example cannot go untested; the hub apps of the framework pages
are driven through each framework's lifespan by tests/integration/test_hub_frameworks.py.
"""

from __future__ import annotations

import importlib
import json
import runpy
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

from asgi_sse import Hub, ParsedEvent, SSEEndpoint, SSERequest, Subscription
from asgi_sse.testing import ASGIStreamTransport, TestStream, connect
from tests.docs.source import EXAMPLES, ROOT, example_files
from tests.support.helpers import HTTPX_GENERATOR_WARNINGS
from tests.support.redisutil import delete_prefix, require_redis

# The typed client's examples read through httpx, whose own generators trio reports.
pytestmark = HTTPX_GENERATOR_WARNINGS

Loader = Callable[[str], ModuleType]
HUB_FRAMEWORKS = ROOT / "tests" / "integration" / "test_hub_frameworks.py"
AUTHORIZATION = ROOT / "tests" / "docs" / "test_authorization.py"


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loader]:
    """Import example modules by name, afresh for each test."""
    names = {path.stem for path in example_files()}
    for folder in sorted({path.parent for path in example_files()}):
        monkeypatch.syspath_prepend(str(folder))
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module
    for name in names:
        sys.modules.pop(name, None)


# -- helpers ----------------------------------------------------------------------------


async def first_events(app: Any, path: str, count: int, **options: Any) -> list[Any]:
    """The first ``count`` events of a stream, after checking its headers."""
    async with connect(app, path, **options) as stream:
        events = [await stream.next_event() for _ in range(count)]
        check_headers(stream)
        await stream.disconnect()
    assert stream.exception is None
    return events


def check_headers(stream: TestStream) -> None:
    assert stream.status == 200
    assert stream.header("content-type") == "text/event-stream"
    assert stream.header("connection") is None


async def typed_event(app: Any, path: str, event_type: Any) -> Any:
    async with connect(app, path) as stream:
        event = await stream.next_event(event_type)
        check_headers(stream)
        await stream.disconnect()
    return event


def body_of(stream: TestStream) -> bytes:
    return b"".join(m["body"] for m in stream.messages if m["type"] == "http.response.body")


async def run_test_functions(module: ModuleType) -> None:
    """A test module of the docs, run as pytest would (this test picks the backend)."""
    tests = [value for name, value in vars(module).items() if name.startswith("test_")]
    assert tests, f"{module.__name__} has no test"
    for test in tests:
        await test()


def cursor_entries(cursor: str) -> list[str]:
    """The positions in a composite cursor (``key~position.key~position``, as documented)."""
    return [entry.partition("~")[2] for entry in cursor.split(".")]


# -- the tutorial -----------------------------------------------------------------------


async def check_sse(load: Loader) -> None:
    module = load("sse")
    [event] = await first_events(module.app, "/sse?message=hi", 1)
    assert (event.event, event.id) == ("echo", "0")
    assert set(json.loads(event.data)) == {"message", "created_at"}
    assert json.loads(event.data)["message"] == "hi"


async def check_sse2(load: Loader) -> None:
    module = load("sse2")
    echo = await typed_event(module.app, "/sse2?message=hi", module.Echo)
    assert (echo.id, echo.data.message) == ("0", "hi")
    assert (await typed_event(module.app, "/sse2", module.Echo)).data.message == "hello"


async def check_sse3(load: Loader) -> None:
    module = load("sse3")
    first, *then = await first_events(module.app, "/sse3?message=hi", 3)
    assert (first.event, first.id) == ("echo", "0")
    # A second later: the next echo and the first reverse_echo, in either order.
    assert {(e.event, e.id, json.loads(e.data)["message"]) for e in then} == {
        ("echo", "1", "hi"),
        ("reverse_echo", "0", "ih"),
    }


async def check_sse3_resumable(load: Loader) -> None:
    module = load("sse3_resumable")
    [first] = await first_events(module.app, "/sse3", 1)
    assert first.event == "echo"
    assert cursor_entries(first.id) == ["0"]  # only the echo source has sent yet
    [resumed] = await first_events(module.app, "/sse3", 1, last_event_id=first.id)
    assert resumed.event == "echo"
    assert cursor_entries(resumed.id) == ["1"]  # each source resumes after its own id
    assert module.after("41") == 42
    assert [module.after(last) for last in (None, "", "x", "²", "-1")] == [0] * 5


async def check_chat(load: Loader) -> None:
    module = load("chat")
    async with module.hub:
        async with connect(module.app, "/chat") as stream:
            await stream.wait_started()
            check_headers(stream)
            async with connect(module.app, "/chat", method="POST", body=b"hi") as post:
                await post.wait_finished()
            assert post.status == 204
            message = await stream.next_event(module.ChatMessage)
        assert message.data.text == "hi"
        assert message.id == module.hub.head("chat")
        # An id the hub never gave: a Reset, then live.
        async with connect(module.app, "/chat", last_event_id="zzzzzzzz-1") as lost:
            reset = await lost.next_event()
        assert reset.event == "reset"
        assert json.loads(reset.data)["reason"] == "unknown"


# -- how-to guides ----------------------------------------------------------------------


async def check_starlette_clock(load: Loader) -> None:
    module = load("starlette_clock")
    assert (await typed_event(module.app, "/clock?start=5", module.Tick)).data == 5
    assert (await typed_event(module.app, "/ticks/?start=7", module.Tick)).data == 7


async def check_fastapi_clock(load: Loader) -> None:
    module = load("fastapi_clock")
    assert (await typed_event(module.app, "/clock?start=5", module.Tick)).data == 5
    assert (await typed_event(module.app, "/clock?start=-3", module.Tick)).data == 0
    assert (await typed_event(module.app, "/ticks/", module.Tick)).data == 0


async def check_litestar_clock(load: Loader) -> None:
    module = load("litestar_clock")
    assert (await typed_event(module.app, "/clock?start=5", module.Tick)).data == 5
    assert (await typed_event(module.app, "/ticks", module.Tick)).data == 0


async def check_quart_clock(load: Loader) -> None:
    module = load("quart_clock")
    assert (await typed_event(module.app, "/clock", module.Tick)).data == 0
    async with connect(module.app, "/") as page:
        await page.wait_finished()
    assert page.status == 200
    assert b"Quart pages" in body_of(page)


def hub_app(name: str) -> Callable[[Loader], Awaitable[None]]:
    """A hub app of a framework page: streamed through its framework's lifespan by
    tests/integration/test_hub_frameworks.py; here, only that it loads."""

    async def check(load: Loader) -> None:
        module = load(name)
        assert isinstance(module.hub, Hub)
        assert module.app is not None
        assert f"docs/examples/howto/{name}.py" in HUB_FRAMEWORKS.read_text(encoding="utf-8")

    return check


def authorization_example(name: str) -> Callable[[Loader], Awaitable[None]]:
    """An example of the authorization guide: driven, state and all, by
    tests/docs/test_authorization.py (and in Chromium by
    tests/integration/test_auth_browser.py); here, only that it loads."""

    async def check(load: Loader) -> None:
        assert load(name).__file__ is not None
        assert name in AUTHORIZATION.read_text(encoding="utf-8")

    return check


async def check_redis_news(load: Loader) -> None:
    require_redis()
    topic = f"docs-test-{uuid.uuid4().hex[:12]}"
    module = load("redis_news")
    try:
        async with module.hub:
            async with connect(module.app, f"/{topic}") as stream:
                await stream.wait_started()
                check_headers(stream)
                first = await module.hub.publish(topic, "hello")
                event = await stream.next_event()
                assert (event.id, event.data) == (first, "hello")
                assert first.count("-") == 1  # Redis's stream id: <ms>-<n>
            second = await module.hub.publish(topic, "again")
            async with connect(module.app, f"/{topic}", last_event_id=first) as again:
                resumed = await again.next_event()
            assert (resumed.id, resumed.data) == (second, "again")
    finally:
        delete_prefix(f"asgi-sse:t:{topic}")


async def check_redis_runs(load: Loader) -> None:
    require_redis()
    from asgi_sse.redis import RedisStreamsBackend

    module = load("redis_runs")
    topics: list[str] = []
    try:
        # Another worker: a second hub on the same Redis.
        other = Hub(backend=RedisStreamsBackend(module.REDIS_URL))
        async with module.hub, other:
            topic = await module.start("hi there")
            topics.append(topic)
            async with connect(module.app, f"/{topic}") as stream:
                events = [event async for event in stream]
            check_headers(stream)
            assert "".join(e.data for e in events[:-1]) == "You said: hi there "
            assert json.loads(events[-1].data) == {"reason": "complete"}

            async def forever() -> Any:
                yield "working"
                await anyio.sleep_forever()

            long = await module.hub.run(forever())
            topics.append(long)
            assert await other.cancel(long) is True  # from the other worker
            async with connect(module.app, f"/{long}") as stream:
                events = [event async for event in stream]
            assert (events[-1].event, json.loads(events[-1].data)) == (
                "run_ended",
                {"reason": "cancelled"},
            )
    finally:
        for topic in topics:
            for kind in ("t", "lease", "run"):
                delete_prefix(f"asgi-sse:{kind}:{topic}")


async def check_redis_publisher(load: Loader) -> None:
    require_redis()
    from asgi_sse.redis import RedisStreamsBackend

    module = load("redis_publisher")
    order = uuid.uuid4().hex[:12]
    topic = f"orders-{order}"
    try:
        hub = Hub(backend=RedisStreamsBackend(module.REDIS_URL))
        async with hub:
            subscription = hub.subscribe(topic, last_event_id=Hub.EARLIEST)
            event_id = await anyio.to_thread.run_sync(module.order_shipped, order, "1Z999")
            await anyio.to_thread.run_sync(module.order_done, order)
            frames = [frame async for frame in subscription]
        assert frames == [b"event: shipped\nid: " + event_id.encode() + b'\ndata: "1Z999"\n\n']
    finally:
        module.publisher.disconnect()
        delete_prefix(f"asgi-sse:t:{topic}")


async def check_follow(load: Loader) -> None:
    module = load("follow")
    hub = Hub()

    def news(request: SSERequest) -> Subscription:
        return hub.subscribe("news", last_event_id=request.last_event_id)

    transport = ASGIStreamTransport(SSEEndpoint(news))
    desk = module.NewsDesk()
    async with hub, httpx.AsyncClient(transport=transport, base_url="http://news") as http:
        for title in ("one", "two"):
            await hub.publish("news", module.Headline(data=module.Story(title=title)))
        desk.last_seen = Hub.EARLIEST  # everything the hub holds
        await module.follow_news(http, desk, count=2)
        assert [story.title for story in desk.stories] == ["one", "two"]
        fix = await hub.publish("news", module.Correction(data=module.Story(title="two!")))
        await module.follow_news(http, desk, count=3)  # resumes after "two"
        assert [story.title for story in desk.stories] == ["one", "two", "two!"]
        assert desk.last_seen == fix


async def check_h2_client(load: Loader) -> None:
    # In-process here; over HTTP/2, against hypercorn with TLS, in test_http2.py.
    module = load("h2_client")
    transport = ASGIStreamTransport(load("sse2").app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sse2") as http:
        version, echoes = await module.first_echoes(http, 2)
    assert version == "HTTP/1.1"  # the transport's; h2 needs a server
    assert [(echo.id, echo.data.message) for echo in echoes] == [("0", "h2"), ("1", "h2")]


async def check_compressed_site(load: Loader) -> None:
    # In-process here; under uvicorn, with a client that accepts br, in test_compression.py.
    module = load("compressed_site")
    for app in (module.app, module.excluding):
        [tick] = await first_events(app, "/events/", 1)
        assert (tick.event, tick.data) == ("tick", "0")


async def check_test_sse2(load: Loader) -> None:
    await run_test_functions(load("test_sse2"))


async def check_test_chat(load: Loader) -> None:
    await run_test_functions(load("test_chat"))


async def check_schema_fastapi(load: Loader) -> None:
    module = load("schema_fastapi")
    document = module.app.openapi()
    for path in ("/echoes", "/sse3"):
        content = document["paths"][path]["get"]["responses"]["200"]["content"]
        names = [
            f["properties"]["event"]["const"]
            for f in content["text/event-stream"]["itemSchema"]["oneOf"]
        ]
        assert names == ["echo", "reverse_echo"], path
    assert module.app.openapi() is document
    assert (await typed_event(module.app, "/echoes?message=hi", module.Echo)).data.message == "hi"
    [event] = await first_events(module.app, "/sse3/", 1)
    assert event.event == "echo"


async def check_asyncapi_doc(load: Loader) -> None:
    module = load("asyncapi_doc")
    document = module.document
    assert document["asyncapi"] == "3.0.0"
    assert len(document["channels"]) == 3


async def check_metrics(load: Loader) -> None:
    module = load("metrics")
    async with module.hub:
        async with connect(module.app, "/news") as stream:
            await stream.wait_started()
            event_id = await module.hub.publish("news", "hello")
            assert (await stream.next_event()).id == event_id
            await stream.disconnect()
    data = module.reader.get_metrics_data()
    points = {
        metric.name: [point.attributes for point in metric.data.data_points]
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert {"route": "news", "reason": "client_left"} in points["asgi_sse.connections.closed"]
    assert {"topic": "news"} in points["asgi_sse.hub.published"]
    assert "asgi_sse.hub.subscribers" in points


async def check_tokens(load: Loader) -> None:
    module = load("tokens")
    body = json.dumps({"prompt": "hi there"}).encode()
    async with connect(module.app, "/", method="POST", body=body) as stream:
        events: list[ParsedEvent] = []
        while not events or events[-1].event != "done":
            events.append(await stream.next_event())
        await stream.wait_finished()
    check_headers(stream)
    tokens = [json.loads(e.data) for e in events if e.event == "token"]
    assert "".join(tokens) == "You said: hi there "
    assert json.loads(events[-1].data) == {"tokens": len(tokens)}
    async with connect(module.app, "/", method="GET") as refused:
        await refused.wait_finished()
    assert refused.status == 405


async def check_runs(load: Loader) -> None:
    module = load("runs")

    async def post(path: str, method: str = "POST") -> TestStream:
        body = json.dumps({"prompt": "hi there"}).encode()
        async with connect(module.app, path, method=method, body=body) as response:
            await response.wait_finished()
        return response

    def words_of(events: list[ParsedEvent]) -> str:
        assert (events[-1].event, json.loads(events[-1].data)) == (
            "run_ended",
            {"reason": "complete"},
        )
        return "".join(json.loads(event.data) for event in events[:-1])

    async with module.hub:
        posted = await post("/answers")
        assert posted.status == 201
        path = json.loads(body_of(posted))["stream"]
        assert posted.header("location") == path
        body = json.dumps({"prompt": "one go"}).encode()
        headers = {"accept": "text/event-stream"}
        async with connect(
            module.app, "/answers", method="POST", body=body, headers=headers
        ) as at_once:
            events = [event async for event in at_once]
        check_headers(at_once)
        assert str(at_once.header("location")).startswith("/answers/")
        assert words_of(events) == "You said: one go "
        async with connect(module.app, path) as stream:
            first = await stream.next_event()
            await stream.disconnect()  # the answer goes on without anybody
        async with connect(module.app, path, last_event_id=first.id) as stream:
            rest = [event async for event in stream]
        check_headers(stream)
        assert stream.complete
        assert words_of([first, *rest]) == "You said: hi there "
        for last_event_id in (rest[-1].id, None):
            unknown = "/answers/nope" if last_event_id is None else path
            async with connect(module.app, unknown, last_event_id=last_event_id) as done:
                await done.wait_finished()
            assert done.status == 204  # all read, or no such answer: the browser stops
        running = json.loads(body_of(await post("/answers")))["stream"].rpartition("/")[2]
        assert (await post(f"/runs/{running}", "DELETE")).status == 204
        assert (await post(f"/runs/{running}", "DELETE")).status == 404


# -- deploying ---------------------------------------------------------------------------


async def check_one_stream(load: Loader) -> None:
    module = load("one_stream")
    async with module.hub:
        async with connect(module.app, "/updates") as stream:
            await stream.wait_started()
            check_headers(stream)
            ids = []
            for topic, text in (("news", "hi"), ("alerts", "careful")):
                path = f"/publish/{topic}?text={text}"
                async with connect(module.app, path, method="POST") as post:
                    await post.wait_finished()
                ids.append(json.loads(body_of(post))["id"])
            events = [await stream.next_event() for _ in ids]
            async with connect(module.app, "/publish/nope", method="POST") as refused:
                await refused.wait_finished()
            assert refused.status == 404
        # One stream, two topics, told apart by name; its ids are cursors of both.
        assert [(e.event, json.loads(e.data)) for e in events] == [
            ("headline", "hi"),
            ("alert", "careful"),
        ]
        assert ids[0] in cursor_entries(events[0].id)
        assert set(cursor_entries(events[1].id)) == set(ids)
        async with connect(module.app, "/updates", last_event_id=events[0].id) as again:
            resumed = await again.next_event()
        assert (resumed.event, resumed.id) == ("alert", events[1].id)
        # Two topics and the connection's own ticks in one stream, resumed from one id.
        async with connect(module.app, "/events") as stream:
            await stream.wait_started()
            check_headers(stream)
            assert (await stream.next_event(module.Tick)).data == 0  # at once
            news = await module.hub.publish("news", module.Headline(data="hi"))
            headline = await stream.next_event()
        assert (headline.event, json.loads(headline.data)) == ("headline", "hi")
        assert news in cursor_entries(headline.id)
        [ticked] = [int(entry) for entry in cursor_entries(headline.id) if entry.isdigit()]
        await module.hub.publish("alerts", module.Alert(data="careful"))  # while away
        async with connect(module.app, "/events", last_event_id=headline.id) as again:
            missed = [await again.next_event() for _ in range(2)]
        assert {(e.event, json.loads(e.data)) for e in missed} == {
            ("alert", "careful"),
            ("tick", ticked + 1),
        }
    assert module.open_streams.count == 0


async def check_shared_stream(load: Loader) -> None:
    module = load("shared_stream")
    async with connect(module.app, "/") as page:
        await page.wait_finished()
    assert page.status == 200
    assert b"navigator.locks.request(" in body_of(page)
    async with module.hub:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(module.quote_prices)
            async with connect(module.app, "/prices") as stream:
                await stream.wait_started()
                check_headers(stream)
                async with connect(module.app, "/streams") as streams:
                    await streams.wait_finished()
                assert json.loads(body_of(streams)) == {"open": 1}
                ids = [(await stream.next_event(module.Price)).id for _ in range(3)]
            tasks.cancel_scope.cancel()
        # A new leader tab resumes with ?lastEventId=; a reconnect's header comes first.
        async with connect(module.app, f"/prices?lastEventId={ids[0]}") as stream:
            assert (await stream.next_event()).id == ids[1]
        path = f"/prices?lastEventId={ids[0]}"
        async with connect(module.app, path, last_event_id=ids[1]) as stream:
            assert (await stream.next_event()).id == ids[2]


# -- the table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    check: Callable[[Loader], Awaitable[None]]
    # Quart calls asyncio directly, and redis's client runs on asyncio only.
    backends: tuple[str, ...] = ("asyncio", "trio")


EXAMPLES_TABLE: dict[str, Example] = {
    "tutorial/sse.py": Example(check_sse),
    "tutorial/sse2.py": Example(check_sse2),
    "tutorial/sse3.py": Example(check_sse3),
    "tutorial/sse3_resumable.py": Example(check_sse3_resumable),
    "tutorial/chat.py": Example(check_chat),
    "howto/starlette_clock.py": Example(check_starlette_clock),
    "howto/starlette_hub.py": Example(hub_app("starlette_hub")),
    "howto/fastapi_clock.py": Example(check_fastapi_clock),
    "howto/fastapi_hub.py": Example(hub_app("fastapi_hub")),
    "howto/litestar_clock.py": Example(check_litestar_clock),
    "howto/litestar_hub.py": Example(hub_app("litestar_hub")),
    "howto/quart_clock.py": Example(check_quart_clock, ("asyncio",)),
    "howto/quart_hub.py": Example(hub_app("quart_hub"), ("asyncio",)),
    "howto/quart_hub_hooks.py": Example(hub_app("quart_hub_hooks"), ("asyncio",)),
    "howto/news.py": Example(hub_app("news")),
    "howto/redis_news.py": Example(check_redis_news, ("asyncio",)),
    "howto/redis_runs.py": Example(check_redis_runs, ("asyncio",)),
    "howto/redis_publisher.py": Example(check_redis_publisher, ("asyncio",)),
    "howto/follow.py": Example(check_follow),
    "deploying/h2_client.py": Example(check_h2_client),
    "deploying/compressed_site.py": Example(check_compressed_site),
    "deploying/one_stream.py": Example(check_one_stream),
    "deploying/shared_stream.py": Example(check_shared_stream),
    "howto/test_sse2.py": Example(check_test_sse2),
    "howto/test_chat.py": Example(check_test_chat),
    "howto/schema_fastapi.py": Example(check_schema_fastapi),
    "howto/asyncapi_doc.py": Example(check_asyncapi_doc),
    "howto/metrics.py": Example(check_metrics),
    "howto/tokens.py": Example(check_tokens),
    "howto/runs.py": Example(check_runs),
    "howto/stream_auth.py": Example(authorization_example("stream_auth")),
    "howto/auth_starlette.py": Example(authorization_example("auth_starlette")),
    "howto/auth_fastapi.py": Example(authorization_example("auth_fastapi")),
}


def test_every_example_has_exactly_one_check() -> None:
    files = {path.relative_to(EXAMPLES).as_posix() for path in example_files()}
    assert files == set(EXAMPLES_TABLE), (
        "add the new example to EXAMPLES_TABLE in tests/docs/test_examples.py, or remove "
        f"the entry of a deleted one: {sorted(files ^ set(EXAMPLES_TABLE))}"
    )


@pytest.mark.parametrize(
    ("name", "anyio_backend"),
    [
        pytest.param(name, backend, id=f"{name}-{backend}")
        for name, example in EXAMPLES_TABLE.items()
        for backend in example.backends
    ],
)
@pytest.mark.anyio
async def test_example_runs(name: str, anyio_backend: str, examples: Loader) -> None:
    with anyio.fail_after(20):
        await EXAMPLES_TABLE[name].check(examples)


def test_the_asyncapi_script_prints_its_document(
    examples: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    runpy.run_path(str(EXAMPLES / "howto" / "asyncapi_doc.py"), run_name="__main__")
    assert json.loads(capsys.readouterr().out)["info"]["title"] == "The tutorial's streams"
