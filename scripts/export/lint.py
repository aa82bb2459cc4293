"""pytest's pre-commit hooks, run on a branch's changed files at the versions its config pins.

ruff (check and format), mypy and codespell run in a private venv at the
``rev`` of their hook in the checkout's ``.pre-commit-config.yaml``.  The hooks
of pre-commit's own repositories that are a few lines of Python are done
here instead: trailing whitespace, end of file, the changelog file names (with
the regex of the ``changelogs-rst`` hook read from the config) and
``python-use-type-annotations``.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import hashlib
import json
from pathlib import Path
import re

from export.runner import CheckResult
from export.runner import pip_install
from export.runner import run


LINT_TIMEOUT = 600.0
#: The regex of pygrep-hooks' ``python-use-type-annotations`` (its .pre-commit-hooks.yaml,
#: v1.10.0): the hook's definition lives in that repository, not in pytest's config.
TYPE_COMMENT = re.compile(r"# type(?!: *ignore([^a-zA-Z0-9]|$))")
#: pytest's changelog rule as its README states it, where the config has no hook.
DEFAULT_CHANGELOG_EXCLUDE = (
    r"^changelog/(\.gitignore|\d+\.(breaking|deprecation|feature|improvement|bugfix"
    r"|vendor|doc|packaging|contrib|misc)(\.\d+)?(\.rst)?|README\.rst|_template\.rst)$"
)
#: Hook repositories whose tools run in the venv, by the package they install.
TOOL_REPOS = {
    "ruff": "ruff-pre-commit",
    "mypy": "mirrors-mypy",
    "codespell": "codespell",
}


@dataclasses.dataclass(frozen=True)
class Hook:
    """What the export reads of one hook of ``.pre-commit-config.yaml``."""

    repo: str
    rev: str
    id: str
    fields: dict[str, str]
    additional_dependencies: tuple[str, ...]


def _block_scalar(lines: list[str], start: int, indent: int) -> tuple[str, int]:
    """A ``>-`` / ``|`` block's text (lines joined with spaces) and the line after it."""
    body: list[str] = []
    index = start
    while index < len(lines) and (
        not lines[index].strip()
        or len(lines[index]) - len(lines[index].lstrip()) > indent
    ):
        body.append(lines[index].strip())
        index += 1
    return " ".join(part for part in body if part), index


def read_hooks(config: str) -> list[Hook]:
    """The hooks of a pre-commit config: enough YAML for its ``repos`` list, no parser needed."""
    hooks: list[Hook] = []
    lines = config.splitlines()
    repo = rev = ""
    index = 0
    current: dict[str, str] | None = None
    deps: list[str] = []
    hook_indent = 0

    def close() -> None:
        if current is not None:
            hooks.append(
                Hook(repo, rev, current.get("id", ""), dict(current), tuple(deps))
            )

    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        index += 1
        if not stripped or stripped.startswith("#"):
            continue
        key, _, value = stripped.lstrip("- ").partition(":")
        value = value.strip().strip("\"'")
        if key == "repo":
            close()
            current, deps = None, []
            repo, rev = value, ""
        elif key == "rev":
            rev = value.lstrip("v")
        elif key == "id" and stripped.startswith("-"):
            close()
            current, deps, hook_indent = {"id": value}, [], indent
        elif current is not None and indent > hook_indent:
            if key == "additional_dependencies":
                if value.startswith("["):
                    deps += [d.strip().strip("\"'") for d in value[1:-1].split(",")]
                    continue
                while (
                    index < len(lines)
                    and len(lines[index]) - len(lines[index].lstrip()) > indent
                    and lines[index].strip().startswith(("- ", "#"))
                ):
                    item = lines[index].strip()
                    index += 1
                    if item.startswith("- "):
                        deps.append(item[2:].strip().strip("\"'"))
            elif value in (">-", ">", "|", "|-"):
                current[key], index = _block_scalar(lines, index, indent)
            else:
                current[key] = value
    close()
    return hooks


def tool_requirements(hooks: Sequence[Hook]) -> dict[str, list[str]]:
    """Per tool: its pinned requirement, then its hook's additional dependencies."""
    found: dict[str, list[str]] = {}
    for tool, repo in TOOL_REPOS.items():
        for hook in hooks:
            if hook.repo.rstrip("/").endswith("/" + repo) and hook.rev:
                found[tool] = [f"{tool}=={hook.rev}", *hook.additional_dependencies]
                break
    return found


def changelog_rule(
    hooks: Sequence[Hook],
) -> tuple[re.Pattern[str], re.Pattern[str], str]:
    """The ``changelogs-rst`` hook's ``files`` and ``exclude`` regexes, and where they came from."""
    for hook in hooks:
        if hook.id == "changelogs-rst" and "exclude" in hook.fields:
            files = re.compile(hook.fields.get("files", "^changelog/"))
            return (
                files,
                re.compile(hook.fields["exclude"]),
                "the config's changelogs-rst hook",
            )
    return re.compile("^changelog/"), re.compile(DEFAULT_CHANGELOG_EXCLUDE), "built in"


