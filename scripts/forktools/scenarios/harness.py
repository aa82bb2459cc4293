"""The harness of the scenarios: projects, pytest subprocesses, and the judging of what they left.

Each scenario copies a project of ``projects/`` (real files: a ``pytest.ini`` that
pins the rootdir, the file barrier ``barriers.py``, a conftest and test modules)
into a fresh work dir, runs ``python -m pytest`` of the env under test in
subprocesses (cache plugin active, plugin autoload on so pytest-xdist loads) and
judges the files left behind. A run whose interleaving was not forced (a
``barrier/TIMEOUT-*`` file) can be "bad" (the damage is real) or "error", never
"good".
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import fnmatch
import functools
import os
from pathlib import Path
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Any
from typing import Literal


Verdict = Literal["good", "bad", "error"]

#: Seconds one pytest subprocess (or a group started together) may take.
DEFAULT_TIMEOUT = 240.0
#: Seconds a participant waits at a file barrier before it gives up and proceeds.
DEFAULT_BARRIER_TIMEOUT = 30.0
#: xdist workers of the creation race in the matrix; stress uses 8.
DEFAULT_WORKERS = 4
#: Exit status of a process that a generated conftest killed on purpose.
KILLED_EXIT = 86
#: Supporting files every published cache dir must hold.
SUPPORTING_FILES = ("README.md", ".gitignore", "CACHEDIR.TAG")
#: Temp entries of stock releases (``pytest-cache-files-XXXX``) and of the fork
#: (``pytest-cache-files-<pid>-<token>``), beside the cache dir or a value file.
LEFTOVER_PATTERN = "pytest-cache-files-*"
#: Output that always means the cache plugin failed someone.
FATAL_OUTPUT = ("Directory not empty", "INTERNALERROR", "PytestCacheWarning")
#: The scenario projects, and the files every one of them gets.
PROJECTS = Path(__file__).resolve().parent / "projects"
SHARED_FILES = ("pytest.ini", "barriers.py")


class ScenarioError(Exception):
    """The harness could not run a step; the scenario's verdict is "error"."""


class StepTimeout(ScenarioError):
    """A pytest subprocess outlived its timeout and was killed."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one run of one scenario showed."""

    verdict: Verdict
    detail: str


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Everything a scenario runner needs besides its name."""

    python: Path
    workdir: Path
    timeout: float
    barrier_timeout: float
    workers: int
    rng: random.Random


@dataclasses.dataclass(frozen=True)
class PytestRun:
    """Exit status and combined output of one finished pytest subprocess."""

    label: str
    returncode: int
    output: str

    def counts(self) -> dict[str, int]:
        """Outcome counts from pytest's final summary line ("2 passed, 1 error")."""
        for line in reversed(self.output.splitlines()):
            if re.search(r" in \d+(\.\d+)?s\b", line) and re.search(r"\d+ \w+", line):
                pairs = re.findall(
                    r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", line
                )
                if pairs:
                    return {
                        word.rstrip("s") if word.startswith("error") else word: int(n)
                        for n, word in pairs
                    }
        return {}

    def found(self, needles: Iterable[str]) -> list[str]:
        """Which of ``needles`` occur in the output."""
        return [needle for needle in needles if needle in self.output]


@dataclasses.dataclass
class _Started:
    label: str
    popen: subprocess.Popen[bytes]
    log: Path


class Findings:
    """Collects what makes a run bad (problems), unproven (errors) or notable (notes)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.errors: list[str] = []
        self.notes: list[str] = []

    def outcome(self) -> Outcome:
        """Bad if any problem; else error if the race was not forced; else good."""
        verdict: Verdict = (
            "bad" if self.problems else "error" if self.errors else "good"
        )
        detail = "; ".join([*self.problems, *self.errors, *self.notes]) or "ok"
        return Outcome(verdict, detail)

    def check_run(self, run: PytestRun, *, expect_exit: int | None = 0) -> None:
        """Flag a wrong exit status and fatal text in ``run``'s output."""
        if expect_exit is not None and run.returncode != expect_exit:
            self.problems.append(f"{run.label}: exit {run.returncode}")
        for needle in run.found(FATAL_OUTPUT):
            self.problems.append(f"{run.label}: {needle!r} in output")

    def check_leftovers(self, workdir: Path, *, when: str = "") -> None:
        """Flag every temp entry of the cache plugin still present below ``workdir``."""
        found = leftovers(workdir)
        if found:
            names = ", ".join(str(p.relative_to(workdir)) for p in found[:3])
            self.problems.append(f"{len(found)} leftover(s){when}: {names}")

    def check_barriers(self, workdir: Path) -> None:
        """Report every barrier that timed out: the interleaving was not forced."""
        timeouts = sorted(
            n for n in _barrier_names(workdir) if n.startswith("TIMEOUT-")
        )
        if timeouts:
            self.errors.append(
                "barrier timed out: "
                + ", ".join(t[len("TIMEOUT-") :] for t in timeouts)
            )


