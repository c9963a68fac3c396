"""The public surface as tools see it at run time: what worked at 0.1.0's layout
(be7cddc) keeps working for code that inspects the package rather than imports names.

- ``import asgi_sse`` makes ``asgi_sse.types`` reachable, as it always did;
- the public annotations resolve (`typing.get_type_hints`, ``inspect.signature(...,
  eval_str=True)``): FastAPI, pydantic's ``validate_call``, typeguard and the like
  evaluate them, and a name imported only for type checkers is a NameError there.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from collections.abc import Callable
from typing import Any

import pytest

from asgi_sse import StreamObserver
from asgi_sse.otel import SSEMetrics
from asgi_sse.types import EndpointOptions, ResponseOptions


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
