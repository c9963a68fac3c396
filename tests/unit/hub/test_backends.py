"""The backend SPI (`asgi_sse.backends`) is public and sufficient: it names every type a
backend sees, backends are written with it alone, the hub treats a backend by what it
declares, and the hub's layer imports downwards only."""

from __future__ import annotations

import ast
import inspect
import types
import typing
from collections.abc import Generator
from pathlib import Path
from typing import Any

import anyio
import pytest

import asgi_sse
import asgi_sse.backends as backends
from asgi_sse import Hub, HubObserver, MemoryBackend, Subscription
from asgi_sse._hub.state import SubscriptionState, move
from asgi_sse.backends import HubBackend, LogBounds, ResumePoint, TopicLog
from tests.unit.hub.custom_backends import CountingBackend, DelegatingBackend, DictBackend
from tests.unit.hub.test_hub import frames_of, ready

pytestmark = pytest.mark.anyio

PACKAGE = Path(asgi_sse.__file__).parent
HERE = Path(__file__).parent


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module ``path`` imports (type-only imports included), relative ones made
    absolute against ``package``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def own_imports(path: Path, package: str) -> set[str]:
    return {name for name in imported_modules(path, package) if name.startswith("asgi_sse")}


# -- the public SPI -----------------------------------------------------------------------------


def test_the_spi_names_every_type_a_backend_method_takes_or_returns() -> None:
    assert isinstance(backends.__all__, tuple)
    exported = {getattr(backends, name) for name in backends.__all__}
    seen: set[Any] = set()
    for name, method in inspect.getmembers(HubBackend, inspect.isfunction):
        if name.startswith("_"):
            continue
        for hint in typing.get_type_hints(method).values():
            for part in (hint, *typing.get_args(hint)):
                if isinstance(part, type) and part.__module__.startswith("asgi_sse"):
                    seen.add(part)
    assert seen == {TopicLog, LogBounds, ResumePoint}
    assert seen <= exported
    for name in backends.__all__:
        value = getattr(backends, name)
        if isinstance(value, type):
            assert value.__doc__, f"{name} has no docstring"


def test_asgi_sse_exports_the_same_backend_names() -> None:
    assert asgi_sse.HubBackend is backends.HubBackend
    assert asgi_sse.MemoryBackend is backends.MemoryBackend
    assert asgi_sse.HubUnavailable is backends.HubUnavailable
    assert asgi_sse.TopicClosed is backends.TopicClosed
    assert Hub.EARLIEST == backends.EARLIEST


def test_the_redis_backend_and_the_tests_backends_use_public_names_only() -> None:
    public = {"asgi_sse", "asgi_sse.backends", "asgi_sse.types"}

    def is_public(name: str) -> bool:  # a public module, or a public name of one
        parent, _, last = name.rpartition(".")
        return name in public or (parent in public and not last.startswith("_"))

    for path in sorted((PACKAGE / "_redis").glob("*.py")):
        for name in own_imports(path, "asgi_sse._redis"):
            own = name.startswith("asgi_sse._redis")
            assert own or is_public(name), f"{path.name} imports {name}"
    for name in own_imports(HERE / "custom_backends.py", "tests.unit.hub"):
        assert not any(part.startswith("_") for part in name.split(".")), name


