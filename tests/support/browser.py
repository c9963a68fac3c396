"""A real headless Chromium, for the tests that open pages in one (the demo and the
browser's own EventSource in ``tests/integration/test_browser.py``, the documentation
site in ``tests/docs/test_site.py``). Not a test module: they import `browser`.

Chromium is Debian's (``/usr/bin/chromium`` or ``$ASGI_SSE_CHROMIUM``), driven by
playwright's sync API; without either, the tests that use `browser` skip, unless
``ASGI_SSE_REQUIRE_BROWSER=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ("CHROMIUM_ARGS", "TIMEOUT_MS", "browser")

TIMEOUT_MS = 20_000
"""How long a browser step may take (launching, loading, waiting for a condition), ms."""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
"""Headless, in a container, and quiet: no request of the browser's own."""


def _unavailable(reason: str) -> None:
    if os.environ.get("ASGI_SSE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (ASGI_SSE_REQUIRE_BROWSER=1: browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, launched once per test module (a playwright ``Browser``)."""
    path = os.environ.get("ASGI_SSE_CHROMIUM") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(path):
        _unavailable("no Chromium: install Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]'")
    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        manager.stop()
