"""FastAPI: the tutorial's streams, documented in the app's OpenAPI document."""

from typing import Any

from fastapi import FastAPI

from asgi_sse import SSEEndpoint, merge
from asgi_sse.schema import add_stream_responses, openapi_response
from asgi_sse.starlette import EventSourceResponse

from sse2 import Echo, echoes
from sse3 import ReverseEcho, reverse_echoes, sse3

app = FastAPI()


@app.get(
    "/echoes",
    response_class=EventSourceResponse,  # no JSON response in the document
    response_model=None,
    responses={200: openapi_response(Echo, ReverseEcho)},
)
async def both(message: str = "hello") -> EventSourceResponse:
    return EventSourceResponse(merge(echoes(message), reverse_echoes(message)))


app.mount("/sse3", SSEEndpoint(sse3))  # invisible to FastAPI: documented below


def openapi() -> dict[str, Any]:
    if app.openapi_schema is None:
        document = app.openapi_schema = FastAPI.openapi(app)
        add_stream_responses(document, {"/sse3": (Echo, ReverseEcho)})
    return app.openapi_schema


app.openapi = openapi  # type: ignore[method-assign]
