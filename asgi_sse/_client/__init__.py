"""The typed event-stream client behind `asgi_sse.client`.

Every module here but ``eventsource`` is sans-IO (no anyio, no event loop); all of them
may import the protocol layer and nothing else of the package (no server, no hub).
"""

try:
    import httpx as _httpx  # noqa: F401  (only to fail here, with the fix, without it)
except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
    raise ImportError("asgi_sse.client needs httpx: pip install 'asgi-sse[client]'") from exc
