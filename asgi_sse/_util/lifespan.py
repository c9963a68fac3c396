"""Answering the ASGI lifespan protocol for an app that has nothing to start or stop.

One function, used by `SSEEndpoint` (an app of its own under a server) and by
`Hub.lifespan` (for the app it wraps when that app does not do lifespan). Must not
import anything of the package but the ASGI types.
"""

from __future__ import annotations

from .asgi import AnyReceive, AnySend

__all__ = ("answer_lifespan",)


async def answer_lifespan(receive: AnyReceive, send: AnySend, *, started: bool = False) -> None:
    """Say "complete" to startup and to shutdown, then return. ``started``: the startup
    message was received already (by someone else) and still needs its answer."""
    if started:
        await send({"type": "lifespan.startup.complete"})
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
