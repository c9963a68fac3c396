"""Reporting: medians and ratios, markdown tables, RESULTS.md and the PNG chart.

Raw results come in as `Runs`: scenario -> subject (server or encoder) -> one dict of
measurements per round (None where that run failed). A figure is the median over the
rounds; a ratio is the median over the rounds of (subject / reference) measured in the
same round, because these machines are noisy and ratios are what count.

A subject may carry a tag after `@` (the hub's fan-out: `hub@1000`, `minimal@1000`): its
reference is then the scenario's reference with the same tag, and the table shows the
name without the tag.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = (
    "SCENARIOS",
    "Runs",
    "markdown_tables",
    "median_metric",
    "median_ratio",
    "targets_table",
    "write_chart",
    "write_results",
)

Runs = dict[str, dict[str, list[dict[str, Any] | None]]]
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Metric:
    key: str  # in the measurement dicts
    label: str
    fmt: str = "{:,.0f}"
    scale: float = 1.0
    ratio: bool = False  # also show median(subject / reference)


@dataclass(frozen=True)
class Scenario:
    title: str
    reference: str
    metrics: tuple[Metric, ...]
    chart_metric: str  # key of the metric charted as a ratio
    chart_title: str
    chart: bool = True  # a panel in results.png


SCENARIOS: dict[str, Scenario] = {
    "burst": Scenario(
        "Burst: one connection, events as fast as possible",
        "minimal",
        (
            Metric("events_per_s", "events/s", ratio=True),
            Metric("mib_per_s", "MiB/s", "{:,.1f}"),
        ),
        "events_per_s",
        "burst events/s (higher is better)",
    ),
    "fanout": Scenario(
        "Fan-out: subscribers to one 10 Hz ticker",
        "minimal",
        (
            Metric("delivered_per_s", "delivered events/s"),
            Metric("server_cpu_us_per_event", "server CPU µs/event", "{:.2f}", ratio=True),
            Metric("server_cpu_share", "server CPU", "{:.0%}"),
            Metric("p50_ms", "p50 latency ms", "{:.1f}"),
            Metric("p99_ms", "p99 latency ms", "{:.1f}"),
            Metric("client_cpu_share", "load generator CPU", "{:.0%}"),
        ),
        "server_cpu_us_per_event",
        "fan-out server CPU per event (lower is better)",
    ),
    "idle": Scenario(
        "Idle: open streams that send nothing",
        "minimal",
        (
            Metric("rss_per_conn", "RSS KiB/conn", "{:.1f}", scale=1 / 1024, ratio=True),
            Metric("tasks_per_conn", "asyncio tasks/conn", "{:.2f}"),
        ),
        "rss_per_conn",
        "idle memory per connection (lower is better)",
    ),
    "encode": Scenario(
        "Encode: typed event to bytes, construction included (in-process)",
        "hand-written",
        (Metric("events_per_s", "events/s", ratio=True),),
        "events_per_s",
        "encode events/s (higher is better)",
    ),
    "hub_fanout": Scenario(
        "Hub: one publisher at 10 Hz, `hub` (asgi-sse's `Hub`) vs `minimal` (pre-encoded "
        "bytes, one shared ticker)",
        "minimal",
        (
            Metric("conns", "subscribers"),
            Metric("delivered_per_s", "delivered events/s"),
            Metric("server_cpu_us_per_event", "server CPU µs/event", "{:.2f}", ratio=True),
            Metric("server_cpu_share", "server CPU", "{:.0%}"),
            Metric("p50_ms", "p50 latency ms", "{:.1f}"),
            Metric("p99_ms", "p99 latency ms", "{:.1f}", ratio=True),
            Metric("client_cpu_share", "load generator CPU", "{:.0%}"),
        ),
        "server_cpu_us_per_event",
        "hub fan-out server CPU per event (lower is better)",
        chart=False,
    ),
    "hub_burst": Scenario(
        "Hub burst: one publisher, events as fast as it can to every subscriber",
        "minimal",
        (
            Metric("conns", "subscribers"),
            Metric("events", "events each"),
            Metric("delivered_per_s", "delivered events/s", ratio=True),
            Metric("server_cpu_us_per_event", "server CPU µs/event", "{:.2f}", ratio=True),
            Metric("publish_s", "publishing s", "{:.2f}"),
            Metric("incomplete", "subscribers short", "{:.0f}"),
        ),
        "delivered_per_s",
        "hub burst delivered events/s (higher is better)",
        chart=False,
    ),
    "hub_idle": Scenario(
        "Hub idle: subscribers of a topic nobody publishes to",
        "minimal",
        (
            Metric("rss_per_conn", "RSS KiB/subscriber", "{:.1f}", scale=1 / 1024, ratio=True),
            Metric("tasks_per_conn", "asyncio tasks/subscriber", "{:.2f}"),
        ),
        "rss_per_conn",
        "hub idle memory per subscriber (lower is better)",
        chart=False,
    ),
}


def reference_of(subject: str, reference: str) -> str:
    """The reference row of ``subject``: ``reference``, with the subject's `@` tag."""
    _, at, tag = subject.partition("@")
    return f"{reference}@{tag}" if at else reference


