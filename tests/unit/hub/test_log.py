"""The topic log keeps its own invariants: every change goes through its methods, and
those keep ``oldest .. newest``, the bounds, the ids and the lag samples consistent."""

from __future__ import annotations

import anyio
import pytest

from asgi_sse.backends import NOTHING_LOST, BackfillOutcome, TopicLog

pytestmark = pytest.mark.anyio


def log_of(*, max_events: int = 10, max_bytes: int = 1 << 20, ids: str = "r") -> TopicLog:
    """A log fed like a backend with ids of its own (``r-<n>``) feeds it, from ``r-0``."""
    log = TopicLog("t", max_events=max_events, max_bytes=max_bytes)
    if ids:
        log.attach(after=f"{ids}-0")
    return log


def fill(log: TopicLog, first: int, last: int, body: bytes = b"data: x\n\n") -> None:
    for number in range(first, last + 1):
        log.append(f"r-{number}", b"", body)


def held(log: TopicLog) -> list[str]:
    return [log.id_at(sequence) for sequence in range(log.oldest, log.newest + 1)]


def test_append_numbers_events_and_frames_them_with_their_id() -> None:
    log = log_of()
    frame = log.append("r-1", b"event: e\n", b"data: x\n\n")
    assert frame == b"event: e\nid: r-1\ndata: x\n\n"
    assert (log.oldest, log.newest, log.bytes_held) == (1, 1, len(frame))
    assert log.frame_at(1)[0] is frame
    assert (log.id_at(0), log.newest_id()) == ("r-0", "r-1")
    assert TopicLog.frame_size("r-1", b"event: e\n", b"data: x\n\n") == len(frame)


def test_memory_ids_are_the_epoch_and_the_sequence() -> None:
    log = log_of(ids="")
    assert log.newest_id() == f"{log.epoch}-0"
    log.append(f"{log.epoch}-1", b"", b"data: x\n\n")
    assert [log.id_at(0), log.id_at(1)] == [f"{log.epoch}-0", f"{log.epoch}-1"]


def test_the_log_keeps_max_events_and_max_bytes_but_always_the_newest() -> None:
    log = log_of(max_events=3)
    fill(log, 1, 5)
    assert held(log) == ["r-3", "r-4", "r-5"]
    assert log.id_at(log.oldest - 1) == "r-2"
    big = log_of(max_bytes=40)
    fill(big, 1, 3, b"data: " + b"x" * 30 + b"\n\n")  # one frame is over the bound
    assert held(big) == ["r-3"]


def test_backfill_adds_older_events_all_or_nothing() -> None:
    log = log_of()
    log.attach(after="r-3")
    fill(log, 4, 5)
    older = [("r-3", b"", b"data: 3\n\n"), ("r-2", b"", b"data: 2\n\n")]
    outcome: BackfillOutcome = log.backfill(older, previous_id="r-1", trim_to_fit=False)
    assert outcome == "filled"
    assert held(log) == ["r-2", "r-3", "r-4", "r-5"]
    assert log.id_at(log.oldest - 1) == "r-1"
    assert log.bytes_held == sum(len(frame[0]) for frame in log.frames)


@pytest.mark.parametrize(
    ("trim_to_fit", "outcome", "kept"),
    [(False, "too_big", ["r-4"]), (True, "filled", ["r-3", "r-4"])],
)
def test_backfill_within_the_bytes_bound(
    trim_to_fit: bool, outcome: BackfillOutcome, kept: list[str]
) -> None:
    body = b"data: " + b"x" * 20 + b"\n\n"
    size = TopicLog.frame_size("r-4", b"", body)
    log = log_of(max_bytes=2 * size + 4)  # room for one more frame, not two
    log.attach(after="r-3")
    fill(log, 4, 4, body)
    older = [("r-3", b"", body), ("r-2", b"", body)]
    assert log.backfill(older, previous_id="r-1", trim_to_fit=trim_to_fit) == outcome
    assert held(log) == kept
    assert log.id_at(log.oldest - 1) == ("r-2" if trim_to_fit else "r-3")


def test_backfill_of_more_than_the_room_changes_nothing() -> None:
    log = log_of(max_events=2)
    log.attach(after="r-3")
    fill(log, 4, 4)
    assert log.room_for_older() == 1
    older = [("r-3", b"", b"data: 3\n\n"), ("r-2", b"", b"data: 2\n\n")]
    assert log.backfill(older, previous_id="r-1", trim_to_fit=False) == "no_room"
    assert held(log) == ["r-4"]
    assert log.backfill([], previous_id="r-3", trim_to_fit=True) == "filled"


def test_losing_history_takes_a_sequence_no_one_is_past() -> None:
    log = log_of()
    fill(log, 1, 3)
    assert log.lost_through == NOTHING_LOST
    log.lose_history("r-9")
    assert (log.newest, log.lost_through, log.oldest) == (4, 4, 5)
    assert (log.frames, log.bytes_held, log.newest_id()) == (type(log.frames)(), 0, "r-9")
    assert log.room_for_older() == 0  # nothing older than a loss comes back
    log.append("r-10", b"", b"data: x\n\n")
    assert held(log) == ["r-10"]


def test_lag_samples_follow_the_events_they_time() -> None:
    log = log_of(max_events=2)
    log.measure_lag_every(2)
    fill(log, 1, 2)
    log.append("r-3", b"", b"data: x\n\n", published_at=12.5)
    log.append("r-4", b"", b"data: x\n\n", published_at=13.5)
    assert log.lag_samples == {4: 13.5}  # 2 left the log with its event
    # Another rate (another observer): the samples taken for the one before are
    # forgotten, so an observer that says never (0) is never told a lag.
    log.measure_lag_every(0)
    assert log.lag_samples == {}
    log.append("r-5", b"", b"data: x\n\n")
    assert log.lag_samples == {}


async def test_a_change_wakes_single_and_multi_topic_waiters() -> None:
    log = log_of()
    single = log.next_change()
    assert log.next_change() is single
    multi = anyio.Event()
    log.add_waiter(multi)
    log.close()
    assert (log.closed, single.is_set(), multi.is_set()) == (True, True, True)
    again = anyio.Event()
    log.add_waiter(again)
    log.remove_waiter(again)
    log.wake()
    assert not again.is_set()


def test_attach_detach_and_subscribers() -> None:
    log = TopicLog("t", max_events=1, max_bytes=100)
    assert not log.attached
    log.attach(after="r-5", closed=True)
    assert (log.attached, log.closed, log.newest_id()) == (True, True, "r-5")
    log.attach()  # never reopens
    assert log.closed
    log.detach()
    assert not log.attached
    log.add_subscriber()
    log.add_subscriber()
    log.remove_subscriber()
    assert log.subscribers == 1
    before = log.last_used
    log.mark_used()
    assert log.last_used >= before
