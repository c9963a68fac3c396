"""Hub: replay and live under load, and a model of every subscriber's stream.

* The replay/live race, in-process through `SSEEndpoint` on asyncio and trio: a
  publisher publishes every millisecond while many clients connect, read a few events,
  leave and come back with their Last-Event-ID, over and over. Every client must see
  every event published after its first connection exactly once, in order.
* A hypothesis state machine drives a hub directly (`prepare_stream`, `next_nowait`)
  against a model of each topic's whole history and of each subscriber's position, with
  a log small enough that trimming, `gone` resumes and overflows happen all the time.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.from_thread
import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from asgi_sse import (
    EventStreamParser,
    Hub,
    ParsedEvent,
    SSEEndpoint,
    SSERequest,
    StreamClosed,
    Subscription,
    TopicClosed,
)
from asgi_sse._protocol.cursor import source_key
from asgi_sse.testing import TestStream, connect

# -- the replay/live race ------------------------------------------------------------------

#: How long the clients keep reconnecting, per backend (the whole test takes about this
#: plus a final catch-up).
RACE_SECONDS = 2.5
#: Clients connecting, reading and reconnecting at the same time.
RACE_CLIENTS = 50
#: A client reads between 0 and this many events per connection (at least 1 on the first
#: connection of a session, which is how it learns where it started).
RACE_MAX_READ = 20
#: How often a client starts over without an id (a page load), rather than resuming:
#: the connections without an id are the ones where timing matters (the hub primes
#: them with the head, and must then send everything after that head).
FRESH_SESSION = 0.2
#: The publisher's pause between two events.
PUBLISH_EVERY = 0.001

# What the spec of an id says (asgi_sse/_protocol/cursor.py): ``<epoch>-<sequence>``.
POSITION = re.compile(r"([0-9a-z]{1,16})-([0-9]{1,18})")


def sequence_of(event_id: str, epoch: str) -> int:
    match = POSITION.fullmatch(event_id)
    assert match is not None, f"not a hub id: {event_id!r}"
    assert match.group(1) == epoch, f"{event_id!r} is not of the epoch {epoch!r}"
    return int(match.group(2))


def priming_id(stream: TestStream) -> str:
    """The id the hub primed a connection without an id with: the first frame of the
    first body, an id alone (no data, so no client dispatches it)."""
    body = next(m["body"] for m in stream.messages if m["type"] == "http.response.body")
    frame, _, _ = bytes(body).partition(b"\n\n")
    assert frame.startswith(b"id: "), f"a first connection must be primed, got {body[:80]!r}"
    assert b"\n" not in frame, f"the priming frame must hold the id alone, got {frame!r}"
    return frame.removeprefix(b"id: ").decode()


@dataclass
class Session:
    """What one client saw from a connection without an id on, over its reconnects."""

    start: int = -1  # the head its first connection was primed with
    sequences: list[int] = field(default_factory=list)


@dataclass
class RaceClient:
    index: int
    sessions: list[Session] = field(default_factory=list)
    connections: int = 0
    resets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def first_difference(seen: list[int], expected: list[int]) -> str:
    for position, (got, want) in enumerate(zip(seen, expected, strict=False)):
        if got != want:
            context = seen[max(0, position - 3) : position + 3]
            return f"at {position}: got {got}, expected {want} (around: {context})"
    return f"lengths differ: got {len(seen)} events, expected {len(expected)}"


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_every_client_sees_every_event_once_in_order_across_reconnects() -> None:
    # A log far larger than what is published in RACE_SECONDS: no client may fall out,
    # so any Reset is a failure (this is about the replay/live hand-over, not trimming).
    hub = Hub(history=1_000_000)

    def handler(request: SSERequest) -> Subscription:
        return hub.subscribe("t", last_event_id=request.last_event_id)

    app = SSEEndpoint(handler)
    first_id = POSITION.fullmatch(await hub.publish("t", "1"))
    assert first_id is not None
    epoch = first_id.group(1)
    clients = [RaceClient(index) for index in range(RACE_CLIENTS)]
    clients_done = anyio.Event()
    publisher_done = anyio.Event()
    still_running = RACE_CLIENTS
    final_head = 0
    deadline = anyio.current_time() + RACE_SECONDS

    async def publisher() -> None:
        nonlocal final_head
        sequence = 1
        # Publishes until every client has finished reconnecting: no client ever waits
        # for an event that will not come.
        while not clients_done.is_set():
            sequence += 1
            event_id = await hub.publish("t", str(sequence))
            assert event_id == f"{epoch}-{sequence}"
            await anyio.sleep(PUBLISH_EVERY)
        final_head = sequence
        publisher_done.set()

    def record(client: RaceClient, event: ParsedEvent) -> None:
        if event.event == "reset":
            client.resets.append(event.data)
            return
        sequence = sequence_of(event.id, epoch)
        if event.data != str(sequence):
            client.errors.append(f"event {event.id} carries {event.data!r}")
        client.sessions[-1].sequences.append(sequence)

    async def one_connection(
        client: RaceClient, rng: random.Random, last_id: str | None, *, until: int | None
    ) -> str | None:
        """Connect, read (a random number of events, or up to sequence ``until``), leave.
        Returns the id the client resends next time, as a browser keeps it."""
        client.connections += 1
        session = client.sessions[-1]
        first = last_id is None
        count = rng.randint(1 if first else 0, RACE_MAX_READ)
        async with connect(app, "/", last_event_id=last_id) as stream:
            if until is not None:
                while not session.sequences or session.sequences[-1] < until:
                    record(client, await stream.next_event())
            else:
                if count == 0 and rng.random() < 0.5:
                    await stream.wait_started()  # else: leave before the response starts
                for _ in range(count):
                    if anyio.current_time() >= deadline and not first:
                        break
                    record(client, await stream.next_event())
            await stream.disconnect()
            # What arrived before the client left was received: a browser dispatched it,
            # and its Last-Event-ID says so.
            while True:
                try:
                    record(client, await stream.next_event())
                except StreamClosed:
                    break
        if first:
            session.start = sequence_of(priming_id(stream), epoch)
        return stream.last_event_id or last_id

    async def run_client(client: RaceClient) -> None:
        nonlocal still_running
        rng = random.Random(client.index)
        last_id: str | None = None
        try:
            while not client.sessions or anyio.current_time() < deadline:
                if not client.sessions or rng.random() < FRESH_SESSION:
                    client.sessions.append(Session())
                    last_id = None
                last_id = await one_connection(client, rng, last_id, until=None)
        finally:
            still_running -= 1
            if still_running == 0:
                clients_done.set()
        # The catch-up: once nothing is published any more, one last reconnect must
        # bring the client exactly to the final head.
        await publisher_done.wait()
        last = client.sessions[-1].sequences
        if not last or last[-1] < final_head:
            await one_connection(client, rng, last_id, until=final_head)

    started = anyio.current_time()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(publisher)
        for client in clients:
            task_group.start_soon(run_client, client)
    elapsed = anyio.current_time() - started

    stats = hub.stats()
    connections = sum(client.connections for client in clients)
    sessions = sum(len(client.sessions) for client in clients)
    print(
        f"\nrace: {final_head} events, {connections} connections ({sessions} without an "
        f"id, {stats.replays} replays), {stats.delivered_events} frames in {elapsed:.1f} s"
    )
    for client in clients:
        assert client.errors == [], f"client {client.index}: {client.errors}"
        assert client.resets == [], f"client {client.index} got a Reset: {client.resets}"
        for number, session in enumerate(client.sessions):
            # Every session: exactly the events after its priming head, in order; the
            # last one up to the final head.
            end = final_head if session is client.sessions[-1] else None
            count = len(session.sequences) if end is None else end - session.start
            expected = list(range(session.start + 1, session.start + 1 + count))
            assert session.sequences == expected, (
                f"client {client.index}, session {number} (primed at {session.start}): "
                + first_difference(session.sequences, expected)
            )
    assert connections >= 3 * RACE_CLIENTS, "too few reconnects to exercise anything"
    assert sessions >= 2 * RACE_CLIENTS, "too few connections without an id"
    assert stats.replays >= RACE_CLIENTS
    assert stats.resets == {}
    assert stats.subscribers == 0


# -- closing a subscription someone waits on ----------------------------------------------


@pytest.mark.anyio
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "topics",
    [
        pytest.param(("a",), id="one-topic"),
        pytest.param(("a", "b"), id="several-topics"),
    ],
)
async def test_a_reader_waiting_on_a_closed_subscription_ends(
    topics: tuple[str, ...],
) -> None:
    hub = Hub()
    sub = hub.subscribe(*topics)
    assert await sub.prepare_stream()
    sub.next_nowait()  # the priming frame: from here on it waits
    ended = anyio.Event()

    async def reader() -> None:
        with pytest.raises(StopAsyncIteration):
            await sub.__anext__()
        ended.set()

    with anyio.fail_after(2):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(reader)
            await anyio.wait_all_tasks_blocked()  # parked in the hub's wait
            await sub.aclose()  # from another task (a handler's cleanup, a timeout)
            await hub.publish(topics[0], "wakes the topic's waiters")
            await ended.wait()


# -- the state machine ---------------------------------------------------------------------

TOPICS = ("a", "b")
#: A topic no subscriber is granted: its cursor entries must be ignored.
OTHER_KEY = source_key("not-granted")
FOREIGN_EPOCH = "zzzzzzzz"  # a valid epoch in form that no hub makes (they are hex)
MALFORMED_SINGLE = [
    "42",
    "nope",
    "é😀",
    "a-b",
    "-1",
    "ABCDEF01-1",  # upper case: not an id of this hub
    "x" * 10_000,
    "k7d2mq4x~3fa9c2d1-42",  # a cursor, given to a single topic
]
MALFORMED_SEVERAL = [
    "deadbeef-1",  # a single position, given to several topics
    "nope",
    "a~b~c",
    "k7d2mq4x~",
    "k7d2mq4x~1.k7d2mq4x~2",  # a key twice
    "k7d2mq4x~" + "1" * 41,  # a token too long
    ".".join(f"{n:08d}~1" for n in range(65)),  # too many entries
]

BLOCK = "block"  # next_nowait raised WouldBlock
END = "end"  # next_nowait raised StopAsyncIteration
READY = "ready"  # the model: a frame of the log is due (check_frame says which)
Outcome = bytes | str


@dataclass
class TopicModel:
    """A topic's whole history (the hub keeps only its tail)."""

    name: str
    history: int
    epoch: str | None = None  # known once the hub created the topic
    data: list[str] = field(default_factory=list)  # data[n - 1]: sequence n
    closed: bool = False

    @property
    def key(self) -> str:
        return source_key(self.name)

    @property
    def head(self) -> int:
        return len(self.data)

    @property
    def first(self) -> int:
        """The oldest sequence the log still holds (head + 1 when it holds none)."""
        return max(1, self.head - self.history + 1)

    def position(self, sequence: int) -> str:
        assert self.epoch is not None
        return f"{self.epoch}-{sequence}"


