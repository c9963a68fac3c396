"""mkdocs hook: the performance page's summary, made from benchmarks/RESULTS.md.

The page holds the marker ``<!-- benchmarks:summary -->``; this hook replaces it with
the comparison table and the hub's figures, read from the tables that
``benchmarks/run.py`` wrote, so the page always shows the numbers of the last full run
and never a copy of them. A RESULTS.md this cannot read fails the build (a missing
section or row raises), rather than a page with stale or empty cells.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

__all__ = (
    "CHART_LINK",
    "MARKER",
    "RESULTS",
    "WHOLE_MARKER",
    "on_page_markdown",
    "read_tables",
    "summary",
)

MARKER = "<!-- benchmarks:summary -->"
#: Where a page shows RESULTS.md whole.
WHOLE_MARKER = "<!-- benchmarks:results -->"
#: How RESULTS.md links its chart.
CHART_LINK = "](results.png)"
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"

Table = list[dict[str, str]]

_HEADING = re.compile(r"^#{2,4} (.+)$")


def read_tables(text: str) -> dict[str, Table]:
    """Every Markdown table of ``text`` under the heading before it, as rows of
    header -> cell (the first column's header is ``""``; backticks are dropped)."""
    tables: dict[str, Table] = {}
    heading = ""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _HEADING.match(line)
        if match:
            heading = match[1].strip()
        elif line.startswith("|") and index + 1 < len(lines) and "---" in lines[index + 1]:
            header = _unique(_cells(line))
            rows: Table = []
            index += 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(dict(zip(header, _cells(lines[index]), strict=True)))
                index += 1
            tables[heading] = rows
            continue
        index += 1
    return tables


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]


def _unique(header: list[str]) -> list[str]:
    """A header whose repeated names get ``#2``, ``#3``... (the hub's table has two
    ``× minimal`` columns: CPU, then latency)."""
    seen: dict[str, int] = {}
    names = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return names


def _section(tables: dict[str, Table], starts: str) -> Table:
    [rows] = [rows for heading, rows in tables.items() if heading.startswith(starts)]
    return rows


def _row(rows: Table, label: str, **match: str) -> dict[str, str]:
    [row] = [
        row
        for row in rows
        if row[""] == label and all(row[key] == value for key, value in match.items())
    ]
    return row


def _number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("×%"))


def summary(text: str) -> str:
    """The summary of one RESULTS.md: the table against the peers, then the hub."""
    tables = read_tables(text)
    burst = _section(tables, "Burst")
    fanout = _section(tables, "Fan-out")
    idle = _section(tables, "Idle")
    encode = _section(tables, "Encode")
    hub = _section(tables, "Hub: ")
    hub_idle = _section(tables, "Hub idle")
    conns = re.search(r"fanout_conns=(\d+)", text)
    subscribers = f"{int(conns[1]):,}" if conns else "many"

    def fanout_cell(label: str) -> str:
        row = _row(fanout, label)
        cell = row["× minimal"]
        expected = _number(_row(fanout, "minimal")["delivered events/s"])
        if _number(row["delivered events/s"]) < 0.95 * expected:
            cell += " (falls behind)"
        return cell

    def fanout_ours() -> str:
        # Encoded once per tick; and, when the run has it, a typed event built per
        # subscriber as the peers do (`asgi_sse_typed`).
        cell = f"{fanout_cell('asgi_sse')} encoded once"
        if any(row[""] == "asgi_sse_frame" for row in fanout):
            cell += f"; {fanout_cell('asgi_sse_frame')} encoded per subscriber (`Tick.frame`)"
        if any(row[""] == "asgi_sse_typed" for row in fanout):
            cell += f"; {fanout_cell('asgi_sse_typed')} an event object per subscriber"
        return cell

    def burst_ours() -> str:
        cell = f"{_row(burst, 'asgi_sse')['× minimal']} (an event object per event)"
        if any(row[""] == "asgi_sse_frame" for row in burst):
            cell += f"; {_row(burst, 'asgi_sse_frame')['× minimal']} (`Tick.frame`)"
        return cell + f"; {_row(burst, 'asgi_sse_buffered')['× minimal']} in `buffered()`"

    def idle_cell(label: str) -> str:
        row = _row(idle, label)
        return f"{row['× minimal']}, {_number(row['asyncio tasks/conn']):g}"

    peers = ("sse_starlette", "fastapi_sse", "litestar")
    rows = [
        (
            "one stream, events/s (× a minimal app sending pre-encoded frames; higher is better)",
            burst_ours(),
            [_row(burst, peer)["× minimal"] for peer in peers],
        ),
        (
            f"fan-out, server CPU per event ({subscribers} subscribers, 10 Hz; × the "
            "minimal app; lower is better)",
            fanout_ours(),
            [fanout_cell(peer) for peer in peers],
        ),
        (
            "idle connection: memory (× the minimal app), asyncio tasks",
            idle_cell("asgi_sse"),
            [idle_cell(peer) for peer in peers],
        ),
        (
            "encode a typed event, construction included (× `model_dump_json` + f-string)",
            f"{_row(encode, 'asgi_sse (frame)')['× hand-written']} (`Tick.frame`), "
            f"{_row(encode, 'asgi_sse')['× hand-written']} (`Tick(...).encode()`)",
            [_row(encode, peer)["× hand-written"] for peer in peers],
        ),
    ]
    out = [
        "| | asgi-sse | sse-starlette | FastAPI SSE | Litestar |",
        "|---|---|---|---|---|",
    ]
    out += [f"| {what} | {ours} | {' | '.join(theirs)} |" for what, ours, theirs in rows]

    hub_row = _row(hub, "hub", subscribers=subscribers)
    hub_idle_row = _row(hub_idle, "hub")
    out += [
        "",
        f"The hub, against the minimal app only: {subscribers} subscribers of one topic at "
        f"10 Hz cost {hub_row['× minimal']} the server CPU per delivered event of the "
        "minimal app fanning out pre-encoded bytes, and an idle subscriber "
        f"{hub_idle_row['RSS KiB/subscriber']} KiB "
        f"({hub_idle_row['× minimal']} the minimal app's idle connection).",
    ]
    machine = re.search(r"^- CPU: (.+)$", text, re.MULTILINE)
    python = re.search(r"^- Python: (.+)$", text, re.MULTILINE)
    revision = re.search(r"Repository at `([0-9a-f]+)`", text)
    versions = re.search(r"^Key versions: (.+)$", text, re.MULTILINE)
    if machine and python and revision and versions:
        out += [
            "",
            f"Measured at revision `{revision[1]}` on {machine[1]}, Python {python[1]}. "
            f"Versions: {versions[1]}",
        ]
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if WHOLE_MARKER in markdown:
        # RESULTS.md whole, its chart link pointed at the site's copy of the chart
        # (docs/assets/results.png, the same file as benchmarks/results.png).
        chart = posixpath.relpath("assets/results.png", posixpath.dirname(page.file.src_uri))
        whole = RESULTS.read_text(encoding="utf-8").replace(CHART_LINK, f"]({chart})")
        markdown = markdown.replace(WHOLE_MARKER, whole)
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, summary(RESULTS.read_text(encoding="utf-8")))
