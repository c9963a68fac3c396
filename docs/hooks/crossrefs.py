"""mkdocs hook: the names the docstrings quote become links in the API reference.

The docstrings name other public objects in single backticks (`` `Reset` ``,
`` `Hub.publish` ``, `` `merge()` ``), which Markdown renders as inline code. On the
reference pages, this hook turns each such ``<code>`` whose text is a public name into
an optional cross-reference for mkdocs-autorefs, which resolves it to the object's
entry when the site is assembled (and leaves it as plain code when there is none).

Signatures may mention names the reference cannot link (a type variable, a private
helper type); autorefs then gives them a hover title with the private module they were
looked up in, which ``on_post_page`` removes: no page shows a private path.

The public names are read from the ``__all__`` of each public module, statically (the
extras need not be installed to build the docs). A bare name resolves in the order of
``PUBLIC_MODULES``: `EventSourceResponse` is `asgi_sse.EventSourceResponse`, not the
Starlette adapter's.
"""

from __future__ import annotations

import ast
import html
import re
from functools import cache
from pathlib import Path
from typing import Any

__all__ = (
    "PUBLIC_MODULES",
    "identifier_for",
    "link_names",
    "on_page_content",
    "on_post_page",
    "public_names",
)

PACKAGE = Path(__file__).resolve().parents[2] / "asgi_sse"
PUBLIC_MODULES = (
    "asgi_sse",
    "asgi_sse.types",
    "asgi_sse.backends",
    "asgi_sse.redis",
    "asgi_sse.client",
    "asgi_sse.testing",
    "asgi_sse.schema",
    "asgi_sse.otel",
    "asgi_sse.starlette",
)

# The hover title autorefs gives a name it could not link (a type variable, a private
# helper type in a signature): the private module path it was looked up under.
_PRIVATE_TITLE = re.compile(r' title="asgi_sse\._[^"]*"')

# Inline code that is a dotted name, maybe called: `Hub.publish`, `merge()`. An <a> right
# before it means it is linked already.
_CODE = re.compile(r"(<a\b[^>]*>\s*)?<code>([A-Za-z_][\w.]*)(\(\))?</code>")


def _module_file(module: str) -> Path:
    parts = module.split(".")[1:]
    return PACKAGE.joinpath(*parts).with_suffix(".py") if parts else PACKAGE / "__init__.py"


def _all_of(path: Path) -> tuple[str, ...]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            return tuple(value)
    raise ValueError(f"{path} has no __all__")


@cache
def public_names() -> dict[str, str]:
    """Bare public name -> its identifier (the first public module that has it)."""
    names: dict[str, str] = {}
    for module in PUBLIC_MODULES:
        for name in _all_of(_module_file(module)):
            names.setdefault(name, f"{module}.{name}")
    return names


def identifier_for(text: str) -> str | None:
    """The identifier a quoted name stands for, or None for anything else."""
    if text in PUBLIC_MODULES:
        return text
    if text.startswith("asgi_sse."):
        module, _, name = text.rpartition(".")
        while module and module not in PUBLIC_MODULES:
            module, _, rest = module.rpartition(".")
            name = f"{rest}.{name}"
        return text if module and not name.startswith("_") else None
    head, _, rest = text.partition(".")
    found = public_names().get(head)
    if found is None or rest.startswith("_"):
        return None
    return f"{found}.{rest}" if rest else found


def link_names(content: str) -> str:
    """``content`` with every inline code that names a public object made an autoref."""

    def link(match: re.Match[str]) -> str:
        identifier = None if match[1] else identifier_for(match[2])
        if identifier is None:
            return match[0]
        return f'<autoref identifier="{html.escape(identifier)}" optional>{match[0]}</autoref>'

    return _CODE.sub(link, content)


def on_page_content(html_content: str, page: Any, config: Any, files: Any) -> str:
    if not page.file.src_uri.startswith("reference/"):
        return html_content
    return link_names(html_content)


def on_post_page(output: str, page: Any, config: Any) -> str:
    """No private module path in the page, not even in a tooltip."""
    return _PRIVATE_TITLE.sub("", output)
