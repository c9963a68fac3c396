"""Which response the current task streams, so that a hub subscription iterated inside
it can end the whole response (`Subscription.drop`, `Hub.drop`), not only itself.

The response (`asgi_sse._server.response`) sets `END_RESPONSE` for the time a stream
that holds a task group (``merge()``, `buffered`, `resumable_merge`) runs; the tasks
started inside it (its branches) inherit it with the rest of the context. A
subscription reads it once, as it starts being iterated. A subscription that is the
response's stream itself needs none of this: ending, it ends the response, which then
records ``dropped`` (`Subscription.dropped`) - and no response pays for the variable
unless it merges. Ending a merged
branch alone would leave the connection open with the other branches, and the handler
- where the app decides who may stream what - would never run again: a revoked user
would keep the rest of the page's stream.

Imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

__all__ = ("END_RESPONSE",)

END_RESPONSE: ContextVar[Callable[[], None] | None] = ContextVar(
    "asgi_sse_end_response", default=None
)
"""Ends the response being streamed, cleanly (reason ``dropped``); None outside one."""
