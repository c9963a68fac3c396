"""A run (`Hub.run`) read over HTTP from a real uvicorn process: the how-to's example
(docs/examples/howto/runs.py) started with POST, streamed, left mid-run, resumed with
Last-Event-ID, then answered 204 once everything was read."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import HOST, ROOT, Server, launched

pytestmark = pytest.mark.timeout(60)

EXAMPLES = ROOT / "docs" / "examples" / "howto"


def uvicorn(port: int) -> list[str]:
    """``uvicorn runs:app`` from the example's folder, on ``port``."""
    app_dir = str(EXAMPLES)
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "runs:app",
        "--app-dir",
        app_dir,
        "--host",
        HOST,
        "--port",
        str(port),
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with launched("uvicorn", uvicorn) as server:
        yield server


def events(response: httpx.Response, limit: int | None = None) -> list[dict[str, str]]:
    """The events of an open stream (``limit`` at most), as their fields."""
    found: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                found.append(fields)
                if limit is not None and len(found) == limit:
                    break
            fields = {}
            continue
        name, _, value = line.partition(": ")
        if name:
            fields[name] = value
    return found


def test_a_run_is_read_over_http_and_resumed_after_a_reconnect(server: Server) -> None:
    prompt = " ".join(f"w{number}" for number in range(100))  # about a second of answer
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        posted = http.post("/answers", json={"prompt": prompt})
        assert posted.status_code == 201
        path = posted.headers["location"]
        stream_headers = {"accept": "text/event-stream"}
        with http.stream("GET", path, headers=stream_headers) as response:
            assert response.headers["content-type"] == "text/event-stream"
            first = events(response, limit=3)  # then the connection drops mid-run
        resumed_headers = {**stream_headers, "last-event-id": first[-1]["id"]}
        with http.stream("GET", path, headers=resumed_headers) as response:
            rest = events(response)
        assert rest[-1]["event"] == "run_ended"
        assert json.loads(rest[-1]["data"]) == {"reason": "complete"}
        words = "".join(json.loads(event["data"]) for event in first + rest[:-1])
        assert words == f"You said: {prompt} "
        ids = [event["id"] for event in first + rest]
        assert len(set(ids)) == len(ids)
        done_headers = {**stream_headers, "last-event-id": rest[-1]["id"]}
        assert http.get(path, headers=done_headers).status_code == 204
