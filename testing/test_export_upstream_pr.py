"""Tests of the upstream export (``scripts/export_upstream_pr.py``, package ``scripts/export``).

Fast and offline: the pieces on small strings, and the planning of branches on a
small git repository in ``tmp_path`` standing in for pytest.  The checks that
need the package index (venvs, pinned linters, pytest's own tests) are not run
here; ``test_material_*`` hold every fix's texts to pytest's rules.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
import re
import subprocess
import sys
from typing import Any

import pytest


REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "scripts"), str(REPO_ROOT / "backend")]

from export import cli  # noqa: E402
from export import gitops  # noqa: E402
from export import lint  # noqa: E402
from export import messages  # noqa: E402
from export import planning  # noqa: E402
from export import testcode  # noqa: E402
from export.material import Branch  # noqa: E402
from export.material import issue_numbers  # noqa: E402
from export.material import IssueText  # noqa: E402
from export.material import load_fixes  # noqa: E402
from export.material import MaterialError  # noqa: E402
import layers  # noqa: E402


PRE_COMMIT = """\
repos:
- repo: https://github.com/astral-sh/ruff-pre-commit
  rev: "v0.16.3"
  hooks:
    - id: ruff-check
      args: ["--fix"]
-   repo: https://github.com/codespell-project/codespell
    rev: v2.4.3
    hooks:
    -   id: codespell
        args: ["--toml=pyproject.toml"]
        additional_dependencies:
          - tomli
-   repo: https://github.com/pre-commit/mirrors-mypy
    rev: v2.3.1
    hooks:
    -   id: mypy
        files: ^(src/|testing/|scripts/)
        additional_dependencies:
          - iniconfig>=1.1.0
            # a comment inside the list
          - exceptiongroup>=1.0.0rc8
-   repo: local
    hooks:
    -   id: changelogs-rst
        name: changelog filenames
        language: fail
        entry: >-
          changelog files must be named ####.(bugfix|doc)(.#)?(.rst)?
        exclude: >-
          (?x)
          ^
            changelog/(
              \\.gitignore
              |\\d+\\.(
                bugfix
                |contrib
              )(\\.\\d+)?(\\.rst)?
              |README\\.rst
            )
          $
        files: ^changelog/
"""

UPSTREAM_MODULE = '''\
"""Stand-in for pytest's cacheprovider."""

from __future__ import annotations

import os
from pathlib import Path


class Cache:
    def __init__(self, cachedir: Path) -> None:
        self._cachedir = cachedir

    @staticmethod
    def _join_within(base: Path, name: str) -> Path:
        path = Path(os.path.normpath(base.joinpath(name)))
        if not path.is_relative_to(base):
            raise ValueError(name)
        return path

    def for_config(self) -> None:
        pass
'''

LAYER = '''\
"""Keys escape the cache dir.

Fix: keys-confined
Bug: #14884 (closed)
Affects: 8.2.0 to 9.1.1
Needs: -
Replaces: Cache._join_within, Cache.for_config
"""

from __future__ import annotations

import functools
import socket


_UNUSED = 1


@functools.lru_cache(maxsize=8)
def _confined(base: str, name: str) -> str:
    root = os.path.normpath(base)
    return os.path.normpath(os.path.join(root, name))


def _host() -> str:
    return socket.gethostname()


class Cache:
    @staticmethod
    def _join_within(base: Path, name: str) -> Cache | Path:
        return Path(_confined(os.fspath(base), name))

    def for_config(self) -> None:
        _host()