def _barrier_names(workdir: Path) -> list[str]:
    barrier = workdir / "barrier"
    return os.listdir(barrier) if barrier.is_dir() else []


def barrier_ids(workdir: Path, prefix: str) -> set[str]:
    """Suffixes of the barrier files of ``workdir`` whose names start with ``prefix``."""
    return {n[len(prefix) :] for n in _barrier_names(workdir) if n.startswith(prefix)}


def leftovers(workdir: Path) -> list[Path]:
    """Every ``pytest-cache-files-*`` entry below ``workdir``, symlinks not followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(workdir):
        for name in [*dirnames, *filenames]:
            if fnmatch.fnmatch(name, LEFTOVER_PATTERN):
                found.append(Path(dirpath, name))
    return sorted(found)


def missing_supporting_files(cachedir: Path) -> list[str]:
    """Supporting files absent from ``cachedir``."""
    return [name for name in SUPPORTING_FILES if not (cachedir / name).is_file()]


def child_env(
    extra: Mapping[str, str] | None = None, *, write_bytecode: bool = False
) -> dict[str, str]:
    """The environment of a pytest we run: ours minus anything pytest-ish.

    ``PYTEST_*`` (autoload switch, addopts, an outer xdist worker's id),
    ``TOX_*`` (pytest puts the cache dir under ``$TOX_ENV_DIR`` when that is set),
    ``PYTHONPATH`` (which could shadow the env's pytest) and ``VIRTUAL_ENV`` are
    dropped.  Scenarios write no bytecode; benchmarks do, as a developer's pytest.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "TOX_", "COV_CORE_"))
    }
    for name in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV"):
        env.pop(name, None)
    env["PY_COLORS"] = "0"
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def write_project(workdir: Path, *projects: str) -> None:
    """Copy ``pytest.ini``, ``barriers.py`` and the files of ``projects`` into ``workdir``.

    A later project's file replaces an earlier one's of the same name; an empty
    ``barrier/`` is made for the participants.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "barrier").mkdir(exist_ok=True)
    for name in SHARED_FILES:
        shutil.copyfile(PROJECTS / name, workdir / name)
    for project in projects:
        for path in sorted((PROJECTS / project).glob("*.py")):
            shutil.copyfile(path, workdir / path.name)


def start_pytest(
    ctx: RunContext,
    label: str,
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    umask: int = -1,
) -> _Started:
    """Start ``python -m pytest args`` in ``cwd`` in its own process group."""
    log = cwd / f"output-{label}.txt"
    extra = {
        "SCENARIO_BARRIER_TIMEOUT": str(ctx.barrier_timeout),
        "SCENARIO_KILLED_EXIT": str(KILLED_EXIT),
    }
    extra.update(env or {})
    # Popen's umask argument is Python 3.9+; the tests also run on 3.8, where
    # the child sets it itself before exec (os.umask alone: fork-safe).
    umask_kwargs: dict[str, Any] = (
        {"umask": umask}
        if sys.version_info >= (3, 9)
        else {"preexec_fn": None if umask < 0 else functools.partial(os.umask, umask)}
    )
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [str(ctx.python), "-m", "pytest", "-rfE", *args],
            cwd=cwd,
            env=child_env(extra),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **umask_kwargs,
        )
    return _Started(label, popen, log)


def _kill_group(started: _Started) -> None:
    try:
        os.killpg(started.popen.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    started.popen.wait()


def finish(started: Sequence[_Started], timeout: float) -> list[PytestRun]:
    """Wait for every started run, together bounded by ``timeout`` seconds.

    On a timeout every group is killed (xdist workers included) and
    :class:`StepTimeout` names the runs still going.
    """
    deadline = time.monotonic() + timeout
    late = []
    for s in started:
        try:
            s.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            late.append(s.label)
    if late:
        for s in started:
            _kill_group(s)
        raise StepTimeout(
            f"{', '.join(late)} still running after {timeout:.0f}s (killed)"
        )
    return [
        PytestRun(
            s.label,
            s.popen.returncode,
            s.log.read_text(encoding="utf-8", errors="replace"),
        )
        for s in started
    ]


def run_pytest(
    ctx: RunContext,
    label: str,
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    umask: int = -1,
) -> PytestRun:
    """Run one pytest subprocess to completion (bounded by ``ctx.timeout``)."""
    started = start_pytest(
        ctx, label, args, cwd=cwd or ctx.workdir, env=env, umask=umask
    )
    return finish([started], ctx.timeout)[0]


def touch_barrier(workdir: Path, name: str) -> None:
    """Create the barrier file ``name`` from the harness side."""
    (workdir / "barrier" / name).touch()
