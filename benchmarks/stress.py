"""Full-size reliability runs against a real uvicorn process; prints a table of figures.

    .venv/bin/python benchmarks/stress.py                       # every scenario
    .venv/bin/python benchmarks/stress.py --scenario churn   # churn|idle|shutdown|frozen|fairness
    .venv/bin/python benchmarks/stress.py --scale 0.05          # a quick look at the tool itself

Scenarios (each in a fresh server process, the app of tests/support/reliability_app.py, started
with a small SO_SNDBUF and ``--timeout-graceful-shutdown 2``):
- churn: 10,000 connect/disconnect cycles at random points (before the request ends,
  after the headers, mid-frame; by FIN, close or RST): no task, stream or cleanup
  leaked, no cleanup run twice, RSS back within 1 MB of the warmed-up baseline;
- idle: 5,000 idle streams with ping=1: every one gets a ``: ping`` within 1.5 s;
- shutdown: 1,000 open streams, then SIGTERM: clean ends and the exit time;
- frozen: 100 of 1,000 readers stop reading: each is dropped within send_timeout + 1 s
  of its stalled send, the others keep their rate;
- fairness: 100,000 ready events on one connection (a plain generator, then merge())
  delay a 50 Hz stream on another by at most 50 ms.

The drivers are those of tests/integration/test_reliability.py (which runs them at CI size). The
exit code is 1 when a figure misses its bound. A full run (every scenario, scale 1)
writes its table into benchmarks/RESULTS.md ("Reliability at full size"), which
benchmarks/run.py keeps when it rewrites the file. Do not run it while benchmarks/run.py
runs: both want the CPU to themselves.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # procs.py, and the tests package

from procs import raise_nofile_limit  # noqa: E402
from report import write_stress_section  # noqa: E402

from tests.integration.test_reliability import (  # noqa: E402
    GRACE,
    SEND_TIMEOUT,
    run_churn,
    run_fairness,
    run_frozen,
    run_idle,
    run_shutdown,
)
from tests.support.reliability_app import serving  # noqa: E402

Row = tuple[str, str, str, str, bool]  # scenario, figure, measured, bound, within it


def churn(cycles: int = 10_000) -> list[Row]:
    with serving(timeout_graceful_shutdown=GRACE) as server:
        result = run_churn(server, cycles, batch=16, warmup=500)
    base, after = result.baseline, result.after
    name = f"churn ({cycles:,} cycles, {result.seconds:.0f}s)"
    return [
        (name, "streams started", str(after["started"] - base["started"]), "-", True),
        (name, "open streams after", str(after["open"]), "0", after["open"] == 0),
        (
            name,
            "cleanups run / started (whole run)",
            f"{after['cleaned']}/{after['started']}",
            "equal",
            after["cleaned"] == after["started"],
        ),
        (name, "cleanups run twice", str(after["doubles"]), "0", after["doubles"] == 0),
        (name, "requests in flight after", str(after["active"]), "0", after["active"] == 0),
        (
            name,
            "asyncio tasks vs baseline",
            f"{result.task_growth:+d}",
            "<= 0",
            result.task_growth <= 0,
        ),
        (
            name,
            "RSS vs baseline",
            f"{result.rss_growth / 1e6:+.2f} MB",
            "<= 1 MB",
            result.rss_growth <= 1_000_000,
        ),
    ]


def idle(count: int = 5_000) -> list[Row]:
    with serving(timeout_graceful_shutdown=GRACE) as server:
        result = run_idle(server, count)
    name = f"idle ({count:,} streams, ping=1)"
    return [
        (name, "got a keep-alive", f"{result.pinged}/{count}", "all", result.pinged == count),
        (
            name,
            "first ping after the last event (median)",
            f"{statistics.median(result.first_ping):.2f}s" if result.first_ping else "-",
            "-",
            True,
        ),
        (name, "first ping (worst)", f"{result.worst:.2f}s", "<= 1.5s", result.worst <= 1.5),
    ]


def shutdown(streams: int = 1_000) -> list[Row]:
    with serving(timeout_graceful_shutdown=GRACE) as server:
        result = run_shutdown(server, streams, frozen=0)
    name = f"shutdown ({streams:,} streams, SIGTERM)"
    return [
        (
            name,
            "clean ends of body",
            f"{result.clean_ends}/{streams}",
            "all",
            result.clean_ends == streams,
        ),
        (name, "signal -> last end", f"{result.last_end:.2f}s", "-", True),
        (name, "signal -> exit", f"{result.exited:.2f}s", "<= 1s", result.exited <= 1.0),
        (name, "exit code", str(result.code), "0 or -15", result.code in (0, -15)),
    ]


def frozen(readers: int = 900, stuck: int = 100) -> list[Row]:
    hz = 10.0
    with serving(timeout_graceful_shutdown=GRACE) as server:
        result = run_frozen(server, readers, stuck, hz=hz, size=2048)
    name = f"frozen ({stuck} of {readers + stuck:,}, {hz:.0f} Hz, send_timeout={SEND_TIMEOUT})"
    worst = max(result.release_after_stall, default=float("inf"))
    bound = SEND_TIMEOUT + 1.0
    return [
        (name, "dropped", f"{result.released}/{stuck}", "all", result.released == stuck),
        (name, "stall -> dropped (worst)", f"{worst:.2f}s", f"<= {bound:.1f}s", worst <= bound),
        (
            name,
            "freeze -> dropped (worst)",
            f"{max(result.release_after_freeze, default=0.0):.2f}s",
            "-",
            True,
        ),
        (
            name,
            "readers: largest gap",
            f"{result.reader_max_gap * 1000:.0f} ms",
            "<= 500 ms",
            result.reader_max_gap <= 0.5,
        ),
        (
            name,
            "readers: slowest rate",
            f"{result.reader_min_rate:.1f}/s",
            f">= {0.8 * hz:.0f}/s",
            result.reader_min_rate >= 0.8 * hz,
        ),
    ]


def fairness(count: int = 100_000) -> list[Row]:
    rows: list[Row] = []
    with serving(timeout_graceful_shutdown=GRACE) as server:
        for merged in (False, True):
            result = run_fairness(server, merged=merged, count=count)
            shape = "merge()" if merged else "plain generator"
            name = f"fairness ({count:,} ready events, {shape}, beside a 50 Hz stream)"
            rows += [
                (name, "burst took", f"{result.burst_seconds:.2f}s", "-", True),
                (
                    name,
                    "50 Hz stream: largest gap",
                    f"{result.max_gap * 1000:.0f} ms",
                    "<= 50 ms",
                    result.max_gap <= 0.050,
                ),
            ]
    return rows


def _scaled(count: int, scale: float) -> int:
    return max(1, round(count * scale))


SCENARIOS: dict[str, Callable[[float], list[Row]]] = {
    "churn": lambda scale: churn(_scaled(10_000, scale)),
    "idle": lambda scale: idle(_scaled(5_000, scale)),
    "shutdown": lambda scale: shutdown(_scaled(1_000, scale)),
    "frozen": lambda scale: frozen(_scaled(900, scale), _scaled(100, scale)),
    "fairness": lambda scale: fairness(_scaled(100_000, scale)),
}


def print_table(rows: list[Row]) -> None:
    header = ("scenario", "figure", "measured", "bound", "")
    cells = [header, *[(s, f, m, b, "ok" if ok else "MISSED") for s, f, m, b, ok in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def markdown(rows: list[Row], command: str, seconds: float) -> str:
    """The rows as the RESULTS.md section."""
    lines = [
        "## Reliability at full size (`benchmarks/stress.py`)",
        "",
        f"`{command}`, {seconds / 60:.1f} min, against a real uvicorn process (small socket",
        "buffers, `--timeout-graceful-shutdown 2`) and raw-socket clients on 127.0.0.1.",
        "",
        "| scenario | figure | measured | bound | |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {s} | {f} | {m} | {b} | {'ok' if ok else '**missed**'} |" for s, f, m, b, ok in rows
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every size (bounds stay the same)"
    )
    args = parser.parse_args()
    raise_nofile_limit()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    began = time.monotonic()
    rows: list[Row] = []
    for name in names:
        started = time.monotonic()
        print(f"== {name} ...", flush=True)
        try:
            rows += SCENARIOS[name](args.scale)
        except AssertionError as exc:  # a driver's bounded wait ran out
            rows.append((name, "did not complete", str(exc).splitlines()[0][:120], "-", False))
        print(f"   {time.monotonic() - started:.1f}s", flush=True)
    print()
    print_table(rows)
    if args.scenario == "all" and args.scale == 1.0:
        # The full run is the one worth keeping: into RESULTS.md, beside the benchmarks.
        command = "python benchmarks/stress.py"
        write_stress_section(
            HERE / "RESULTS.md", markdown(rows, command, time.monotonic() - began)
        )
        print("wrote the reliability section of benchmarks/RESULTS.md")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
