"""Three hub backends written the way a user would write one: from the docs of
`asgi_sse.backends`, with public imports only. The hub's contract suite
(`test_hub.py`'s ``contract``) runs on each, beside memory and Redis.

* `DictBackend` keeps each topic's events in a plain dict, standing for a store in
  another process: the hub's logs are copies, fed from `attach` on, and a resume older
  than a log reads the store back into it (`TopicLog.backfill`).
* `DelegatingBackend` hands every call to a `MemoryBackend` and declares what it
  declares: the hub must treat it exactly as it treats memory.
* `CountingBackend`'s logs are the store, as memory's are, but its ids are its own:
  one counter for all topics, so a topic's ids are not its log's sequences.
"""

from __future__ import annotations

import secrets

from asgi_sse.backends import (
    EARLIEST,
    HubBackend,
    LogBounds,
    MemoryBackend,
    ResumePoint,
    TopicClosed,
    TopicLog,
)

__all__ = ("CountingBackend", "DelegatingBackend", "DictBackend")


class DictBackend(HubBackend):
    """Events in ``{topic: {number: (prefix, suffix)}}``, at most the hub's ``history``
    per topic; ids ``<epoch>-<number>``. Subclasses the protocol, so it takes its
    defaults: no synchronous append, logs that are copies."""

    def __init__(self) -> None:
        self.epoch = "d" + secrets.token_hex(3)
        self.events: dict[str, dict[int, tuple[bytes, bytes]]] = {}
        self.newest: dict[str, int] = {}
        self.closed: set[str] = set()
        self.followers: dict[str, list[TopicLog]] = {}
        self.max_events = 1

    def id_of(self, number: int) -> str:
        return f"{self.epoch}-{number}"

    async def start(self, bounds: LogBounds) -> None:
        self.max_events = bounds.max_events

    async def stop(self) -> None:
        self.followers.clear()

    async def append(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        topic = log.name
        if topic in self.closed:
            raise TopicClosed(f"topic {topic!r} was closed")
        number = self.newest.get(topic, 0) + 1
        self.newest[topic] = number
        events = self.events.setdefault(topic, {})
        events[number] = (prefix, suffix)
        events.pop(number - self.max_events, None)
        event_id = self.id_of(number)
        for follower in self.followers.get(topic, []):
            follower.append(event_id, prefix, suffix)
        return event_id

    async def close(self, log: TopicLog) -> None:
        self.closed.add(log.name)
        for follower in self.followers.get(log.name, []):
            follower.close()

    async def attach(self, log: TopicLog) -> None:
        topic = log.name
        log.attach(after=self.id_of(self.newest.get(topic, 0)), closed=topic in self.closed)
        self.followers.setdefault(topic, []).append(log)

    def forget(self, log: TopicLog) -> None:
        followers = self.followers.get(log.name, [])
        if log in followers:
            followers.remove(log)
        log.detach()

    async def locate(self, log: TopicLog, position: str) -> ResumePoint:
        if position == EARLIEST:
            self.read_back(log, after=0, all_of_them=False)
            return ResumePoint(log.oldest)
        epoch, _, text = position.partition("-")
        if not text.isdigit():
            return ResumePoint(log.newest + 1, "malformed")
        number = int(text)
        if epoch != self.epoch or number > self.newest.get(log.name, 0):
            return ResumePoint(log.newest + 1, "unknown")
        oldest_number = self.number_at(log, log.oldest - 1)
        if number < oldest_number and not self.read_back(log, after=number, all_of_them=True):
            return ResumePoint(log.newest + 1, "gone")
        return ResumePoint(log.oldest + number - self.number_at(log, log.oldest - 1))

    def number_at(self, log: TopicLog, sequence: int) -> int:
        return int(log.id_at(sequence).rpartition("-")[2])

    def read_back(self, log: TopicLog, *, after: int, all_of_them: bool) -> bool:
        """Put the events after ``after`` that are older than the log into it; False if
        the store or the log cannot hold all of them (``all_of_them``)."""
        events = self.events.get(log.name, {})
        below = self.number_at(log, log.oldest - 1)
        room = log.room_for_older()
        numbers = [n for n in range(below, after, -1) if n in events][:room]
        if all_of_them and (len(numbers) < below - after):
            return False
        older = [(self.id_of(n), *events[n]) for n in numbers]
        previous = self.id_of(numbers[-1] - 1) if numbers else self.id_of(below)
        return log.backfill(older, previous_id=previous, trim_to_fit=not all_of_them) == "filled"


class DelegatingBackend:
    """Every call handed to a `MemoryBackend`, its declarations copied: a structural
    implementation of the protocol (no subclassing)."""

    logs_are_the_store = MemoryBackend.logs_are_the_store
    can_append_nowait = MemoryBackend.can_append_nowait

    def __init__(self) -> None:
        self.memory = MemoryBackend()

    async def start(self, bounds: LogBounds) -> None:
        await self.memory.start(bounds)

    async def stop(self) -> None:
        await self.memory.stop()

    async def append(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        return await self.memory.append(log, prefix, suffix)

    def append_nowait(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        return self.memory.append_nowait(log, prefix, suffix)

    async def close(self, log: TopicLog) -> None:
        await self.memory.close(log)

    async def attach(self, log: TopicLog) -> None:
        await self.memory.attach(log)

    def forget(self, log: TopicLog) -> None:
        self.memory.forget(log)

    async def locate(self, log: TopicLog, position: str) -> ResumePoint:
        return await self.memory.locate(log, position)

    async def available(self) -> None:
        await self.memory.available()


class CountingBackend(HubBackend):
    """The hub's logs are the topics (``logs_are_the_store``); ids ``<word>-<n>``, ``n``
    one counter for every topic, ``word`` chosen afresh for each log the hub makes (so an
    id from a forgotten log is ``unknown``, as memory's epochs make it)."""

    logs_are_the_store = True
    can_append_nowait = True

    def __init__(self) -> None:
        self.count = 0
        self.words: dict[str, str] = {}

    async def start(self, bounds: LogBounds) -> None:
        pass

    async def stop(self) -> None:
        pass  # the logs are the topics: the hub keeps them for when it runs again

    async def append(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        return self.append_nowait(log, prefix, suffix)

    def append_nowait(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        self.count += 1
        event_id = f"{self.words[log.name]}-{self.count}"
        log.append(event_id, prefix, suffix)
        return event_id

    async def close(self, log: TopicLog) -> None:
        log.close()

    async def attach(self, log: TopicLog) -> None:
        word = "c" + secrets.token_hex(3)
        self.words[log.name] = word
        log.attach(after=f"{word}-{self.count}")  # sorts before the topic's first event

    def forget(self, log: TopicLog) -> None:
        del self.words[log.name]

    async def locate(self, log: TopicLog, position: str) -> ResumePoint:
        if position == EARLIEST:
            return ResumePoint(log.oldest)
        word, _, text = position.partition("-")
        if not text.isdigit():
            return ResumePoint(log.newest + 1, "malformed")
        number = int(text)
        if word != self.words[log.name] or number > self.number_at(log, log.newest):
            return ResumePoint(log.newest + 1, "unknown")
        if number < self.number_at(log, log.oldest - 1):
            return ResumePoint(log.newest + 1, "gone")
        for sequence in range(log.oldest - 1, log.newest + 1):
            if self.number_at(log, sequence) == number:
                return ResumePoint(sequence + 1)
        return ResumePoint(log.newest + 1, "unknown")  # another topic's number

    @staticmethod
    def number_at(log: TopicLog, sequence: int) -> int:
        return int(log.id_at(sequence).rpartition("-")[2])
