"""The option keywords are declared once (`ResponseOptions`, `EndpointOptions`) and
every entry point is built from that declaration: the same keywords, the same
defaults, one `StreamOptions` value, and no constructor that skips `__init__`."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asgi_sse import EventSourceResponse, SSEEndpoint, SSEMiddleware, SSERequest
from asgi_sse._server.options import DEFAULTS, StreamOptions
from asgi_sse.starlette import EventSourceResponse as StarletteResponse
from asgi_sse.types import EndpointOptions, ResponseOptions

ENDPOINT_ONLY = {"methods", "last_event_id_param"}


async def nothing() -> AsyncIterator[str]:
    return
    yield  # pragma: no cover


def handler(request: SSERequest) -> AsyncIterator[str]:  # pragma: no cover
    return nothing()


async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    pass


def option_fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(StreamOptions) if f.init}


def test_the_declaration_is_what_stream_options_takes() -> None:
    assert set(EndpointOptions.__annotations__) == set(option_fields())
    assert set(ResponseOptions.__annotations__) == set(option_fields()) - ENDPOINT_ONLY


@pytest.mark.parametrize(
    ("entry_point", "declaration"),
    [
        (EventSourceResponse, ResponseOptions),
        (StarletteResponse, ResponseOptions),
        (SSEEndpoint, EndpointOptions),
        (SSEMiddleware, EndpointOptions),
    ],
)
def test_every_entry_point_shows_the_declared_keywords_with_their_defaults(
    entry_point: type, declaration: type
) -> None:
    """What `help()` and IDEs read at run time; type checkers read the TypedDict."""
    parameters = inspect.signature(entry_point).parameters
    assert not [p for p in parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    fields = option_fields()
    for name in declaration.__annotations__:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameters[name].default == fields[name].default, name


def test_no_options_share_the_defaults_and_any_option_makes_its_own() -> None:
    assert EventSourceResponse(nothing()).options is DEFAULTS
    assert SSEEndpoint(handler).options is DEFAULTS
    options = EventSourceResponse(nothing(), ping=5).options
    assert options is not DEFAULTS
    assert (options.ping, options.send_timeout) == (5, DEFAULTS.send_timeout)
    assert SSEEndpoint(handler, methods=("get",)).options.methods == ("GET",)
    middleware = SSEMiddleware(app, {"/a": handler, "/b": handler}, ping=None)
    assert middleware.routes["/a"].options is middleware.routes["/b"].options
    assert middleware.routes["/a"].options.ping is None


def test_an_unknown_keyword_is_refused_as_python_would() -> None:
    """Endpoint-only options included: a response refuses ``methods=`` as it did when
    its signature was spelled out."""
    unexpected = "__init__\\(\\) got an unexpected keyword argument"
    with pytest.raises(TypeError, match=f"^EventSourceResponse.{unexpected} 'methods'$"):
        EventSourceResponse(nothing(), methods=("GET",))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=f"^EventSourceResponse.{unexpected} 'pingg'$"):
        StarletteResponse(nothing(), pingg=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=f"^SSEEndpoint.{unexpected} 'method'$"):
        SSEEndpoint(handler, method="GET")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=f"^SSEMiddleware.{unexpected} 'ping_evnt'$"):
        SSEMiddleware(app, {}, ping=1, ping_evnt=None)  # type: ignore[call-arg]


def test_with_options_goes_through_init() -> None:
    """A subclass's `__init__` runs for responses and endpoints made from checked
    options too (the endpoint and the middleware make them so)."""
    made: list[str] = []

    class Response(EventSourceResponse):
        __slots__ = ()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append("response")
            super().__init__(*args, **kwargs)

    class Endpoint(SSEEndpoint):
        __slots__ = ()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append("endpoint")
            super().__init__(*args, **kwargs)

    options = StreamOptions(ping=1)
    response = Response.with_options(nothing(), options, status_code=201)
    assert (response.options, response.status_code) == (options, 201)
    assert Endpoint.with_options(handler, options).options is options
    assert made == ["response", "endpoint"]
