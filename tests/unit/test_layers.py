"""The package's plan, as rules: each layer imports only the layers below it, nothing
imports in a circle (type-only imports included), no module is over 500 lines.

The layers, bottom up (a folder each; the public modules at the top are facades):

    _util          ASGI type aliases, the lifespan answer, task helpers
    _protocol      sans-IO: the wire, the parser, typed events, cursors, frames, errors
    _streams       merge(), buffered(), resumable_merge()
    _server        the response and its lifecycle, endpoint, middleware, shutdown
    _hub           the broker: log, subscription, backend SPI, memory backend
    _client        the typed EventSource on httpx
    _testing       the in-process streaming client and httpx transport
    _integrations  Starlette, OpenTelemetry, schemas
    _redis         the Redis backend: public names only, as a third party's would be

Read from the source (ast), so an import inside a function or under TYPE_CHECKING
counts like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.public import PUBLIC_MODULES

PACKAGE = Path(__file__).resolve().parents[2] / "asgi_sse"

#: What each private layer may import from the package (itself always).
ALLOWED: dict[str, set[str]] = {
    "_util": set(),
    "_version": set(),
    "_protocol": {"_util"},
    "_streams": {"_util", "_protocol"},
    "_server": {"_util", "_protocol", "_streams"},
    "_hub": {"_util", "_protocol", "_streams"},
    "_client": {"_util", "_protocol"},
    "_testing": {"_util", "_protocol"},
    "_integrations": {"_util", "_protocol", "_streams", "_server", "_hub"},
}
#: The public modules: facades over the layers, and the only names the Redis backend
#: and the demo may use.
PUBLIC = set(PUBLIC_MODULES)
#: Layers that import nothing that can block or schedule.
SANS_IO = {"_protocol"}
ASYNC_LIBRARIES = {"anyio", "asyncio", "trio", "asgiref", "sniffio"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from x import y`` gives both
    ``x`` and ``x.y``, since ``y`` may be a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
IMPORTS = {name: {i for i in imports_of(path) if i in MODULES} for name, path in MODULES.items()}


def layer_of(module: str) -> str | None:
    """The private layer a module belongs to (``asgi_sse._hub.log`` -> ``_hub``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1].startswith("_") else None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) in ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(module: str) -> None:
    own = layer_of(module)
    assert own is not None
    allowed = ALLOWED[own] | {own, "_version"}
    wrong = sorted(i for i in IMPORTS[module] if layer_of(i) not in allowed)
    assert not wrong, f"{module} ({own}) may import only {sorted(allowed)}, not {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) == "_redis"))
def test_the_redis_backend_uses_public_names_only(module: str) -> None:
    wrong = sorted(i for i in IMPORTS[module] if i not in PUBLIC and layer_of(i) != "_redis")
    assert not wrong, f"{module} imports private modules {wrong}: use asgi_sse.backends"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("asgi_sse.demo")))
def test_the_demo_uses_public_names_only(module: str) -> None:
    wrong = sorted(
        i for i in IMPORTS[module] if i not in PUBLIC and not i.startswith("asgi_sse.demo")
    )
    assert not wrong, f"{module} imports private modules {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) in SANS_IO))
def test_the_protocol_layer_imports_nothing_async(module: str) -> None:
    roots = {name.split(".")[0] for name in imports_of(MODULES[module])}
    assert not roots & ASYNC_LIBRARIES, module


def test_private_modules_never_import_a_facade() -> None:
    # The facades re-export; a layer importing one would loop back through the top.
    # (Only the Redis backend, which stands outside the layers, uses them.)
    wrong = {
        module: sorted(IMPORTS[module] & (PUBLIC - {"asgi_sse"}))
        for module in MODULES
        if layer_of(module) in ALLOWED and IMPORTS[module] & PUBLIC
    }
    assert not {m: w for m, w in wrong.items() if w}


def test_nothing_imports_in_a_circle() -> None:
    # Package __init__ modules are facades: an edge into `asgi_sse` itself is the
    # import of the package that every submodule has anyway.
    graph = {m: {i for i in IMPORTS[m] if i != "asgi_sse"} for m in MODULES}
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import circle: " + " -> ".join(cycle))
        if module in done:
            return
        path.append(module)
        for target in sorted(graph[module]):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_every_module_is_a_package_member_of_a_known_layer() -> None:
    unknown = sorted(
        m
        for m in MODULES
        if m not in PUBLIC
        and not m.startswith("asgi_sse.demo")
        and layer_of(m) not in (*ALLOWED, "_redis")
    )
    assert not unknown, f"modules outside the layers: {unknown}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_500_lines(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= 500, f"{module} has {lines} lines: split it by the steps it holds"
