"""Step 1 of the tutorial: a plain event stream, one event a second."""

import itertools
import json
import time
from collections.abc import AsyncIterator

import anyio

from asgi_sse import ServerSentEvent, SSEEndpoint, SSERequest


async def sse(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
    message = request.query_params.get("message", "hello")
    for n in itertools.count():
        data = json.dumps({"message": message, "created_at": time.time()})
        yield ServerSentEvent(data, event="echo", id=n)
        await anyio.sleep(1)


app = SSEEndpoint(sse)  # an ASGI app: uvicorn sse:app
