"""Quart: the streams served in front of the app by SSEMiddleware."""

import itertools
from collections.abc import AsyncIterator

import anyio
from quart import Quart

from asgi_sse import BaseEvent, SSEMiddleware, SSERequest


class Tick(BaseEvent[int]):
    pass


async def clock(request: SSERequest) -> AsyncIterator[Tick]:
    for n in itertools.count():
        yield Tick(data=n)
        await anyio.sleep(1)


app = Quart(__name__)


@app.get("/")
async def index() -> str:
    return "Quart pages as usual; events on /clock"


app.asgi_app = SSEMiddleware(app.asgi_app, routes={"/clock": clock})  # type: ignore[method-assign]