def median_metric(rounds: Sequence[dict[str, Any] | None], key: str) -> float | None:
    values = [r[key] for r in rounds if r is not None and r.get(key) is not None]
    return statistics.median(values) if values else None


def median_ratio(
    rounds: Sequence[dict[str, Any] | None],
    reference: Sequence[dict[str, Any] | None],
    key: str,
) -> float | None:
    """Median over rounds of subject/reference, pairing the runs of the same round."""
    ratios = [
        r[key] / ref[key]
        for r, ref in zip(rounds, reference, strict=False)  # no reference: no ratio
        if r is not None and ref is not None and r.get(key) and ref.get(key)
    ]
    return statistics.median(ratios) if ratios else None


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def markdown_tables(runs: Runs) -> str:
    """One markdown table per scenario that ran."""
    parts: list[str] = []
    for name, scenario in SCENARIOS.items():
        subjects = runs.get(name)
        if not subjects:
            continue
        header = ["", "runs"]
        for metric in scenario.metrics:
            header.append(metric.label)
            if metric.ratio:
                header.append(f"{TIMES} {scenario.reference}")
        rows = [header, ["---"] * len(header)]
        for subject, rounds in subjects.items():
            reference = subjects.get(reference_of(subject, scenario.reference), [])
            ok = sum(r is not None for r in rounds)
            row = [f"`{subject.partition('@')[0]}`", f"{ok}/{len(rounds)}"]
            for metric in scenario.metrics:
                value = median_metric(rounds, metric.key)
                row.append(_cell(None if value is None else value * metric.scale, metric.fmt))
                if metric.ratio:
                    ratio = median_ratio(rounds, reference, metric.key)
                    row.append(_cell(ratio, "{:.2f}" + TIMES))
            rows.append(row)
        table = "\n".join("| " + " | ".join(row) + " |" for row in rows)
        parts.append(f"### {scenario.title}\n\n{table}\n")
    return "\n".join(parts)


@dataclass(frozen=True)
class Target:
    """One of the library's performance targets, checked against a run."""

    label: str
    scenario: str
    subject: str
    key: str
    reference: str | None  # None: an absolute figure, not a ratio
    bound: float
    at_most: bool  # True: the figure must be <= bound; False: >= bound
    why_not: str  # the explanation printed when the target is not met


