"""The material of each pull request and issue text, and how to load it.

One module per fix in ``export/fixes/`` defines ``FIX``: a :class:`Branch`
(a pull request made on pytest's code) or an :class:`IssueText` (a fix
maintainers turned down or never discussed: the issue to open first).  The
module change of a branch is not written here: it is the named definitions of
the named layer, merged by the build's merge.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from export import fixes as fixes_package


#: A pull request's most test lines (what merged cache pull requests add).
MAX_TEST_LINES = 100


@dataclasses.dataclass(frozen=True)
class Branch:
    """One pull request: a branch off the ref, standing alone."""

    slug: str
    order: int
    #: The layer whose definitions make the module change ('' or no definitions: none).
    layer: str
    definitions: tuple[str, ...]
    #: The issue it answers, or None when one must be opened first (``--issue slug=N``).
    issue: int | None
    issue_open: bool
    subject: str
    message: str
    fragment_type: str
    fragment: str
    tests: str
    description: str
    max_module_lines: int
    max_test_lines: int = MAX_TEST_LINES
    #: (text, replacement) in the ref's module that removes the fix the tests guard.
    mutation: tuple[str, str] | None = None
    #: The issue to open first when ``issue`` is None.
    issue_title: str = ""
    issue_text: str = ""


@dataclasses.dataclass(frozen=True)
class IssueText:
    """A fix offered as an issue: problem, reproducer, damage, cost, design, history."""

    slug: str
    order: int
    layer: str
    title: str
    text: str


Fix = Branch | IssueText


class MaterialError(Exception):
    """A fix module that does not define a usable ``FIX``."""


def load_fixes() -> list[Fix]:
    """Every fix of ``export/fixes/``, in order; refuses duplicate slugs or orders."""
    found: list[Fix] = []
    for info in pkgutil.iter_modules(fixes_package.__path__):
        module = importlib.import_module(f"{fixes_package.__name__}.{info.name}")
        fix = getattr(module, "FIX", None)
        if not isinstance(fix, (Branch, IssueText)):
            raise MaterialError(f"fixes/{info.name}.py defines no FIX")
        found.append(fix)
    for attribute in ("slug", "order"):
        values = [getattr(fix, attribute) for fix in found]
        doubled = sorted({str(v) for v in values if values.count(v) > 1})
        if doubled:
            raise MaterialError(f"two fixes share the {attribute} {', '.join(doubled)}")
    return sorted(found, key=lambda fix: fix.order)


def issue_numbers(values: list[str], fixes: list[Fix]) -> dict[str, int]:
    """``--issue SLUG=N`` (repeatable): the number of an issue opened for a fix."""
    slugs = {fix.slug for fix in fixes if isinstance(fix, Branch)}
    numbers: dict[str, int] = {}
    for value in values:
        slug, sep, number = value.partition("=")
        if not sep or not number.strip().isdigit():
            raise MaterialError(f"--issue {value!r}: give SLUG=N")
        if slug.strip() not in slugs:
            raise MaterialError(
                f"--issue {value!r}: no branch {slug.strip()!r}; the branches are "
                + ", ".join(sorted(slugs))
            )
        numbers[slug.strip()] = int(number)
    return numbers
