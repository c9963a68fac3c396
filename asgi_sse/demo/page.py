"""The demo page's one connection (``GET /page``): the three streams and the chat in
one `resumable_merge`.

A browser opens at most six HTTP/1.1 connections to a host, shared by all its tabs: a
page that held one EventSource per stream (four) left a second tab's chat POST waiting
for a free connection, and a third tab did not load. So the page reads everything
through one EventSource. Its sources are named (``sse``, ``sse2``, ``sse3_echo``,
``sse3_reverse_echo``, ``chat``); every event's id is a cursor of all their own ids,
the chat's being the hub's (its subscription's frames go through the merge as bytes,
their ``id:`` lines rewritten); and a reconnect resumes each source after its own.

The connection starts with a `PageConnected` event (no id): which cursor it resumed
after, where each source started, and each source's key in the cursor, which is how
the page tells the sources apart and reads each one's own id. With ``count``, the
connection ends once each stream sent that many events (the chat alone never ends),
so that the browser reconnects and resumes.

Imports the package's public names and the chat's constants; never the app module.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from asgi_sse import BaseEvent, ResumableMerge, resumable_merge

from .chat import RECONNECT_MS

__all__ = ("PageConnected", "PageInfo", "PageStream", "page_stream")

Source = Callable[[str | None], AsyncIterable[Any]]


class PageInfo(BaseModel):
    client: str | None
    #: The Last-Event-ID (a cursor) this connection resumed after; None on a first one.
    last_event_id: str | None
    #: Where each source started: its own last id from the cursor (None: afresh).
    starts: dict[str, str | None]
    #: Each source's key in the cursor (``<key>~<its id>`` entries joined by ``.``).
    keys: dict[str, str]


class PageConnected(BaseEvent[PageInfo]):
    """The first event of every page connection. It has no id: the browser's last
    event id stays the cursor it sent."""


class _StreamEnded:
    """What a stream source hands over when it ended (never sent)."""

    __slots__ = ()


_ENDED = _StreamEnded()


async def _then_ended(stream: AsyncIterable[Any]) -> AsyncIterator[Any]:
    iterator = aiter(stream)
    try:
        async for item in iterator:
            yield item
    finally:  # closed at its yield: the stream's own finally runs now, not at collection
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    yield _ENDED


def _marked(start: Source) -> Source:
    """``start``, whose stream hands over `_ENDED` when it ends."""
    return lambda last: _then_ended(start(last))


class PageStream:
    """The page's connection: its `PageConnected` event, then the merged sources' items;
    it ends once every stream source ended (the chat's never does), and the response
    then leaves the merge, which ends the chat.

    A class rather than an async generator, so that the merge's task group is entered by
    the response's own task (`merge`'s classic trap), and what is ready goes out in one
    write (`next_nowait`).
    """

    __slots__ = ("_ended", "_greeting", "_merged", "_streams_left")

    def __init__(self, greeting: bytes, merged: ResumableMerge[Any], streams: int) -> None:
        self._greeting: bytes | None = greeting
        self._merged = merged
        self._streams_left = streams
        self._ended = False

    async def __aenter__(self) -> PageStream:
        await self._merged.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return await self._merged.__aexit__(exc_type, exc, traceback)

    def __aiter__(self) -> PageStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            item = self._before_merged()
            if item is None:
                item = await self._merged.__anext__()
            if item is not _ENDED:
                return item
            self._stream_ended()

    def next_nowait(self) -> Any:
        """The next item if one is ready now (see `Merged.next_nowait`)."""
        while True:
            item = self._before_merged()
            if item is None:
                item = self._merged.next_nowait()
            if item is not _ENDED:
                return item
            self._stream_ended()

    async def aclose(self) -> None:
        await self._merged.aclose()

    def _before_merged(self) -> bytes | None:
        if self._ended:
            raise StopAsyncIteration
        greeting, self._greeting = self._greeting, None
        return greeting

    def _stream_ended(self) -> None:
        self._streams_left -= 1
        if self._streams_left == 0:
            self._ended = True
            raise StopAsyncIteration


def page_stream(
    streams: Mapping[str, Source],
    chat: Source,
    *,
    client: str | None,
    last_event_id: str | None,
) -> PageStream:
    """The page's connection: ``streams`` (name -> ``start(last_id)``, as for
    `resumable_merge`) and ``chat`` (its start function, under the name ``chat``),
    resumed after ``last_event_id``."""
    sources: dict[str, Source] = {name: _marked(start) for name, start in streams.items()}
    sources["chat"] = chat
    merged = resumable_merge(sources, last_event_id=last_event_id)
    info = PageInfo(
        client=client,
        last_event_id=last_event_id,
        starts=merged.starts,
        keys=merged.keys,
    )
    greeting = PageConnected(data=info, retry=RECONNECT_MS).encode()
    return PageStream(greeting, merged, len(streams))