# A cursor entry for one topic, as the model knows it (never parsed back from a string):
# absent; a position in the topic's own epoch; in a foreign one; a token that is no
# position.
Entry = tuple[Literal["absent"]] | tuple[Literal["at", "foreign"], int] | tuple[Literal["token"]]


@dataclass(frozen=True)
class Expected:
    """A frame the hub sends before the log's: the priming id, or a Reset."""

    kind: Literal["prime", "reset"]
    event_id: str
    reason: str = ""
    reset_topics: tuple[str, ...] = ()


@dataclass
class Client:
    """One subscription and the model of where it is."""

    sub: Subscription
    topics: tuple[TopicModel, ...]
    next: list[int]  # per topic: the sequence it gets next
    cursor: dict[str, str]  # several topics: key -> position sent last (topic order)
    pending: list[Expected]  # the priming frame or a Reset, before the log's frames
    last_id: str | None  # what its client would send when it reconnects
    entries: list[Entry] | None  # the same, as the model knows it (None: no position)
    ended: bool = False
    connected: bool = True

    def current_id(self) -> str:
        if len(self.topics) == 1:
            return self.topics[0].position(self.next[0] - 1)
        return ".".join(f"{key}~{position}" for key, position in self.cursor.items())


def frame_event(frame: bytes) -> tuple[ParsedEvent | None, str]:
    parser = EventStreamParser()
    events = [item for item in parser.feed(frame) if isinstance(item, ParsedEvent)]
    assert len(events) <= 1, frame
    return (events[0] if events else None), parser.last_event_id


