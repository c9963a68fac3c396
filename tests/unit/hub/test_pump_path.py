"""A hub subscription streamed by `EventSourceResponse`: the pump's own step.

The response's pump does not iterate a subscription with ``__anext__``: it asks it for
a frame to send and what to await before the next step (`Subscription._sse_next_body`;
a run of ready frames is joined), and on asyncio awaits the log's bare future itself.
These are that path's hazards: order and batching, lag samples, overflow, and no waiter
left behind when a parked response is cancelled or dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asgi_sse import EventSourceResponse, Hub, HubObserver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": []}


class Client:
    """A response's server side: every body it was sent, and a receive that waits."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.finished = False
        self.gate: anyio.Event | None = None  # while set to an unset event, send blocks
        self.held = False  # a send waits for the gate

    async def receive(self) -> Any:
        await anyio.sleep_forever()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        if message["body"]:
            if self.gate is not None:
                self.held = True
                await self.gate.wait()
            self.bodies.append(message["body"])
        if not message.get("more_body", False):
            self.finished = True

    def events(self) -> list[bytes]:
        """The data lines sent, in order (the priming frame has none)."""
        joined = b"".join(self.bodies)
        return [line for line in joined.split(b"\n") if line.startswith(b"data: ")]


async def until(condition: Any) -> None:
    with anyio.fail_after(5):
        while not condition():
            await anyio.lowlevel.checkpoint()


async def test_frames_go_out_in_order_and_what_is_ready_in_one_send(anyio_backend: str) -> None:
    async with Hub() as hub:
        client = Client()
        sub = hub.subscribe("t")
        async with anyio.create_task_group() as group:
            group.start_soon(EventSourceResponse(sub), SCOPE, client.receive, client.send)
            await until(lambda: len(client.bodies) == 1)  # the priming frame
            await anyio.wait_all_tasks_blocked()  # parked
            for n in range(3):
                hub.publish_nowait("t", f"a{n}")  # one wake-up for the three
            await until(lambda: len(client.events()) == 3)
            for n in range(3):
                await hub.publish("t", f"b{n}")  # a wake-up each
                await until(lambda: len(client.events()) == 4 + n)  # noqa: B023
            sub.drop()
        assert client.finished
        assert client.events() == [f"data: {x}{n}".encode() for x in "ab" for n in range(3)]
        assert len(client.bodies) == 1 + 1 + 3  # priming, the batch, one per live event
        assert sub.dropped
        assert hub.stats().delivered_events == 7


async def test_a_subscriber_behind_is_sent_a_reset_then_goes_on(anyio_backend: str) -> None:
    async with Hub(history=2) as hub:
        client = Client()
        sub = hub.subscribe("t")
        async with anyio.create_task_group() as group:
            group.start_soon(EventSourceResponse(sub), SCOPE, client.receive, client.send)
            await until(lambda: len(client.bodies) == 1)
            client.gate = anyio.Event()
            await hub.publish("t", "first")  # its send blocks on the gate
            await until(lambda: client.held)
            for n in range(5):
                hub.publish_nowait("t", f"x{n}")  # the log keeps the last two
            client.gate.set()
            await until(lambda: len(client.bodies) == 3)  # the first event, the Reset
            await anyio.wait_all_tasks_blocked()
            hub.publish_nowait("t", "after")  # goes on from the newest
            await until(lambda: b"data: after" in b"".join(client.bodies))
            sub.drop()
        assert b"overflow" in client.bodies[2]
        assert client.events()[0] == b"data: first"
        assert client.events()[-1] == b"data: after"
        assert not any(b"data: x" in body for body in client.bodies)
        assert hub.stats().resets == {"overflow": 1}


