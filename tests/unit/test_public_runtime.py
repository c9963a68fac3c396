"""The public surface as tools see it at run time: what worked at 0.1.0's layout
(be7cddc) keeps working for code that inspects the package rather than imports names.

- ``import asgi_sse`` makes ``asgi_sse.types`` reachable, as it always did;
- the public annotations resolve (`typing.get_type_hints`, ``inspect.signature(...,
  eval_str=True)``): FastAPI, pydantic's ``validate_call``, typeguard and the like
  evaluate them, and a name imported only for type checkers is a NameError there.
  Every public function and class, and every method a public class declares itself
  (observer hooks included), of every public module.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import typing
from collections.abc import Callable
from typing import Any

import pytest

import asgi_sse.starlette
from asgi_sse import (
    EventSourceResponse,
    Hub,
    HubObserver,
    SSEEndpoint,
    SSEMiddleware,
    StreamObserver,
)
from asgi_sse._util.compat import Unpack
from asgi_sse.otel import SSEMetrics
from asgi_sse.types import EndpointOptions, Publishable, ResponseOptions
from tests.support.public import PUBLIC_MODULES

#: The special methods a public class may declare for its users.
SPECIAL = {"__init__", "__call__", "__aenter__", "__aexit__", "__aiter__", "__anext__"}


def test_import_asgi_sse_reaches_its_types_module() -> None:
    code = "import asgi_sse; print(asgi_sse.types.EventStream)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


HOOKS: dict[str, Callable[..., Any]] = {
    "StreamObserver.on_close": StreamObserver.on_close,
    "SSEMetrics.on_close": SSEMetrics.on_close,
}


@pytest.mark.parametrize("hook", HOOKS.values(), ids=HOOKS.keys())
def test_the_observer_hooks_annotations_resolve(hook: Callable[..., Any]) -> None:
    hints = typing.get_type_hints(hook)
    assert typing.get_args(hints["reason"])  # the CloseReason Literal, not a str
    inspect.signature(hook, eval_str=True)


@pytest.mark.parametrize("options", [ResponseOptions, EndpointOptions])
def test_the_option_declarations_resolve(options: type[Any]) -> None:
    hints = typing.get_type_hints(options)
    assert set(hints) >= {"ping", "ping_event", "send_timeout", "headers", "observer"}


def public_callables() -> dict[str, Any]:
    """Every public function and class, and every method, property or special method
    (`SPECIAL`) a public class declares itself, by the first public path that has it."""
    found: dict[str, Any] = {}
    seen: set[int] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if id(value) in seen or not (inspect.isfunction(value) or inspect.isclass(value)):
                continue
            seen.add(id(value))
            found[f"{module_name}.{name}"] = value
            if inspect.isclass(value):
                found.update(
                    (f"{module_name}.{name}.{attribute}", member)
                    for attribute, member in members_of(value)
                )
    return found


def members_of(cls: type[Any]) -> list[tuple[str, Any]]:
    members: list[tuple[str, Any]] = []
    for attribute, value in vars(cls).items():
        if attribute.startswith("_") and attribute not in SPECIAL:
            continue
        member = value.fget if isinstance(value, property) else value
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if inspect.isfunction(member):
            members.append((attribute, member))
    return members


PUBLIC_CALLABLES = public_callables()


@pytest.mark.parametrize("target", PUBLIC_CALLABLES.values(), ids=PUBLIC_CALLABLES.keys())
def test_every_public_annotation_resolves_at_run_time(target: Any) -> None:
    typing.get_type_hints(target)
    if not inspect.isclass(target):
        inspect.signature(target, eval_str=True)


def test_the_walk_reaches_the_entry_points_and_the_observer_hooks() -> None:
    for path in (
        "asgi_sse.EventSourceResponse.__init__",
        "asgi_sse.SSEEndpoint.__init__",
        "asgi_sse.SSEMiddleware.__init__",
        "asgi_sse.starlette.EventSourceResponse.__init__",
        "asgi_sse.Hub.publish",
        "asgi_sse.HubObserver.on_end",
        "asgi_sse.StreamObserver.on_close",
        "asgi_sse.otel.SSEMetrics.on_lag",
        "asgi_sse.client.EventSource.__aenter__",
    ):
        assert path in PUBLIC_CALLABLES, path


@pytest.mark.parametrize(
    "init",
    [
        EventSourceResponse.__init__,
        SSEEndpoint.__init__,
        SSEMiddleware.__init__,
        asgi_sse.starlette.EventSourceResponse.__init__,
    ],
    ids=["EventSourceResponse", "SSEEndpoint", "SSEMiddleware", "starlette"],
)
def test_the_options_are_unpacked_typed_dicts_at_run_time(init: Callable[..., Any]) -> None:
    options = typing.get_type_hints(init)["options"]
    assert options in (Unpack[ResponseOptions], Unpack[EndpointOptions])


HUB_HOOKS: dict[str, tuple[Callable[..., Any], str]] = {
    "HubObserver.on_subscribe": (HubObserver.on_subscribe, "how"),
    "HubObserver.on_reset": (HubObserver.on_reset, "reason"),
    "HubObserver.on_end": (HubObserver.on_end, "reason"),
    "SSEMetrics.on_subscribe": (SSEMetrics.on_subscribe, "how"),
    "SSEMetrics.on_reset": (SSEMetrics.on_reset, "reason"),
    "SSEMetrics.on_end": (SSEMetrics.on_end, "reason"),
}


@pytest.mark.parametrize(("hook", "word"), HUB_HOOKS.values(), ids=HUB_HOOKS.keys())
def test_the_hub_hooks_words_resolve_to_their_literals(
    hook: Callable[..., Any], word: str
) -> None:
    assert typing.get_args(typing.get_type_hints(hook)[word])


def test_the_hub_publishes_the_public_publishable_type() -> None:
    for method in (Hub.publish, Hub.publish_nowait, Hub.publish_from_thread):
        assert typing.get_type_hints(method)["event"] == Publishable
    assert typing.get_type_hints(Hub.close)["final_event"] == Publishable | None
