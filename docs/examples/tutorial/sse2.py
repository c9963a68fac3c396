"""Typed events, numbered per stream: GET /sse2?message=hello, one echo a second."""

import datetime as dt
from collections.abc import AsyncIterator

import anyio
from pydantic import BaseModel

from asgi_sse import BaseEvent, SSEEndpoint, SSERequest, event_stream


class EchoPayload(BaseModel):
    message: str
    created_at: dt.datetime


class Echo(BaseEvent[EchoPayload]):  # the event name comes from the class: "echo"
    pass


@event_stream  # numbers the events 0, 1, 2... (their id)
async def echoes(message: str) -> AsyncIterator[Echo]:
    while True:
        yield Echo(data=EchoPayload(message=message, created_at=dt.datetime.now()))
        await anyio.sleep(1)


def sse2(request: SSERequest) -> AsyncIterator[Echo]:
    return echoes(request.query_params.get("message", "hello"))


app = SSEEndpoint(sse2)  # an ASGI app: uvicorn sse2:app