async def test_sampled_lags_are_told_on_the_pumps_path(anyio_backend: str) -> None:
    class Lags(HubObserver):
        lag_every = 1

        def __init__(self) -> None:
            self.lags = 0

        def on_lag(self, topic: str, seconds: float) -> None:
            self.lags += 1

    observer = Lags()
    async with Hub(observer=observer) as hub:
        client = Client()
        sub = hub.subscribe("t")
        async with anyio.create_task_group() as group:
            group.start_soon(EventSourceResponse(sub), SCOPE, client.receive, client.send)
            await until(lambda: len(client.bodies) == 1)
            for n in range(4):
                await hub.publish("t", f"e{n}")
            hub.publish_nowait("t", "e4")
            hub.publish_nowait("t", "e5")
            await until(lambda: len(client.events()) == 6)
            sub.drop()
    assert observer.lags == 6


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_cancelled_parked_responses_leave_no_waiter_behind() -> None:
    async with Hub() as hub:
        clients = [Client() for _ in range(100)]
        subs = [hub.subscribe("t") for _ in clients]
        async with anyio.create_task_group() as group:
            for sub, client in zip(subs, clients, strict=True):
                response = EventSourceResponse(sub)
                group.start_soon(response, SCOPE, client.receive, client.send)
            log = hub._core.logs["t"]
            await until(lambda: len(log.parked) == 100)
            group.cancel_scope.cancel()
        # Most cancelled futures were let go before any publish (compacted), and none is
        # set by the next change.
        assert len(log.parked) < 100
        assert all(future.cancelled() for future in log.parked)
        assert all(sub._waiter is None for sub in subs)
        hub.publish_nowait("t", "x")
        assert log.parked == []
        assert hub.stats().subscribers == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_dropping_a_parked_response_wakes_it_alone() -> None:
    async with Hub() as hub:
        dropped_client, other_client = Client(), Client()
        dropped, other = hub.subscribe("t"), hub.subscribe("t")
        async with anyio.create_task_group() as group:
            for sub, client in ((dropped, dropped_client), (other, other_client)):
                response = EventSourceResponse(sub)
                group.start_soon(response, SCOPE, client.receive, client.send)
            log = hub._core.logs["t"]
            await until(lambda: len(log.parked) == 2)
            waiter = other._waiter
            assert isinstance(waiter, asyncio.Future)
            dropped.drop()
            await until(lambda: dropped_client.finished)
            assert not waiter.done()  # not woken for nothing
            assert other._waiter is waiter
            hub.publish_nowait("t", "late")
            await until(lambda: other_client.events() == [b"data: late"])
            other.close()
        assert dropped.dropped
        assert dropped_client.events() == []
        assert other_client.finished


async def test_closing_a_parked_subscription_ends_its_response(anyio_backend: str) -> None:
    async with Hub() as hub:
        client = Client()
        sub = hub.subscribe("t")
        async with anyio.create_task_group() as group:
            group.start_soon(EventSourceResponse(sub), SCOPE, client.receive, client.send)
            await until(lambda: len(client.bodies) == 1)
            await anyio.wait_all_tasks_blocked()
            sub.close()
            if anyio_backend != "asyncio":
                hub.publish_nowait("t", "x")  # on trio: at the log's next change
            await until(lambda: client.finished)
        assert hub.stats().subscribers == 0


async def test_several_topics_through_the_response(anyio_backend: str) -> None:
    async with Hub() as hub:
        client = Client()
        sub = hub.subscribe("a", "b")
        async with anyio.create_task_group() as group:
            group.start_soon(EventSourceResponse(sub), SCOPE, client.receive, client.send)
            await until(lambda: len(client.bodies) == 1)
            await anyio.wait_all_tasks_blocked()
            await hub.publish("a", "one")
            await hub.publish("b", "two")
            await until(lambda: len(client.events()) == 2)
            await hub.close("a")
            await hub.close("b")
            await until(lambda: client.finished)
        assert client.events() == [b"data: one", b"data: two"]


async def test_a_long_run_goes_out_in_batches_of_about_64_kib(anyio_backend: str) -> None:
    async with Hub(history=500) as hub:
        client = Client()
        sub = hub.subscribe("t")
        async with anyio.create_task_group() as group:
            group.start_soon(EventSourceResponse(sub), SCOPE, client.receive, client.send)
            await until(lambda: len(client.bodies) == 1)
            await anyio.wait_all_tasks_blocked()  # parked
            for n in range(200):
                hub.publish_nowait("t", f"{n:04d}" + "x" * 2000)  # about 400 KB in all
            await until(lambda: len(client.events()) == 200)
            sub.drop()
        assert [event[6:10] for event in client.events()] == [
            f"{n:04d}".encode() for n in range(200)
        ]
        # Runs of about 64 KiB (each sent in pieces of at most 64 KiB), not one per event.
        pieces = client.bodies[1:]
        assert 6 <= len(pieces) <= 16
        assert all(len(body) <= 64 * 1024 for body in pieces)
        assert hub.stats().delivered_events == 201
        assert hub.stats().delivered_bytes == sum(len(body) for body in client.bodies)
