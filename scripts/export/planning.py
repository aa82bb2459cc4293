"""What each branch holds, planned from the fixes' material and the layers.

A branch is made off the ref alone (never on another branch): the ref's
module with the layer's definitions merged in, the fix's tests appended to the
ref's ``testing/test_cacheprovider.py``, its changelog fragment (named after
its issue, or left out until that issue is opened), ``AUTHORS`` with the
person submitting it, and a message in pytest's shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import json
from pathlib import Path
import re

from export import gitops
from export import messages
from export.material import Branch
from export.material import IssueText
from export.testcode import merge_tests
from export.testcode import module_change
from export.testcode import MODULE_PATH
from export.testcode import test_ids
from export.testcode import TEST_PATH
from export.testcode import with_author
import layers


LAYERS_PATH = "src/_pytest/cacheprovider"
BASES_PATH = "backend/bases.json"
BRANCH_TEMPLATE = "pytest-prs-{ref}/{order}-{slug}"
#: What a branch may touch.
ALLOWED = (MODULE_PATH, TEST_PATH, "AUTHORS")
ALLOWED_PREFIXES = ("changelog/",)
ALONE = (
    "This pull request stands alone on `{ref}`: it needs no other change of the "
    "series to apply or to pass."
)


@dataclasses.dataclass
class PlannedBranch:
    fix: Branch
    branch: str
    commit: str
    parent: str
    files: dict[str, bytes]
    issue: int | None
    message: str
    description: str
    test_ids: list[str]
    layer_summary: str


@dataclasses.dataclass(frozen=True)
class Person:
    name: str
    email: str

    @classmethod
    def parse(cls, value: str) -> Person:
        match = re.fullmatch(r"\s*(.+?)\s*<([^<>@\s]+@[^<>\s]+)>\s*", value)
        if match is None:
            raise gitops.ExportError(f"{value!r}: give 'Name <email>'")
        return cls(match[1], match[2])

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


def layers_by_name(source_root: Path) -> dict[str, layers.Layer]:
    return {
        layer.name: layer for layer in layers.load_layers(source_root / LAYERS_PATH)
    }


def newest_base(source_root: Path) -> str | None:
    """The newest release ``backend/bases.json`` records."""
    with (source_root / BASES_PATH).open(encoding="utf-8") as f:
        bases = list(json.load(f)["bases"])
    return max(bases, key=release_tuple, default=None)


def release_tuple(version: str) -> tuple[int, int, int]:
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        return (0, 0, 0)
    return (int(match[1]), int(match[2]), int(match[3] or 0))


def is_prerelease(version: str) -> bool:
    return bool(re.search(r"(dev|a|b|rc)\d*$", version))


def plan_branch(
    checkout: Path,
    ref_commit: str,
    ref: str,
    fix: Branch,
    all_layers: Mapping[str, layers.Layer],
    *,
    issue_numbers: Mapping[str, int],
    author: Person | None,
    co_authors: Sequence[str],
) -> PlannedBranch:
    """One branch's commit (made, not yet a branch) and what goes with it."""
    upstream = gitops.show(checkout, ref_commit, MODULE_PATH)
    upstream_tests = gitops.show(checkout, ref_commit, TEST_PATH)
    if upstream is None or upstream_tests is None:
        raise gitops.ExportError(f"{ref} has no {MODULE_PATH} or {TEST_PATH}")
    summary = ""
    module = upstream
    if fix.definitions:
        layer = all_layers.get(fix.layer)
        if layer is None:
            raise gitops.ExportError(
                f"{fix.slug}: no layer {fix.layer!r}; the layers are {', '.join(all_layers)}"
            )
        summary = layer.summary
        module = module_change(upstream, layer.source, fix.definitions)
    files = {
        MODULE_PATH: module.encode(),
        TEST_PATH: merge_tests(upstream_tests, fix.tests).encode(),
    }
    issue = fix.issue if fix.issue is not None else issue_numbers.get(fix.slug)
    fragment = messages.fragment_name(issue, fix.fragment_type)
    if fragment is not None:
        if gitops.show(checkout, ref_commit, fragment) is not None:
            raise gitops.ExportError(f"{ref} already has {fragment}")
        files[fragment] = fix.fragment.encode()
    if author is not None:
        authors = gitops.show(checkout, ref_commit, "AUTHORS") or ""
        updated = with_author(authors, author.name)
        if updated != authors:
            files["AUTHORS"] = updated.encode()
    files = {
        path: data
        for path, data in files.items()
        if _differs(checkout, ref_commit, path, data)
    }
    message = messages.commit_message(fix, issue, co_authors=co_authors)
    commit = gitops.write_commit(
        checkout,
        ref_commit,
        files,
        message,
        author=(author.name, author.email) if author is not None else None,
    )
    outside = [
        p
        for p in gitops.changed_paths(checkout, ref_commit, commit)
        if p not in ALLOWED and not p.startswith(ALLOWED_PREFIXES)
    ]
    if outside:
        raise gitops.ExportError(f"{fix.slug} would touch {', '.join(outside)}")
    return PlannedBranch(
        fix=fix,
        branch=BRANCH_TEMPLATE.format(
            ref=gitops.ref_slug(ref), order=fix.order, slug=fix.slug
        ),
        commit=commit,
        parent=ref_commit,
        files=files,
        issue=issue,
        message=message,
        description=messages.description(fix, issue, alone=ALONE.format(ref=ref)),
        test_ids=test_ids(fix.tests),
        layer_summary=summary,
    )


def _differs(checkout: Path, commit: str, path: str, data: bytes) -> bool:
    old = gitops.show(checkout, commit, path)
    return old is None or old.encode() != data


def issue_document(fix: IssueText) -> str:
    return messages.issue_document(fix.title, fix.text)
