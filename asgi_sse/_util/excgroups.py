"""The one rule for the ExceptionGroup a task group raises on its way out.

A task group that is left with an exception wraps what it collected in an
ExceptionGroup. When that group holds nothing but the exception the block was already
raising (and, on trio, the cancellation of a scope around it), the exception should
come out as itself: a failing ``assert`` stays an AssertionError, ``pytest.raises``
around the block still matches. Used by `merge()` and the streaming test transport;
Starlette's ``_utils.collapse_excgroups`` solves the same problem for its middleware.

Must not import anything from the rest of the package. Imports anyio (for the
cancellation class of the running backend) and, before Python 3.11, the exceptiongroup
backport, which it re-exports so that its users need no version check of their own.
"""

from __future__ import annotations

import sys

import anyio

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup
else:
    from builtins import BaseExceptionGroup

__all__ = ("BaseExceptionGroup", "wraps_only")


def wraps_only(group: BaseExceptionGroup[BaseException], exc: BaseException | None) -> bool:
    """Whether ``group`` holds ``exc`` and otherwise only cancellations: the caller's
    ``__aexit__`` then returns False, so that ``exc`` propagates as itself (the
    cancellation is level-triggered and comes back at the next checkpoint)."""
    if exc is None:
        return False
    cancelled = anyio.get_cancelled_exc_class()
    rest = [error for error in group.exceptions if not isinstance(error, cancelled)]
    return rest == [exc]
