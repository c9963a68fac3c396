"""Counting instructions with valgrind's cachegrind: load-independent figures.

Wall-clock and CPU time on a shared two-core machine move by tens of percent; the
number of instructions a run executes does not (the same binary, inputs and
environment give the same count, whatever else the machine does). The in-process
profiles (`encode.py --instructions`, `typed_profile.py`, `hub_profile.py
--instructions`) run a script twice at two sizes and divide the difference by the
difference in work, so start-up and set-up cancel out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

__all__ = ("SCOPE", "VALGRIND", "count", "instruction_count")

#: The command that runs a program under cachegrind, counting instructions only.
VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")

#: The HTTP scope of an in-process SSE request (GET, `Accept: text/event-stream`).
SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "headers": [(b"accept", b"text/event-stream")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


def count(script: str, *argv: str, fixed_hash_seed: bool = True) -> tuple[int, str]:
    """Instructions executed by ``python script *argv`` under cachegrind, and its stdout.

    ``fixed_hash_seed``: PYTHONHASHSEED=0, since str hashes move dict probes, and so
    the counts, by 1-2 %.
    """
    command = [*VALGRIND, sys.executable, os.path.abspath(script), *argv]
    env = {**os.environ, "PYTHONHASHSEED": "0"} if fixed_hash_seed else None
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    refs = instruction_count(done.stderr)
    if refs is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {done.stderr[-2000:]}")
    return refs, done.stdout


def instruction_count(valgrind_output: str) -> int | None:
    """The ``I refs`` total of cachegrind's summary (None if it is not there)."""
    refs = re.search(r"I\s+refs:\s+([\d,]+)", valgrind_output)
    return None if refs is None else int(refs.group(1).replace(",", ""))
