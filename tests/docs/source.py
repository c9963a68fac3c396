"""The docs' code as the tests see it (not a test module).

The rules every page follows (docs/development.md says them to writers):

* A ```` ```python ```` block holds only include lines (``--8<-- "docs/examples/..."``,
  optionally ``:section``): complete examples live in files under ``docs/examples/``,
  and every one of them is run by ``tests/docs/test_examples.py``.
* A fragment is fenced ```` ```{.py .fragment} ````: it is shown as Python and only
  compiled (top-level ``await`` allowed).
* Any other fence that says Python (``py``, ``python3``, ``pycon``...) is refused.
* In a ```` ```sh ```` block, every ``uvicorn``/``hypercorn`` line names an example
  module; ``tests/docs/test_commands.py`` runs it and opens the block's first
  ``curl -N`` URL against it. Lines with ``--certfile`` (TLS, HTTP/2) are run by
  ``tests/integration/test_http2.py`` instead, with a certificate.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
README = ROOT / "README.md"

__all__ = (
    "DOCS",
    "EXAMPLES",
    "README",
    "ROOT",
    "Block",
    "Include",
    "ServerCommand",
    "blocks",
    "example_files",
    "example_path",
    "includes",
    "pages",
    "server_commands",
)

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_INCLUDE = re.compile(r'^--8<--\s+"(?P<target>[^"]+)"$')
_PYTHON_WORDS = {"py", "python", "python3", "py3", "pycon", "pyi"}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # of the opening fence, from 1
    info: str  # what follows the opening fence, stripped
    source: str  # the body, dedented by the fence's indentation

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def language(self) -> str:
        """``python`` for ```python, ``py`` for ```{.py .fragment}, etc."""
        info = self.info
        if info.startswith("{"):
            classes = [word[1:] for word in info.strip("{}").split() if word.startswith(".")]
            return classes[0] if classes else ""
        return info.split()[0] if info else ""

    @property
    def is_fragment(self) -> bool:
        return self.info.startswith("{") and ".fragment" in self.info.strip("{}").split()

    @property
    def is_python(self) -> bool:
        return self.language.lower() in _PYTHON_WORDS


@dataclass(frozen=True)
class Include:
    """A ``--8<--`` line of a ```python block: a file, and maybe one section of it."""

    block: Block
    file: Path
    section: str | None


@dataclass(frozen=True)
class ServerCommand:
    """A ``uvicorn``/``hypercorn`` line of a ```sh block, and the URL path to open."""

    block: Block
    argv: tuple[str, ...]
    path: str

    @property
    def module(self) -> str:
        return self.argv[1].partition(":")[0]


def pages() -> list[Path]:
    """Every Markdown page of the site (the examples folder holds none)."""
    return sorted(path for path in DOCS.rglob("*.md") if EXAMPLES not in path.parents)


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, in order (nested fences not supported)."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            line = lines[end]
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) <= {fence[0]}:
                break
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            end += 1
        else:
            raise AssertionError(f"{path}:{index + 1}: a fence that is never closed")
        source = "\n".join(body) + "\n" if body else ""
        found.append(Block(path, index + 1, opening["info"].strip(), source))
        index = end + 1
    return found


def includes(block: Block) -> list[Include]:
    """The include lines of a ```python block; anything else in it is an error."""
    result: list[Include] = []
    for line in block.source.splitlines():
        if not line.strip():
            continue
        match = _INCLUDE.match(line.strip())
        if match is None:
            raise AssertionError(
                f"{block.where}: a ```python block holds only --8<-- lines of files under "
                f"docs/examples/ (fence a fragment as ```{{.py .fragment}}); found {line!r}"
            )
        target = match["target"]
        file, _, section = target.partition(":")
        result.append(Include(block, ROOT / file, section or None))
    return result


def example_files() -> list[Path]:
    """Every example: the Python files under docs/examples/."""
    return sorted(EXAMPLES.rglob("*.py"))


def example_path(module: str) -> Path:
    """The example file of a module name (the names are unique across folders)."""
    [path] = [path for path in example_files() if path.stem == module]
    return path


def server_commands(block: Block) -> list[ServerCommand]:
    """The server command lines of a ```sh block, each with the block's stream path."""
    paths = [
        shlex.split(line)[-1]
        for line in block.source.splitlines()
        if line.strip().startswith("curl -N ")
    ]
    path = "/"
    if paths:
        url = paths[0]
        path = "/" + url.split("://", 1)[-1].partition("/")[2]
    return [
        ServerCommand(block, tuple(shlex.split(line.strip())), path)
        for line in block.source.splitlines()
        if line.strip().startswith(("uvicorn ", "hypercorn "))
        and "--certfile" not in line  # TLS: tests/integration/test_http2.py runs those
    ]
