"""`Hub.lifespan`: an ASGI app wrapped so that a hub runs for the life of its server.

For apps without a lifespan of their own (an `SSEEndpoint` or `SSEMiddleware` app under
uvicorn or hypercorn); frameworks enter the hub in their own lifespan instead. The hub
starts on the server's startup message, so that a hub that cannot start (its Redis
unreachable) fails the startup and the server exits saying why - never an app that
serves without its hub.

Imports the ASGI types and the lifespan answerer only; the hub is any async context
manager with a ``stop()`` (the facade passes itself), so this module never imports it.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._util.asgi import AnyReceive, AnyScope, AnySend, ASGIApp
from .._util.lifespan import answer_lifespan

__all__ = ("Stoppable", "with_lifespan")


class Stoppable(Protocol):
    """What the wrapper needs of a hub: entered at startup, stopped at shutdown."""

    async def __aenter__(self) -> Any: ...

    async def stop(self) -> None: ...


def with_lifespan(hub: Stoppable, app: ASGIApp) -> ASGIApp:
    """``app`` with ``hub`` entered at the server's startup and stopped at its shutdown
    (see the module)."""

    async def with_hub(scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        startup = await receive()
        try:
            await hub.__aenter__()
        except Exception as exc:
            await send(
                {"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"}
            )
            return
        seen: list[str] = []  # the lifespan messages the app received and answered
        replayed = False

        async def receiving() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                message = startup
            else:
                message = await receive()
            seen.append(message["type"])
            return message

        async def sending(message: Any) -> None:
            seen.append(message["type"])
            await send(message)

        try:
            await app(scope, receiving, sending)
        except Exception:
            if "lifespan.startup.complete" in seen or "lifespan.startup.failed" in seen:
                raise
            # The app does not do lifespan (ASGI: it raises): the hub must still run,
            # so this wrapper answers the protocol for it (startup included, which it
            # received).
            await answer_lifespan(receive, send, started=True)
        finally:
            await hub.stop()

    return with_hub
