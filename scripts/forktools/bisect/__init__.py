"""A ``git bisect run`` predicate: does this pytest checkout have a cache race?

A pytest developer runs it inside a pytest git work tree, once per bisection step::

    git bisect start 8.2.0 8.1.2
    git bisect run python /path/to/this/repo/scripts/bisect_run.py --scenario mkdir-race

Each step installs the checked-out commit (pretend version from the nearest tag,
``SETUPTOOLS_SCM_PRETEND_VERSION``) into a private venv that is cached per work
tree and already holds pytest-xdist 3.8.0, runs one scenario of
``forktools.scenarios`` in a fresh temp dir and exits ``GOOD`` (0), ``BAD`` (1)
or ``SKIP`` (125, the commit cannot be judged: install failed, pytest does not
start, or the scenario's verdict is "error"). A crash of this script is ``SKIP``
with the traceback printed, never ``BAD``; a usage error is ``ABORT`` (128), which
stops the bisection.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
import re
import shutil
import sys
import tempfile
import time
import traceback
from typing import NoReturn

from forktools import envs
from forktools import proc
from forktools import scenarios


GOOD = 0
BAD = 1
SKIP = 125
ABORT = 128
EXIT_FOR_VERDICT: dict[scenarios.Verdict, int] = {
    "good": GOOD,
    "bad": BAD,
    "error": SKIP,
}
#: Last resort when neither a tag nor the release announcements give a version.
FALLBACK_VERSION = "0.0.0"
#: Tags that are plain PEP 440 versions (pytest's: 8.2.0, 8.2.0.dev0, 7.0.0rc1).
TAG_PATTERN = re.compile(r"\d+(\.\d+)+((a|b|rc)\d+)?(\.dev\d+)?")

DESCRIPTION = """\
git bisect run predicate: install the pytest checkout in the current directory
and run one racing scenario against it. Exit 0 good, 1 bad, 125 skip.
"""


class UsageError(Exception):
    """The command line or the working directory cannot be used (aborts the bisection)."""


class InstallError(Exception):
    """The checkout could not be installed or does not import (the step is skipped)."""


class GitError(Exception):
    """A git command failed."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line of the predicate."""
    parser = _Parser(description=DESCRIPTION)
    parser.add_argument(
        "--scenario", default="mkdir-race", choices=list(scenarios.SCENARIOS)
    )
    parser.add_argument(
        "--repo", type=Path, default=Path.cwd(), help="pytest work tree (default: cwd)"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=envs.DEFAULT_ROOT / "bisect",
        help="venv cache directory",
    )
    parser.add_argument(
        "--pretend-version",
        help="version to build the checkout as (default: nearest tag)",
    )
    scenarios.add_run_options(parser)
    return parser


def verdict_exit(verdict: scenarios.Verdict) -> int:
    """The exit status ``git bisect run`` expects for ``verdict``."""
    return EXIT_FOR_VERDICT[verdict]


def git(repo: Path, *args: str) -> str:
    """Output of ``git -C repo args``; raises GitError on failure."""
    cmd = ["git", "-C", str(repo), *args]
    return proc.run(cmd, what=" ".join(cmd), timeout=60, error=GitError).stdout.strip()


def work_tree(repo: Path) -> Path:
    """The top of the git work tree holding ``repo``, which must look like pytest."""
    try:
        top = Path(git(repo, "rev-parse", "--show-toplevel"))
    except GitError as exc:
        raise UsageError(f"{repo} is not inside a git work tree") from exc
    if not (top / "src" / "_pytest").is_dir() and not (top / "_pytest").is_dir():
        raise UsageError(f"{top} does not look like a pytest checkout (no src/_pytest)")
    return top


def announced_version(top: Path) -> str | None:
    """The newest ``doc/en/announce/release-X.Y.Z.rst`` of the checkout, if any."""
    found = []
    for path in (top / "doc" / "en" / "announce").glob("release-*.rst"):
        version = path.stem.removeprefix("release-")
        if re.fullmatch(r"\d+(\.\d+)+", version):
            found.append(tuple(int(p) for p in version.split(".")))
    return ".".join(map(str, max(found))) if found else None


