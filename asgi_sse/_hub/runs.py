"""Runs: producers started on the hub (`Hub.run`), not in a request, each publishing to
a topic of its own and ending it with one `RunEnded` event and the topic's close.

Strategy: a run is a task of the hub's own, independent of any connection (a system
task on trio, a task of the loop on asyncio, held here against the garbage collector),
so that a stop can give up on a producer that shields itself from cancellation after a
bounded wait instead of hanging with it. A running run holds its topic's log (as a
subscriber would), so an idle topic of a live run never expires; its ``finally`` sends
`RunEnded` and closes the topic, whatever ended it. Publishing goes through the hub
(`RunHost`), so a run's events are the topic's like any other: resume, priming, 204.

Imports the protocol layer, the closing helper, anyio and the log; never the hub's
facade (which passes itself as `RunHost`) or the ASGI layer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Protocol

import anyio
import anyio.lowlevel

from .._protocol.errors import HubFull, TopicClosed
from .._protocol.runs import RunEnded, RunEndedInfo, RunReason
from .._protocol.stream import Publishable
from .._util.closing import close_stream
from .log import TopicLog

__all__ = ("CANCEL_WAIT", "STOP_GRACE", "RunHost", "Runs")

_log = logging.getLogger("asgi_sse")

CANCEL_WAIT = 1.0
"""Seconds `Hub.cancel` waits for the producer to end (its ``finally`` to run)."""
STOP_GRACE = 2.0
"""Seconds a stop waits for cancelled producers, then for their subscribers to read
the `RunEnded` event, before it goes on without them."""


class RunHost(Protocol):
    """What a run needs of the hub (the facade passes itself)."""

    async def publish(self, topic: str, event: Publishable) -> str: ...

    async def close(self, topic: str, final_event: Publishable | None = None) -> None: ...


class _Run:
    """One run: its topic's log, the scope its producer runs in, and how it ends."""

    __slots__ = ("done", "ended", "log", "reason", "scope", "topic")

    def __init__(self, topic: str, log: TopicLog) -> None:
        self.topic = topic
        self.log = log
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.reason: RunReason | None = None  # set by whoever cancels it, before that
        self.ended = False  # its RunEnded was sent (or tried) and its log let go


class Runs:
    """The runs of one hub in this process (see the module)."""

    __slots__ = ("host", "make_log", "max_running", "running", "tasks")

    def __init__(self, host: RunHost, make_log: Any, max_running: int) -> None:
        self.host = host
        self.make_log = make_log  # HubCore.log: the topic's log, made if needed
        self.max_running = max_running
        self.running: dict[str, _Run] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, producer: AsyncIterable[Publishable], topic: str | None) -> str:
        """Start ``producer`` on ``topic`` (a fresh one when None) and return the topic.

        Raises:
            TypeError: ``producer`` is not an async iterable.
            ValueError: ``topic`` is not a non-empty str, or a run on it is alive.
            HubFull: ``max_running`` runs are alive, or no room for a new topic.
            TopicClosed: the topic was closed (a finished run's, for one).
        """
        if not isinstance(producer, AsyncIterable):
            raise TypeError(f"a run's producer is an async iterable, got {producer!r}")
        if topic is None:
            topic = secrets.token_urlsafe(16)
        elif type(topic) is not str or not topic:
            raise ValueError(f"a topic is a non-empty str, got {topic!r}")
        if topic in self.running:
            raise ValueError(f"a run is alive on topic {topic!r}: cancel it or wait for its end")
        if len(self.running) >= self.max_running:
            raise HubFull(f"{self.max_running} runs are running on this process (max_running)")
        log: TopicLog = self.make_log(topic)
        if log.closed:
            raise TopicClosed(f"topic {topic!r} was closed: a run needs a topic of its own")
        iterator = producer.__aiter__()
        log.add_subscriber()  # a live run holds its topic: it never expires under it
        run = _Run(topic, log)
        self.running[topic] = run
        self._spawn(run, iterator)
        return topic

    def _spawn(self, run: _Run, iterator: AsyncIterator[Publishable]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            import trio  # anyio's other backend: imported there only

            trio.lowlevel.spawn_system_task(self._drive, run, iterator)
            return
        task = loop.create_task(self._drive(run, iterator))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _drive(self, run: _Run, iterator: AsyncIterator[Publishable]) -> None:
        reason: RunReason = "complete"
        outside: BaseException | None = None  # a cancellation not of ours (loop closing)
        try:
            with run.scope:
                try:
                    async for item in iterator:
                        # A producer that never awaits must not starve the loop, and
                        # must stay cancellable (publish gives a turn, shielded).
                        await anyio.lowlevel.checkpoint_if_cancelled()
                        await self.host.publish(run.topic, item)
                finally:
                    with anyio.move_on_after(STOP_GRACE, shield=True):
                        await close_stream(iterator)
            if run.scope.cancel_called:
                reason = run.reason or "cancelled"
        except TopicClosed:
            # Closed under it (`Hub.close`, or a stop that gave up on it): nothing to say.
            reason = run.reason or "cancelled"
        except Exception:
            _log.error("the run on topic %r failed", run.topic, exc_info=True)
            reason = "failed"
        except BaseException as exc:
            outside = exc
            reason = "shutdown"
        with anyio.CancelScope(shield=True):
            await self.end(run, reason)
        if outside is not None:
            raise outside

    async def end(self, run: _Run, reason: RunReason) -> None:
        """Send ``run``'s `RunEnded`, close its topic and let its log go (once)."""
        if run.ended:
            return
        run.ended = True
        try:
            await self.host.close(run.topic, RunEnded(data=RunEndedInfo(reason=reason)))
        except TopicClosed:
            pass  # closed already (by `Hub.close`): its subscribers have ended
        except Exception:
            _log.error("the run on topic %r could not send its end", run.topic, exc_info=True)
        finally:
            run.log.remove_subscriber()
            run.log.mark_used()  # a finished run stays resumable for expire_after
            if self.running.get(run.topic) is run:
                del self.running[run.topic]
            run.done.set()

    async def cancel(self, topic: str) -> bool:
        """Cancel the run on ``topic`` and wait (`CANCEL_WAIT` at most) for its end.

        Returns:
            True if it cancelled a live run; False for a finished, unknown or already
            cancelled one.
        """
        run = self.running.get(topic)
        if run is None or run.reason is not None:
            return False
        run.reason = "cancelled"
        run.scope.cancel()
        with anyio.move_on_after(CANCEL_WAIT):
            await run.done.wait()
        return True

    async def stop(self) -> None:
        """Cancel every run (their subscribers get ``shutdown``), wait `STOP_GRACE` for
        them at most, end the ones that ignore it, then wait as long for the runs'
        subscribers to read their `RunEnded`."""
        runs = list(self.running.values())
        if not runs:
            return
        for run in runs:
            if run.reason is None:
                run.reason = "shutdown"
            run.scope.cancel()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(STOP_GRACE):
                for run in runs:
                    await run.done.wait()
            for run in runs:
                if not run.done.is_set():
                    _log.error(
                        "the run on topic %r ignored its cancellation for %s s: its "
                        "subscribers are told it ended, the hub stops without it",
                        run.topic,
                        STOP_GRACE,
                    )
                    await self.end(run, "shutdown")
            # Nothing signals a subscriber leaving a log: looked at every 10 ms, for
            # a bounded time, once per stop.
            with anyio.move_on_after(STOP_GRACE):
                while any(run.log.subscribers for run in runs):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
