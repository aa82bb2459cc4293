"""Tests of ``scripts/export_upstream_pr.py`` on a small synthetic pytest checkout.

Fast and offline: a git repository in ``tmp_path`` stands in for pytest (a fake
``src/_pytest/cacheprovider.py`` with a few definitions), and a fake fork (overlay,
``bases.json``, tests, changelog fragments) is passed with ``--source-root``.  The
checks step (venv, linters, upstream's tests) is skipped with ``--skip-checks``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest


REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "scripts"), str(REPO_ROOT / "backend")]

import export_upstream_pr as export  # noqa: E402
import overlay_merge  # noqa: E402


UPSTREAM_MODULE = '''\
"""Fake upstream cacheprovider."""

from __future__ import annotations

import json
from pathlib import Path


README_CONTENT = "cache"


class Cache:
    def __init__(self, cachedir: Path) -> None:
        self._cachedir = cachedir

    def set(self, key: str, value: object) -> None:
        path = self._cachedir / key
        path.write_text(json.dumps(value))


def pytest_configure(config: object) -> None:
    pass
'''

OVERLAY = '''\
"""Torn values: set writes in place.

Fix: atomic-write
Bug: #6423 (open)
Affects: every release
Needs: -
Replaces: Cache.set
"""

from __future__ import annotations

import os


def _write_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(data)
    os.replace(tmp, path)


class Cache:
    def set(self, key: str, value: object) -> None:
        _write_atomic(self._cachedir / key, json.dumps(value))
'''

OUR_TESTS = """\
from __future__ import annotations

from _pytest.pytester import Pytester
import pytest


class TestAtomicSet:
    @pytest.mark.layer("atomic-write")
    def test_value_appears_whole(self, pytester: Pytester) -> None:
        assert pytester.path.is_dir(), "[atomic-write] torn"

    def test_not_exported(self, pytester: Pytester) -> None:
        pass


@pytest.mark.layer("atomic-write")
def test_standalone(pytester: Pytester) -> None:
    pass
"""

UPSTREAM_PYPROJECT = """\
[project]
name = "pytest"

[[tool.towncrier.type]]
directory = "bugfix"
name = "Bug Fixes"