def test_the_hub_imports_downwards_only_and_never_the_server_layer() -> None:
    graph: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / "_hub").glob("*.py")):
        module = f"asgi_sse._hub.{path.stem}"
        names = own_imports(path, "asgi_sse._hub")
        assert not {n for n in names if n.startswith(("asgi_sse._server", "asgi_sse._redis"))}
        graph[module] = {n for n in names if n.startswith("asgi_sse._hub.") and n != module}
    graph = {m: {d for d in deps if d in graph} for m, deps in graph.items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"an import circle: {' -> '.join((*path, module))}"
        if module not in done:
            for dependency in graph[module]:
                visit(dependency, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())


def test_the_redis_script_ships_in_the_package() -> None:
    from importlib import resources

    script = resources.files("asgi_sse._redis").joinpath("append.lua")
    assert script.is_file()
    assert "XADD" in script.read_text()


# -- declared, not found out --------------------------------------------------------------------


async def test_a_backend_that_delegates_to_memory_is_treated_as_memory() -> None:
    for backend in (MemoryBackend(), DelegatingBackend()):
        hub = Hub(backend=backend)
        async with hub:
            first = hub.publish_nowait("news", "a")  # a synchronous append
            assert hub.head("news") == first  # the log is the topic: followed from the start
        async with hub:  # kept over a stop: the same log, the same ids
            again = hub.subscribe("news", last_event_id=backends.EARLIEST)
            assert await again.prepare_stream()
            assert [event.id for event in frames_of(ready(again))] == [first]


async def test_a_store_backend_with_ids_of_its_own_attaches_the_logs_the_hub_makes() -> None:
    backend = CountingBackend()
    hub = Hub(backend=backend)
    async with hub:
        assert hub.head("news") is None
        hub.subscribe("news")  # makes the log: the backend attaches it, at once
        before = hub.head("news")
        assert before == f"{backend.words['news']}-0"  # its id before the first event
        first = hub.publish_nowait("news", "a")
        assert hub.head("news") == first == f"{backend.words['news']}-1"
    async with hub:  # kept over a stop: the same log, the same ids
        again = hub.subscribe("news", last_event_id=before)
        assert await again.prepare_stream()
        assert [event.id for event in frames_of(ready(again))] == [first]


@types.coroutine
def suspend() -> Generator[None, None, None]:
    """What awaiting anything real (I/O, a lock, a sleep) does to the caller: suspend."""
    yield


def test_a_store_backend_whose_attach_awaits_is_refused_with_the_rule() -> None:
    class Awaiting(CountingBackend):
        async def attach(self, log: TopicLog) -> None:
            await suspend()
            await super().attach(log)

    hub = Hub(backend=Awaiting())
    with pytest.raises(TypeError, match=r"Awaiting\.attach awaited: a backend whose logs"):
        hub.publish_nowait("news", "x")
    assert hub.stats().topics == 0  # no log left half made


def test_a_backend_with_ids_of_its_own_that_attaches_without_after_is_told() -> None:
    class NoAfter(CountingBackend):
        async def attach(self, log: TopicLog) -> None:
            self.words[log.name] = "c0"
            log.attach()  # so the log's ids are <epoch>-<sequence>, not the backend's

    with pytest.raises(ValueError, match="attaches its logs with after="):
        Hub(backend=NoAfter()).publish_nowait("news", "x")


def structural(*, leaving_out: tuple[str, ...]) -> type[Any]:
    """A backend like `DelegatingBackend` (no subclass of the protocol) without the
    declarations ``leaving_out``."""
    namespace = {
        name: value
        for name, value in vars(DelegatingBackend).items()
        if name not in leaving_out and (name == "__init__" or not name.startswith("__"))
    }
    return type("Structural", (), namespace)


@pytest.mark.parametrize(
    ("leaving_out", "named"),
    [
        (("logs_are_the_store",), "logs_are_the_store"),
        (("can_append_nowait",), "can_append_nowait"),
        (("logs_are_the_store", "can_append_nowait"), "logs_are_the_store nor can_append_nowait"),
    ],
)
def test_a_structural_backend_without_a_declaration_is_refused_where_the_hub_is_made(
    leaving_out: tuple[str, ...], named: str
) -> None:
    backend = structural(leaving_out=leaving_out)()
    with pytest.raises(
        TypeError, match=f"Structural is not a HubBackend: it does not declare {named} "
    ):
        Hub(backend=backend)
    Hub(backend=structural(leaving_out=())())  # with both, it is one


async def test_a_backend_whose_logs_are_copies_is_followed_from_attach_on() -> None:
    hub = Hub(backend=DictBackend())
    async with hub:
        first = await hub.publish("news", "a")
        assert hub.head("news") is None  # nobody here follows it yet
        with pytest.raises(TypeError, match="DictBackend publishes asynchronously"):
            hub.publish_nowait("news", "b")
        sub = hub.subscribe("news", last_event_id=backends.EARLIEST)
        assert await sub.prepare_stream()
        assert hub.head("news") == first
    assert hub.stats().topics == 0  # copies: dropped with the stop


async def test_a_backend_that_subclasses_the_protocol_inherits_its_defaults() -> None:
    backend = DictBackend()
    assert (backend.logs_are_the_store, backend.can_append_nowait) == (False, False)
    log = TopicLog("t", max_events=1, max_bytes=100)
    with pytest.raises(NotImplementedError, match="DictBackend appends asynchronously only"):
        backend.append_nowait(log, b"", b"data: x\n\n")
    with anyio.fail_after(1):
        await backend.available()


# -- the subscription's states ------------------------------------------------------------------

S = SubscriptionState
ALLOWED = {
    (S.UNRESOLVED, S.STREAMING),
    (S.UNRESOLVED, S.ENDED),
    (S.UNRESOLVED, S.CLOSED),
    (S.STREAMING, S.ENDED),
    (S.STREAMING, S.CLOSED),
    (S.ENDED, S.CLOSED),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("to", list(S))
def test_a_subscription_moves_only_as_its_table_allows(current: S, to: S) -> None:
    if (current, to) in ALLOWED:
        assert move(current, to) is to
    else:
        with pytest.raises(RuntimeError, match=f"from {current.name} to {to.name}"):
            move(current, to)


async def test_dropped_before_resolving_it_still_primes_the_client_then_ends() -> None:
    hub = Hub()
    head = await hub.publish("news", "a")
    sub = hub.subscribe("news")
    sub.drop()
    assert await sub.prepare_stream()
    assert ready(sub) == [f"id: {head}\n\n".encode()]  # its reconnect resumes exactly
    with pytest.raises(StopAsyncIteration):
        sub.next_nowait()
    assert hub.stats().dropped == {"dropped": 1}


async def test_an_unresolved_subscription_ends_when_the_hub_stops() -> None:
    hub = Hub()
    async with hub:
        sub = hub.subscribe("news")
    with pytest.raises(StopAsyncIteration):
        sub.next_nowait()
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()
    assert hub.stats().dropped == {"stopped": 1}


async def test_a_subscription_closed_while_it_resolves_stays_closed() -> None:
    subscribed: list[str] = []
    release = anyio.Event()

    class Slow(DictBackend):
        async def attach(self, log: TopicLog) -> None:
            await release.wait()
            await super().attach(log)

    class Recorder(HubObserver):
        def on_subscribe(self, topics: tuple[str, ...], how: Any) -> None:
            subscribed.append(how)

    async with Hub(backend=Slow(), observer=Recorder()) as hub:
        sub: Subscription = hub.subscribe("news")
        answers: list[bool] = []
        async with anyio.create_task_group() as group:

            async def prepare() -> None:
                answers.append(await sub.prepare_stream())

            group.start_soon(prepare)
            await anyio.wait_all_tasks_blocked()
            sub.close()
            release.set()
        assert answers == [True]
        assert subscribed == []
        with pytest.raises(StopAsyncIteration):
            sub.next_nowait()


# -- the hub's options and observer -------------------------------------------------------------


async def test_the_options_read_back_and_an_observer_set_later_measures_lag() -> None:
    lags: list[str] = []

    class Lag(HubObserver):
        lag_every = 1

        def on_lag(self, topic: str, seconds: float) -> None:
            lags.append(topic)

    hub = Hub(history=5, history_bytes=500, on_overflow="disconnect", expire_after=9)
    assert (hub.history, hub.history_bytes, hub.on_overflow, hub.expire_after) == (
        5,
        500,
        "disconnect",
        9,
    )
    assert (hub.max_topics, type(hub.backend), hub.observer) == (10_000, MemoryBackend, None)
    sub = hub.subscribe("news")
    assert await sub.prepare_stream()
    ready(sub)
    hub.observer = Lag()  # the topic's log exists already
    await hub.publish("news", "x")
    ready(sub)
    assert lags == ["news"]
    hub.observer = None
    await hub.publish("news", "y")
    ready(sub)
    assert lags == ["news"]


async def test_the_observer_s_lag_every_is_read_at_every_publish() -> None:
    """Set after the observer was given to the hub (and its logs made), it applies from
    the next event on, both ways."""
    lags: list[str] = []

    class Lag(HubObserver):
        def on_lag(self, topic: str, seconds: float) -> None:
            lags.append(topic)

    observer = Lag()
    hub = Hub(observer=observer)
    sub = hub.subscribe("news")
    assert await sub.prepare_stream()
    ready(sub)
    observer.lag_every = 1
    for n in range(5):
        await hub.publish("news", str(n))
    assert len(ready(sub)) == 5
    assert lags == ["news"] * 5
    observer.lag_every = 0
    hub.publish_nowait("news", "x")
    assert len(ready(sub)) == 1
    assert len(lags) == 5


async def test_several_topics_measure_lag_too() -> None:
    lags: list[str] = []

    class Lag(HubObserver):
        lag_every = 1

        def on_lag(self, topic: str, seconds: float) -> None:
            lags.append(topic)

    hub = Hub(observer=Lag())
    sub = hub.subscribe("a", "b")
    assert await sub.prepare_stream()
    ready(sub)
    await hub.publish("b", "x")
    assert len(ready(sub)) == 1
    assert lags == ["b"]


def test_the_redis_backend_declares_a_store_elsewhere_with_no_synchronous_append() -> None:
    from asgi_sse.redis import RedisStreamsBackend

    backend = RedisStreamsBackend()
    assert (backend.logs_are_the_store, backend.can_append_nowait) == (False, False)
    with pytest.raises(NotImplementedError, match="asynchronously only"):
        backend.append_nowait(TopicLog("t", max_events=1, max_bytes=100), b"", b"data: x\n\n")
    with pytest.raises(TypeError, match="RedisStreamsBackend publishes asynchronously"):
        Hub(backend=backend).publish_nowait("news", "x")
