"""Every check of one branch, as pytest's pre-commit and CI would run them, timed.

The table of a branch: the hooks (ruff check and format, mypy, codespell at
the pinned versions; the changelog names; whitespace and end of file;
``python-use-type-annotations``), our own rules (no word of ours, the size
limits), pytest's two cache test files in every mode (``testruns``), and that
the new tests fail without the fix (the ref's module, or for a test-only
branch the fix's mutation of it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import tempfile
import time

from export import gitops
from export import lint
from export import messages
from export import testruns
from export.planning import PlannedBranch
from export.runner import CheckResult
from export.runner import make_venv
from export.runner import progress
from export.testcode import MODULE_PATH
from export.testcode import TEST_PATH


VERSION_FILE = "src/_pytest/_version.py"


class Checker:
    """The venvs and tools shared by every branch made on one ref."""

    def __init__(self, checkout: Path, ref_commit: str, version: str) -> None:
        self.checkout = checkout
        self.version = version
        self.work = Path(tempfile.mkdtemp(prefix="pytest-export-checks-"))
        self.work.chmod(0o755)
        progress(f"checks work in {self.work}")
        config = gitops.show(checkout, ref_commit, ".pre-commit-config.yaml") or ""
        self.hooks = lint.read_hooks(config)
        self.mypy_files = (
            next((h.fields.get("files", "") for h in self.hooks if h.id == "mypy"), "")
            or "^(src/|testing/|scripts/)"
        )
        progress("installing the linters the pre-commit config pins")
        lint_python = make_venv(testruns.system_python(), self.work / "venv-lint")
        self.linters = lint.Linters(lint_python, self.hooks, progress)
        ref_tree = gitops.extract(checkout, ref_commit, self.work / "ref")
        self.ref_module = (ref_tree / MODULE_PATH).read_bytes()
        self.venvs = testruns.TestVenvs(self.work, ref_tree, version)

    def tools(self) -> str:
        found = ", ".join(sorted(self.linters.versions.values()))
        missing = "; ".join(f"{k}: {v}" for k, v in self.linters.missing.items())
        return found + (f" (missing: {missing})" if missing else "")

    def check(self, item: PlannedBranch) -> dict[str, CheckResult]:
        fix = item.fix
        tree = gitops.extract(self.checkout, item.commit, self.work / fix.slug / "tree")
        _write_version(tree / VERSION_FILE, self.version)
        paths = gitops.changed_paths(self.checkout, item.parent, item.commit)
        py = [p for p in paths if p.endswith(".py")]
        results: dict[str, CheckResult] = {}

        def timed(name: str, check: Callable[[], CheckResult]) -> None:
            start = time.monotonic()
            results[name] = check().timed(time.monotonic() - start)

        added, removed = gitops.numstat(
            self.checkout, item.parent, item.commit, MODULE_PATH
        )
        test_added, test_removed = gitops.numstat(
            self.checkout, item.parent, item.commit, TEST_PATH
        )
        results["module lines"] = _limit(
            f"+{added}/-{removed}", added, fix.max_module_lines
        )
        results["test lines"] = _limit(
            f"+{test_added}/-{test_removed} ({len(item.test_ids)} tests)",
            test_added,
            fix.max_test_lines,
        )
        timed("ruff check", lambda: self.linters.ruff_check(tree, py))
        timed("ruff format", lambda: self.linters.ruff_format(tree, py))
        timed("mypy", lambda: self.linters.mypy(tree, py, self.mypy_files))
        timed("codespell", lambda: self.linters.codespell(tree, paths))
        timed("changelog name", lambda: _changelog(item, paths, self.hooks))
        timed("whitespace, end of file", lambda: lint.check_whitespace(tree, paths))
        timed("python-use-type-annotations", lambda: lint.check_type_comments(tree, py))
        timed("no words of ours", lambda: _vocabulary(self.checkout, item))
        self.venvs.install_module(item.files.get(MODULE_PATH, self.ref_module))
        start = time.monotonic()
        for name, result in testruns.run_modes(
            self.venvs, tree, fix.slug, item.test_ids
        ).items():
            results[name] = result
        progress(f"{fix.slug}: test runs took {time.monotonic() - start:.0f} s")
        branch_module = item.files.get(MODULE_PATH, self.ref_module)
        if MODULE_PATH in item.files:
            timed(
                "new tests fail without the fix",
                lambda: testruns.fails_without(
                    self.venvs,
                    tree,
                    self.ref_module,
                    branch_module,
                    fix.slug,
                    item.test_ids,
                    "the ref's module",
                ),
            )
        elif fix.mutation is not None:
            timed("new tests fail on the mutation", lambda: self._mutation(item, tree))
        return results

    def _mutation(self, item: PlannedBranch, tree: Path) -> CheckResult:
        assert item.fix.mutation is not None
        old, new = item.fix.mutation
        source = self.ref_module.decode()
        if source.count(old) != 1:
            return CheckResult.failed(f"{old!r} is not once in the ref's module")
        mutated = source.replace(old, new).encode()
        return testruns.fails_without(
            self.venvs,
            tree,
            mutated,
            self.ref_module,
            item.fix.slug,
            item.test_ids,
            f"{old} -> {new}",
        )


def _limit(text: str, count: int, limit: int) -> CheckResult:
    if count > limit:
        return CheckResult.failed(f"{text}: more than {limit}")
    return CheckResult.ok(f"{text} (at most {limit})")


def _changelog(
    item: PlannedBranch, paths: list[str], hooks: list[lint.Hook]
) -> CheckResult:
    if item.issue is None:
        return CheckResult.waiting(
            f"no issue yet: open it first (issue-{item.fix.slug}.md), then "
            f"--issue {item.fix.slug}=N adds changelog/N.{item.fix.fragment_type}.rst"
        )
    return lint.check_changelog(paths, hooks)


def _vocabulary(checkout: Path, item: PlannedBranch) -> CheckResult:
    added = gitops.added_lines(checkout, item.parent, item.commit)
    texts = [
        (path, "\n".join(lines)) for path, lines in added.items() if path != "AUTHORS"
    ]
    texts += [("message", item.message), ("description", item.description)]
    found = messages.our_words(texts)
    return CheckResult.failed("; ".join(found)) if found else CheckResult.ok("clean")


def _write_version(path: Path, version: str) -> None:
    """What setuptools-scm writes at install time, for mypy on a plain tree."""
    parts = version.split(".")
    numbers = ", ".join(p if p.isdigit() else repr(p) for p in parts)
    path.write_text(
        "from __future__ import annotations\n\n"
        "__version__: str\nversion: str\n"
        "__version_tuple__: tuple[int | str, ...]\nversion_tuple: tuple[int | str, ...]\n"
        f"__version__ = version = {version!r}\n"
        f"__version_tuple__ = version_tuple = ({numbers},)\n"
    )