class HubMachine(RuleBasedStateMachine):
    """A hub driven one call at a time, each in the event loop of a portal (one loop per
    example, so an example that breaks cannot leave anything behind for the next)."""

    backend = "asyncio"

    def __init__(self) -> None:
        super().__init__()
        self._exit = ExitStack()
        self.portal = self._exit.enter_context(
            anyio.from_thread.start_blocking_portal(self.backend)
        )
        self.hub = Hub()
        self.topics: dict[str, TopicModel] = {}
        self.clients: list[Client] = []
        self.policy = "reset"
        self.stopped = False
        self.resets: dict[str, int] = {}
        self.dropped_overflow = 0
        self.published = 0

    def teardown(self) -> None:
        for client in self.clients:
            self.call(client.sub.close)
        self._exit.close()

    # -- helpers -----------------------------------------------------------------------

    def call(self, func: Callable[..., Any], *args: Any) -> Any:
        """``func(*args)`` in the event loop's thread (awaited if it is async)."""
        return self.portal.call(func, *args)

    def learn_epoch(self, topic: TopicModel) -> None:
        if topic.epoch is None:
            head = self.call(self.hub.head, topic.name)
            if head is not None:
                match = POSITION.fullmatch(head)
                assert match is not None, head
                assert int(match.group(2)) == topic.head, f"{topic.name}: head {head}"
                topic.epoch = match.group(1)

    def create_topic(self, name: str) -> None:
        self.hub.subscribe(name).close()

    def open_clients(self) -> list[Client]:
        return [client for client in self.clients if client.connected]

    def count_reset(self, reason: str) -> None:
        self.resets[reason] = self.resets.get(reason, 0) + 1

    def reset_frame(self, client: Client, reason: str, topics: list[TopicModel]) -> Expected:
        for index, topic in enumerate(client.topics):
            if topic in topics:
                client.next[index] = topic.head + 1
                client.cursor[topic.key] = topic.position(topic.head)
        self.count_reset(reason)
        return Expected(
            "reset", client.current_id(), reason, tuple(topic.name for topic in topics)
        )

    def publish_model(self, topic: TopicModel) -> str | None:
        """Publish one event to ``topic``; its id, or None when the hub refused it."""
        data = f"{topic.name}:{topic.head + 1}"
        try:
            event_id = self.call(self.hub.publish, topic.name, data)
        except TopicClosed:
            assert topic.closed or self.stopped, f"{topic.name} refused an event while open"
            return None
        assert not topic.closed, f"{topic.name} took an event while closed"
        assert not self.stopped, f"{topic.name} took an event after the hub stopped"
        topic.data.append(data)
        self.learn_epoch(topic)
        self.published += 1
        assert event_id == topic.position(topic.head)
        return str(event_id)

    # -- the oracle ----------------------------------------------------------------------

    def expect_next(self, client: Client) -> Expected | str:
        """What the subscription must hand out next, as the model sees it; updates it."""
        if client.pending:
            return client.pending.pop(0)
        if client.ended:
            return END
        if self.stopped:
            client.ended = True
            return END
        if any(client.next[i] <= topic.head for i, topic in enumerate(client.topics)):
            # Several topics: the hub takes turns; any ready topic may come next, so
            # the frame itself says which (see check_frame). One topic: it is this one.
            return READY
        if all(topic.closed for topic in client.topics):
            client.ended = True
            return END
        return BLOCK

    def check_frame(self, client: Client, frame: bytes) -> None:
        """``frame`` must be the next one of one of ``client``'s ready topics."""
        event, event_id = frame_event(frame)
        assert event is not None, f"a frame without data after the priming: {frame!r}"
        if event.event == "reset":
            info = json.loads(event.data)
            assert info["reason"] == "overflow", info
            (name,) = info["topics"]
            index = next(i for i, t in enumerate(client.topics) if t.name == name)
            topic = client.topics[index]
            assert client.next[index] < topic.first <= topic.head, (
                f"an overflow Reset on {name} at {client.next[index]}, but the log holds "
                f"{topic.first}..{topic.head}"
            )
            assert self.policy == "reset", "the disconnect policy must end the stream"
            expected = self.reset_frame(client, "overflow", [topic])
            assert info == {
                "reason": "overflow",
                "topics": [name],
                "resume_from": expected.event_id,
            }
            assert event_id == expected.event_id
            return
        name, _, number = event.data.partition(":")
        index = next(i for i, t in enumerate(client.topics) if t.name == name)
        topic = client.topics[index]
        sequence = client.next[index]
        assert sequence <= topic.head, f"{name}: nothing was ready, got {event.data}"
        assert topic.first <= sequence, (
            f"{name}: at {sequence}, which the log no longer holds "
            f"({topic.first}..{topic.head}), the client must get a Reset, got {event.data}"
        )
        assert int(number) == sequence, f"{name}: expected {sequence}, got {event.data}"
        assert event.event == "message"
        client.next[index] = sequence + 1
        client.cursor[topic.key] = topic.position(sequence)
        assert event_id == client.current_id(), (event_id, client.current_id())

    def check_overflow_ends(self, client: Client) -> bool:
        """Under the disconnect policy, a client behind the log ends (True)."""
        if self.policy != "disconnect":
            return False
        for index, topic in enumerate(client.topics):
            if client.next[index] < topic.first <= topic.head:
                return True
        return False

    def check_outcome(self, client: Client, outcome: Outcome) -> str | None:
        """Check one hand-out of ``client``'s subscription; BLOCK or END when it was
        one (expected), else None."""
        expected = self.expect_next(client)
        if expected == READY:
            if isinstance(outcome, str) and outcome == END and self.check_overflow_ends(client):
                client.ended = True
                self.dropped_overflow += 1
                return END
            assert isinstance(outcome, bytes), f"a frame was ready, got {outcome!r}"
            self.check_frame(client, outcome)
            client.last_id = frame_event(outcome)[1]
            client.entries = self.entries_of(client)
            return None
        if isinstance(expected, str):
            assert outcome == expected, f"expected {expected}, got {outcome!r}"
            return expected
        assert isinstance(outcome, bytes), f"expected {expected}, got {outcome!r}"
        event, event_id = frame_event(outcome)
        assert event_id == expected.event_id, (event_id, expected)
        if expected.kind == "prime":
            assert outcome == f"id: {expected.event_id}\n\n".encode()
        else:
            assert event is not None
            assert event.event == "reset"
            assert json.loads(event.data) == {
                "reason": expected.reason,
                "topics": list(expected.reset_topics),
                "resume_from": expected.event_id,
            }
        client.last_id = event_id
        client.entries = self.entries_of(client)
        return None

    def entries_of(self, client: Client) -> list[Entry]:
        """The client's position after the frame it got last: where each topic stands."""
        if len(client.topics) == 1:
            return [("at", client.next[0] - 1)]
        entries: list[Entry] = []
        for topic in client.topics:
            position = client.cursor[topic.key]
            entries.append(("at", int(position.rpartition("-")[2])))
        return entries

    # -- subscribing ---------------------------------------------------------------------

    def subscribe(
        self, topics: tuple[TopicModel, ...], last_id: str | None, entries: list[Entry] | None
    ) -> None:
        """Subscribe with ``last_id``, which stands for ``entries`` (None: the model
        classifies ``last_id`` itself: none, earliest or malformed)."""

        async def open_it() -> tuple[Subscription, bool]:
            sub = self.hub.subscribe(*(t.name for t in topics), last_event_id=last_id)
            return sub, await sub.prepare_stream()

        sub, streams = self.call(open_it)
        for topic in topics:
            self.learn_epoch(topic)
        client = Client(sub, topics, [], {}, [], last_id, entries)
        self.clients.append(client)
        heads = [topic.head for topic in topics]
        reasons: list[tuple[str, TopicModel]] = []
        prime = False
        if not last_id:
            starts = [head + 1 for head in heads]
            prime = True
        elif last_id == Hub.EARLIEST:
            starts = [topic.first for topic in topics]
        elif entries is None:
            starts = [head + 1 for head in heads]
            reasons = [("malformed", topic) for topic in topics]
        else:
            starts = []
            for topic, entry in zip(topics, entries, strict=True):
                start = topic.head + 1
                if entry[0] == "token":
                    reasons.append(("malformed", topic))
                elif entry[0] == "foreign":
                    reasons.append(("unknown", topic))
                elif entry[0] == "at":
                    sequence = entry[1]
                    if sequence > topic.head:
                        reasons.append(("unknown", topic))
                    elif sequence < topic.first - 1:
                        reasons.append(("gone", topic))
                    else:
                        start = sequence + 1
                starts.append(start)
        client.next = starts
        client.cursor = {
            topic.key: topic.position(start - 1)
            for topic, start in zip(topics, starts, strict=True)
        }
        if reasons:
            # One Reset, for every topic that cannot resume, named by the first reason.
            client.pending.append(
                self.reset_frame(client, reasons[0][0], [topic for _, topic in reasons])
            )
        elif prime:
            client.pending.append(Expected("prime", client.current_id()))
        if all(
            topic.closed and start > topic.head
            for topic, start in zip(topics, client.next, strict=True)
        ):
            client.ended = True
            if not reasons:
                client.pending.clear()
        expect_stream = not (client.ended and not client.pending)
        assert streams == expect_stream, (
            f"prepare_stream() returned {streams}; the model expected "
            f"{'a stream' if expect_stream else '204 (nothing ever to send)'}"
        )
        if not streams:
            # 204: the response never iterates it, and closes it.
            assert self.call(self.read_now, sub, 1) == [END]
            self.call(sub.close)
            client.connected = False

    def pick_topics(self, data: st.DataObject) -> tuple[TopicModel, ...]:
        names = data.draw(
            st.sampled_from([("a",), ("b",), ("a", "b"), ("b", "a")]), label="topics"
        )
        return tuple(self.topics[name] for name in names)

    def draw_entry(self, data: st.DataObject, topic: TopicModel, several: bool) -> Entry:
        head, first = topic.head, topic.first
        kinds = ["at", "future", "foreign"]
        if first >= 2:
            kinds.append("trimmed")
        if several:
            kinds += ["absent", "token"]
        kind = data.draw(st.sampled_from(kinds), label=f"{topic.name} cursor")
        if kind == "at":  # a retained position: the log holds everything after it
            return ("at", data.draw(st.integers(first - 1, head), label="at"))
        if kind == "trimmed":
            return ("at", data.draw(st.integers(0, first - 2), label="trimmed"))
        if kind == "future":
            return ("at", data.draw(st.integers(head + 1, head + 3), label="future"))
        if kind == "foreign":
            return ("foreign", data.draw(st.integers(0, head + 1), label="foreign"))
        if kind == "absent":
            return ("absent",)
        return ("token",)

    def render(self, topics: tuple[TopicModel, ...], entries: list[Entry], extra: bool) -> str:
        def position(topic: TopicModel, entry: Entry) -> str:
            if entry[0] == "at":
                return topic.position(entry[1])
            if entry[0] == "foreign":
                return f"{FOREIGN_EPOCH}-{entry[1]}"
            return "no_position"  # a token, but not a position

        if len(topics) == 1:
            return position(topics[0], entries[0])
        parts = [
            f"{topic.key}~{position(topic, entry)}"
            for topic, entry in zip(topics, entries, strict=True)
            if entry[0] != "absent"
        ]
        if extra:
            parts.append(f"{OTHER_KEY}~deadbeef-1")
        return ".".join(parts)

    # -- rules -----------------------------------------------------------------------------

    @initialize(
        history=st.sampled_from([1, 3, 5]),
        policy=st.sampled_from(["reset", "disconnect"]),
    )
    def start(self, history: int, policy: Literal["reset", "disconnect"]) -> None:
        self.hub = Hub(history=history, on_overflow=policy)
        self.policy = policy
        self.topics = {name: TopicModel(name, history) for name in TOPICS}

    @rule(topic=st.sampled_from(TOPICS), count=st.integers(1, 4))
    def publish(self, topic: str, count: int) -> None:
        for _ in range(count):
            self.publish_model(self.topics[topic])

    @rule(data=st.data())
    def subscribe_without_id(self, data: st.DataObject) -> None:
        topics = self.pick_topics(data)
        last_id = data.draw(st.sampled_from([None, ""]), label="no id")
        self.subscribe(topics, last_id, None)

    @rule(data=st.data())
    def subscribe_from_earliest(self, data: st.DataObject) -> None:
        self.subscribe(self.pick_topics(data), Hub.EARLIEST, None)

    @rule(data=st.data())
    def subscribe_malformed(self, data: st.DataObject) -> None:
        topics = self.pick_topics(data)
        choices = MALFORMED_SINGLE if len(topics) == 1 else MALFORMED_SEVERAL
        last_id = data.draw(st.sampled_from(choices), label="malformed")
        self.subscribe(topics, last_id, None)

    @rule(data=st.data())
    def subscribe_with_cursor(self, data: st.DataObject) -> None:
        topics = self.pick_topics(data)
        for topic in topics:  # a cursor names the topic's epoch: the topic must exist
            if topic.epoch is None:
                self.call(self.create_topic, topic.name)
                self.learn_epoch(topic)
        several = len(topics) > 1
        entries = [self.draw_entry(data, topic, several) for topic in topics]
        extra = several and data.draw(st.booleans(), label="a key not granted")
        last_id = self.render(topics, entries, extra)
        if several and data.draw(st.booleans(), label="reversed"):
            last_id = ".".join(reversed(last_id.split(".")))  # order does not matter
        self.subscribe(topics, last_id, entries if last_id else None)

    @staticmethod
    def read_now(sub: Subscription, count: int) -> list[Outcome]:
        out: list[Outcome] = []
        for _ in range(count):
            try:
                out.append(sub.next_nowait())
            except anyio.WouldBlock:
                out.append(BLOCK)
                break
            except StopAsyncIteration:
                out.append(END)
                break
        return out

    @precondition(lambda self: self.open_clients())
    @rule(data=st.data(), count=st.integers(1, 8))
    def read(self, data: st.DataObject, count: int) -> None:
        client = data.draw(st.sampled_from(self.open_clients()), label="client")
        self.read_client(client, count)

    def read_client(self, client: Client, count: int) -> None:
        outcomes = self.call(self.read_now, client.sub, count)
        for number, outcome in enumerate(outcomes):
            stop = self.check_outcome(client, outcome)
            if stop is not None:
                assert number == len(outcomes) - 1
                return
        assert len(outcomes) == count

    def read_all(self, client: Client) -> None:
        while True:
            outcomes = self.call(self.read_now, client.sub, 16)
            for outcome in outcomes:
                if self.check_outcome(client, outcome) is not None:
                    return

    @precondition(lambda self: self.open_clients())
    @rule(data=st.data())
    def freeze(self, data: st.DataObject) -> None:
        """One client stops reading while its topic goes past the log's size; every
        other client keeps reading, and is not slowed."""
        client = data.draw(st.sampled_from(self.open_clients()), label="frozen")
        index = data.draw(st.integers(0, len(client.topics) - 1), label="topic")
        topic = client.topics[index]
        if topic.closed or self.stopped:
            return
        others = [c for c in self.open_clients() if c is not client]
        for _ in range(max(1, client.next[index] + topic.history - topic.head)):
            self.publish_model(topic)
            for other in others:
                self.read_all(other)
        # The frozen client reads again when a `read` rule picks it.

    @precondition(lambda self: self.open_clients())
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        client = data.draw(st.sampled_from(self.open_clients()), label="leaves")
        self.call(client.sub.close)
        client.connected = False

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        """A client leaves (if it had not) and comes back with its last event id."""
        client = data.draw(st.sampled_from(self.clients), label="reconnects")
        if client.connected:
            self.call(client.sub.close)
            client.connected = False
        self.subscribe(client.topics, client.last_id, client.entries)

    @precondition(lambda self: self.open_clients())
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        client = data.draw(st.sampled_from(self.open_clients()), label="dropped")
        self.call(client.sub.drop)
        client.ended = True

    # Closing and stopping end most of what follows: they are drawn rarely (a gate that
    # opens on the last value, so that shrinking, towards 0, keeps the example open).
    @rule(topic=st.sampled_from(TOPICS), final=st.booleans(), gate=st.integers(0, 5))
    def close(self, topic: str, final: bool, gate: int) -> None:
        if gate != 5:
            return
        model = self.topics[topic]
        event = f"{topic}:{model.head + 1}" if final else None
        try:
            self.call(self.hub.close, topic, event)
        except TopicClosed:
            assert self.stopped, "only a stopped hub refuses the final event"
            assert final
            assert not model.closed
            return
        if model.closed:
            return  # closing again does nothing (and publishes no final event)
        if final:
            model.data.append(f"{topic}:{model.head + 1}")
            self.published += 1
        model.closed = True
        self.learn_epoch(model)

    @rule(gate=st.integers(0, 15))
    def stop(self, gate: int) -> None:
        if gate != 15:
            return
        self.call(self.hub.stop)
        self.stopped = True

    @precondition(lambda self: self.open_clients())
    @rule(
        data=st.data(),
        action=st.sampled_from(["publish", "publish", "publish", "drop", "close", "stop"]),
    )
    def wake_a_waiting_reader(self, data: st.DataObject, action: str) -> None:
        """A reader parked in the hub's wait (`__anext__` with nothing ready) is woken by
        a publish, by the close of its last open topic, by `drop()` and by `stop()`."""
        client = data.draw(st.sampled_from(self.open_clients()), label="waiting")
        self.read_all(client)  # everything ready first: then it has to wait
        if not self.would_block(client):
            return  # its stream ended
        open_topics = [t for t in client.topics if not t.closed]
        if action == "close" and len(open_topics) != 1:
            action = "drop"  # closing one of two open topics must not wake it: no end
        topic = data.draw(st.sampled_from(open_topics), label="woken by")

        async def act() -> None:
            if action == "publish":
                await self.hub.publish(topic.name, f"{topic.name}:{topic.head + 1}")
            elif action == "close":
                await self.hub.close(topic.name)
            elif action == "drop":
                client.sub.drop()
            else:
                await self.hub.stop()

        async def wait_and_act() -> Outcome:
            result: list[Outcome] = []

            async def reader() -> None:
                try:
                    result.append(await client.sub.__anext__())
                except StopAsyncIteration:
                    result.append(END)

            with anyio.fail_after(2):
                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(reader)
                    await anyio.wait_all_tasks_blocked()  # parked in the hub's wait
                    assert result == [], f"the reader did not wait: {result}"
                    await act()
            return result[0]

        event(f"a waiting reader of {len(client.topics)} topics woken by {action}")
        try:
            outcome = self.call(wait_and_act)
        except TimeoutError:
            raise AssertionError(f"a waiting reader was not woken by {action}") from None
        if action == "publish":
            topic.data.append(f"{topic.name}:{topic.head + 1}")
            self.published += 1
        elif action == "close":
            topic.closed = True
        elif action == "drop":
            client.ended = True
        else:
            self.stopped = True
        self.check_outcome(client, outcome)

    def would_block(self, client: Client) -> bool:
        if client.pending or client.ended or self.stopped:
            return False
        if any(client.next[i] <= t.head for i, t in enumerate(client.topics)):
            return False
        return not all(topic.closed for topic in client.topics)

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def check_counters(self) -> None:
        stats = self.call(self.hub.stats)
        assert stats.subscribers == len(self.open_clients())
        assert stats.resets == self.resets
        assert stats.published == self.published
        assert stats.dropped.get("overflow", 0) == self.dropped_overflow
        for topic in self.topics.values():
            if topic.epoch is not None:
                assert self.call(self.hub.head, topic.name) == topic.position(topic.head)


@pytest.mark.timeout(120)
def test_every_subscriber_gets_the_log_after_its_cursor_or_a_reset(anyio_backend: str) -> None:
    class Machine(HubMachine):
        backend = anyio_backend

    run_state_machine_as_test(
        Machine,
        settings=settings(max_examples=80, stateful_step_count=40, deadline=None),
    )
