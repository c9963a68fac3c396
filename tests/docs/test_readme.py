"""README.md is the front door: short, its two commands as they always were, its one
example a docs example verbatim (so the suite runs it), and its links alive.

Its server commands, if any, run with the pages' (tests/docs/test_commands.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.docs.source import README, ROOT, blocks, example_files

TEXT = README.read_text(encoding="utf-8")
LINES = TEXT.splitlines()

DEMO = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[demo]' "
    "&& .venv/bin/python -m asgi_sse.demo"
)
TESTS = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"


def test_the_readme_is_at_most_200_lines() -> None:
    assert len(LINES) <= 200


def test_the_two_commands_are_where_they_always_were() -> None:
    assert LINES[16] == DEMO  # line 17
    assert LINES[23] == TESTS  # line 24


def test_its_python_block_is_an_example_file_verbatim() -> None:
    python = [block for block in blocks(README) if block.is_python]
    assert len(python) == 1, "README.md has one example; the rest is in the docs"
    [block] = python
    assert block.info == "python"
    matches = [
        path for path in example_files() if path.read_text(encoding="utf-8") == block.source
    ]
    assert matches, (
        f"{block.where}: the block must be a file of docs/examples/ verbatim "
        "(tests/docs/test_examples.py runs it)"
    )


def test_its_links_lead_somewhere() -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", TEXT)
    assert links
    for link in links:
        assert "://" not in link, f"README.md links outside the repository: {link}"
        assert (ROOT / link).exists(), f"README.md links to a missing {link}"


def test_it_links_into_every_part_of_the_docs() -> None:
    linked = {Path(link).parts[1] for link in re.findall(r"\]\((docs/[^)]+)\)", TEXT)}
    assert {"tutorial", "how-to", "explanation", "reference"} <= linked
