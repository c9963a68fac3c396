"""The documentation site builds with ``--strict``, its reference shows every public
name and no private one, and it opens in a real browser without a console error and
without a request to anywhere but the local server.

The site is built once into a temporary folder (``mkdocs build --strict``, as CI and
docs/development.md do). Chromium is Debian's (``/usr/bin/chromium`` or
``$ASGI_SSE_CHROMIUM``); without one the browser test skips, unless
``ASGI_SSE_REQUIRE_BROWSER=1`` (CI), where it fails instead.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.docs.source import ROOT
from tests.support.browser import TIMEOUT_MS, browser
from tests.support.public import PUBLIC_MODULES

__all__ = ("browser",)  # a fixture, imported to be found here


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as CI builds it."""
    directory = tmp_path_factory.mktemp("site")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(directory)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"mkdocs build --strict: {time.monotonic() - started:.1f} s")
    return directory


def reference_page(site: Path, module: str) -> str:
    name = "asgi_sse" if module == "asgi_sse" else module.removeprefix("asgi_sse.")
    return (site / "reference" / name / "index.html").read_text(encoding="utf-8")


def test_the_site_has_its_pages(site: Path) -> None:
    for page in ("index.html", "tutorial/chat/index.html", "how-to/redis/index.html"):
        assert (site / page).is_file(), page
    performance = (site / "explanation" / "performance" / "index.html").read_text("utf-8")
    assert "benchmarks:summary" not in performance  # the hook made the table
    assert "sse-starlette" in performance


def test_the_site_publishes_no_tool_config(site: Path) -> None:
    # docs/ holds ruff.toml files for its example and hook code: not pages.
    assert not sorted(str(p.relative_to(site)) for p in site.rglob("*.toml"))


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_the_reference_shows_every_public_name(site: Path, module: str) -> None:
    html = reference_page(site, module)
    names: tuple[str, ...] = importlib.import_module(module).__all__
    missing = [name for name in names if f'id="{module}.{name}"' not in html]
    assert not missing, f"reference/{module} lacks {missing}"


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_the_reference_shows_no_private_name(site: Path, module: str) -> None:
    html = reference_page(site, module)
    private = set(re.findall(r'id="(asgi_sse[\w.]*\._(?!_)\w*)"', html))
    assert not private, f"reference/{module} shows private members: {sorted(private)}"


def test_the_reference_links_signatures_to_their_types(site: Path) -> None:
    html = reference_page(site, "asgi_sse")
    # Hub.subscribe returns a Subscription, which is documented on the same page.
    assert 'href="#asgi_sse.Subscription"' in html


def test_the_names_docstrings_quote_are_links(site: Path) -> None:
    # docs/hooks/crossrefs.py: `Reset` in Hub's docstring, `EventSource` in the client's
    # module docstring (a link to another page), `merge()` called.
    link = '<a class="autorefs autorefs-internal" href="{href}"><code>{text}</code></a>'
    assert link.format(href="#asgi_sse.Reset", text="Reset") in reference_page(site, "asgi_sse")
    assert link.format(href="#asgi_sse.merge", text="merge()") in reference_page(site, "asgi_sse")
    client = reference_page(site, "asgi_sse.client")
    assert link.format(href="../asgi_sse/#asgi_sse.BaseEvent", text="BaseEvent") in client


def test_no_page_shows_a_private_path(site: Path) -> None:
    private = re.compile(r"asgi_sse\._[a-z]")
    shown = [
        str(page.relative_to(site))
        for page in site.rglob("*.html")
        if private.search(page.read_text(encoding="utf-8"))
    ]
    assert not shown, f"pages that show a private module path: {shown}"


# -- in a browser ---------------------------------------------------------------------


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(site: Path) -> Iterator[str]:
    """The built site on 127.0.0.1, as any static file server serves it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("path", "heading"),
    [("/", "asgi-sse"), ("/reference/asgi_sse/", "asgi_sse")],
    ids=["home", "api-reference"],
)
def test_a_page_opens_in_chromium_without_errors(
    browser: Any, served: str, path: str, heading: str
) -> None:
    problems: list[str] = []
    elsewhere: list[str] = []
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)

        def only_local(route: Any) -> None:
            # Offline by design: anything not from the local server is refused and noted.
            if urlsplit(route.request.url).hostname == "127.0.0.1":
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        page.on(
            "console",
            lambda message: (
                problems.append(f"console {message.type}: {message.text}")
                if message.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "response",
            lambda response: (
                problems.append(f"{response.status} {response.url}")
                if response.status >= 400
                else None
            ),
        )
        response = page.goto(served + path, wait_until="load")
        assert response is not None
        assert response.status == 200
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").first.inner_text().strip().rstrip("¶") == heading
        # The search index loads in its web worker: type, and results come.
        page.locator("label.md-search__icon, .md-search__input").first.click()
        page.keyboard.type("resume")
        page.locator(".md-search-result__item").first.wait_for()
    finally:
        context.close()
    assert not elsewhere, f"requests away from the local server: {elsewhere}"
    assert not problems, problems
