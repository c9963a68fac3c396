"""ASGI type aliases, taken from asgiref's typing module rather than written again."""

from __future__ import annotations

from asgiref.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

__all__ = ("ASGIReceiveCallable", "ASGIReceiveEvent", "ASGISendCallable", "ASGISendEvent", "Scope")