_HUB_SUBSCRIBER_PATH = (
    "in-process, under cachegrind (`python benchmarks/hub_profile.py --instructions "
    "--subs 1000`, one event per wake-up), issue 18 cut the hub's delivery path from "
    "34,562 to ~26,000 and then to ~20,500 instructions per delivered event, against "
    "~18,500 for the hand-written broadcaster (1.86x, 1.41x, 1.11x; at 5,000 "
    "subscribers 24,316 against 20,234, 1.20x, and in a later run 23,008 against "
    "20,283, 1.13x): a bare loop future per parked "
    "subscriber, counters kept once, and the pump stepping a one-topic subscription "
    "without an `__anext__` coroutine per event (it sends, then awaits the log's "
    "future). What is left: the connection's send bookkeeping (the time stamp "
    "`send_timeout` needs, the state, the fair share), the response's watcher and the "
    "subscription's ids and counters; the broadcaster watches for no disconnect, "
    "keep-alive or stalled client, and keeps no ids. Given the one thing a server must "
    "do that it skips - noticing a client that leaves while it idles: a task per "
    "connection awaiting `receive()` (`--subjects hub,broadcaster,watching`) - it "
    "costs 18,789 at 1,000 subscribers and 21,018 at 5,000, and the hub 20,494 and "
    "23,008: 1.09x and 1.10x of it (1.11x and 1.13x of the bare broadcaster in the "
    "same runs)"
)
_HUB_P99 = (
    "p99 is the tail of one 10 Hz tick's wake-ups, so it moves with the machine: at "
    "1,000 subscribers it measured 1.11x in the full run at ac565c6 and 1.38x in the "
    "next one, with the CPU per event within the bound in both. The excess is the "
    "garbage collector's full collections, which every subscriber waits out: in two "
    "rounds at 1,000 subscribers the hub's p99 was 43.4 / 57.2 ms against `minimal`'s "
    "16.8 / 14.3, and 17.3 / 16.9 ms with the server's collector off (`BENCH_NO_GC=1`); "
    "`gc.freeze()` after the app's imports brought it to 24.6 / 24.3 ms (docs: "
    "explanation/performance.md). The cost per event: "
)
_HUB_SATURATED = (
    "at 5,000 subscribers x 10 Hz the hub needs about all of the one core it has (its "
    "server CPU column: CPU per event x 50,000 events/s), so its publisher, in the "
    "same loop, falls behind and latency follows CPU; `minimal` needs less of the core "
    "(its column). The cost per event: see the 1,000-subscriber row, "
)
_TYPED_EVENT = (
    "the event object is one pydantic validation: `Tick(data=payload, id=i)` costs "
    "~9,100 instructions (~2,500 of them BaseModel's Python `__init__` and the call, "
    "the rest pydantic-core; a plain Python class with a keyword `__init__` costs "
    "~3,900 alone). A Python fast path around pydantic-core measured slower (13,800 "
    "against 9,950 instructions): pydantic is the floor"
)
_COALESCING = (
    "a plain generator's events go out one `send` each, as `minimal_pydantic`'s do. "
    "In-process, with a `send` that does nothing (`python benchmarks/typed_profile.py`, "
    "instruction counts): `minimal_pydantic` 30,921 per event, asgi-sse doing the same "
    "work (`Tick.frame` per event) 30,380 (0.98x), and with a `Tick` object per event "
    "40,092 (1.30x): " + _TYPED_EVENT + ". The same work through the server is the "
    "`asgi_sse_frame` target below. Joining a burst's frames into one `send` would "
    "pass this (a prototype that held them while the stream ran on and flushed them "
    "when it suspended measured 1.5-1.7x `minimal_pydantic`, 2.8x sse-starlette in a "
    "quick run) but it sends while the stream sits in one of its own awaits: a "
    "shielded await would then protect the response's send from a frozen or departed "
    "client, and three semantics tests fail (docs: explanation/performance.md). "
    "`buffered()` runs the stream in a task of its own and joins what is ready"
)


