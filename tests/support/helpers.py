"""Streams and helpers several test modules share."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

__all__ = ("HTTPX_GENERATOR_WARNINGS", "first_then_forever", "load", "server_scope")


def server_scope(
    path: str = "/events",
    *,
    method: str = "GET",
    root_path: str = "",
    query_string: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> dict[str, Any]:
    """An HTTP scope as a scripted server hands it to the app under test: ``path``
    verbatim, so a test says itself whether it includes ``root_path`` (servers
    disagree). The library's own in-process clients build theirs with
    `asgi_sse._testing.scope.http_scope`."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "root_path": root_path,
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "extensions": {},
        "state": {},
    }


async def first_then_forever(cleaned: anyio.Event) -> AsyncIterator[str]:
    """Yield "first", then wait until cancelled; `cleaned` is set when it is closed."""
    try:
        yield "first"
        await anyio.sleep_forever()
        yield "never"  # pragma: no cover
    finally:
        cleaned.set()


def load(source: str, name: str, directory: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``source`` as module ``name`` from a file, as a server would."""
    path = directory / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


# Note: httpx never closes the iterators under a response closed before its end (its
# Response.aiter_raw and BoundAsyncStream.__aiter__, httpcore's over a socket: async
# generators iterated by `async for` in one another), and trio's finaliser reports each
# one left unfinished. Those, not ours, are ignored here: the client closes its own
# (Response.aiter_bytes) and the transport's body is no generator, so a warning about
# either still fails.
IGNORED = (
    "httpx\\._models\\.Response\\.aiter_raw",
    "httpx\\._client\\.BoundAsyncStream\\.__aiter__",
    "httpx\\._transports\\.default\\.AsyncResponseStream\\.__aiter__",
    "httpcore\\.",
)
HTTPX_GENERATOR_WARNINGS = [
    pytest.mark.filterwarnings(f"ignore:Async generator '{name}:ResourceWarning")
    for name in IGNORED
]