[[tool.towncrier.type]]
directory = "improvement"
name = "Improvements"
"""

FRAGMENTS = {
    "6423.bugfix.rst": "Sessions that overlap no longer lose each other's ``lastfailed`` entries.\n",
}
LAYER_FILE = f"{export.LAYERS_PATH}/01_atomic_write.py"
EXPORTED_PATHS = {
    "src/_pytest/cacheprovider.py",
    "testing/test_cacheprovider.py",
    "changelog/6423.bugfix.rst",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def base_entry(
    upstream_source: str, overlay_source: str = OVERLAY
) -> dict[str, object]:
    """A bases.json entry recording what the merge does to ``upstream_source``."""
    result = overlay_merge.merge(upstream_source, overlay_source)
    return {"replaces": result.replaced, "keep": {}, "not_needed": {}, "needs": {}}


def record_bases(fork: Path, bases: dict[str, dict[str, object]]) -> None:
    default = next(iter(bases))
    write(
        fork, {"backend/bases.json": json.dumps({"default": default, "bases": bases})}
    )


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed identity and no user or system git config, for every git the tests start."""
    for var in ("GIT_AUTHOR", "GIT_COMMITTER"):
        monkeypatch.setenv(f"{var}_NAME", "Test Exporter")
        monkeypatch.setenv(f"{var}_EMAIL", "exporter@example.invalid")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A fake pytest checkout: tag 8.2.0, then one unrelated commit on main."""
    repo = tmp_path / "pytest"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(
        repo,
        {
            export.MODULE_PATH: UPSTREAM_MODULE,
            "testing/test_cacheprovider.py": SERIES_UPSTREAM_TESTS,
            "changelog/README.rst": "Fragments go here.\n",
            "pyproject.toml": UPSTREAM_PYPROJECT,
            "AUTHORS": "Anna\nZoe\n",
            "README.rst": "pytest\n",
        },
    )
    commit_all(repo, "Release 8.2.0")
    git(repo, "tag", "8.2.0")
    write(repo, {"README.rst": "pytest, newer\n"})
    commit_all(repo, "Reword the README")
    return repo


@pytest.fixture
def fork(tmp_path: Path) -> Path:
    """A fake fork of one layer: its overlay, a base recorded for 8.2.0, its marked tests and fragment."""
    root = tmp_path / "fork"
    write(
        root,
        {
            LAYER_FILE: OVERLAY,
            "testing/test_races.py": OUR_TESTS,
            "testing/test_our_scripts.py": "def test_not_exported() -> None:\n    pass\n",
            "changelog/README.rst": "Our fragments.\n",
            **{f"changelog/{name}": text for name, text in FRAGMENTS.items()},
        },
    )
    record_bases(root, {"8.2.0": base_entry(UPSTREAM_MODULE)})
    return root


def run_export(upstream: Path, fork: Path, *args: str) -> int:
    return export.main(
        [str(upstream), "--source-root", str(fork), "--skip-checks", *args]
    )


def branches(repo: Path) -> set[str]:
    return set(git(repo, "branch", "--format=%(refname:short)").split())


class TestBranch:
    def test_branch_off_the_ref_touches_only_allowed_paths(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run_export(upstream, fork, "--onto", "8.2.0") == 0

        assert git(upstream, "branch", "--show-current") == "cache-races-8.2.0"
        assert git(upstream, "rev-parse", "HEAD^") == git(
            upstream, "rev-parse", "8.2.0^{commit}"
        )
        changed = set(git(upstream, "diff", "--name-only", "8.2.0", "HEAD").split())
        assert changed == EXPORTED_PATHS
        assert git(upstream, "status", "--porcelain") == ""
        module = (upstream / export.MODULE_PATH).read_text(encoding="utf-8")
        assert module == overlay_merge.merge(UPSTREAM_MODULE, OVERLAY).code
        tests = (upstream / "testing/test_cacheprovider.py").read_text()
        assert tests.index("def test_upstream(") < tests.index("def test_standalone(")
        assert "def test_value_appears_whole(" in tests
        assert "def test_standalone(" in tests
        assert "test_not_exported" not in tests
        assert "mark.layer" not in tests
        assert (upstream / "changelog/6423.bugfix.rst").read_text() == FRAGMENTS[
            "6423.bugfix.rst"
        ]
        out = capsys.readouterr().out
        assert "3 files changed" in out
        assert "branch: cache-races-8.2.0" in out
        assert "base: 8.2.0; fixes: atomic-write" in out

    def test_one_commit_holds_what_the_series_last_branch_holds(
        self, upstream: Path, series_fork: Path
    ) -> None:
        assert run_export(upstream, series_fork) == 0
        git(upstream, "checkout", "-q", "main")
        assert run_series(upstream, series_fork) == 0

        assert git(upstream, "rev-parse", "cache-races-main^") == git(
            upstream, "rev-parse", "main"
        )
        assert git(upstream, "rev-parse", "cache-races-main^{tree}") == git(
            upstream, "rev-parse", f"{CONFIGURE}^{{tree}}"
        )
        message = git(upstream, "log", "-1", "--format=%B", "cache-races-main")
        assert "* atomic-write: Torn values: set writes in place." in message
        assert "* configure-once: Configure runs twice." in message
        assert message.splitlines()[-2:] == ["closes #200", "related: #300"]

    def test_default_ref_is_main(self, upstream: Path, fork: Path) -> None:
        assert run_export(upstream, fork) == 0

        assert git(upstream, "branch", "--show-current") == "cache-races-main"
        assert git(upstream, "rev-parse", "HEAD^") == git(upstream, "rev-parse", "main")

    def test_commit_message_has_upstreams_shape(
        self, upstream: Path, fork: Path
    ) -> None:
        assert (
            run_export(
                upstream, fork, "--co-authored-by", "Helper <helper@example.invalid>"
            )
            == 0
        )

        lines = git(upstream, "log", "-1", "--format=%B").splitlines()
        assert lines[0] == export.COMMIT_SUMMARY
        assert len(lines[0]) <= 72
        assert lines[1] == ""
        message = "\n".join(lines)
        assert "\nTest plan:\n" in message
        assert (
            "testing/test_cacheprovider.py::TestAtomicSet::test_value_appears_whole"
            in message
        )
        assert "testing/test_cacheprovider.py::test_standalone" in message
        assert "(6423.bugfix.rst)" in message
        changelog = message[message.index("Changelog:") : message.index("Test plan:")]
        assert max(len(line) for line in changelog.splitlines()) <= 72
        assert [line for line in lines if line.startswith("closes #")] == [
            "closes #6423"
        ]
        assert lines[-1] == "Co-authored-by: Helper <helper@example.invalid>"

    def test_branch_name_can_be_chosen(self, upstream: Path, fork: Path) -> None:
        assert run_export(upstream, fork, "--branch", "fix-6423") == 0

        assert git(upstream, "branch", "--show-current") == "fix-6423"


class TestFragments:
    def test_orphans_keep_their_names_and_close_nothing(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        write(fork, {"changelog/+atomic-write.improvement.rst": "Atomic set.\n"})

        assert run_export(upstream, fork) == 0

        changed = set(git(upstream, "diff", "--name-only", "main", "HEAD").split())
        assert changed == EXPORTED_PATHS | {"changelog/+atomic-write.improvement.rst"}
        message = git(upstream, "log", "-1", "--format=%B")
        assert message.endswith("\n\ncloses #6423")
        assert "closes #+" not in message
        assert "* Atomic set. (+atomic-write.improvement.rst)" in message
        assert (
            "without an issue number: +atomic-write.improvement.rst"
            in capsys.readouterr().out
        )

    def test_pr_number_names_the_orphans(self, upstream: Path, fork: Path) -> None:
        write(
            fork,
            {
                "changelog/+atomic-write.improvement.rst": "Atomic set.\n",
                "changelog/+atomic-write.bugfix.rst": "No torn reads.\n",
            },
        )

        assert run_export(upstream, fork, "--pr-number", "14900") == 0

        changed = set(git(upstream, "diff", "--name-only", "main", "HEAD").split())
        assert changed == EXPORTED_PATHS | {
            "changelog/14900.bugfix.rst",
            "changelog/14900.improvement.rst",
        }
        assert (
            upstream / "changelog/14900.bugfix.rst"
        ).read_text() == "No torn reads.\n"

    def test_badly_named_orphan_is_refused(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        write(fork, {"changelog/+atomic.set.bugfix.rst": "Atomic set.\n"})

        assert run_export(upstream, fork) == 1

        assert "'+atomic.set.bugfix.rst' is not named" in capsys.readouterr().err


class TestRefusals:
    def test_refuses_a_dirty_work_tree(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (upstream / "README.rst").write_text("local edit\n")

        assert run_export(upstream, fork) == 1

        assert "dirty" in capsys.readouterr().err
        assert branches(upstream) == {"main"}
        assert (upstream / "README.rst").read_text() == "local edit\n"

    def test_refuses_untracked_files(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (upstream / "scratch.txt").write_text("notes\n")

        assert run_export(upstream, fork) == 1

        assert "?? scratch.txt" in capsys.readouterr().err
        assert branches(upstream) == {"main"}

    def test_refuses_an_existing_branch(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        git(upstream, "branch", "cache-races-main")

        assert run_export(upstream, fork) == 1

        assert "already exists" in capsys.readouterr().err
        assert git(upstream, "rev-parse", "cache-races-main") == git(
            upstream, "rev-parse", "main"
        )

    def test_names_the_diverged_definition_and_exports_nothing(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        changed = UPSTREAM_MODULE.replace(
            "path.write_text(json.dumps(value))", "path.write_text(repr(value))"
        )
        write(upstream, {export.MODULE_PATH: changed})
        commit_all(upstream, "Upstream edits Cache.set")
        head = git(upstream, "rev-parse", "HEAD")

        assert run_export(upstream, fork) == 1

        err = capsys.readouterr().err
        assert "Cache.set: changed upstream" in err
        assert "the overlay must be adapted" in err
        assert branches(upstream) == {"main"}
        assert git(upstream, "rev-parse", "HEAD") == head
        assert git(upstream, "status", "--porcelain") == ""

    def test_names_a_definition_upstream_now_has(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        helper = "\n\ndef _write_atomic(path: Path, data: str) -> None:\n    path.write_text(data)\n"
        write(upstream, {export.MODULE_PATH: UPSTREAM_MODULE + helper})
        commit_all(upstream, "Upstream adds its own _write_atomic")

        assert run_export(upstream, fork) == 1

        assert "_write_atomic: now defined upstream" in capsys.readouterr().err
        assert branches(upstream) == {"main"}

    def test_refuses_paths_outside_the_allowed_ones(
        self,
        upstream: Path,
        fork: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setattr(export, "ALLOWED_PREFIXES", ("changelog/",))

        assert run_export(upstream, fork) == 1

        err = capsys.readouterr().err
        assert "outside" in err
        assert "testing/test_cacheprovider.py" in err
        assert branches(upstream) == {"main"}

    def test_refuses_a_fragment_type_upstream_does_not_know(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        write(fork, {"changelog/12410.fix.rst": "Atomic writes.\n"})

        assert run_export(upstream, fork) == 1

        assert "'12410.fix.rst' has type 'fix'" in capsys.readouterr().err

    def test_refuses_a_layer_without_marked_tests(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (fork / "testing/test_races.py").unlink()

        assert run_export(upstream, fork) == 1

        assert "has no test marked @pytest.mark.layer('atomic-write')" in (
            capsys.readouterr().err
        )
        assert branches(upstream) == {"main"}

    def test_refuses_without_changelog_fragments(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for name in FRAGMENTS:
            (fork / "changelog" / name).unlink()

        assert run_export(upstream, fork) == 1

        assert "an upstream PR needs one" in capsys.readouterr().err
        assert branches(upstream) == {"main"}


class TestBaseChoice:
    def test_picks_the_base_of_the_nearest_tag(
        self, upstream: Path, fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        newer = UPSTREAM_MODULE.replace(
            "path = self._cachedir / key", "path = self._cachedir.joinpath(key)"
        )
        write(upstream, {export.MODULE_PATH: newer})
        commit_all(upstream, "Release 9.0.0")
        git(upstream, "tag", "9.0.0")
        record_bases(
            fork, {"8.2.0": base_entry(UPSTREAM_MODULE), "9.0.0": base_entry(newer)}
        )

        assert run_export(upstream, fork) == 0
        assert "base: 9.0.0;" in capsys.readouterr().out
        assert run_export(upstream, fork, "--onto", "8.2.0") == 0
        assert "base: 8.2.0;" in capsys.readouterr().out

    def test_applies_the_bases_keep_list(self, upstream: Path, fork: Path) -> None:
        entry = base_entry(
            UPSTREAM_MODULE, overlay_merge.without_definitions(OVERLAY, ["Cache.set"])
        )
        entry["keep"] = {
            "Cache.set": overlay_merge.definition_fingerprints(OVERLAY)["Cache.set"]
        }
        record_bases(fork, {"8.2.0": entry})

        assert run_export(upstream, fork) == 0

        module = (upstream / export.MODULE_PATH).read_text(encoding="utf-8")
        assert "path.write_text(json.dumps(value))" in module
        assert "def _write_atomic" in module

    def test_candidate_order(self) -> None:
        bases = ["8.2.0", "8.2.2", "9.1.0", "9.2.0"]
        assert export.candidate_bases(bases, "9.2.0.dev0") == [
            "9.2.0",
            "9.1.0",
            "8.2.2",
            "8.2.0",
        ]
        assert export.candidate_bases(bases, "8.2.1") == [
            "8.2.0",
            "8.2.2",
            "9.1.0",
            "9.2.0",
        ]
        assert export.candidate_bases(bases, None) == [
            "9.2.0",
            "9.1.0",
            "8.2.2",
            "8.2.0",
        ]

    def test_diverged_definitions_skip_the_keep_list(self) -> None:
        upstream = {"Cache.set": "aaaa", "_helper": "bbbb", "_kept": "cccc"}
        entry = {
            "replaces": {"Cache.set": "ffff", "Cache.gone": "eeee"},
            "keep": {"_kept": "dddd"},
        }
        adds = ["_helper", "_kept", "_new"]
        assert export.diverged_definitions(upstream, entry, adds) == [
            "Cache.gone: no longer defined upstream",
            "Cache.set: changed upstream (fingerprint aaaa, reviewed ffff)",
            "_helper: now defined upstream, the overlay's would replace it",
        ]

    def test_fingerprints_agree_with_the_merge(self) -> None:
        replaced = overlay_merge.merge(UPSTREAM_MODULE, OVERLAY).replaced
        found = overlay_merge.definition_fingerprints(UPSTREAM_MODULE)
        assert replaced == {name: found[name] for name in replaced}
        assert {"README_CONTENT", "Cache", "Cache.__init__", "pytest_configure"} <= set(
            found
        )


class TestCheckHelpers:
    def test_failing_command_is_named(self, tmp_path: Path) -> None:
        command = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
        with pytest.raises(export.CheckFailed) as excinfo:
            export.run_check(command, cwd=tmp_path, timeout=60)
        message = str(excinfo.value)
        assert export._quoted(command) in message
        assert "exited with 3" in message
        assert "boom" in message

    def test_precommit_pins(self) -> None:
        config = (
            "repos:\n"
            "- repo: https://github.com/astral-sh/ruff-pre-commit\n"
            '  rev: "v0.4.1"\n'
            "  hooks:\n"
            "    - id: ruff\n"
            "-   repo: https://github.com/pre-commit/mirrors-mypy\n"
            "    rev: v1.9.0\n"
            "    hooks:\n"
            "    -   id: mypy\n"
            "        additional_dependencies:\n"
            "          - iniconfig>=1.1.0\n"
            "            # a comment\n"
            "          - exceptiongroup>=1.0.0rc8\n"
            "- repo: https://github.com/tox-dev/pyproject-fmt\n"
        )
        assert export.precommit_pins(config) == {
            "ruff": ["ruff==0.4.1"],
            "mypy": ["mypy==1.9.0", "iniconfig>=1.1.0", "exceptiongroup>=1.0.0rc8"],
        }

    def test_summary_line(self) -> None:
        output = "x\n==== 54 passed, 2 skipped in 3.10s ====\n"
        assert export.summary_line(output) == "54 passed, 2 skipped in 3.10s"

    def test_added_lines_are_the_new_sides_of_the_hunks(self, upstream: Path) -> None:
        lines = UPSTREAM_MODULE.splitlines(keepends=True)
        lines[0] = '"""Changed docstring."""\n'
        lines.insert(5, "import os\n")
        write(upstream, {export.MODULE_PATH: "".join(lines)})
        commit_all(upstream, "Two changes")

        added = export.added_lines(upstream, "HEAD^", "HEAD", export.MODULE_PATH)

        assert added == {1, 6}

    def test_ruff_findings_are_split_into_ours_and_upstreams(
        self, tmp_path: Path
    ) -> None:
        findings = [
            {
                "filename": str(tmp_path / "src/m.py"),
                "location": {"row": row, "column": 5},
                "code": code,
                "message": "msg",
            }
            for row, code in ((3, "F401"), (40, "UP007"))
        ]
        fake_ruff = tmp_path / "ruff"
        fake_ruff.write_text(
            f"#!{sys.executable}\nimport sys\nprint({json.dumps(findings)!r})\nsys.exit(1)\n"
        )
        fake_ruff.chmod(0o755)

        with pytest.raises(export.CheckFailed) as excinfo:
            export._ruff_check(fake_ruff, tmp_path, ["src/m.py"], {"src/m.py": {3}})

        message = str(excinfo.value)
        ours, theirs = message.split("in upstream lines")
        assert "in lines the export wrote (1)" in ours
        assert "src/m.py:3:5: F401 msg" in ours
        assert "did not change (1; UP007)" in theirs
        assert "src/m.py:40:5: UP007 msg" in theirs


# --- the series: one stacked branch per layer ----------------------------------------

SERIES_LAYERS = {
    "01_base_fix.py": '''\
"""Base fix: a crash when the value is written.

