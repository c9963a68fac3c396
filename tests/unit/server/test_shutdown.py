"""ShutdownSignal and GracefulShutdown in-process (real server processes: test_servers.py)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import anyio
import pytest

from asgi_sse import EventSourceResponse, GracefulShutdown, ShutdownSignal
from asgi_sse._util.asgi import ASGIReceiveCallable, ASGISendCallable, Scope
from asgi_sse.testing import connect
from tests.support.helpers import first_then_forever


def test_trigger_is_idempotent_and_calls_every_callback() -> None:
    shutdown = ShutdownSignal()
    calls: list[str] = []
    remove_a = shutdown.add_callback(lambda: calls.append("a"))
    shutdown.add_callback(lambda: calls.append("b"))
    remove_a()
    assert not shutdown.is_set
    shutdown.trigger()
    shutdown.trigger()
    assert shutdown.is_set
    assert calls == ["b", "b"]


def test_callback_added_after_trigger_runs_at_once() -> None:
    shutdown = ShutdownSignal()
    shutdown.trigger()
    calls: list[int] = []
    shutdown.add_callback(lambda: calls.append(1))
    assert calls == [1]


@pytest.mark.anyio
async def test_threadsafe_runs_on_the_event_loop_from_another_thread() -> None:
    shutdown = ShutdownSignal()
    ran_on: list[threading.Thread] = []
    done = anyio.Event()

    def record() -> None:
        ran_on.append(threading.current_thread())
        done.set()

    shutdown.add_callback(shutdown.threadsafe(record))
    worker = threading.Thread(target=shutdown.trigger)
    worker.start()
    with anyio.fail_after(5):
        await done.wait()
    worker.join()
    assert ran_on == [threading.main_thread()]


@pytest.mark.anyio
async def test_scope_carries_the_signal_and_ends_streams() -> None:
    cleaned = anyio.Event()

    seen: list[Any] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        seen.append(dict(scope).get("asgi_sse.shutdown"))
        await EventSourceResponse(first_then_forever(cleaned))(scope, receive, send)

    wrapped = GracefulShutdown(app, signal_handlers=False)
    async with connect(wrapped) as response:
        assert (await response.next_event()).data == "first"
        wrapped.signal.trigger()
        await response.wait_finished()
    assert seen == [wrapped.signal]
    assert cleaned.is_set()
    assert response.complete  # a clean end of body, unlike a disconnect


@pytest.fixture
def restore_sigterm() -> Iterator[None]:
    original = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, original)


@pytest.mark.usefixtures("restore_sigterm")
@pytest.mark.anyio
async def test_lifespan_chains_in_front_of_the_servers_handler() -> None:
    server_saw: list[int] = []

    def server_handler(number: int, frame: FrameType | None) -> None:
        server_saw.append(number)

    signal.signal(signal.SIGTERM, server_handler)
    lifespan_calls: list[str] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        lifespan_calls.append(scope["type"])

    wrapped = GracefulShutdown(app, signals=(signal.SIGTERM,))

    async def receive() -> Any:
        raise AssertionError("not called")  # pragma: no cover

    async def send(message: Any) -> None:
        raise AssertionError("not called")  # pragma: no cover

    lifespan: Any = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await wrapped(lifespan, receive, send)
    await wrapped(lifespan, receive, send)  # installing twice is a no-op
    assert lifespan_calls == ["lifespan", "lifespan"]
    signal.raise_signal(signal.SIGTERM)
    assert wrapped.signal.is_set
    assert server_saw == [signal.SIGTERM]  # the server still stops as it always does


def test_no_handlers_outside_the_main_thread() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass  # pragma: no cover

    wrapped = GracefulShutdown(app, signals=(signal.SIGTERM,))
    before = signal.getsignal(signal.SIGTERM)
    worker = threading.Thread(target=wrapped.install_signal_handlers)
    worker.start()
    worker.join()
    assert signal.getsignal(signal.SIGTERM) is before
