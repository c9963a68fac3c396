"""The tutorial's typed echoes read over HTTP/2: the typed client on an httpx client made
with ``http2=True`` (``pip install 'httpx[http2]'``), trusting a self-signed certificate."""

import ssl

import httpx

from asgi_sse.client import EventSource

from sse2 import Echo


def http2_client(base_url: str, cafile: str) -> httpx.AsyncClient:
    """A client whose streams to ``base_url`` all share one HTTP/2 connection."""
    verify = ssl.create_default_context(cafile=cafile)  # trust cert.pem, check the host
    return httpx.AsyncClient(base_url=base_url, http2=True, verify=verify)


async def first_echoes(http: httpx.AsyncClient, count: int) -> tuple[str, list[Echo]]:
    """The HTTP version the stream came over, and its first ``count`` echoes."""
    echoes: list[Echo] = []
    async with EventSource("/sse2?message=h2", events=(Echo,), client=http) as source:
        async for event in source:
            if isinstance(event, Echo):
                echoes.append(event)
            if len(echoes) == count:
                break
        assert source.response is not None
        return source.response.http_version, echoes  # "HTTP/2" over TLS with h2
