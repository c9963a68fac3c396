"""The waiting of one connection: the response's head within a deadline, then its body
chunk by chunk, each silence within a deadline.

Only what waits lives here; what a chunk, a silence or an error means (reconnect, back
off, end) is the source's decision. Must not import the server, the hub or the test
tools; of the client, nothing.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import httpx

__all__ = ("Body", "send_for_head")


async def send_for_head(
    client: httpx.AsyncClient, request: httpx.Request, deadline: float
) -> httpx.Response | None:
    """The response once its head arrived (redirects followed, the body still to
    read), or None if none came within ``deadline`` seconds.

    Raises:
        httpx.TransportError: the request could not be sent or answered.
    """
    with anyio.move_on_after(deadline):
        return await client.send(request, stream=True, follow_redirects=True)
    return None


class Body:
    """A streaming response's body, read one chunk at a time."""

    __slots__ = ("_chunks", "interrupted")

    def __init__(self, response: httpx.Response) -> None:
        # Decoded: httpx asks for gzip, so a server or a proxy may compress.
        self._chunks: Any = response.aiter_bytes()
        #: The last read was cancelled from outside (a timeout around the consumer's
        #: ``anext()``), which ends httpx's iterator: this body cannot be read on.
        self.interrupted = False

    async def next_chunk(self, max_silence: float | None) -> bytes | None:
        """The next chunk, ``b""`` at the end of the body, or None when nothing came
        for ``max_silence`` seconds (None: wait for ever).

        Raises:
            httpx.TransportError: the connection failed.
        """
        with anyio.move_on_after(math.inf if max_silence is None else max_silence):
            try:
                chunk: bytes = await self._chunks.__anext__()
                return chunk
            except StopAsyncIteration:
                return b""
            except httpx.TransportError:
                raise
            except BaseException:
                self.interrupted = True  # cleared below if it was the silence's deadline
                raise
        self.interrupted = False
        return None

    async def aclose(self) -> None:
        """Close the iterator (not left to the garbage collector: trio warns)."""
        await self._chunks.aclose()
