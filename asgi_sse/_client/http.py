"""The HTTP side of a connection: the request a browser's EventSource sends, what
counts as an event stream, and what a refusal says.

WHATWG HTML 9.2.2 ("The EventSource interface", the connect steps): ``Accept:
text/event-stream``, ``Cache-Control: no-store``, ``Last-Event-ID`` when the last
event id is not empty; a 200 with the ``text/event-stream`` MIME type is a stream,
anything else "fails the connection". Must not import anyio (only httpx's own
iteration awaits here) or any layer of the package but the client's errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from .errors import EventSourceError

__all__ = (
    "ERROR_BODY_LIMIT",
    "is_event_stream",
    "read_error_body",
    "refusal",
    "retryable_status",
    "stream_request",
)

#: How much of a refused response's body its `EventSourceError` keeps.
ERROR_BODY_LIMIT = 65536


def stream_request(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    *,
    last_event_id: str,
    headers: Mapping[str, str],
    content: bytes | None,
    json: Any,
    connect_timeout: float,
) -> httpx.Request:
    """The request of one connection: a browser's headers, then the caller's (which
    may override them); reading has no httpx timeout (the source times silences)."""
    pairs = [(b"Accept", b"text/event-stream"), (b"Cache-Control", b"no-store")]
    if last_event_id:
        # UTF-8, as a browser sends it (httpx would refuse a str that is not ASCII).
        pairs.append((b"Last-Event-ID", last_event_id.encode()))
    request_headers = httpx.Headers(pairs)
    request_headers.update(headers)
    return client.build_request(
        method,
        url,
        headers=request_headers,
        content=content,
        json=json,
        timeout=httpx.Timeout(connect_timeout, read=None),
    )


def is_event_stream(response: httpx.Response) -> bool:
    """A 200 whose content type's essence is ``text/event-stream`` (parameters such
    as ``charset`` aside, in any case)."""
    kind: str = response.headers.get("content-type", "")
    return response.status_code == 200 and (
        kind.split(";", 1)[0].strip().lower() == "text/event-stream"
    )


def retryable_status(response: httpx.Response) -> EventSourceError:
    """The error of a status the source reconnects on (``reconnect_on``): raised only if
    that was the last retry (it is a failure, not a clean end as a 204 is)."""
    return EventSourceError(
        f"the server answered {response.status_code} {response.reason_phrase} ({response.url})",
        response,
    )


def refusal(response: httpx.Response, body: bytes) -> EventSourceError:
    """The error of a response that is not an event stream and will not be retried."""
    if response.status_code != 200:
        why = f"the server answered {response.status_code} {response.reason_phrase}"
    else:
        kind = response.headers.get("content-type", "no content type")
        why = f"the server answered {kind}, not text/event-stream"
    return EventSourceError(f"{why} ({response.url}): not an event stream", response, body)


async def read_error_body(response: httpx.Response, limit: int = ERROR_BODY_LIMIT) -> bytes:
    """Up to ``limit`` bytes of a refused response's body (decoded, as httpx decodes
    it), for its error."""
    body = bytearray()
    chunks: Any = response.aiter_bytes()  # an async generator: closed, not left to the GC
    try:
        async for chunk in chunks:
            body += chunk
            if len(body) >= limit:
                break
    finally:
        await chunks.aclose()
    return bytes(body[:limit])
