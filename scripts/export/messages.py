"""Commit messages, pull-request descriptions, issue texts, and the check of their words.

Everything here goes to pytest's maintainers in their project's voice: the bug
in plain English, ``closes #N`` only for an open issue, a ``Co-authored-by``
trailer for the AI help the pull-request template asks to credit.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
import re
import textwrap

from export.material import Branch
from export.material import IssueText


#: Words of our own project that must not reach pytest (code, tests, messages, fragments).
OUR_WORDS = re.compile(
    r"\b(layers?|forks?|forked|stock|upstream|overlay)\b|\[[a-z]+(?:-[a-z]+)+\]",
    re.IGNORECASE,
)
HUMAN_OWNS_IT = """\
This export prepares; a person submits.  pytest's CONTRIBUTING does not accept
purely agentic contributions: read every branch and issue text, run what you
need to be sure of it, reword it in your own words where you want, and open
each pull request or issue yourself.  Nothing was pushed or posted."""


def our_words(texts: Iterable[tuple[str, str]]) -> list[str]:
    """``where: line`` for each line of ``(where, text)`` that uses a word of ours."""
    found: list[str] = []
    for where, text in texts:
        for line in text.splitlines():
            match = OUR_WORDS.search(line)
            if match is not None:
                found.append(f"{where}: {match[0]!r} in {line.strip()[:100]!r}")
    return found


def fragment_name(issue: int | None, fragment_type: str) -> str | None:
    return None if issue is None else f"changelog/{issue}.{fragment_type}.rst"


def commit_message(
    fix: Branch, issue: int | None, *, co_authors: Sequence[str] = ()
) -> str:
    """Subject, the why and how, the issue reference, the trailers."""
    parts = [fix.subject, fix.message.strip()]
    if issue is not None:
        parts.append(f"Closes #{issue}." if fix.issue_open else f"Issue #{issue}.")
    message = "\n\n".join(parts) + "\n"
    if co_authors:
        message += "\n" + "".join(f"Co-authored-by: {who}\n" for who in co_authors)
    return message


def description(fix: Branch, issue: int | None, *, alone: str) -> str:
    """The pull request's title and description (what, why, how it was tested)."""
    body = fix.description.strip()
    if issue is not None and fix.issue_open and f"closes #{issue}" not in body:
        body = f"closes #{issue}\n\n{body}"
    checklist = [
        "- [x] Tests added inline in `testing/test_cacheprovider.py`.",
        "- [x] Changelog entry in `changelog/`."
        if issue is not None
        else f"- [ ] Changelog entry: open the issue first, then export again with `--issue {fix.slug}=N`.",
        "- [ ] `AUTHORS`: added by the export when given `--author`; check it.",
        "- [ ] AI help credited in `Co-authored-by` trailers.",
    ]
    return f"# {fix.subject}\n\n{body}\n\n{alone}\n\n" + "\n".join(checklist) + "\n"


def issue_document(title: str, text: str, *, note: str = "") -> str:
    """An issue to open, as Markdown."""
    extra = f"\n\n<!-- {note} -->" if note else ""
    return f"# {title}\n\n{text.strip()}{extra}\n"


def issue_for(fix: IssueText, *, affects: str, bug: str) -> str:
    note = f"for the person opening it, not part of the issue: affects {affects}; {bug}"
    return issue_document(fix.title, fix.text, note=note)


def wrapped(text: str, width: int = 88) -> str:
    return "\n".join(
        textwrap.fill(p, width) if not p.startswith(("|", " ", "-")) else p
        for p in text.split("\n")
    )
