"""Hooks for metrics on every event-stream response (`StreamObserver`).

Must not import anything async, nor anything of the package but the close reasons
(`state.CloseReason`, a type only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# At run time, not under TYPE_CHECKING: typing.get_type_hints(on_close) must resolve it.
from .state import CloseReason

__all__ = ("StreamObserver",)


class StreamObserver:
    """Hooks for metrics on event-stream responses, given as ``observer=`` to
    `EventSourceResponse`, `SSEEndpoint`, `SSEMiddleware` or the Starlette adapter.

    Called when a response starts streaming and when it ends, never per event: the
    response counts what it sent only while an observer is set. A request answered
    without a stream (HEAD, OPTIONS, a 204 or 500 before the stream, one that comes
    while the server shuts down) is not told. Subclass and override what you need
    (`asgi_sse.otel` does, for OpenTelemetry); every method does nothing here. The
    hooks run in the response's own task: keep them quick.

    An observer is instrumentation and never breaks streaming: an `Exception` a hook
    raises is logged with its traceback (logger ``asgi_sse``) and ignored. When
    `on_open` raises, the response streams all the same, and `on_close` is still
    called once when it ends; when `on_close` raises, the response ends as it would
    have (its stream closed, a cancellation or an error propagating as itself).
    """

    def on_open(self, scope: Mapping[str, Any]) -> None:
        """A response started streaming (its headers went out).

        Args:
            scope: The request's ASGI scope (its path is yours to map to a label).
        """

    def on_close(
        self,
        scope: Mapping[str, Any],
        reason: CloseReason,
        events: int,
        size: int,
        seconds: float,
    ) -> None:
        """A response that `on_open` was told of ended.

        Args:
            scope: The request's ASGI scope, as given to `on_open`.
            reason: Why it ended (see `asgi_sse.types.CloseReason`).
            events: The stream's frames sent (counted by the blank line that ends
                each); keep-alives (the comment or a ``ping_event``) are not counted.
            size: The bytes of the stream's frames sent, keep-alives not counted.
            seconds: How long it streamed.
        """
