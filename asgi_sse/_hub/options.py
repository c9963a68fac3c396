"""The checks of a `Hub`'s options and of its arguments that are not topics (owners),
where the hub is made or called rather than deep in a publish.

Imports the observer's types and the package's checks only.
"""

from __future__ import annotations

import math
from typing import get_args

from .._util.checks import is_count
from .observer import OverflowPolicy

__all__ = ("check_options", "check_owner")

_OVERFLOW_POLICIES: tuple[OverflowPolicy, ...] = get_args(OverflowPolicy)


def check_owner(owner: object) -> None:
    """An owner (`Hub.subscribe`, `Hub.drop`) is a non-empty str.

    Raises:
        ValueError: it is not.
    """
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner must be a non-empty str, got {owner!r}")


def check_options(
    history: int,
    history_bytes: int,
    max_topics: int,
    expire_after: float,
    on_overflow: OverflowPolicy,
    max_running: int,
    run_lease: float,
) -> None:
    """Refuse an option out of range, as the hub is made.

    Raises:
        ValueError: for a limit that is not a positive int, an ``expire_after`` or
            ``run_lease`` that is not a positive finite number, or an unknown policy.
    """
    for name, value in (
        ("history", history),
        ("history_bytes", history_bytes),
        ("max_topics", max_topics),
        ("max_running", max_running),
    ):
        if not is_count(value, minimum=1):
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not expire_after > 0:
        raise ValueError(f"expire_after must be a positive number of seconds, got {expire_after}")
    if on_overflow not in _OVERFLOW_POLICIES:
        policies = " or ".join(repr(policy) for policy in _OVERFLOW_POLICIES)
        raise ValueError(f"on_overflow must be {policies}, got {on_overflow!r}")
    if isinstance(run_lease, bool) or not (
        isinstance(run_lease, (int, float)) and math.isfinite(run_lease) and run_lease > 0
    ):
        raise ValueError(f"run_lease must be a positive number of seconds, got {run_lease!r}")