Fix: base-fix
Bug: #100 (closed; fixed upstream in 8.2.0 by #101, which has no regression test)
Affects: 8.1.0
Needs: -
Replaces: Cache.set

The value is written through a helper.
"""

from pathlib import Path


def _helper_a(path: Path) -> Path:
    return path


class Cache:
    def set(self, key: str, value: object) -> None:
        _helper_a(self._cachedir / key).write_text(json.dumps(value))
''',
    "02_atomic_write.py": '''\
"""Torn values: set writes in place.

Fix: atomic-write
Bug: #200 (open)
Affects: every release
Needs: base-fix
Replaces: Cache.set

A reader sees half a value.  The value is written to a sibling and
renamed over the file.
"""

import os


def _write_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(data)
    os.replace(tmp, path)


class Cache:
    def set(self, key: str, value: object) -> None:
        _write_atomic(_helper_a(self._cachedir / key), json.dumps(value))
''',
    "03_configure_once.py": '''\
"""Configure runs twice.

Fix: configure-once
Bug: -  (related: #300, an open report of something broader)
Affects: every release
Needs: -
Replaces: pytest_configure

Configure is idempotent now.
"""


def pytest_configure(config: object) -> None:
    return None
''',
}

SERIES_TESTS = '''\
"""Our tests of the fake layers."""

from __future__ import annotations

import os
from pathlib import Path

from race_harness import require

from _pytest.pytester import Pytester
import pytest


UNUSED = "no marked test uses this"
SCRIPT = "print('hi')"


@pytest.fixture(autouse=True)
def _needs_nothing() -> None:
    pass


def helper(path: Path) -> str:
    return SCRIPT + str(path)


@pytest.mark.layer("base-fix")
def test_base(pytester: Pytester) -> None:
    require(pytester.path.is_dir(), "no project")
    assert pytester.path.is_dir(), "[base-fix] no project"


class TestAtomic:
    DATA = "x"

    @pytest.mark.layer("atomic-write")
    def test_whole(self, pytester: Pytester) -> None:
        assert helper(pytester.path), "[atomic-write] torn"

    def test_not_a_layer_test(self) -> None:
        pass


@pytest.mark.layer("configure-once")
def test_modes(pytester: Pytester) -> None:
    old = os.umask(0o022)
    os.umask(old)
'''

SERIES_FRAGMENTS = {
    "100.bugfix.rst": "Fixed the crash.\n",
    "+atomic-write.bugfix.rst": "Values are written atomically.\n",
    "300.bugfix.rst": "Configure runs once.\n",
}
SERIES_UPSTREAM_TESTS = """\
from __future__ import annotations

from _pytest.pytester import Pytester
import pytest


def test_upstream(pytester: Pytester) -> None:
    pass
"""


def fold(sources: list[str]) -> str:
    """The layers folded as the build folds them."""
    combined = sources[0]
    for source in sources[1:]:
        combined = overlay_merge.merge(combined, source, partial=True).code
    return combined


@pytest.fixture
def series_fork(tmp_path: Path, upstream: Path) -> Path:
    """A fake fork of three layers; base 8.2.0 already has the first one's fix."""
    write(
        upstream,
        {
            "testing/test_cacheprovider.py": SERIES_UPSTREAM_TESTS,
            "testing/test_stepwise.py": "def test_stepwise() -> None:\n    pass\n",
        },
    )
    commit_all(upstream, "Upstream's test files")
    root = tmp_path / "series-fork"
    write(
        root,
        {
            **{f"{export.LAYERS_PATH}/{n}": src for n, src in SERIES_LAYERS.items()},
            "testing/test_layers.py": SERIES_TESTS,
            "testing/race_harness.py": "def require(c: object, m: str) -> None: ...\n",
            **{f"changelog/{n}": text for n, text in SERIES_FRAGMENTS.items()},
        },
    )
    entry = base_entry(UPSTREAM_MODULE, fold(list(SERIES_LAYERS.values())))
    entry["not_needed"] = {"base-fix": "fixed upstream in 8.2.0 (#101)"}
    record_bases(root, {"8.2.0": entry})
    return root


def run_series(upstream: Path, fork: Path, *args: str) -> int:
    return export.main(
        [str(upstream), "--series", "--source-root", str(fork), "--skip-checks", *args]
    )


def show(repo: Path, ref: str, path: str) -> str:
    return git(repo, "show", f"{ref}:{path}")


ATOMIC = "cache-series-main/02-atomic-write"
CONFIGURE = "cache-series-main/03-configure-once"


class TestSeries:
    def test_one_stacked_branch_per_layer(
        self, upstream: Path, series_fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run_series(upstream, series_fork) == 0

        assert branches(upstream) == {"main", ATOMIC, CONFIGURE}
        assert git(upstream, "rev-parse", f"{ATOMIC}^") == git(
            upstream, "rev-parse", "main"
        )
        assert git(upstream, "rev-parse", f"{CONFIGURE}^") == git(
            upstream, "rev-parse", ATOMIC
        )
        # The work tree stays where it was.
        assert git(upstream, "branch", "--show-current") == "main"
        assert git(upstream, "status", "--porcelain") == ""
        out = capsys.readouterr().out
        assert "01 base-fix: lands in atomic-write's branch, which needs it" in out
        assert f"{ATOMIC} (with base-fix)" in out
        assert "module: +" in out and "tests: +" in out

    def test_each_branch_holds_only_its_layers_change(
        self, upstream: Path, series_fork: Path
    ) -> None:
        assert run_series(upstream, series_fork) == 0

        layers_ = list(SERIES_LAYERS.values())
        assert (
            show(upstream, ATOMIC, export.MODULE_PATH)
            == overlay_merge.merge(UPSTREAM_MODULE, fold(layers_[:2])).code.rstrip()
        )
        assert (
            show(upstream, CONFIGURE, export.MODULE_PATH)
            == overlay_merge.merge(UPSTREAM_MODULE, fold(layers_)).code.rstrip()
        )
        changed = set(git(upstream, "diff", "--name-only", ATOMIC, CONFIGURE).split())
        assert changed == {
            export.MODULE_PATH,
            "testing/test_cacheprovider.py",
            "changelog/300.bugfix.rst",
        }

    def test_tests_are_appended_to_upstreams_file_without_our_marks(
        self, upstream: Path, series_fork: Path
    ) -> None:
        assert run_series(upstream, series_fork) == 0

        first = show(upstream, ATOMIC, "testing/test_cacheprovider.py")
        # Upstream's tests stay first, ours are appended; imports join the block.
        assert first.index("def test_upstream(") < first.index("def require(")
        assert first.startswith(
            "from __future__ import annotations\n\nfrom pathlib import Path\n\n"
        )
        # The groundwork's regression test (upstream fixed it without one) and ours.
        assert "def test_base(" in first and "def test_whole(" in first
        assert "def helper(" in first and "SCRIPT = " in first
        assert "UNUSED" not in first and "test_not_a_layer_test" not in first
        assert "mark.layer" not in first and "race_harness" not in first
        assert "def require(" in first and "pytest.fail(" in first
        assert '@pytest.mark.usefixtures("_needs_nothing")' in first
        assert "autouse" not in first
        assert "def test_modes(" not in first
        second = show(upstream, CONFIGURE, "testing/test_cacheprovider.py")
        assert (
            second.index("def test_upstream(")
            < second.index("def test_whole(")
            < second.index("def test_modes(")
        )
        assert second.count("def require(") == 1
        assert (
            '@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")'
            in second
        )
        assert "\nimport sys\n" in second

    def test_messages_close_only_open_issues(
        self, upstream: Path, series_fork: Path
    ) -> None:
        assert run_series(upstream, series_fork) == 0

        atomic = git(upstream, "log", "-1", "--format=%B", ATOMIC)
        assert (
            atomic.splitlines()[0] == "cacheprovider: Torn values: set writes in place."
        )
        assert "regression test for #100" in atomic
        assert "closes #200" in atomic.splitlines()
        assert "closes #100" not in atomic
        assert "test_cacheprovider.py::TestAtomic::test_whole" in atomic
        configure = git(upstream, "log", "-1", "--format=%B", CONFIGURE)
        assert "closes" not in configure
        assert "related: #300" in configure.splitlines()

    def test_fragments_per_branch_and_pr_numbers(
        self, upstream: Path, series_fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run_series(upstream, series_fork) == 0

        first = set(git(upstream, "diff", "--name-only", "main", ATOMIC).split())
        assert {
            "changelog/100.bugfix.rst",
            "changelog/+atomic-write.bugfix.rst",
        } < first
        assert "--pr-number atomic-write=<PR>" in capsys.readouterr().out
        for branch in (ATOMIC, CONFIGURE):
            git(upstream, "branch", "-D", branch)

        assert (
            run_series(upstream, series_fork, "--pr-number", "atomic-write=14900") == 0
        )

        first = set(git(upstream, "diff", "--name-only", "main", ATOMIC).split())
        assert "changelog/14900.bugfix.rst" in first
        assert "changelog/+atomic-write.bugfix.rst" not in first

    def test_pr_number_needs_a_fix_name(
        self, upstream: Path, series_fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run_series(upstream, series_fork, "--pr-number", "14900") == 1
        assert "with --series give FIX=N" in capsys.readouterr().err
        assert branches(upstream) == {"main"}

    def test_existing_branch_refuses_the_whole_series(
        self, upstream: Path, series_fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        git(upstream, "branch", CONFIGURE)

        assert run_series(upstream, series_fork) == 1

        assert "already exists" in capsys.readouterr().err
        assert branches(upstream) == {"main", CONFIGURE}

    def test_a_layer_upstream_has_is_skipped_with_a_note(
        self, upstream: Path, series_fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        bases = json.loads((series_fork / "backend/bases.json").read_text())
        bases["bases"]["8.2.0"]["not_needed"]["configure-once"] = "fixed upstream"
        del bases["bases"]["8.2.0"]["replaces"]["pytest_configure"]
        write(series_fork, {"backend/bases.json": json.dumps(bases)})

        assert run_series(upstream, series_fork) == 0

        assert branches(upstream) == {"main", ATOMIC}
        assert (
            "03 configure-once: skipped, upstream has this fix at main"
            in capsys.readouterr().out
        )

    def test_our_test_replacing_an_upstream_one_is_refused(
        self, upstream: Path, series_fork: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        write(
            series_fork,
            {
                "testing/test_layers.py": SERIES_TESTS.replace(
                    "def test_base(", "def test_upstream("
                )
            },
        )

        assert run_series(upstream, series_fork) == 1

        assert "would replace test_upstream" in capsys.readouterr().err
        assert branches(upstream) == {"main"}


@pytest.mark.parametrize(
    ("bug", "number", "is_open", "related", "untested"),
    [
        (
            "#12381 (closed; fixed upstream in 8.2.2 by #12408, which has no regression test)",
            12381,
            False,
            (12408,),
            True,
        ),
        ("#6670 (open)", 6670, True, (), False),
        (
            "-  (related: #6670, rm_rf warnings with xdist and --cache-clear, open)",
            None,
            False,
            (6670,),
            False,
        ),
        ("-", None, False, (), False),
    ],
)
def test_layer_issue(
    bug: str,
    number: int | None,
    is_open: bool,
    related: tuple[int, ...],
    untested: bool,
) -> None:
    issue = export.layer_issue(bug)
    assert (issue.number, issue.open, issue.related, issue.untested_upstream) == (
        number,
        is_open,
        related,
        untested,
    )
