"""Merge the cacheprovider overlay into upstream's module, by name.

Used by the wheel build (``overlay_backend``) and by ``scripts/export_upstream_pr.py``
(a pytest git checkout instead of a wheel): one merge function, two callers.

The overlay is a partial module.  Its top-level functions, its module-level
assignments and the members of its classes replace upstream's definitions of the
same (qualified) name, or are added when upstream has none.  Its imports are
added to upstream's import block in isort order (single-line imports, sorted
within sections).  Anything else is refused loudly: we would rather stop a
build than ship a module we did not mean to write.

Merging is idempotent: ``merge(merge(u, o).code, o).code == merge(u, o).code``.

Run as a script to merge two files and print the report::

    python backend/overlay_merge.py UPSTREAM.py OVERLAY.py [--write OUT.py]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import hashlib
import os
import pkgutil
import sys
import sysconfig
from typing import Union

import libcst as cst
from libcst import metadata


# Section numbers of isort's default order, with pytest's "known-local-folder".
_FUTURE, _STDLIB, _THIRD_PARTY, _LOCAL = range(4)
_LOCAL_PACKAGES = frozenset({"pytest", "_pytest"})
_IGNORED_UNDEFINED = frozenset({"__file__", "__name__", "__doc__", "__spec__"})


def _stdlib_module_names() -> frozenset[str]:
    """Top-level names of the standard library, for isort's stdlib section.

    ``sys.stdlib_module_names`` exists from Python 3.10 on.  Before that (the
    build runs on 3.8 and 3.9 for the bases that admit them), the modules found
    in the interpreter's stdlib folder and ``lib-dynload`` plus the built-in ones
    stand in for it; every name the merge sorts (upstream's and the overlay's
    imports) is in both, which the slow test on 3.8 checks by comparing the
    merged module with this interpreter's.
    """
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return frozenset(names)
    stdlib = sysconfig.get_paths()["stdlib"]
    found = {
        module.name
        for module in pkgutil.iter_modules(
            [stdlib, os.path.join(stdlib, "lib-dynload")]
        )
    }
    return frozenset(found | set(sys.builtin_module_names))


_STDLIB_MODULES = _stdlib_module_names()


class MergeError(Exception):
    """The overlay uses something the merge does not understand, or breaks the module."""


@dataclasses.dataclass(frozen=True)
class MergeResult:
    """What a merge produced.

    ``replaced`` maps each qualified name the overlay replaced to the fingerprint
    of upstream's definition (see :func:`fingerprint`); ``added`` lists the
    qualified names upstream did not have.
    """

    code: str
    replaced: dict[str, str]
    added: list[str]
    imports_added: list[str]


def fingerprint(code: str) -> str:
    """Fingerprint of one definition's source: sha256 over its lines, whitespace-trimmed."""
    lines = [line.rstrip() for line in code.strip("\n").splitlines()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _definition_name(node: cst.CSTNode) -> str | None:
    """Name of a definition we know how to merge, or None."""
    if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
        return node.name.value
    if isinstance(node, cst.SimpleStatementLine) and len(node.body) == 1:
        stmt = node.body[0]
        if isinstance(stmt, cst.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0].target
            if isinstance(target, cst.Name):
                return target.value
        if isinstance(stmt, cst.AnnAssign) and isinstance(stmt.target, cst.Name):
            return stmt.target.value
    return None


def _is_import(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in node.body
    )


def _is_docstring(node: cst.CSTNode) -> bool:
    return (
        isinstance(node, cst.SimpleStatementLine)
        and len(node.body) == 1
        and isinstance(node.body[0], cst.Expr)
        and isinstance(node.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _code(module: cst.Module, node: cst.CSTNode) -> str:
    return module.code_for_node(node)


# A runtime union of classes (``X | Y``) needs Python 3.10: the build runs on 3.8 too.
_Definition = Union[cst.FunctionDef, cst.ClassDef, cst.SimpleStatementLine]
_DEFINITION_TYPES = (cst.FunctionDef, cst.ClassDef, cst.SimpleStatementLine)


def _without_leading_lines(node: cst.CSTNode) -> cst.CSTNode:
    if isinstance(node, _DEFINITION_TYPES):
        return node.with_changes(leading_lines=())
    return node


def _with_leading_lines(
    node: cst.CSTNode, lines: Sequence[cst.EmptyLine]
) -> _Definition:
    assert isinstance(node, _DEFINITION_TYPES)
    return node.with_changes(leading_lines=lines)


def _leading_lines(node: cst.CSTNode) -> Sequence[cst.EmptyLine]:
    assert isinstance(node, _DEFINITION_TYPES)
    return node.leading_lines


def _with_blank_lines(node: cst.CSTNode, count: int) -> _Definition:
    """``node`` with exactly ``count`` blank lines before its own leading comments."""
    lines = list(_leading_lines(node))
    while lines and lines[0].comment is None:
        lines.pop(0)
    return _with_leading_lines(
        node, [*(cst.EmptyLine(indent=False) for _ in range(count)), *lines]
    )


def _replacing(old: cst.CSTNode, new: cst.CSTNode) -> _Definition:
    """``new`` in the place of ``old``: the overlay's own comments if it has any, else old's."""
    lines = _leading_lines(new)
    if any(line.comment is not None for line in lines):
        return _with_blank_lines(new, _blank_lines(old))
    return _with_leading_lines(new, _leading_lines(old))


def _blank_lines(node: cst.CSTNode) -> int:
    """The blank lines before ``node``'s own leading comments."""
    blank = 0
    for line in _leading_lines(node):
        if line.comment is not None:
            break
        blank += 1
    return blank


def _names_used(node: cst.CSTNode) -> set[str]:
    """The plain names a definition reads (its own name included)."""
    return {n.value for n in _descendants(node) if isinstance(n, cst.Name)}


def _attributes_used(node: cst.CSTNode) -> set[str]:
    """The attribute names a class member reads (``self.x``, ``cls.x``, ``Cache.x``)."""
    return {n.attr.value for n in _descendants(node) if isinstance(n, cst.Attribute)}


def _descendants(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    pending = [node]
    while pending:
        current = pending.pop()
        yield current
        pending.extend(current.children)


def _hooks_end(body: Sequence[cst.CSTNode]) -> int:
    """Where new hooks go: after upstream's ``pytest_configure``, else at the end."""
    for i, node in enumerate(body):
        if _definition_name(node) == "pytest_configure":
            return i + 1
    return len(body)


def _placed(
    body: Sequence[cst.CSTNode],
    new: Mapping[str, cst.CSTNode],
    used_by: Callable[[cst.CSTNode], set[str]],
    *,
    end: int,
) -> list[cst.CSTNode]:
    """``body`` with each new definition just before its first user, so it reads top-down.

    A definition that only other new definitions use goes before the first
    user of those; one nothing uses (a hook) goes at ``end``.  New definitions
    that share a place keep the overlay's order, spaced as ruff's formatter
    spaces them (:func:`_spaced`).
    """
    uses = {name: used_by(node) - {name} for name, node in new.items()}
    unused = len(body) + 1
    place = dict.fromkeys(new, unused)
    for i, node in enumerate(body):
        for name in used_by(node) & new.keys():
            place[name] = min(place[name], i)
    # Twice: then what nothing upstream uses goes to ``end``, with its helpers.
    for _ in range(2):
        changed = True
        while changed:  # A helper of a helper goes where its user goes, or earlier.
            changed = False
            for user, names in uses.items():
                for name in names & new.keys():
                    if place[user] < place[name]:
                        place[name] = place[user]
                        changed = True
        place = {name: end if at == unused else at for name, at in place.items()}
    top_level = used_by is _names_used
    result: list[cst.CSTNode] = []
    for i in range(len(body) + 1):
        here = [node for name, node in new.items() if place[name] == i]
        for node in here:
            previous = result[-1] if result else None
            result.append(_spaced(node, previous, top_level=top_level, new=True))
        if i < len(body):
            node = body[i]
            if here:
                node = _spaced(node, result[-1], top_level=top_level, new=False)
            result.append(node)
    return result


def _spaced(
    node: cst.CSTNode, previous: cst.CSTNode | None, *, top_level: bool, new: bool
) -> cst.CSTNode:
    """``node`` after ``previous`` with the blank lines ruff's formatter wants there.

    A new member gets one.  At the top level a function or class gets two before
    and after it, and so does what follows the imports (pytest's isort
    ``lines-after-imports``), other statements one; upstream's own ``node``, after
    a new one, only ever gains lines.
    """
    if not top_level:
        return _with_blank_lines(node, 1) if new else node
    if not isinstance(node, _DEFINITION_TYPES):
        return node  # Upstream's compound statements keep their lines.
    definitions = (cst.FunctionDef, cst.ClassDef)
    two = (
        isinstance(node, definitions)
        or isinstance(previous, definitions)
        or (previous is not None and _is_import(previous))
    )
    wanted = 2 if two else 1
    if new or _blank_lines(node) < wanted:
        return _with_blank_lines(node, wanted)
    return node


@dataclasses.dataclass
class _Overlay:
    """Phase one: what the overlay defines, checked for constructs we refuse."""

    imports: list[cst.SimpleStatementLine]
    top_level: dict[str, cst.CSTNode]
    members: dict[str, dict[str, cst.CSTNode]]


def _collect_overlay(overlay: cst.Module) -> _Overlay:
    result = _Overlay(imports=[], top_level={}, members={})
    for index, node in enumerate(overlay.body):
        if index == 0 and _is_docstring(node):
            continue  # The overlay's own docstring describes the overlay, not the module.
        if _is_import(node):
            assert isinstance(node, cst.SimpleStatementLine)
            result.imports.append(node)
            continue
        if isinstance(node, cst.If):
            raise MergeError(
                "unsupported construct in overlay: top-level 'if' block "
                f"({_code(overlay, node.test).strip()}); write plain definitions"
            )
        name = _definition_name(node)
        if name is None:
            raise MergeError(
                "unsupported construct in overlay: "
                f"{_code(overlay, node).strip().splitlines()[0]!r}"
            )
        if name in result.top_level:
            raise MergeError(
                f"overlay defines {name!r} twice (overloads and property setters are not merged)"
            )
        if isinstance(node, cst.ClassDef):
            result.members[name] = _collect_members(overlay, node)
        result.top_level[name] = node
    return result


def _collect_members(overlay: cst.Module, cls: cst.ClassDef) -> dict[str, cst.CSTNode]:
    members: dict[str, cst.CSTNode] = {}
    body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
    for index, node in enumerate(body):
        if index == 0 and _is_docstring(node):
            raise MergeError(
                f"overlay class {cls.name.value!r} has a docstring: partial classes carry members only"
            )
        name = _definition_name(node)
        if name is None or isinstance(node, cst.ClassDef):
            raise MergeError(
                f"unsupported construct in overlay class {cls.name.value!r}: "
                f"{_code(overlay, node).strip().splitlines()[0]!r}"
            )
        if name in members:
            raise MergeError(
                f"overlay defines {cls.name.value}.{name} twice "
                "(overloads and property setters are not merged)"
            )
        members[name] = node
    return members


def _import_entries(node: cst.SimpleStatementLine) -> list[cst.SimpleStatementLine]:
    """Split an import line into single-name import lines (force-single-line)."""
    entries: list[cst.SimpleStatementLine] = []
    for stmt in node.body:
        if isinstance(stmt, cst.ImportFrom) and isinstance(stmt.names, cst.ImportStar):
            raise MergeError("unsupported construct in overlay: star import")
        assert isinstance(stmt, (cst.Import, cst.ImportFrom))
        names = stmt.names
        assert not isinstance(names, cst.ImportStar)
        for alias in names:
            if isinstance(stmt, cst.Import) and isinstance(alias.name, cst.Attribute):
                raise MergeError(
                    "unsupported construct in overlay: dotted import (use 'from x import y')"
                )
            bare = alias.with_changes(comma=cst.MaybeSentinel.DEFAULT)
            single: cst.Import | cst.ImportFrom
            if isinstance(stmt, cst.ImportFrom):
                single = stmt.with_changes(names=[bare], lpar=None, rpar=None)
            else:
                single = stmt.with_changes(names=[bare])
            entries.append(cst.SimpleStatementLine(body=[single]))
    return entries


def _import_key(
    module: cst.Module, node: cst.SimpleStatementLine
) -> tuple[int, str, str]:
    """Sort key of an import line: isort section, then module, then name, case-folded."""
    stmt = node.body[0]
    if isinstance(stmt, cst.ImportFrom):
        dots = "." * len(stmt.relative)
        mod = dots + (_code(module, stmt.module) if stmt.module is not None else "")
        names = stmt.names
        first = (
            "" if isinstance(names, cst.ImportStar) else _code(module, names[0].name)
        )
    else:
        assert isinstance(stmt, cst.Import)
        mod = _code(module, stmt.names[0].name)
        first = ""
    top = mod.split(".")[0]
    if mod == "__future__":
        section = _FUTURE
    elif mod.startswith(".") or top in _LOCAL_PACKAGES:
        section = _LOCAL
    elif top in _STDLIB_MODULES:
        section = _STDLIB
    else:
        section = _THIRD_PARTY
    return (section, mod.lower(), first.lower())


def _normalized(module: cst.Module, node: cst.CSTNode) -> str:
    return _code(module, _without_leading_lines(node)).strip()


def _merge_imports(
    upstream: cst.Module,
    body: list[cst.CSTNode],
    overlay_imports: list[cst.SimpleStatementLine],
) -> tuple[list[cst.CSTNode], list[str]]:
    """Add the overlay's missing imports to upstream's leading import block."""
    if not overlay_imports:
        return body, []
    start = 1 if body and _is_docstring(body[0]) else 0
    end = start
    while end < len(body) and _is_import(body[end]):
        end += 1
    block = [n for n in body[start:end] if isinstance(n, cst.SimpleStatementLine)]
    if not block:
        raise MergeError("upstream module has no import block to merge imports into")
    present = {_normalized(upstream, n) for n in block}
    added: list[cst.SimpleStatementLine] = []
    for line in overlay_imports:
        for entry in _import_entries(line):
            text = _normalized(upstream, entry)
            if text not in present:
                present.add(text)
                added.append(entry)
    if not added:
        return body, []

    upstream_order = sorted(block, key=lambda n: _import_key(upstream, n))
    if [id(n) for n in upstream_order] != [id(n) for n in block]:
        raise MergeError(
            "upstream's import block is not in the isort order the merge assumes"
        )
    merged = sorted([*block, *added], key=lambda n: _import_key(upstream, n))
    # The lines above the block (blank line, comments) stay above the block.
    first_leading = block[0].leading_lines
    out: list[cst.CSTNode] = []
    previous_section: int | None = None
    for node in merged:
        section = _import_key(upstream, node)[0]
        own = () if node is block[0] else node.leading_lines
        comments = [line for line in own if line.comment is not None]
        if previous_section is None:
            leading = list(first_leading)
        elif section != previous_section:
            leading = [cst.EmptyLine(indent=False), *comments]
        else:
            leading = comments
        out.append(node.with_changes(leading_lines=leading))
        previous_section = section
    return [*body[:start], *out, *body[end:]], [_normalized(upstream, n) for n in added]


def _merge_class(
    upstream: cst.Module,
    cls: cst.ClassDef,
    overlay_cls: cst.ClassDef,
    members: dict[str, cst.CSTNode],
    replaced: dict[str, str],
    added: list[str],
) -> cst.ClassDef:
    if overlay_cls.decorators or overlay_cls.bases or overlay_cls.keywords:
        raise MergeError(
            f"overlay class {cls.name.value!r} exists upstream: write it bare "
            f"('class {cls.name.value}:'), its decorators and bases are upstream's"
        )
    if not isinstance(cls.body, cst.IndentedBlock):
        raise MergeError(f"upstream class {cls.name.value!r} has no indented body")
    body = list(cls.body.body)
    new_members: dict[str, cst.CSTNode] = {}
    index_of = {
        name: i for i, n in enumerate(body) if (name := _definition_name(n)) is not None
    }
    for name, node in members.items():
        qualname = f"{cls.name.value}.{name}"
        if name in index_of:
            old = body[index_of[name]]
            new_annotated = isinstance(node, cst.SimpleStatementLine) and isinstance(
                node.body[0], cst.AnnAssign
            )
            old_annotated = isinstance(old, cst.SimpleStatementLine) and isinstance(
                old.body[0], cst.AnnAssign
            )
            if new_annotated and not old_annotated:
                raise MergeError(
                    f"{qualname}: an annotated attribute may only replace one"
                )
            replaced[qualname] = fingerprint(
                _code(upstream, _without_leading_lines(old))
            )
            body[index_of[name]] = _replacing(old, node)
        else:
            if isinstance(node, cst.SimpleStatementLine) and isinstance(
                node.body[0], cst.AnnAssign
            ):
                raise MergeError(
                    f"{qualname}: new annotated class attributes are not merged (they would add dataclass fields)"
                )
            new_members[name] = node  # Spaced where it is placed.
            added.append(qualname)
    placed = _placed(body, new_members, _attributes_used, end=len(body))
    return cls.with_changes(body=cls.body.with_changes(body=placed))


def merge(
    upstream_source: str, overlay_source: str, *, partial: bool = False
) -> MergeResult:
    """Merge ``overlay_source`` into ``upstream_source``; see the module docstring.

    With ``partial``, ``upstream_source`` is itself an overlay (the layers
    merged so far): new definitions are appended in the overlay's order, and
    the module is not checked for undefined names or orphaned imports, which
    only the merge into upstream's module can tell.
    """
    upstream = cst.parse_module(upstream_source)
    # Parse the overlay with upstream's config so indentation and newlines match it.
    overlay = _collect_overlay(
        cst.parse_module(overlay_source, config=upstream.config_for_parsing)
    )

    body: list[cst.CSTNode] = list(upstream.body)
    replaced: dict[str, str] = {}
    added: list[str] = []
    positions = {
        name: i for i, n in enumerate(body) if (name := _definition_name(n)) is not None
    }
    new_nodes: dict[str, cst.CSTNode] = {}
    for name, node in overlay.top_level.items():
        if name not in positions:
            new_nodes[name] = node
            added.append(name)
            continue
        old = body[positions[name]]
        if isinstance(node, cst.ClassDef):
            if not isinstance(old, cst.ClassDef):
                raise MergeError(
                    f"overlay class {name!r} would replace a non-class upstream definition"
                )
            body[positions[name]] = _merge_class(
                upstream, old, node, overlay.members[name], replaced, added
            )
            continue
        if type(old) is not type(node):
            raise MergeError(
                f"overlay {name!r} is not the same kind of definition as upstream's"
            )
        replaced[name] = fingerprint(_code(upstream, _without_leading_lines(old)))
        body[positions[name]] = _replacing(old, node)

    if new_nodes and partial:
        body.extend(new_nodes.values())
    elif new_nodes:
        body = _placed(body, new_nodes, _names_used, end=_hooks_end(body))

    body, imports_added = _merge_imports(upstream, body, overlay.imports)
    if partial:
        return MergeResult(
            code=upstream.with_changes(body=body).code,
            replaced=replaced,
            added=added,
            imports_added=imports_added,
        )
    merged = _drop_orphaned_imports(upstream, upstream.with_changes(body=body))
    undefined = undefined_names(merged)
    if undefined:
        raise MergeError(f"merged module has undefined names: {', '.join(undefined)}")
    return MergeResult(
        code=merged.code, replaced=replaced, added=added, imports_added=imports_added
    )


def definition_fingerprints(source: str) -> dict[str, str]:
    """Fingerprint of every definition of ``source`` a merge could replace, by qualified name.

    Top-level definitions and the members of top-level classes, named and
    fingerprinted as :func:`merge` reports them, so that a diverged definition
    can be named even where a merge fails.
    """
    module = cst.parse_module(source)
    found: dict[str, str] = {}
    for node in module.body:
        name = _definition_name(node)
        if name is None:
            continue
        found[name] = fingerprint(_code(module, _without_leading_lines(node)))
        if isinstance(node, cst.ClassDef) and isinstance(node.body, cst.IndentedBlock):
            for member in node.body.body:
                member_name = _definition_name(member)
                if member_name is not None:
                    code = _code(module, _without_leading_lines(member))
                    found[f"{name}.{member_name}"] = fingerprint(code)
    return found


def without_definitions(overlay_source: str, names: Sequence[str]) -> str:
    """The overlay less the named definitions (``name`` or ``Class.member``).

    A base release that already has a definition right keeps upstream's own
    (its "keep" list), so the overlay's version is dropped before merging.
    """
    if not names:
        return overlay_source
    module = cst.parse_module(overlay_source)
    wanted = set(names)
    body: list[cst.CSTNode] = []
    for node in module.body:
        name = _definition_name(node)
        if name in wanted:
            wanted.discard(name)
            continue
        if isinstance(node, cst.ClassDef) and isinstance(node.body, cst.IndentedBlock):
            members = []
            for member in node.body.body:
                qualname = f"{name}.{_definition_name(member)}"
                if qualname in wanted:
                    wanted.discard(qualname)
                else:
                    members.append(member)
            if not members:
                continue
            node = node.with_changes(body=node.body.with_changes(body=members))
        body.append(node)
    if wanted:
        raise MergeError(
            f"cannot keep upstream's {', '.join(sorted(wanted))}: the overlay does not define it"
        )
    return module.with_changes(body=body).code


def _unused_import_lines(module: cst.Module) -> set[str]:
    """Top-level single-name import lines whose name the module never reads."""
    wrapper = metadata.MetadataWrapper(module, unsafe_skip_copy=True)
    scopes = wrapper.resolve(metadata.ScopeProvider)
    global_scope = scopes[module]
    assert global_scope is not None
    unused: set[str] = set()
    for node in module.body:
        if not _is_import(node):
            continue
        assert isinstance(node, cst.SimpleStatementLine)
        stmt = node.body[0]
        assert isinstance(stmt, (cst.Import, cst.ImportFrom))
        if (
            len(node.body) != 1
            or isinstance(stmt.names, cst.ImportStar)
            or len(stmt.names) != 1
        ):
            continue
        alias = stmt.names[0]
        bound = alias.evaluated_alias or alias.evaluated_name
        if bound == "annotations" and isinstance(stmt, cst.ImportFrom):
            continue  # from __future__ import annotations
        assignments = global_scope[bound.split(".")[0]]
        if assignments and not any(a.references for a in assignments):
            unused.add(_normalized(module, node))
    return unused


def _drop_orphaned_imports(upstream: cst.Module, merged: cst.Module) -> cst.Module:
    """Remove upstream imports that only the definitions we replaced used."""
    orphaned = _unused_import_lines(merged) - _unused_import_lines(upstream)
    if not orphaned:
        return merged
    body = [
        n
        for n in merged.body
        if not (_is_import(n) and _normalized(merged, n) in orphaned)
    ]
    return merged.with_changes(body=body)


def undefined_names(module: cst.Module) -> list[str]:
    """Names the module reads but never defines, imports or gets from builtins."""
    wrapper = metadata.MetadataWrapper(module, unsafe_skip_copy=True)
    scopes = wrapper.resolve(metadata.ScopeProvider)
    missing: set[str] = set()
    for scope in set(scopes.values()):
        if scope is None:
            continue
        for access in scope.accesses:
            name = access.node.value if isinstance(access.node, cst.Name) else None
            if name and not access.referents and name not in _IGNORED_UNDEFINED:
                missing.add(name)
    return sorted(missing)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Merge the overlay into an upstream cacheprovider.py."
    )
    parser.add_argument("upstream")
    parser.add_argument("overlay")
    parser.add_argument(
        "--write", metavar="OUT", help="write the merged module here instead of stdout"
    )
    args = parser.parse_args(argv)
    with open(args.upstream, encoding="utf-8", newline="") as f:
        upstream_source = f.read()
    with open(args.overlay, encoding="utf-8", newline="") as f:
        overlay_source = f.read()
    try:
        result = merge(upstream_source, overlay_source)
    except MergeError as e:
        print(f"merge failed: {e}", file=sys.stderr)
        return 1
    for name, fp in sorted(result.replaced.items()):
        print(f"replaced {name} (upstream fingerprint {fp})", file=sys.stderr)
    for name in result.added:
        print(f"added    {name}", file=sys.stderr)
    for line in result.imports_added:
        print(f"import   {line}", file=sys.stderr)
    if args.write:
        with open(args.write, "w", encoding="utf-8", newline="") as f:
            f.write(result.code)
    else:
        sys.stdout.write(result.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
