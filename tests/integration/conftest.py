"""Fixtures shared by the integration tests that talk to real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.rawclient import RawClient


@pytest.fixture
def clients() -> Iterator[list[RawClient]]:
    """Raw sockets a test opens (append them); each is closed when the test ends."""
    opened: list[RawClient] = []
    try:
        yield opened
    finally:
        for client in opened:
            client.close()
