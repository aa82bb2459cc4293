"""pytest's own cache tests on a branch: with and without pytest-xdist, as root and not.

Two venvs made from the system's Python (a non-root user cannot enter pyenv's
interpreters under root's home), both with the ref's pytest installed, one of
them with pytest-xdist.  A branch changes pytest only in its cache module: that
file is copied into both venvs, and the tests run from the branch's tree.  As
root the runs are repeated as ``nobody`` (``runuser -u nobody --``), as
pytest's CI runs them, with a writable HOME, ``cache_dir`` and ``--basetemp``.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import os
from pathlib import Path
import pwd
import re
import shutil
from xml.etree import ElementTree

from envs import XDIST_VERSION
from export.runner import check_env
from export.runner import CheckResult
from export.runner import make_venv
from export.runner import pip_install
from export.runner import progress
from export.runner import run
from export.testcode import MODULE_PATH


TEST_TIMEOUT = 1800.0
UPSTREAM_TESTS = ("testing/test_cacheprovider.py", "testing/test_stepwise.py")
NON_ROOT_USER = "nobody"
#: Where the system's Python usually is; pyenv's are unreadable to other users.
SYSTEM_PYTHONS = ("/usr/bin/python3.11", "/usr/bin/python3", "/usr/local/bin/python3")


def system_python() -> str:
    for candidate in SYSTEM_PYTHONS:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("python3")
    if found is None:
        raise RuntimeError("no system python3 to make the test venvs with")
    return found


def summary_line(output: str) -> str:
    """The final ``== 54 passed, 2 skipped in 3.1s ==`` line, without the bars."""
    for line in reversed(output.splitlines()):
        match = re.match(r"^=+ (.+ in [\d.]+s.*?) =+$", line.strip())
        if match:
            return match[1]
    return "(no summary line)"


def outcomes(junit: Path, ids: Sequence[str]) -> dict[str, str]:
    """The outcome of each test id from a JUnit XML report (parametrized ones pooled)."""
    found: dict[str, str] = {}
    try:
        root = ElementTree.parse(junit).getroot()
    except (OSError, ElementTree.ParseError):
        return found
    for case in root.iter("testcase"):
        module = case.get("classname", "").split(".")
        name = case.get("name", "").split("[")[0]
        path = "/".join(m for m in module if not m[:1].isupper()) + ".py"
        classes = [m for m in module if m[:1].isupper()]
        node = "::".join([path, *classes, name])
        if node not in ids:
            continue
        outcome = "PASSED"
        for child, word in (
            ("failure", "FAILED"),
            ("error", "ERROR"),
            ("skipped", "SKIPPED"),
        ):
            if case.find(child) is not None:
                outcome = word
        if found.get(node) in (None, "PASSED", "SKIPPED"):
            found[node] = outcome
    return found


@dataclasses.dataclass(frozen=True)
class Mode:
    """One way of running the tests: which venv, which user."""

    label: str
    xdist: bool
    user: str | None  # None: the user running the export


class TestVenvs:
    """The two venvs and the users to run as."""

    def __init__(self, work: Path, ref_tree: Path, version: str) -> None:
        self.work = work
        work.chmod(0o755)
        python = system_python()
        self.pythons: dict[bool, Path] = {}
        self.modules: dict[bool, Path] = {}
        for xdist in (True, False):
            name = "venv-xdist" if xdist else "venv-plain"
            progress(f"making {name} ({python}) with pytest {version} from the ref")
            venv_python = make_venv(python, work / name)
            env_version = {"SETUPTOOLS_SCM_PRETEND_VERSION": version}
            done = run(
                [str(venv_python), "-m", "pip", "install", "-q", str(ref_tree)],
                cwd=work,
                timeout=1800.0,
                env=check_env(**env_version),
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"installing the ref's pytest failed: {done.stderr[-2000:]}"
                )
            if xdist:
                error = pip_install(
                    venv_python,
                    [f"pytest-xdist=={XDIST_VERSION}", "execnet>=2.1"],
                    "--no-deps",
                )
                if error is not None:
                    raise RuntimeError(f"installing pytest-xdist failed: {error}")
            where = run(
                [
                    str(venv_python),
                    "-c",
                    "import _pytest.cacheprovider as m; print(m.__file__)",
                ],
                cwd=work,
                timeout=60.0,
            )
            self.pythons[xdist] = venv_python
            self.modules[xdist] = Path(where.stdout.strip())
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        can_switch = (
            root and shutil.which("runuser") is not None and _has_user(NON_ROOT_USER)
        )
        self.modes = [
            Mode(f"root, {'xdist' if x else 'no xdist'}", x, None)
            for x in (True, False)
        ]
        if not root:
            self.modes = [
                Mode(f"non-root, {'xdist' if x else 'no xdist'}", x, None)
                for x in (True, False)
            ]
        elif can_switch:
            self.modes += [
                Mode(
                    f"{NON_ROOT_USER}, {'xdist' if x else 'no xdist'}", x, NON_ROOT_USER
                )
                for x in (True, False)
            ]

    def install_module(self, module: bytes) -> None:
        """``module`` as the cache module of both venvs."""
        for path in self.modules.values():
            path.write_bytes(module)
            for cached in path.parent.glob("__pycache__/cacheprovider.*"):
                cached.unlink()

    def run_tests(self, tree: Path, mode: Mode, args: Sequence[str], label: str) -> str:
        """Run pytest in ``tree`` as ``mode`` says; its combined output, and the exit code first."""
        scratch = self.work / "scratch" / label
        if scratch.exists():
            shutil.rmtree(scratch)
        for sub in ("home", "basetemp-parent", "cache"):
            (scratch / sub).mkdir(parents=True)
        prefix: list[str] = []
        if mode.user is not None:
            entry = pwd.getpwnam(mode.user)
            for path in [scratch, *scratch.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
            prefix = ["runuser", "-u", mode.user, "--"]
        env = check_env(HOME=str(scratch / "home"))
        command = [
            *prefix,
            "env",
            f"HOME={scratch / 'home'}",
            str(self.pythons[mode.xdist]),
            "-m",
            "pytest",
            *args,
            "-rA",
            "-p",
            "no:randomly",
            f"--basetemp={scratch / 'basetemp-parent' / 'basetemp'}",
            "-o",
            f"cache_dir={scratch / 'cache'}",
            f"--junitxml={scratch / 'home' / 'junit.xml'}",
        ]
        done = run(command, cwd=tree, timeout=TEST_TIMEOUT, env=env)
        return f"{done.returncode}\n{done.stdout}{done.stderr}"


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def run_modes(
    venvs: TestVenvs, tree: Path, slug: str, new_ids: Sequence[str]
) -> dict[str, CheckResult]:
    """Run the two cache test files in every mode; the new tests' outcomes named."""
    results: dict[str, CheckResult] = {}
    for mode in venvs.modes:
        progress(f"{slug}: {' '.join(UPSTREAM_TESTS)} ({mode.label})")
        label = f"{slug}-{mode.label.replace(', ', '-').replace(' ', '')}"
        output = venvs.run_tests(tree, mode, UPSTREAM_TESTS, label)
        code, _, text = output.partition("\n")
        found = outcomes(venvs.work / "scratch" / label / "home" / "junit.xml", new_ids)
        new = ", ".join(
            f"{test.rsplit('::', 1)[1]} {found.get(test, 'NOT RUN').lower()}"
            for test in new_ids
        )
        detail = summary_line(text) + (f"; new: {new}" if new_ids else "")
        bad = code != "0" or any(
            found.get(t) not in ("PASSED", "SKIPPED") for t in new_ids
        )
        if mode.xdist and any(
            found.get(t) == "SKIPPED" for t in new_ids if "xdist" in t
        ):
            bad = True  # With xdist installed, the xdist tests must run.
        results[f"tests ({mode.label})"] = (
            CheckResult.failed(detail + "\n" + text[-3000:])
            if bad
            else CheckResult.ok(detail)
        )
    return results


def fails_without(
    venvs: TestVenvs,
    tree: Path,
    module: bytes,
    branch_module: bytes,
    slug: str,
    ids: Sequence[str],
    what: str,
) -> CheckResult:
    """The new tests against ``module`` (the fix removed): they must fail."""
    venvs.install_module(module)
    try:
        mode = venvs.modes[0]
        output = venvs.run_tests(tree, mode, list(ids), f"{slug}-without")
    finally:
        venvs.install_module(branch_module)
    code, _, text = output.partition("\n")
    found = outcomes(
        venvs.work / "scratch" / f"{slug}-without" / "home" / "junit.xml", ids
    )
    failing = [t.rsplit("::", 1)[1] for t in ids if found.get(t) == "FAILED"]
    errors = [line for line in text.splitlines() if line.startswith("E  ")][:2]
    if code == "1" and failing:
        return CheckResult.ok(
            f"{what}: {len(failing)} of {len(ids)} fail ({', '.join(failing)})"
            + (f"; {errors[0].strip()}" if errors else "")
        )
    return CheckResult.failed(
        f"{what}: the new tests do not fail (exit {code}): {summary_line(text)}"
    )


__all__ = ["MODULE_PATH", "TestVenvs", "fails_without", "run_modes"]
