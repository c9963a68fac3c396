"""Step 3 of the tutorial: two typed streams merged into one response."""

import datetime as dt
from collections.abc import AsyncIterator

import anyio

from asgi_sse import BaseEvent, Merged, SSEEndpoint, SSERequest, event_stream, merge

from sse2 import Echo, EchoPayload, echoes


class ReverseEcho(BaseEvent[EchoPayload]):  # sent as "reverse_echo"
    pass


@event_stream
async def reverse_echoes(message: str) -> AsyncIterator[ReverseEcho]:
    await anyio.sleep(1)  # starts a second after the echoes
    while True:
        payload = EchoPayload(message=message[::-1], created_at=dt.datetime.now())
        yield ReverseEcho(data=payload)
        await anyio.sleep(1)


def sse3(request: SSERequest) -> Merged[Echo | ReverseEcho]:
    message = request.query_params.get("message", "hello")
    # Return the merge itself: the response enters it, runs both streams in one task
    # group, and closes both when the client leaves.
    return merge(echoes(message), reverse_echoes(message))


app = SSEEndpoint(sse3)  # an ASGI app: uvicorn sse3:app
