"""An in-process streaming client for testing event-stream endpoints.

Starlette's TestClient and httpx's ASGITransport collect the whole response body before
returning, so an endless stream can never be tested with them. This client runs the
ASGI app in a task of the test's own task group and parses the body as it is sent, so a
test can read events one at a time, disconnect at any moment, and check that the app
finished (and its cleanup ran):

```python
async with connect(app, "/events?message=hi") as stream:
    event = await stream.next_event()
    echo = await stream.next_event(Echo)       # typed
    await stream.disconnect()
assert stream.finished
```

Every ASGI message the app sent is kept, in order, in `TestStream.messages`.

For httpx code (`asgi_sse.client.EventSource` included), `ASGIStreamTransport` is an
httpx transport to an app in this process whose response bodies stream as they are
sent (httpx's own ``ASGITransport`` waits for the whole body, encode/httpx#2186); it
needs httpx:

```python
async with httpx.AsyncClient(transport=ASGIStreamTransport(app), base_url="http://t") as c:
    async with EventSource("/events", events=(Echo,), client=c) as source:
        echo = await anext(source)
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._protocol.errors import StreamClosed
from ._testing.client import TestStream, connect

if TYPE_CHECKING:
    from ._testing.transport import ASGIStreamTransport

__all__ = ("ASGIStreamTransport", "StreamClosed", "TestStream", "connect")


def __getattr__(name: str) -> Any:
    # httpx is imported only by those who use the transport.
    if name == "ASGIStreamTransport":
        from ._testing.transport import ASGIStreamTransport

        return ASGIStreamTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
