"""Step 3, resumable: each merged stream resumes after its own last event."""

import datetime as dt
import itertools
from collections.abc import AsyncIterator

import anyio

from asgi_sse import ResumableMerge, SSEEndpoint, SSERequest, resumable_merge

from sse2 import Echo, EchoPayload
from sse3 import ReverseEcho


def after(last: str | None) -> int:
    """The first number to send: one after the client's last (0 when it has none)."""
    return int(last) + 1 if last and last.isascii() and last.isdigit() else 0


async def echoes(message: str, last: str | None) -> AsyncIterator[Echo]:
    for n in itertools.count(after(last)):
        yield Echo(data=EchoPayload(message=message, created_at=dt.datetime.now()), id=n)
        await anyio.sleep(1)


async def reverse_echoes(message: str, last: str | None) -> AsyncIterator[ReverseEcho]:
    await anyio.sleep(1)
    for n in itertools.count(after(last)):
        payload = EchoPayload(message=message[::-1], created_at=dt.datetime.now())
        yield ReverseEcho(data=payload, id=n)
        await anyio.sleep(1)


def sse3(request: SSERequest) -> ResumableMerge[Echo | ReverseEcho]:
    message = request.query_params.get("message", "hello")
    return resumable_merge(
        {
            "echo": lambda last: echoes(message, last),
            "reverse_echo": lambda last: reverse_echoes(message, last),
        },
        last_event_id=request.last_event_id,  # the cursor of both, split again
    )


app = SSEEndpoint(sse3)  # an ASGI app: uvicorn sse3_resumable:app
