"""Hooks for metrics on every event-stream response (`StreamObserver`).

Must not import anything async, nor anything of the package but the close reasons
(`state.CloseReason`, a type only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import CloseReason

__all__ = ("StreamObserver",)


class StreamObserver:
    """Hooks for metrics on event-stream responses, given as ``observer=`` to
    `EventSourceResponse`, `SSEEndpoint`, `SSEMiddleware` or the Starlette adapter.

    Called when a response starts streaming and when it ends, never per event: the
    response counts what it sent only while an observer is set. Subclass and override
    what you need (`asgi_sse.otel` does, for OpenTelemetry); every method does nothing
    here. ``scope`` is the request's ASGI scope (its path is yours to map to a label).
    """

    def on_open(self, scope: Mapping[str, Any]) -> None:
        """A response started streaming (its headers went out)."""

    def on_close(
        self,
        scope: Mapping[str, Any],
        reason: CloseReason,
        events: int,
        size: int,
        seconds: float,
    ) -> None:
        """A response ended, for ``reason`` (a `asgi_sse.types.CloseReason`:
        ``stream_end``, ``stream_error``, ``client_left``, ``send_timeout``,
        ``send_failed``, ``shutdown``, ``server_cancelled``), after sending ``events``
        frames (frames end with a blank line, keep-alives not counted) in ``size`` bytes
        over ``seconds``."""
