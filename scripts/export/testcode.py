"""The module change a layer makes, and the tests merged into pytest's test file.

Both use the build's merge (``backend/overlay_merge.py``): a branch's module is
the checkout's module with the named definitions of one layer merged in (and
the module-level helpers of that layer they read); its tests are the fix's own
test text appended to ``testing/test_cacheprovider.py``, never replacing
anything there.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

import libcst as cst

from export.gitops import ExportError
import overlay_merge


MODULE_PATH = "src/_pytest/cacheprovider.py"
TEST_PATH = "testing/test_cacheprovider.py"


class _NameReads(cst.CSTVisitor):
    """Names a node reads (attribute names after a dot are not names)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False


def _reads(node: cst.CSTNode) -> set[str]:
    visitor = _NameReads()
    node.visit(visitor)
    return visitor.names


def _definitions(module: cst.Module) -> dict[str, cst.CSTNode]:
    """Top-level definitions and class members, by (qualified) name."""
    found: dict[str, cst.CSTNode] = {}
    for node in module.body:
        name = overlay_merge._definition_name(node)
        if name is None:
            continue
        found[name] = node
        if isinstance(node, cst.ClassDef) and isinstance(node.body, cst.IndentedBlock):
            for member in node.body.body:
                member_name = overlay_merge._definition_name(member)
                if member_name is not None:
                    found[f"{name}.{member_name}"] = member
    return found


def selected_overlay(layer_source: str, names: Iterable[str]) -> str:
    """The layer less every definition that ``names`` do not need.

    Kept: the named definitions and the layer's module-level definitions they
    read, transitively; the layer's imports stay (the merge drops unused ones).
    """
    module = cst.parse_module(layer_source)
    defs = _definitions(module)
    wanted = set(names)
    missing = sorted(wanted - set(defs))
    if missing:
        raise ExportError(f"the layer does not define {', '.join(missing)}")
    pending = [n for name in wanted for n in _reads(defs[name])]
    while pending:
        name = pending.pop()
        if (
            name in defs
            and "." not in name
            and name not in wanted
            and not isinstance(defs[name], cst.ClassDef)  # Members are taken by name.
        ):
            wanted.add(name)
            pending.extend(_reads(defs[name]))
    classes = {name.split(".")[0] for name in wanted if "." in name}
    drop = [
        name
        for name in defs
        if name not in wanted
        and name not in classes
        and not ("." in name and name.split(".")[0] not in classes)
    ]
    return overlay_merge.without_definitions(layer_source, drop)


def module_change(upstream: str, layer_source: str, names: Iterable[str]) -> str:
    """The checkout's module with the layer's ``names`` merged in, as the build merges."""
    names = list(names)
    if not names:
        return upstream
    overlay = selected_overlay(layer_source, names)
    try:
        code = overlay_merge.merge(upstream, overlay).code
    except overlay_merge.MergeError as e:
        raise ExportError(f"merging {', '.join(names)}: {e}") from None
    return two_blank_lines_after_bodies(code)


def two_blank_lines_after_bodies(code: str) -> str:
    """Two blank lines between an indented body and a top-level comment after it.

    The merge keeps a new definition's own spacing; where the layer had it
    after another definition the selection left out (one blank line between
    two commented assignments), pytest's formatter wants two after a function.
    """
    out: list[str] = []
    blank = 0
    last = ""
    for line in code.splitlines(keepends=True):
        if not line.strip():
            blank += 1
        else:
            if blank == 1 and line.startswith("#") and last.startswith((" ", "\t")):
                out.append("\n")
            blank = 0
            last = line
        out.append(line)
    return "".join(out)


def merge_tests(upstream_tests: str, tests: str) -> str:
    """``tests`` appended to pytest's test module; refuses to replace any of its definitions."""
    source = "from __future__ import annotations\n" + tests
    try:
        result = overlay_merge.merge(upstream_tests, source, partial=True)
    except overlay_merge.MergeError as e:
        raise ExportError(f"cannot merge the tests into {TEST_PATH}: {e}") from None
    if result.replaced:
        raise ExportError(
            f"the tests would replace {', '.join(sorted(result.replaced))} in {TEST_PATH}: rename them"
        )
    merged = cst.parse_module(result.code)
    undefined = set(overlay_merge.undefined_names(merged)) - set(
        overlay_merge.undefined_names(cst.parse_module(upstream_tests))
    )
    if undefined:
        raise ExportError(
            f"the tests use names {TEST_PATH} does not define: {', '.join(sorted(undefined))}"
        )
    return result.code


def test_ids(tests: str) -> list[str]:
    """The node ids (within the test file) of the tests in ``tests``."""
    ids: list[str] = []
    for node in ast.parse(tests).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            ids.append(f"{TEST_PATH}::{node.name}")
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            ids += [
                f"{TEST_PATH}::{node.name}::{m.name}"
                for m in node.body
                if isinstance(m, ast.FunctionDef) and m.name.startswith("test")
            ]
    return ids


def with_author(authors: str, name: str) -> str:
    """The ``AUTHORS`` file of pytest with ``name`` in its alphabetical place (unchanged if there)."""
    lines = authors.splitlines(keepends=True)
    if any(line.strip() == name for line in lines):
        return authors
    try:
        start = next(i for i, line in enumerate(lines) if "include::" in line) + 1
    except StopIteration:
        start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    index = start
    while (
        index < len(lines)
        and lines[index].strip()
        and lines[index].strip().casefold() < name.casefold()
    ):
        index += 1
    lines.insert(index, name + "\n")
    return "".join(lines)
