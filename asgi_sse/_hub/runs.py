"""Runs: producers started on the hub (`Hub.run`), not in a request, each publishing to
a topic of its own and ending it with one `RunEnded` event and the topic's close.

Strategy: a run is a task of the hub's own, independent of any connection (a system
task on trio, a task of the loop on asyncio, held here against the garbage collector),
so that a stop can give up on a producer that shields itself from cancellation after a
bounded wait instead of hanging with it. A running run holds its topic's log (as a
subscriber would), so an idle topic of a live run never expires; its ``finally`` sends
`RunEnded` and closes the topic, whatever ended it. Publishing goes through the hub
(`RunHost`), so a run's events are the topic's like any other: resume, priming, 204.

On a backend with `RunLeases` (runs across processes) a run is claimed before it
starts, and a second task of the hub's own (`Runs._keep`) renews the claim and cancels
the run when another process asks or the claim is lost; the claim is released after
the run's end.

Imports the protocol layer, the closing helper, anyio, the backend SPI and the log;
never the hub's facade (which passes itself as `RunHost`) or the ASGI layer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Protocol

import anyio
import anyio.lowlevel

from .._protocol.errors import HubFull, HubUnavailable, TopicClosed
from .._protocol.frames import split_at_id
from .._protocol.runs import RunEnded, RunEndedInfo, RunReason
from .._protocol.stream import Publishable
from .._util.closing import close_stream
from .backend import RunLeases
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

    __slots__ = ("done", "ended", "keeper", "log", "lost", "reason", "scope", "topic")

    def __init__(self, topic: str, log: TopicLog) -> None:
        self.topic = topic
        self.log = log
        self.scope = anyio.CancelScope()
        self.keeper = anyio.CancelScope()  # the lease's renewals and cancel watch
        self.done = anyio.Event()
        self.reason: RunReason | None = None  # set by whoever cancels it, before that
        self.ended = False  # its RunEnded was sent (or tried) and its log let go
        self.lost = False  # its claim lapsed: the topic was ended elsewhere


class Runs:
    """The runs of one hub in this process (see the module)."""

    __slots__ = ("host", "lease", "leases", "make_log", "max_running", "running", "tasks")

    def __init__(
        self,
        host: RunHost,
        make_log: Any,
        max_running: int,
        leases: RunLeases | None = None,
        lease: float = 5.0,
    ) -> None:
        self.host = host
        self.make_log = make_log  # HubCore.log: the topic's log, made if needed
        self.max_running = max_running
        self.leases = leases  # the backend, when it runs runs across processes
        self.lease = lease
        self.running: dict[str, _Run] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, producer: AsyncIterable[Publishable], topic: str | None) -> str:
        """Start ``producer`` on ``topic`` (a fresh one when None) and return the topic.

        Raises:
            TypeError: ``producer`` is not an async iterable.
            ValueError: ``topic`` is not a non-empty str, or a run on it is alive.
            HubFull: ``max_running`` runs are alive, or no room for a new topic.
            TopicClosed: the topic was closed (a finished run's, for one).
            HubUnavailable: the backend could not claim the run (`RunLeases`).
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
        self.running[topic] = run  # before any await: the topic is taken here
        if self.leases is not None:
            try:
                claimed = await self._claim(run)
            except BaseException:
                self._forget(run)
                raise
            if not claimed:
                self._forget(run)
                raise ValueError(f"a run is alive on topic {topic!r} in another process")
            self._spawn(self._keep, run, self.leases)
        self._spawn(self._drive, run, iterator)
        return topic

    async def _claim(self, run: _Run) -> bool:
        assert self.leases is not None
        lost = split_at_id(RunEnded(data=RunEndedInfo(reason="lost")))
        claimed = False
        with anyio.CancelScope(shield=True):  # claimed, it must be released
            claimed = await self.leases.claim_run(run.log, self.lease, lost)
        return claimed is True

    def _forget(self, run: _Run) -> None:
        run.log.remove_subscriber()
        del self.running[run.topic]

    def _spawn(self, function: Any, *args: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            import trio  # anyio's other backend: imported there only

            trio.lowlevel.spawn_system_task(function, *args)
            return
        task = loop.create_task(function(*args))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _keep(self, run: _Run, leases: RunLeases) -> None:
        """Renew ``run``'s claim every third of the lease, and cancel the run when
        another process asks to, or when the claim was lost; ends with the run."""

        async def renew() -> None:
            while True:
                await anyio.sleep(self.lease / 3)
                try:
                    kept = await leases.renew_run(run.log, self.lease)
                except HubUnavailable:
                    continue  # tried again at the next renewal
                if not kept:
                    run.lost = True
                    self._cancel(run, "lost")
                    return

        async def watch() -> None:
            await leases.run_cancel_requested(run.log)
            self._cancel(run, "cancelled")

        with run.keeper:
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(renew)
                    group.start_soon(watch)
            except Exception:
                _log.error("the lease of the run on topic %r failed", run.topic, exc_info=True)

    def _cancel(self, run: _Run, reason: RunReason) -> None:
        if run.reason is None:
            run.reason = reason
        run.scope.cancel()

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
            if not run.lost:  # a lost run's topic was ended where the claim lapsed
                await self.host.close(run.topic, RunEnded(data=RunEndedInfo(reason=reason)))
        except TopicClosed:
            pass  # closed already (by `Hub.close`): its subscribers have ended
        except Exception:
            _log.error("the run on topic %r could not send its end", run.topic, exc_info=True)
        finally:
            run.keeper.cancel()
            if self.leases is not None:
                await self._release(run, self.leases)
            run.log.remove_subscriber()
            run.log.mark_used()  # a finished run stays resumable for expire_after
            if self.running.get(run.topic) is run:
                del self.running[run.topic]
            run.done.set()

    @staticmethod
    async def _release(run: _Run, leases: RunLeases) -> None:
        try:
            await leases.release_run(run.log)
        except Exception:
            _log.error("the run on topic %r could not release its claim", run.topic, exc_info=True)

    async def cancel(self, topic: str) -> bool:
        """Cancel the run on ``topic`` and wait (`CANCEL_WAIT` at most) for its end.

        Returns:
            True if it cancelled a live run (or, with `RunLeases`, asked the process
            running it to); False for a finished, unknown or already cancelled one.

        Raises:
            HubUnavailable: with `RunLeases`, the store cannot be reached.
        """
        run = self.running.get(topic)
        if run is None:
            # Maybe another process's (`RunLeases`); memory: nobody else's.
            return self.leases is not None and await self.leases.request_run_cancel(topic)
        if run.reason is not None:
            return False
        self._cancel(run, "cancelled")
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
            self._cancel(run, "shutdown")
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
