"""The code on the pages: what it may be, and that it is what the suite runs.

Every Python block of docs/ and README.md is either an include of an example file
(which tests/docs/test_examples.py runs) or a fragment that says so and compiles; every
example is shown on some page. The rules are written down in docs/development.md and
tests/docs/source.py.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from types import ModuleType

import pytest

from tests.docs.source import (
    DOCS,
    EXAMPLES,
    README,
    ROOT,
    Block,
    Include,
    blocks,
    example_files,
    example_path,
    includes,
    pages,
    server_commands,
)

ALL_BLOCKS = [block for page in [*pages(), README] for block in blocks(page)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.is_python]
FRAGMENTS = [block for block in PYTHON_BLOCKS if block.is_fragment]
INCLUDES = [
    include
    for block in PYTHON_BLOCKS
    if not block.is_fragment and block.path != README
    for include in includes(block)
]


def test_the_pages_have_code() -> None:
    assert len(pages()) >= 30
    assert len(INCLUDES) >= len(example_files())
    assert FRAGMENTS


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda block: block.where)
def test_a_python_block_is_an_example_or_a_fragment(block: Block) -> None:
    if block.is_fragment:
        assert block.language == "py", f"{block.where}: fence a fragment as {{.py .fragment}}"
        return
    assert block.info == "python" or block.info.startswith("python "), (
        f"{block.where}: a Python block is ```python (an example file) or "
        f"```{{.py .fragment}}, not ```{block.info}"
    )
    if block.path == README:
        return  # README.md cannot include: tests/docs/test_readme.py checks its block
    assert includes(block), f"{block.where}: an empty ```python block"


@pytest.mark.parametrize("block", FRAGMENTS, ids=lambda block: block.where)
def test_a_fragment_compiles(block: Block) -> None:
    compile(block.source, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize("include", INCLUDES, ids=lambda include: include.block.where)
def test_an_include_shows_an_example(include: Include) -> None:
    assert EXAMPLES in include.file.parents, (
        f"{include.block.where}: a ```python block shows a file under docs/examples/"
    )
    assert include.file.is_file(), f"{include.block.where}: no file {include.file}"
    if include.section is not None:
        text = include.file.read_text(encoding="utf-8")
        for marker in ("start", "end"):
            assert f"# --8<-- [{marker}:{include.section}]" in text, include.block.where


def test_every_example_is_shown_on_a_page() -> None:
    shown = {include.file for include in INCLUDES if include.section is None}
    missing = sorted(str(path.relative_to(ROOT)) for path in set(example_files()) - shown)
    assert not missing, f"examples no page shows in full: {missing}"


def test_every_server_command_names_an_example() -> None:
    commands = [command for block in ALL_BLOCKS for command in server_commands(block)]
    assert {command.argv[0] for command in commands} == {"uvicorn", "hypercorn"}
    for command in commands:
        assert example_path(command.module), command.block.where


def test_no_page_links_to_a_private_module() -> None:
    private = re.compile(r"asgi_sse\._[a-z]")
    for page in [*pages(), README]:
        text = page.read_text(encoding="utf-8")
        assert not private.search(text), f"{page.relative_to(ROOT)} names a private module"


# -- the performance page -----------------------------------------------------------------


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_hook_benchmarks", DOCS / "hooks" / "benchmarks.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_chart_is_the_benchmarks_chart() -> None:
    chart = (DOCS / "assets" / "results.png").read_bytes()
    assert chart == (ROOT / "benchmarks" / "results.png").read_bytes(), (
        "cp benchmarks/results.png docs/assets/results.png"
    )


def test_the_performance_table_is_made_from_results() -> None:
    hook = load_hook()
    text = hook.RESULTS.read_text(encoding="utf-8")
    tables = hook.read_tables(text)
    summary = hook.summary(text)
    burst = {
        row[""]: row["\N{MULTIPLICATION SIGN} minimal"]
        for row in tables[next(t for t in tables if t.startswith("Burst"))]
    }
    line = next(line for line in summary.splitlines() if line.startswith("| one stream"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    ours = f"{burst['asgi_sse']} (an event object per event)"
    if "asgi_sse_frame" in burst:
        ours += f"; {burst['asgi_sse_frame']} (`Tick.frame`)"
    assert cells[1] == f"{ours}; {burst['asgi_sse_buffered']} in `buffered()`"
    assert cells[2:] == [burst["sse_starlette"], burst["fastapi_sse"], burst["litestar"]]
    page = (DOCS / "explanation" / "performance.md").read_text(encoding="utf-8")
    assert hook.MARKER in page
    assert hook.on_page_markdown(page, None, None, None).count("| one stream") == 1


def test_the_hook_refuses_results_it_cannot_read() -> None:
    hook = load_hook()
    with pytest.raises(ValueError, match="not enough values"):
        hook.summary("# nothing here\n")


def test_pages_live_where_the_nav_says() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config[config.index("\nnav:\n") :]  # the last section of mkdocs.yml
    listed = set(re.findall(r":\s+([\w/-]+\.md)$|^\s+- ([\w/-]+\.md)$", nav, re.MULTILINE))
    named = {a or b for a, b in listed}
    assert named == {str(page.relative_to(DOCS)) for page in pages()}