TARGETS: tuple[Target, ...] = (
    Target(
        "burst events/s vs `minimal_pydantic`, plain generator (typed events built per event)",
        "burst",
        "asgi_sse",
        "events_per_s",
        "minimal_pydantic",
        1.0,
        False,
        _COALESCING + ": the next row",
    ),
    Target(
        "burst events/s vs `minimal_pydantic`, `buffered()` stream",
        "burst",
        "asgi_sse_buffered",
        "events_per_s",
        "minimal_pydantic",
        1.0,
        False,
        "",
    ),
    Target(
        "burst events/s vs `sse_starlette`",
        "burst",
        "asgi_sse",
        "events_per_s",
        "sse_starlette",
        3.0,
        False,
        "sse-starlette sends one event per `send` too. Counted through uvicorn "
        "(`python benchmarks/server_instructions.py`), it costs 98,138 user-space "
        "instructions per event, the hand-written `minimal_pydantic` 36,012 (2.7x fewer) "
        "and asgi-sse with a `Tick` per event 45,196 (2.2x fewer): with one `send` per "
        "event, a 3x lead would need fewer instructions than the hand-written app, and "
        "the kernel's cost per `write` (the same for all) narrows every ratio of "
        "events/s further. Only joined writes get there. " + _COALESCING,
    ),
    Target(
        "fan-out server CPU per event vs `minimal`",
        "fanout",
        "asgi_sse",
        "server_cpu_us_per_event",
        "minimal",
        1.3,
        True,
        "",
    ),
    Target(
        "fan-out server CPU per event, a typed event built per subscriber "
        "(`asgi_sse_typed`) vs `minimal_pydantic`",
        "fanout",
        "asgi_sse_typed",
        "server_cpu_us_per_event",
        "minimal_pydantic",
        1.15,
        True,
        "per subscriber and event asgi-sse builds an event object where "
        "`minimal_pydantic` only dumps the tick's shared model into an f-string. "
        "In-process (`python benchmarks/typed_profile.py`, 200 subscribers, instruction "
        "counts): 41,755 per delivered event against 31,803 (1.31x); doing "
        "`minimal_pydantic`'s work (`Tick.frame` per subscriber, `asgi_sse_frame`) "
        "31,954 (1.005x): what the response, its watcher and the pump add is paid for "
        "by `Tick.frame` being cheaper than `model_dump_json()` and an f-string. So the "
        "difference is the object: " + _TYPED_EVENT + ". Encoding once per tick "
        "(`Tick.frame`, the `asgi_sse` row) is the library's way to fan out",
    ),
    Target(
        "same work as `minimal_pydantic`: burst events/s, `Tick.frame` per event in a "
        "plain generator (`asgi_sse_frame`)",
        "burst",
        "asgi_sse_frame",
        "events_per_s",
        "minimal_pydantic",
        1.0,
        False,
        "counted through uvicorn (`python benchmarks/server_instructions.py`: the server "
        "process under cachegrind, a real socket), the same work costs 35,510 "
        "user-space instructions per event against `minimal_pydantic`'s 36,012 "
        "(0.986x), and `strace -c` shows the same one `write` per event for both; "
        "asgi-sse adds one turn of the event loop every ~32 sends (its fair share: "
        "64 KiB, a send counted as at least 2 KiB, so one connection's burst cannot "
        "starve the others), one `epoll_wait` each. Events/s on this shared machine move "
        "by ~15% between runs of one server, so a ratio below 1 here is within that "
        "noise (three alternating runs under `perf stat`: 73,175 / 68,751 / 72,411 "
        "against 70,771 / 68,251 / 81,303 events/s)",
    ),
    Target(
        "same work as `minimal_pydantic`: fan-out server CPU per event, `Tick.frame` per "
        "subscriber (`asgi_sse_frame`)",
        "fanout",
        "asgi_sse_frame",
        "server_cpu_us_per_event",
        "minimal_pydantic",
        1.15,
        True,
        "",
    ),
    Target(
        "fan-out p99 latency, ms",
        "fanout",
        "asgi_sse",
        "p99_ms",
        None,
        1.0,
        True,
        "one ticker wakes all 1,000 subscribers at once and one core sends their frames "
        "one after the other, so the last subscriber waits for ~1,000 sends: p99 is close"
        " to the whole tick's server time, for every server here. Even `ceiling`, a raw-"
        "socket server that does nothing but one write per subscriber, has a p99 of tens "
        "of ms here (see its row: the load generator's own floor). 1 ms would need < 1 µs"
        " of server time per subscriber. What asgi-sse adds over `minimal` is garbage-"
        "collection pauses (more long-lived objects per connection make a full collection"
        " longer): with `gc.disable()` in the asgi_sse server, one earlier run measured "
        "p99 33.3 ms vs `minimal` 28.9 ms (1.15x), against 65.7 vs 35.8 ms with GC on",
    ),
    Target(
        "idle RSS per connection vs `minimal` (keep-alives on)",
        "idle",
        "asgi_sse",
        "rss_per_conn",
        "minimal",
        1.5,
        True,
        "",
    ),
    Target(
        "idle asyncio tasks per connection",
        "idle",
        "asgi_sse",
        "tasks_per_conn",
        None,
        2.0,
        True,
        "",
    ),
    Target(
        "encode, object path `Tick(data=..., id=i).encode()` vs hand-written",
        "encode",
        "asgi_sse",
        "events_per_s",
        "hand-written",
        0.9,
        False,
        _TYPED_EVENT
        + ". Encoding it costs ~10,000 more, ~6,000 of them pydantic-core's serializer "
        "and ~1,700 the frame's one %-format (every attribute lookup on a pydantic "
        "instance is off CPython's fast path: pydantic defines `__getattr__`). Issue 18 "
        "made encoding cheaper (per-class frame formats, the id union tried int first, "
        "no regex for ids in `frame()` or `check_id()`): counted with `python "
        "benchmarks/encode.py --instructions`, the object path went from 0.84x to 0.88x "
        "the hand-written cost (32,075 against 28,127 instructions per event). "
        "`Tick.frame(data, id=...)` encodes without building the object: the next row",
    ),
    Target(
        "encode, hot path `Tick.frame(data, id=i)` vs hand-written",
        "encode",
        "asgi_sse (frame)",
        "events_per_s",
        "hand-written",
        1.0,
        False,
        "",
    ),
    Target(
        "hub fan-out, 1,000 subscribers: server CPU per delivered event vs `minimal` "
        "(pre-encoded bytes)",
        "hub_fanout",
        "hub@1000",
        "server_cpu_us_per_event",
        "minimal@1000",
        1.25,
        True,
        _HUB_SUBSCRIBER_PATH,
    ),
    Target(
        "hub fan-out, 5,000 subscribers: server CPU per delivered event vs `minimal` "
        "(pre-encoded bytes)",
        "hub_fanout",
        "hub@5000",
        "server_cpu_us_per_event",
        "minimal@5000",
        1.25,
        True,
        _HUB_SUBSCRIBER_PATH,
    ),
    Target(
        "hub fan-out, 1,000 subscribers: p99 latency vs `minimal`",
        "hub_fanout",
        "hub@1000",
        "p99_ms",
        "minimal@1000",
        1.3,
        True,
        _HUB_P99 + _HUB_SUBSCRIBER_PATH,
    ),
    Target(
        "hub fan-out, 5,000 subscribers: p99 latency vs `minimal`",
        "hub_fanout",
        "hub@5000",
        "p99_ms",
        "minimal@5000",
        1.3,
        True,
        "at 5,000 subscribers x 10 Hz the hub needs most of the one core it has, so its "
        "latency follows its CPU, and each full garbage collection walks five times as "
        "many subscribers' objects as at 1,000. At 1,000: " + _HUB_P99 + _HUB_SUBSCRIBER_PATH,
    ),
    Target(
        "hub fan-out, 5,000 subscribers: keeps up (delivered / published events, "
        "the publisher in the same loop)",
        "hub_fanout",
        "hub@5000",
        "delivered_share",
        None,
        0.98,
        False,
        _HUB_SATURATED + _HUB_SUBSCRIBER_PATH,
    ),
    Target(
        "hub idle RSS per subscriber vs `minimal` per idle connection",
        "hub_idle",
        "hub",
        "rss_per_conn",
        "minimal",
        1.5,
        True,
        "",
    ),
)