'''

UPSTREAM_TESTS = """\
from __future__ import annotations

from pathlib import Path

import pytest


def test_existing(tmp_path: Path) -> None:
    assert tmp_path
"""

AUTHORS = """\
Holger Krekel, holger at merlinux eu

Contributors include::

Aaron Coleman
Zac Hatfield-Dodds
"""


def test_read_hooks_pins_and_changelog_rule() -> None:
    hooks = lint.read_hooks(PRE_COMMIT)
    assert lint.tool_requirements(hooks) == {
        "ruff": ["ruff==0.16.3"],
        "mypy": ["mypy==2.3.1", "iniconfig>=1.1.0", "exceptiongroup>=1.0.0rc8"],
        "codespell": ["codespell==2.4.3", "tomli"],
    }
    files, exclude, origin = lint.changelog_rule(hooks)
    assert origin == "the config's changelogs-rst hook"
    assert files.search("changelog/123.bugfix.rst")
    assert exclude.search("changelog/123.bugfix.rst")
    assert exclude.search("changelog/123.contrib.2.rst")
    assert not exclude.search("changelog/+fix.bugfix.rst")
    assert not exclude.search("changelog/123.feature.rst")  # Not in this config's list.
    result = lint.check_changelog(
        ["changelog/+fix.bugfix.rst", "src/x.py", "changelog/1.bugfix.rst"], hooks
    )
    assert result.status == "FAILED"
    assert "changelog/+fix.bugfix.rst" in result.detail
    assert "changelog/1.bugfix.rst" not in result.detail


def test_changelog_rule_without_a_hook() -> None:
    _, exclude, origin = lint.changelog_rule([])
    assert origin == "built in"
    assert exclude.search("changelog/6670.bugfix.rst")
    assert not exclude.search("changelog/6670.fix.rst")


def test_whitespace_and_type_comment_hooks(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x: int = 1  # type: ignore[misc]\n")
    (tmp_path / "bad.py").write_text("x = 1  # type: int \n\n")
    (tmp_path / "noeol.rst").write_text("text")
    clean = lint.check_whitespace(tmp_path, ["ok.py"])
    assert clean.status == "ok"
    bad = lint.check_whitespace(tmp_path, ["bad.py", "noeol.rst"])
    assert bad.status == "FAILED"
    assert "bad.py:1: trailing whitespace" in bad.detail
    assert "noeol.rst: does not end with exactly one newline" in bad.detail
    assert lint.check_type_comments(tmp_path, ["ok.py"]).status == "ok"
    assert lint.check_type_comments(tmp_path, ["bad.py"]).detail == "bad.py:1"


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("the layer merges it", "layer"),
        ("Upstream's write", "Upstream"),
        ("assert x, '[keys-confined] lost'", "[keys-confined]"),
        ("as stock does", "stock"),
        ("a player and a forklift", None),
        ("fork()", "fork"),
    ],
)
def test_our_words(line: str, found: str | None) -> None:
    hits = messages.our_words([("f", line)])
    if found is None:
        assert hits == []
    else:
        assert hits and repr(found) in hits[0]


def test_selected_overlay_takes_the_named_definitions_and_their_helpers() -> None:
    overlay = testcode.selected_overlay(LAYER, ["Cache._join_within"])
    assert "def _confined" in overlay
    assert "def _join_within" in overlay
    # Neither the other member, nor what only it reads; the class named in an
    # annotation does not bring the whole class.
    assert "def for_config" not in overlay
    assert "_host" not in overlay
    assert "_UNUSED" not in overlay
    with pytest.raises(gitops.ExportError, match=r"does not define Cache\.nothing"):
        testcode.selected_overlay(LAYER, ["Cache.nothing"])


def test_module_change_is_the_merge_of_the_selection() -> None:
    merged = testcode.module_change(UPSTREAM_MODULE, LAYER, ["Cache._join_within"])
    assert "import functools\n" in merged
    assert "import socket" not in merged  # Unused imports are dropped by the merge.
    assert "return Path(_confined(os.fspath(base), name))" in merged
    assert "is_relative_to" not in merged
    assert "    def for_config(self) -> None:\n        pass\n" in merged
    assert testcode.module_change(UPSTREAM_MODULE, LAYER, []) == UPSTREAM_MODULE


def test_merge_tests_appends_and_never_replaces() -> None:
    new = "\n\ndef test_new(tmp_path: Path) -> None:\n    assert pytest\n"
    merged = testcode.merge_tests(UPSTREAM_TESTS, new)
    assert merged.startswith(UPSTREAM_TESTS)
    assert merged.endswith(new.lstrip("\n"))
    assert testcode.test_ids(new) == ["testing/test_cacheprovider.py::test_new"]
    replacing = "\n\ndef test_existing(tmp_path: Path) -> None:\n    pass\n"
    with pytest.raises(gitops.ExportError, match="would replace test_existing"):
        testcode.merge_tests(UPSTREAM_TESTS, replacing)
    undefined = "\n\ndef test_other() -> None:\n    helper()\n"
    with pytest.raises(gitops.ExportError, match="helper"):
        testcode.merge_tests(UPSTREAM_TESTS, undefined)


def test_with_author_in_alphabetical_order() -> None:
    updated = testcode.with_author(AUTHORS, "Maria Example")
    assert updated.splitlines()[-3:] == [
        "Aaron Coleman",
        "Maria Example",
        "Zac Hatfield-Dodds",
    ]
    assert testcode.with_author(updated, "Maria Example") == updated


def test_issue_numbers_option() -> None:
    fixes = load_fixes()
    slug = next(f.slug for f in fixes if isinstance(f, Branch) and f.issue is None)
    assert issue_numbers([f"{slug}=15100"], fixes) == {slug: 15100}
    with pytest.raises(MaterialError, match="give SLUG=N"):
        issue_numbers([f"{slug}:15100"], fixes)
    with pytest.raises(MaterialError, match="no branch 'nope'"):
        issue_numbers(["nope=1"], fixes)


def test_material_holds_pytests_rules() -> None:
    """Every fix's texts: no word of ours, tests that parse within the limit, real types."""
    fixes = load_fixes()
    assert [f.order for f in fixes] == sorted(f.order for f in fixes)
    branches = [f for f in fixes if isinstance(f, Branch)]
    assert branches[0].max_module_lines <= 20
    assert branches[1].definitions == () and branches[1].mutation is not None
    assert branches[1].max_test_lines <= 30
    for fix in fixes:
        if isinstance(fix, IssueText):
            texts = [("title", fix.title), ("text", fix.text)]
            for heading in ("**Problem.**", "**Reproducer.**", "**Proposed design.**"):
                assert heading in fix.text, (fix.slug, heading)
        else:
            texts = [
                (f"{fix.slug} {name}", getattr(fix, name))
                for name in ("subject", "message", "fragment", "tests", "description")
            ]
            assert fix.fragment_type in lint.DEFAULT_CHANGELOG_EXCLUDE
            assert testcode.test_ids(fix.tests), fix.slug
            assert fix.tests.count("\n") <= fix.max_test_lines
            assert fix.issue is not None or fix.issue_text, fix.slug
            assert len(fix.subject) <= 72
            if "closes #" in fix.description:
                assert fix.issue_open and fix.issue is not None, fix.slug
        assert messages.our_words(texts) == []


def test_material_names_layers_that_exist() -> None:
    """A branch's layer must exist (the layers get renamed: re-read them, never guess)."""
    names = {layer.name for layer in layers.load_layers()}
    for fix in load_fixes():
        if isinstance(fix, Branch) and fix.definitions:
            assert fix.layer in names, fix.slug


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small git repository laid out like pytest's, tagged 9.2.0.dev0.

    Commits made in it have an identity of their own: the machine may have none.
    """
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test Person")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.org")
    repo = tmp_path / "pytest"
    for path, text in {
        testcode.MODULE_PATH: UPSTREAM_MODULE,
        testcode.TEST_PATH: UPSTREAM_TESTS,
        "AUTHORS": AUTHORS,
        ".pre-commit-config.yaml": PRE_COMMIT,
        "changelog/README.rst": "fragments\n",
    }.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    _git(repo, "tag", "9.2.0.dev0")
    return repo


def _branch(**changes: Any) -> Branch:
    fix = Branch(
        slug="dotdot",
        order=1,
        layer="keys-confined",
        definitions=("Cache._join_within",),
        issue=None,
        issue_open=True,
        subject="Fix a crash",
        message="Why and how.",
        fragment_type="bugfix",
        fragment="Fixed a crash.\n",
        tests="\n\ndef test_new(tmp_path: Path) -> None:\n    assert tmp_path\n",
        description="What, why, how it was tested.",
        max_module_lines=20,
        issue_title="A crash",
        issue_text="It crashes.",
    )
    return dataclasses.replace(fix, **changes)


def _layers(tmp_path: Path) -> dict[str, layers.Layer]:
    path = tmp_path / "04_keys_confined.py"
    path.write_text(LAYER)
    return {"keys-confined": layers.parse_layer(path)}


def test_plan_branch_stands_alone_on_the_ref(checkout: Path, tmp_path: Path) -> None:
    ref = _git(checkout, "rev-parse", "main").strip()
    author = planning.Person.parse("Maria Example <maria@example.org>")
    item = planning.plan_branch(
        checkout,
        ref,
        "main",
        _branch(),
        _layers(tmp_path),
        issue_numbers={"dotdot": 15100},
        author=author,
        co_authors=["Helper <helper@example.org>"],
    )
    assert item.branch == "pytest-prs-main/1-dotdot"
    assert _git(checkout, "rev-parse", f"{item.commit}^").strip() == ref
    assert sorted(gitops.changed_paths(checkout, ref, item.commit)) == [
        "AUTHORS",
        "changelog/15100.bugfix.rst",
        testcode.MODULE_PATH,
        testcode.TEST_PATH,
    ]
    message = _git(checkout, "log", "-1", "--format=%an <%ae>%n%B", item.commit)
    assert message.startswith("Maria Example <maria@example.org>\nFix a crash\n")
    assert "Closes #15100." in message
    assert message.rstrip().endswith("Co-authored-by: Helper <helper@example.org>")
    assert item.description.startswith("# Fix a crash\n\ncloses #15100\n")
    assert _git(checkout, "status", "--porcelain") == ""  # Work tree untouched.


def test_plan_branch_without_issue_leaves_the_fragment_out(
    checkout: Path, tmp_path: Path
) -> None:
    ref = _git(checkout, "rev-parse", "main").strip()
    item = planning.plan_branch(
        checkout,
        ref,
        "main",
        _branch(),
        _layers(tmp_path),
        issue_numbers={},
        author=None,
        co_authors=[],
    )
    assert item.issue is None
    assert not any(p.startswith("changelog/") for p in item.files)
    assert "AUTHORS" not in item.files
    assert "--issue dotdot=N" in item.description


def test_plan_branch_where_git_knows_nobody(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh HOME, as on CI: the branch is committed by a stand-in, AUTHORS untouched."""
    ref = _git(checkout, "rev-parse", "main").strip()
    for role in ("AUTHOR", "COMMITTER"):
        for part in ("NAME", "EMAIL"):
            monkeypatch.delenv(f"GIT_{role}_{part}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    if gitops.has_identity(checkout):
        pytest.skip("git makes an identity of this host's name")
    item = planning.plan_branch(
        checkout,
        ref,
        "main",
        _branch(),
        _layers(tmp_path),
        issue_numbers={},
        author=None,
        co_authors=[],
    )
    name, email = gitops.NOBODY
    assert _git(checkout, "log", "-1", "--format=%an <%ae>|%cn", item.commit) == (
        f"{name} <{email}>|{name}\n"
    )
    assert "AUTHORS" not in item.files


def test_plan_branch_for_a_closed_issue_says_no_closes(
    checkout: Path, tmp_path: Path
) -> None:
    ref = _git(checkout, "rev-parse", "main").strip()
    fix = _branch(
        definitions=(), issue=12381, issue_open=False, fragment_type="contrib"
    )
    item = planning.plan_branch(
        checkout,
        ref,
        "main",
        fix,
        {},
        issue_numbers={},
        author=None,
        co_authors=[],
    )
    assert testcode.MODULE_PATH not in item.files
    assert "changelog/12381.contrib.rst" in item.files
    assert not re.search(r"(?i)closes", item.message + item.description)


def test_plan_branch_refuses_an_unknown_layer(checkout: Path) -> None:
    ref = _git(checkout, "rev-parse", "main").strip()
    with pytest.raises(gitops.ExportError, match="no layer 'keys-confined'"):
        planning.plan_branch(
            checkout,
            ref,
            "main",
            _branch(),
            {},
            issue_numbers={},
            author=None,
            co_authors=[],
        )


def test_newer_release_note_and_prerelease() -> None:
    assert planning.is_prerelease("9.2.0.dev0")
    assert not planning.is_prerelease("9.2.0")
    assert planning.release_tuple("9.2.0.dev0") == (9, 2, 0)


def test_cli_skip_checks_on_a_fake_checkout(
    checkout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The test-only branch (no module change) is made off main; issue texts are written."""
    out = tmp_path / "out"
    slug = next(
        f.slug for f in load_fixes() if isinstance(f, Branch) and not f.definitions
    )
    code = cli.main([str(checkout), "--skip-checks", "--only", slug, "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "base: main at" in printed
    assert "This export prepares; a person submits." in printed
    branches = _git(checkout, "branch", "--list", "pytest-prs-main/*").split()
    assert branches == [f"pytest-prs-main/2-{slug}"]
    assert (out / f"pr-{slug}.md").is_file()
    # A second run needs --replace.
    assert cli.main([str(checkout), "--skip-checks", "--only", slug]) == 1


def test_two_blank_lines_after_bodies() -> None:
    code = "def f():\n    pass\n\n# note\nX = 1\n\n# other\nY = 2\n"
    assert testcode.two_blank_lines_after_bodies(code) == (
        "def f():\n    pass\n\n\n# note\nX = 1\n\n# other\nY = 2\n"
    )


def test_outcomes_from_junit(tmp_path: Path) -> None:
    from export import testruns

    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="testing.test_cacheprovider" name="test_a[1]"/>'
        '<testcase classname="testing.test_cacheprovider" name="test_a[2]">'
        '<failure message="x"/></testcase>'
        '<testcase classname="testing.test_cacheprovider.TestX" name="test_b">'
        '<skipped message="no xdist"/></testcase>'
        "</testsuite></testsuites>"
    )
    ids = [
        "testing/test_cacheprovider.py::test_a",
        "testing/test_cacheprovider.py::TestX::test_b",
        "testing/test_cacheprovider.py::test_c",
    ]
    assert testruns.outcomes(report, ids) == {ids[0]: "FAILED", ids[1]: "SKIPPED"}