def check_changelog(paths: Sequence[str], hooks: Sequence[Hook]) -> CheckResult:
    files, exclude, origin = changelog_rule(hooks)
    bad = [p for p in paths if files.search(p) and not exclude.search(p)]
    if bad:
        return CheckResult.failed(f"names the {origin} rejects: {', '.join(bad)}")
    names = [p for p in paths if files.search(p)]
    return CheckResult.ok(f"{', '.join(names) or 'no fragment'} ({origin})")


def check_whitespace(tree: Path, paths: Sequence[str]) -> CheckResult:
    """pre-commit-hooks' trailing-whitespace and end-of-file-fixer, as checks."""
    problems: list[str] = []
    for path in paths:
        data = (tree / path).read_bytes()
        if b"\0" in data:
            continue
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if line != line.rstrip():
                problems.append(f"{path}:{number}: trailing whitespace")
        if data and (not data.endswith(b"\n") or data.endswith(b"\n\n")):
            problems.append(f"{path}: does not end with exactly one newline")
    return (
        CheckResult.failed("; ".join(problems)) if problems else CheckResult.ok("clean")
    )


def check_type_comments(tree: Path, paths: Sequence[str]) -> CheckResult:
    found = [
        f"{path}:{n}"
        for path in paths
        if path.endswith(".py")
        for n, line in enumerate((tree / path).read_text().splitlines(), start=1)
        if TYPE_COMMENT.search(line)
    ]
    return CheckResult.failed(", ".join(found)) if found else CheckResult.ok("clean")


class Linters:
    """ruff, mypy and codespell at the config's versions, in one private venv."""

    def __init__(self, python: Path, hooks: Sequence[Hook], progress: object) -> None:
        self.python = python
        self.bin = python.parent
        self.versions: dict[str, str] = {}
        self.missing: dict[str, str] = {}
        for tool, requirements in tool_requirements(hooks).items():
            error = pip_install(python, requirements[:1])
            if error is not None:
                self.missing[tool] = f"{requirements[0]} not installable: {error}"
                continue
            self.versions[tool] = requirements[0]
            for extra in requirements[1:]:
                pip_install(python, [extra])  # A yanked stub only costs mypy a warning.
        for tool in TOOL_REPOS:
            if tool not in self.versions and tool not in self.missing:
                self.missing[tool] = "no hook in .pre-commit-config.yaml"

    def _tool(self, tool: str) -> str | None:
        return None if tool in self.missing else str(self.bin / tool)

    def ruff_check(self, tree: Path, py: Sequence[str]) -> CheckResult:
        ruff = self._tool("ruff")
        if ruff is None:
            return CheckResult.skipped(self.missing["ruff"])
        if not py:
            return CheckResult.ok("no Python file changed")
        done = run(
            [ruff, "check", "--no-fix", "--no-cache", "--output-format=json", *py],
            cwd=tree,
            timeout=LINT_TIMEOUT,
        )
        try:
            findings = json.loads(done.stdout)
        except json.JSONDecodeError:
            return CheckResult.failed(done.stdout + done.stderr)
        if not findings and done.returncode == 0:
            return CheckResult.ok("clean")
        return CheckResult.failed(
            "; ".join(
                f"{Path(f['filename']).name}:{f['location']['row']} {f['code']}"
                for f in findings
            )
        )

    def ruff_format(self, tree: Path, py: Sequence[str]) -> CheckResult:
        ruff = self._tool("ruff")
        if ruff is None:
            return CheckResult.skipped(self.missing["ruff"])
        if not py:
            return CheckResult.ok("no Python file changed")
        done = run(
            [ruff, "format", "--check", "--no-cache", *py],
            cwd=tree,
            timeout=LINT_TIMEOUT,
        )
        text = (done.stdout + done.stderr).strip()
        return (
            CheckResult.ok("clean")
            if done.returncode == 0
            else CheckResult.failed(text)
        )

    def mypy(self, tree: Path, py: Sequence[str], files_regex: str) -> CheckResult:
        mypy = self._tool("mypy")
        if mypy is None:
            return CheckResult.skipped(self.missing["mypy"])
        chosen = [p for p in py if re.search(files_regex, p)]
        if not chosen:
            return CheckResult.ok("no file the hook checks")
        done = run(
            [mypy, "--no-incremental", "--cache-dir=/dev/null", *chosen],
            cwd=tree,
            timeout=LINT_TIMEOUT,
        )
        last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        return (
            CheckResult.ok(last)
            if done.returncode == 0
            else CheckResult.failed(done.stdout)
        )

    def codespell(self, tree: Path, paths: Sequence[str]) -> CheckResult:
        codespell = self._tool("codespell")
        if codespell is None:
            return CheckResult.skipped(self.missing["codespell"])
        before = {p: hashlib.sha256((tree / p).read_bytes()).hexdigest() for p in paths}
        done = run(
            [codespell, "--toml=pyproject.toml", *paths], cwd=tree, timeout=LINT_TIMEOUT
        )
        changed = [
            p
            for p in paths
            if hashlib.sha256((tree / p).read_bytes()).hexdigest() != before[p]
        ]
        if done.returncode == 0 and not changed:
            return CheckResult.ok("clean")
        return CheckResult.failed(
            (done.stdout + done.stderr).strip() or f"rewrote {changed}"
        )
