"""A typed event-stream client: the server's pydantic events back out, with the
browser's reconnect rules.

Needs ``httpx`` (``pip install 'asgi-sse[client]'``):

```python
async with EventSource(url, events=(Echo, ReverseEcho), client=http) as source:
    async for event in source:  # Echo | ReverseEcho | Reset | ParsedEvent
        ...
    source.last_event_id
```

What it does, as a browser's ``EventSource`` does (WHATWG HTML 9.2): sends
``Accept: text/event-stream`` and ``Cache-Control: no-store``; sends ``Last-Event-ID``
only when the last event id is not empty (an empty ``id:`` clears it, an id with NUL is
ignored); follows redirects; takes the server's ``retry:`` as its reconnection delay;
reconnects when the body ends, on a network error, and when nothing (not even a
keep-alive) arrived for ``read_timeout`` seconds; ends cleanly on 204 No Content; fails
with `EventSourceError` (which carries the response) on any other status but 200 or
on a content type other than ``text/event-stream``.

Beyond the browser: between consecutive failures the delay doubles from the
reconnection delay, with jitter, up to ``max_delay``, and drops back as soon as an event
arrives; ``reconnect_on=(502, 503, 504)`` reconnects on those statuses too, honouring
``Retry-After``; a stream requested with a body (POST: MCP) is sent again only with
``resend=True``; ``max_retries`` bounds consecutive failures.

Frames are parsed by the package's own WHATWG parser and decoded by the event classes'
own `BaseEvent.decode`; the hub's `Reset` is always known, so a consumer can refetch its
state when it comes.
"""

from ._client.errors import EventSourceError, InvalidEventData, UnknownEvent
from ._client.eventsource import EventSource

__all__ = ("EventSource", "EventSourceError", "InvalidEventData", "UnknownEvent")
