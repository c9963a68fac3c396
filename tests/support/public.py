"""The package's public modules, for every test that needs their list (the layers'
rules, the docstrings, the documentation site, the annotations at run time).

Written once, in the documentation's cross-reference hook (``docs/hooks/crossrefs.py``,
``PUBLIC_MODULES``), where their order also decides which module a bare name in a
docstring links to; read from there. The hook cannot import the tests instead: mkdocs
loads it by its path, with neither the project root nor ``tests`` importable, and the
docs build must not depend on the tests. The tests load the hook as they load
``docs/hooks/benchmarks.py``: it imports the standard library only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ("PUBLIC_MODULES",)

_HOOK = Path(__file__).resolve().parents[2] / "docs" / "hooks" / "crossrefs.py"


def _read_from_the_hook() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("docs_hook_crossrefs", _HOOK)
    assert spec is not None
    assert spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    modules = hook.PUBLIC_MODULES
    assert isinstance(modules, tuple)
    return tuple(str(module) for module in modules)


PUBLIC_MODULES: tuple[str, ...] = _read_from_the_hook()
"""The public modules (``asgi_sse`` first): the facades users import from."""