def targets_table(runs: Runs) -> str:
    """The targets this run could check: figure, bound, met or not, and why not."""
    rows = [["target", "measured", "bound", "met"], ["---"] * 4]
    reasons: list[str] = []
    for target in TARGETS:
        subjects = runs.get(target.scenario, {})
        rounds = subjects.get(target.subject)
        if not rounds:
            continue
        if target.reference is None:
            value = median_metric(rounds, target.key)
            fmt = "{:.2f}"
        else:
            value = median_ratio(rounds, subjects.get(target.reference, []), target.key)
            fmt = "{:.2f}" + TIMES
        if value is None:
            continue
        met = value <= target.bound if target.at_most else value >= target.bound
        bound = ("≤ " if target.at_most else "≥ ") + fmt.format(target.bound)
        rows.append([target.label, fmt.format(value), bound, "yes" if met else "**no**"])
        if not met:
            reasons.append(f"- {target.label}: {target.why_not or 'see the tables above'}.")
    if len(rows) == 2:
        return ""
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)
    why = "\n\nWhere a target is not met, and why:\n\n" + "\n".join(reasons) if reasons else ""
    return f"## Targets\n\n{table}{why}\n"


def machine_description() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split(":")[1].strip()
    return [
        f"CPU: {fields.get('model name', '?')}, {os.cpu_count()} logical CPUs, "
        f"{fields.get('cpu MHz', '?')} MHz, cache {fields.get('cache size', '?')}",
        f"Memory: {meminfo}",
        f"OS: {platform.platform()}",
        f"Python: {platform.python_version()} ({platform.python_implementation()})",
    ]


