"""The docstrings are the API reference: every public object has one, in Google style.

What is checked is what the reference pages render (mkdocstrings, ``docstring_style:
google``): every name in the ``__all__`` of every public module, and every public
member (method, property, attribute) that a class of the package declares itself -
not what it inherits from pydantic, Starlette or ``object``. A docstring's sections
name only parameters its signature has, name real exceptions under ``Raises:``, parse
without a warning, and use no reStructuredText (``::`` blocks, ``:param:`` fields),
which Markdown renders as it is.

The package is read statically with griffe, as mkdocstrings reads it: the extras need
not be imported, and the whole module runs in well under a second.
"""

from __future__ import annotations

import builtins
import importlib
import logging
import re
from collections.abc import Iterator
from functools import cache

import griffe
import pytest

from tests.docs.source import ROOT
from tests.support.public import PUBLIC_MODULES

# reStructuredText that Markdown shows as it is: a literal block's `::`, field lists,
# directives and roles.
# What griffe's docstring parser logs: "asgi_sse/_hub/hub.py:160: <what is wrong>".
_PARSER_MESSAGE = re.compile(r"\S+\.py:\d+: ")
_RST = re.compile(r"::\s*$|^\s*:(param|type|raises?|returns?|rtype)\b|^\s*\.\. \w+|:\w+:`")


@cache
def package() -> griffe.Module:
    loaded = griffe.load(
        "asgi_sse",
        search_paths=[str(ROOT)],
        docstring_parser="google",
        resolve_aliases=True,
        resolve_external=False,
        allow_inspection=False,
    )
    assert isinstance(loaded, griffe.Module)
    return loaded


def public_module(name: str) -> griffe.Module:
    root = package()
    if name == "asgi_sse":
        return root
    module = root[name.removeprefix("asgi_sse.")]
    assert isinstance(module, griffe.Module)
    return module


def exported(module_name: str) -> Iterator[tuple[str, griffe.Object]]:
    """Each name of the module's ``__all__`` as ``(public path, object)``; a name that
    another project defines (asgiref's ``Scope``) is that project's to document."""
    module = public_module(module_name)
    assert module.exports is not None, f"{module_name} has no __all__"
    for name in map(str, module.exports):
        member = module[name]
        if member.is_alias:
            try:
                member = member.final_target
            except griffe.AliasResolutionError as error:
                if error.alias.target_path.startswith("asgi_sse."):
                    raise
                continue  # defined elsewhere (asgiref, not loaded here)
        assert isinstance(member, griffe.Object)
        yield f"{module_name}.{name}", member


def documented(module_name: str) -> Iterator[tuple[str, griffe.Object]]:
    """What the module's reference page shows: its exports, and the public members
    their classes declare."""
    for path, obj in exported(module_name):
        yield path, obj
        if isinstance(obj, griffe.Class):
            for name, member in obj.members.items():
                if not name.startswith("_") and not member.is_alias:
                    assert isinstance(member, griffe.Object)
                    yield f"{path}.{name}", member


def everything() -> Iterator[tuple[str, griffe.Object]]:
    """Every documented object once (a class exported by two modules, once), and the
    public modules themselves (their docstrings open their pages)."""
    seen: set[str] = set()
    for module_name in PUBLIC_MODULES:
        yield module_name, public_module(module_name)
        for path, obj in documented(module_name):
            if obj.path not in seen:
                seen.add(obj.path)
                yield path, obj


def sections(obj: griffe.Object) -> list[griffe.DocstringSection]:
    assert obj.docstring is not None
    return griffe.parse_google(obj.docstring)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_object_has_a_docstring(module_name: str) -> None:
    missing = [
        path
        for path, obj in ((module_name, public_module(module_name)), *documented(module_name))
        if obj.docstring is None or not obj.docstring.value.strip()
    ]
    assert not missing, f"no docstring: {missing}"


def test_docstrings_parse_without_warnings(caplog: pytest.LogCaptureFixture) -> None:
    # Debug level too: "Possible section skipped" (a `Raises:` with no blank line above
    # it renders as text) is one. Only the parser's own messages, which name the file
    # and line: griffe also logs, at debug level, base classes it did not load.
    with caplog.at_level(logging.DEBUG, logger="griffe"):
        for _, obj in everything():
            if obj.docstring is not None:
                sections(obj)
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name == "griffe" and _PARSER_MESSAGE.match(record.getMessage())
    ]
    assert not warnings, "\n".join(warnings)


def test_docstrings_name_only_the_parameters_the_signature_has() -> None:
    wrong = []
    for path, obj in everything():
        if obj.docstring is None or not isinstance(obj, (griffe.Function, griffe.Class)):
            continue
        # A class's own parameters are its __init__'s (mkdocstrings merges the two).
        names = {parameter.name for parameter in obj.parameters}
        for section in sections(obj):
            if section.kind in (
                griffe.DocstringSectionKind.parameters,
                griffe.DocstringSectionKind.other_parameters,
            ):
                wrong += [
                    f"{path}: {item.name}"
                    for item in section.value
                    if item.name.lstrip("*") not in names
                ]
    assert not wrong, f"documented parameters the signature does not have: {wrong}"


def exception_named(text: str) -> object:
    """The object a Raises entry names: a builtin, a public name of the package, or a
    dotted path (``pydantic.ValidationError``); None when it names nothing."""
    if "." in text:
        module_name, _, name = text.rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), name, None)
        except ImportError:
            return None
    if hasattr(builtins, text):
        return getattr(builtins, text)
    for module_name in PUBLIC_MODULES:
        exports = public_module(module_name).exports or []
        if text in map(str, exports):
            return getattr(importlib.import_module(module_name), text)
    return None


def test_raises_sections_name_real_exceptions() -> None:
    wrong = []
    for path, obj in everything():
        if obj.docstring is None:
            continue
        for section in sections(obj):
            if section.kind is griffe.DocstringSectionKind.raises:
                for item in section.value:
                    named = exception_named(str(item.annotation))
                    if not (isinstance(named, type) and issubclass(named, BaseException)):
                        wrong.append(f"{path}: {item.annotation}")
                    elif not item.description.strip():
                        wrong.append(f"{path}: {item.annotation} (says nothing of when)")
    assert not wrong, f"Raises entries that name no exception: {wrong}"


def test_docstrings_are_markdown_not_restructuredtext() -> None:
    wrong = []
    for path, obj in everything():
        if obj.docstring is None:
            continue
        fenced = False
        for number, line in enumerate(obj.docstring.value.splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced and _RST.search(line):
                wrong.append(f"{path}, line {number}: {line.strip()}")
    assert not wrong, "reStructuredText in docstrings (use a ```python fence):\n" + "\n".join(
        wrong
    )
