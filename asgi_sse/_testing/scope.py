"""The HTTP scope of a request made in-process: one builder for the test client
(`connect`) and the streaming httpx transport, so that both look to an app exactly like
a request under a server speaking ASGI 3.0, HTTP spec 2.4 (the version in which `send`
raises OSError once the client is gone).

Must not import anything async, and nothing of the package but the ASGI types.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

__all__ = ("http_scope",)


def http_scope(
    *,
    method: str,
    path: str,
    raw_path: bytes,
    query_string: bytes,
    headers: list[tuple[bytes, bytes]],
    root_path: str,
    scheme: str,
    client: tuple[str, int],
    server: tuple[str, int],
) -> dict[str, Any]:
    """An ``http`` scope for ``path`` (as sent: its percent-escapes are decoded here,
    once, as UTF-8, as uvicorn does) and ``raw_path`` (as sent, not decoded), both
    relative to ``root_path``, which the scope's paths include (as
    uvicorn >= 0.26 and Starlette's Mount do). ``headers`` are used as given: names
    lower-case, as servers hand them over."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": root_path + unquote(path),
        "raw_path": root_path.encode() + raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "extensions": {},
        "state": {},
    }