_KEY_PACKAGES = (
    "asgi-sse",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "pydantic-core",
    "anyio",
    "starlette",
    "sse-starlette",
    "fastapi",
    "litestar",
)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_revision(repo: Path) -> str:
    """`abc1234`, plus a warning when the library has uncommitted changes."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
        )

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "asgi_sse", "pyproject.toml")
    except (OSError, subprocess.SubprocessError):
        return "`unknown`"
    if head.returncode != 0:
        return "`unknown`"
    revision = f"`{head.stdout.strip()}`"
    return revision + (" (asgi_sse/ with uncommitted changes)" if dirty.stdout.strip() else "")


def write_results(
    path: Path,
    *,
    runs: Runs,
    command: str,
    settings: str,
    seconds: float,
    notes: Sequence[str],
    chart: Path | None,
) -> None:
    """RESULTS.md: what ran where, the tables, the notes, every package version."""
    all_packages = sorted(
        {(d.metadata["Name"], d.version) for d in importlib.metadata.distributions()},
        key=lambda item: item[0].lower(),
    )
    lines = [
        "# asgi-sse benchmark results",
        "",
        "Generated by `benchmarks/run.py`; do not edit by hand. Every figure is the median",
        "over the runs; every ratio is the median of the per-round ratios to the reference",
        "(`minimal`, or the hand-written encoder) measured in the same round.",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Settings: {settings}. Wall time: {seconds / 60:.1f} min. "
        f"Repository at {_git_revision(Path(__file__).resolve().parent.parent)}.",
        "",
        "## Machine",
        "",
        *[f"- {line}" for line in machine_description()],
        "- Servers under uvicorn: one worker, uvloop, httptools, logs off, 127.0.0.1; "
        "server pinned to CPU 0 and load generator to CPU 1 with `taskset`.",
        "",
        "Key versions: " + ", ".join(f"{p} {_version(p)}" for p in _KEY_PACKAGES) + ".",
        "",
        "## Results",
        "",
        markdown_tables(runs),
        targets_table(runs),
    ]
    if chart is not None:
        lines += [f"![ratios to minimal]({chart.name})", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    for kept in (hub_fanout_section(path), stress_section(path)):
        if kept:
            lines += [kept, ""]
    lines += [
        "## Every installed package",
        "",
        "<details><summary>pip list of the venv that ran this</summary>",
        "",
        *[f"- {name} {version}" for name, version in all_packages],
        "",
        "</details>",
        "",
    ]
    path.write_text("\n".join(lines))


STRESS_START = "<!-- stress: written by benchmarks/stress.py -->"
STRESS_END = "<!-- /stress -->"
HUB_FANOUT_START = "<!-- hub-fanout: written by benchmarks/redis_fanout.py -->"
HUB_FANOUT_END = "<!-- /hub-fanout -->"


def _section(path: Path, start_marker: str, end_marker: str) -> str:
    try:
        text = path.read_text()
    except OSError:
        return ""
    start = text.find(start_marker)
    end = text.find(end_marker, start)
    return text[start : end + len(end_marker)] if start >= 0 and end >= 0 else ""


def _write_section(path: Path, section: str, start_marker: str, end_marker: str) -> None:
    block = f"{start_marker}\n{section.strip()}\n{end_marker}"
    text = path.read_text() if path.exists() else ""
    old = _section(path, start_marker, end_marker)
    if old:
        text = text.replace(old, block)
    elif "## Every installed package" in text:
        text = text.replace("## Every installed package", block + "\n\n## Every installed package")
    else:
        text = text + "\n" + block + "\n"
    path.write_text(text)


def stress_section(path: Path) -> str:
    """The section benchmarks/stress.py wrote into ``path`` (kept across rewrites)."""
    return _section(path, STRESS_START, STRESS_END)


def write_stress_section(path: Path, section: str) -> None:
    """Put ``section`` (between the stress markers) into ``path``, replacing the old one,
    before "Every installed package" (or at the end)."""
    _write_section(path, section, STRESS_START, STRESS_END)


def hub_fanout_section(path: Path) -> str:
    """The section benchmarks/redis_fanout.py wrote into ``path`` (kept across rewrites)."""
    return _section(path, HUB_FANOUT_START, HUB_FANOUT_END)


def write_hub_fanout_section(path: Path, section: str) -> None:
    """Put ``section`` (between the hub-fanout markers) into ``path``."""
    _write_section(path, section, HUB_FANOUT_START, HUB_FANOUT_END)


def write_chart(path: Path, runs: Runs, exclude: Sequence[str] = ("ceiling",)) -> bool:
    """One panel per charted scenario: each subject's ratio to the reference, as bars.
    False (and no file) when no charted scenario ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, s) for name, s in SCENARIOS.items() if s.chart and runs.get(name)]
    if not panels:
        return False
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(5.2 * columns, 3.4 * rows), squeeze=False, layout="constrained"
    )
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (name, scenario) in zip(flat, panels, strict=False):
        subjects = runs[name]
        reference = subjects.get(scenario.reference, [])
        labels: list[str] = []
        ratios: list[float] = []
        for subject, rounds in subjects.items():
            ratio = median_ratio(rounds, reference, scenario.chart_metric)
            if subject in exclude or ratio is None:
                continue
            labels.append(subject)
            ratios.append(ratio)
        positions = list(range(len(labels)))
        colors = ["#d95f02" if label.startswith("asgi_sse") else "#7570b3" for label in labels]
        ax.barh(positions, ratios, color=colors)
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
        for position, ratio in zip(positions, ratios, strict=True):
            ax.text(ratio, position, f" {ratio:.2f}{TIMES}", va="center", fontsize=8)
        ax.set_xlim(0, max([*ratios, 1.0]) * 1.25)
        ax.set_title(scenario.chart_title, fontsize=9)
        ax.set_xlabel(f"{TIMES} {scenario.reference}", fontsize=8)
        ax.tick_params(labelsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
