"""Options, the run, and the report: a table per branch, then the issue texts.

Who runs it, when: a maintainer of this project, by hand, to offer fixes to
pytest.  It never pushes: a person reads each branch, submits it under their
own name, and opens each issue.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
import sys
import tempfile
import time

from export import gitops
from export import messages
from export import planning
from export.checks import Checker
from export.material import Branch
from export.material import issue_numbers
from export.material import IssueText
from export.material import load_fixes
from export.material import MaterialError
from export.runner import CheckResult
from export.runner import progress
import layers


REPO_ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Prepare one branch per fix off a pytest ref, and issue texts (never pushes)."
    )
    parser.add_argument("checkout", type=Path, metavar="PYTEST_CHECKOUT")
    parser.add_argument(
        "--onto",
        default="main",
        metavar="REF",
        help="branch off this ref (default: main)",
    )
    parser.add_argument(
        "--release",
        metavar="VERSION",
        help="instead, branch off pytest VERSION's sdist from the package index, made a git repository in --out",
    )
    parser.add_argument(
        "--series",
        action="store_true",
        help="accepted for compatibility: every export makes one branch per fix, each off the ref",
    )
    parser.add_argument(
        "--issue",
        action="append",
        default=[],
        metavar="SLUG=N",
        help="the number of an issue opened for a fix",
    )
    parser.add_argument(
        "--author",
        metavar="'NAME <EMAIL>'",
        help="the person submitting: commit author and AUTHORS entry",
    )
    parser.add_argument(
        "--co-authored-by",
        action="append",
        default=[],
        metavar="'NAME <EMAIL>'",
        help="a Co-authored-by trailer (pytest asks to credit AI help this way)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SLUG",
        help="export only these fixes",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where descriptions and issue texts go (default: a new temp dir)",
    )
    parser.add_argument(
        "--replace", action="store_true", help="move existing branches of the same name"
    )
    parser.add_argument("--skip-checks", action="store_true")
    parser.add_argument(
        "--source-root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def print_table(rows: dict[str, CheckResult]) -> None:
    width = max(len(name) for name in rows)
    for name, result in rows.items():
        first, *rest = result.detail.splitlines() or [""]
        seconds = f" [{result.seconds:.0f} s]" if result.seconds >= 1 else ""
        print(f"  {name:<{width}}  {result.status:<7}  {first}{seconds}")
        if result.status == "FAILED":
            for line in rest[-40:]:
                print(f"  {'':<{width}}           {line}")


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="pytest-prs-"))
    out.mkdir(parents=True, exist_ok=True)
    failed = False
    try:
        fixes = load_fixes()
        if args.only:
            fixes = [f for f in fixes if f.slug in args.only]
        numbers = issue_numbers(args.issue, fixes)
        author = planning.Person.parse(args.author) if args.author else None
        for who in args.co_authored_by:
            planning.Person.parse(who)
        source_root = args.source_root.resolve()
        all_layers = planning.layers_by_name(source_root)
        if args.release:
            checkout = gitops.repo_from_sdist(
                args.release, out / f"pytest-{args.release}"
            )
            ref = args.release
            base_text = f"pytest {args.release} sdist from the package index (git repository {checkout})"
        else:
            checkout = args.checkout.resolve()
            gitops.require_checkout(checkout)
            ref = args.onto
        ref_commit = gitops.resolve_commit(checkout, ref)
        tag = gitops.nearest_tag(checkout, ref_commit)
        if not args.release:
            base_text = f"{ref} at {ref_commit[:12]} of {checkout} (nearest tag {tag or 'none'})"
        newest = planning.newest_base(source_root)
        notes: list[str] = []
        if (
            tag
            and newest
            and planning.release_tuple(tag) <= planning.release_tuple(newest)
            and (
                planning.is_prerelease(tag)
                or planning.release_tuple(tag) < planning.release_tuple(newest)
            )
            and not args.release
        ):
            notes.append(
                f"{ref} ({tag}) predates pytest {newest}: check the fixes on that release too "
                f"with --release {newest}"
            )
        if author is None and not gitops.has_identity(checkout):
            name, email = gitops.NOBODY
            notes.append(
                f"git knows no user here: the branches are committed by {name} <{email}>;"
                " set user.name and user.email, or pass --author, before submitting"
            )
        covered = {f.layer for f in fixes}
        bare = [name for name in all_layers if name not in covered]
        if bare and not args.only:
            notes.append(
                f"layers with neither a branch nor an issue text: {', '.join(bare)}"
            )
        progress(f"base: {base_text}")
        planned: list[planning.PlannedBranch] = []
        for fix in fixes:
            if isinstance(fix, Branch):
                item = planning.plan_branch(
                    checkout,
                    ref_commit,
                    ref,
                    fix,
                    all_layers,
                    issue_numbers=numbers,
                    author=author,
                    co_authors=args.co_authored_by,
                )
                if gitops.branch_exists(checkout, item.branch) and not args.replace:
                    raise gitops.ExportError(
                        f"branch {item.branch} exists (pass --replace)"
                    )
                planned.append(item)
        for item in planned:
            gitops.git(checkout, "branch", "--force", item.branch, item.commit)
            (out / f"pr-{item.fix.slug}.md").write_text(item.description)
            if item.issue is None and item.fix.issue_text:
                (out / f"issue-{item.fix.slug}.md").write_text(
                    messages.issue_document(item.fix.issue_title, item.fix.issue_text)
                )
            progress(f"branch {item.branch} at {item.commit[:12]}")
        checker = None
        if not args.skip_checks and planned:
            checker = Checker(checkout, ref_commit, args.release or tag or "0.0.0")
        print(f"base: {base_text}")
        for note in notes:
            print(f"note: {note}")
        if checker is not None:
            print(f"tools: {checker.tools()}")
        for item in planned:
            print(f"\n{item.branch} ({item.commit[:12]}): {item.fix.subject}")
            print(
                f"  issue: {_issue_line(item)}; description: {out / f'pr-{item.fix.slug}.md'}"
            )
            rows = {} if checker is None else checker.check(item)
            if rows:
                print_table(rows)
                failed |= any(r.status == "FAILED" for r in rows.values())
            else:
                print("  checks skipped (--skip-checks)")
        for fix in fixes:
            if isinstance(fix, IssueText):
                failed |= _issue_text(fix, all_layers, out)
    except (gitops.ExportError, MaterialError, layers.LayerError, RuntimeError) as e:
        print(f"export failed: {e}", file=sys.stderr)
        return 1
    print(f"\n{messages.HUMAN_OWNS_IT}")
    print(f"Texts in {out}.  Total time: {time.monotonic() - started:.0f} s.")
    return 1 if failed else 0


def _issue_line(item: planning.PlannedBranch) -> str:
    if item.issue is None:
        return f"none yet: open issue-{item.fix.slug}.md first, then --issue {item.fix.slug}=N"
    return (
        f"closes #{item.issue}"
        if item.fix.issue_open
        else f"#{item.issue} (closed: no 'closes')"
    )


def _issue_text(fix: IssueText, all_layers: dict[str, layers.Layer], out: Path) -> bool:
    """Write an issue text; True if it uses words of ours."""
    path = out / f"issue-{fix.slug}.md"
    document = planning.issue_document(fix)
    path.write_text(document)
    layer = all_layers.get(fix.layer)
    status = (
        f"affects {layer.affects}" if layer else f"no layer {fix.layer!r} (renamed?)"
    )
    words = messages.our_words([(path.name, document)])
    print(
        f"\nissue text {fix.slug}: {fix.title}\n  {path} ({len(document.splitlines())} lines; {status})"
    )
    print(f"  no words of ours: {'FAILED ' + '; '.join(words) if words else 'ok'}")
    return bool(words)