def pretend_version(top: Path) -> str:
    """A version for the checkout: the nearest tag, else the newest announced release, plus the commit.

    A snapshot without tags still gets a plausible version (pytest-xdist needs
    pytest >= 7); the local label ``+g<commit>`` keeps each step's build distinct.
    """
    try:
        tag = git(top, "describe", "--tags", "--abbrev=0")
    except GitError:
        tag = ""
    base = (
        tag
        if TAG_PATTERN.fullmatch(tag)
        else announced_version(top) or FALLBACK_VERSION
    )
    try:
        commit = git(top, "rev-parse", "--short=9", "HEAD")
    except GitError:
        return base
    return f"{base}+g{commit}"


def bisect_venv(top: Path, root: Path, *, xdist: str = envs.XDIST_VERSION) -> Path:
    """The private venv for work tree ``top`` (created once, with pytest-xdist)."""
    envdir = root / hashlib.sha256(str(top).encode()).hexdigest()[:12]
    python = envs.env_python(envdir)
    with envs.locked(root / f".{envdir.name}.lock"):
        if envs.read_marker(envdir) is None:
            if envdir.exists():
                shutil.rmtree(envdir)
            uv = envs.find_uv()
            python = envs.create_venv(envdir, uv=uv)
            envs.pip_install(
                python, [f"pytest-xdist=={xdist}"], uv=uv, env=envs.installer_env()
            )
            (envdir / envs.MARKER).write_text(
                f'{{"work_tree": "{top}"}}\n', encoding="utf-8"
            )
    return python


def install_checkout(
    python: Path, top: Path, version: str, *, xdist: str = envs.XDIST_VERSION
) -> str:
    """Build and install the checkout at ``top`` as ``version``; return the version that imports."""
    env = envs.installer_env()
    env["SETUPTOOLS_SCM_PRETEND_VERSION"] = version
    env["SETUPTOOLS_SCM_PRETEND_VERSION_FOR_PYTEST"] = version
    try:
        envs.pip_install(
            python,
            [str(top), f"pytest-xdist=={xdist}"],
            uv=envs.find_uv(),
            reinstall="pytest",
            env=env,
        )
        got = envs.probe_versions(python)
    except envs.EnvError as exc:
        raise InstallError(str(exc)) from exc
    if Path(got["_pytest"]).resolve().is_relative_to(top.resolve()):
        raise InstallError(
            f"_pytest imports from the work tree ({got['_pytest']}), not the venv"
        )
    return got["pytest"]


def run(args: argparse.Namespace) -> int:
    """One bisection step; returns GOOD, BAD or SKIP."""
    top = work_tree(args.repo)
    if args.workers < 2:
        raise UsageError("--workers must be at least 2")
    commit = git(top, "rev-parse", "--short=9", "HEAD")
    subject = git(top, "log", "-1", "--format=%s")
    version = args.pretend_version or pretend_version(top)
    print(
        f"bisect_run: {commit} {subject!r}: installing as {version}",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    try:
        python = bisect_venv(top, args.root)
        installed = install_checkout(python, top, version)
    except (InstallError, envs.EnvError) as exc:
        print(f"bisect_run: {commit}: SKIP, install failed: {exc}", file=sys.stderr)
        return SKIP
    print(
        f"bisect_run: pytest {installed} installed ({time.monotonic() - started:.1f}s), running {args.scenario}",
        file=sys.stderr,
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix=f"bisect-{args.scenario}-"))
    try:
        outcome = scenarios.run_scenario(
            args.scenario,
            python,
            workdir / "project",
            timeout=args.timeout,
            barrier_timeout=args.barrier_timeout,
            workers=args.workers,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    code = verdict_exit(outcome.verdict)
    print(
        f"bisect_run: {commit}: {outcome.verdict} -> exit {code}: {outcome.detail}",
        file=sys.stderr,
    )
    return code


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run one step; an unexpected exception is SKIP, never BAD."""
    try:
        args = build_parser().parse_args(argv)
        return run(args)
    except UsageError as exc:
        print(f"bisect_run: {exc} (aborting the bisection)", file=sys.stderr)
        return ABORT
    except Exception:  # noqa: BLE001  (any crash of ours must read as SKIP, never BAD)
        traceback.print_exc()
        print("bisect_run: the script itself failed; SKIP (never BAD)", file=sys.stderr)
        return SKIP
