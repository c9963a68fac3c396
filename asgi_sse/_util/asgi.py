"""ASGI type aliases, taken from asgiref's typing module rather than written again.

The internals are typed with asgiref's TypedDicts. The public entry points (the
`__call__` of every ASGI app here, and the `app` a middleware wraps) take `Any` instead:
every framework types the same dicts its own way (Starlette: `MutableMapping[str, Any]`,
Litestar and Quart: TypedDicts of their own), and a type checker finds those callable
types incompatible with asgiref's although they are the same objects at run time. With
`Any` at the boundary, mounting an asgi-sse app anywhere type-checks without an ignore.

Type aliases only: must not import anything of the package; asgiref's typing module
is all it reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from asgiref.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

__all__ = (
    "ASGIApp",
    "ASGIReceiveCallable",
    "ASGIReceiveEvent",
    "ASGISendCallable",
    "ASGISendEvent",
    "AnyReceive",
    "AnyScope",
    "AnySend",
    "Scope",
)

#: A scope, receive or send as any framework or server types it (see the module doc).
AnyScope: TypeAlias = Any
AnyReceive: TypeAlias = Any
AnySend: TypeAlias = Any
ASGIApp: TypeAlias = Callable[[Any, Any, Any], Awaitable[Any]]
"""Any ASGI 3 application, however its framework types it."""
