"""Racing scenarios for pytest's cache plugin: the one definition every tool shares.

Nobody runs this module directly. ``scripts/matrix.py`` (releases by scenarios),
``scripts/stress.py`` (one env, many trials) and ``scripts/bisect_run.py`` (one
checkout, one verdict for ``git bisect run``) import it, and so will the benchmarks.

Each scenario writes a tiny project (a ``pytest.ini`` that pins the rootdir, a
generated ``conftest.py`` and test files) into a fresh work dir, runs
``python -m pytest`` of the env under test in subprocesses (cache plugin active,
plugin autoload on so pytest-xdist loads) and judges the files left behind.

Interleavings are forced with file barriers, never with sleeps: a participant
touches ``barrier/<name>`` and polls until the files it waits for exist, for at
most ``SCENARIO_BARRIER_TIMEOUT`` seconds; a barrier that times out leaves a
``barrier/TIMEOUT-*`` file, and a run whose interleaving was not forced can be
"bad" (the damage is real) or "error", never "good". A harness timeout or crash is
always "error", never "bad".
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import fnmatch
import functools
import json
import os
from pathlib import Path
import random
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import typing
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

#: Pins the rootdir (and so the cache dir) to the work dir and shields the run
#: from any ini file above it. Deliberately empty otherwise.
PYTEST_INI = """\
[pytest]
"""

#: Prelude of every generated conftest: the file barrier. It keeps the real
#: ``os.open`` so the barrier still works when a scenario patches the filesystem.
BARRIER_PRELUDE = """\
import os
from pathlib import Path
import time

HERE = Path(__file__).resolve().parent
BARRIER = HERE / "barrier"
CACHE_DIR = HERE / ".pytest_cache"
TIMEOUT = float(os.environ.get("SCENARIO_BARRIER_TIMEOUT", "30"))
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_REAL_OS_OPEN = os.open
_REAL_OS_CLOSE = os.close


def touch(name):
    fd = _REAL_OS_OPEN(str(BARRIER / name), os.O_WRONLY | os.O_CREAT, 0o644)
    _REAL_OS_CLOSE(fd)


def exists(name):
    return os.path.exists(str(BARRIER / name))


def names(prefix):
    return {n[len(prefix):] for n in os.listdir(str(BARRIER)) if n.startswith(prefix)}


def wait_until(predicate, label):
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            touch("TIMEOUT-%s-%s-%d" % (label, WORKER or "main", os.getpid()))
            return False
        time.sleep(0.01)
    return True
"""

#: #12381. Every worker announces itself, waits for all the others, then creates
#: the cache dir; a rename onto ``.pytest_cache`` is held until every worker that
#: announced itself is renaming too or is done (a release that creates in place
#: never renames, and nobody waits for it).
MKDIR_RACE_CONFTEST = (
    BARRIER_PRELUDE
    + """
import pytest

WORKERS = int(os.environ["SCENARIO_WORKERS"])


def _hold_until_everyone_renames(real):
    def rename(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == ".pytest_cache":
            touch("rename-" + WORKER)
            wait_until(
                lambda: names("arrive-") <= names("rename-") | names("done-"),
                "rename",
            )
        return real(src, dst, *args, **kwargs)

    return rename


if WORKER:
    os.rename = _hold_until_everyone_renames(os.rename)
    os.replace = _hold_until_everyone_renames(os.replace)


@pytest.fixture(scope="session", autouse=True)
def _race_for_the_cache_dir(request):
    touch("arrive-" + WORKER)
    wait_until(lambda: len(names("arrive-")) >= WORKERS, "arrive")
    try:
        request.config.cache.mkdir("race")
    finally:
        touch("done-" + WORKER)
"""
)

MKDIR_RACE_TESTS = """\
import os

import pytest


@pytest.mark.parametrize("i", range(2 * int(os.environ["SCENARIO_WORKERS"])))
def test_uses_the_cache(i):
    pass
"""

#: #12308: one value written under the umask the harness sets.
PERMISSIONS_TESTS = """\
def test_sets_a_value(cache):
    cache.set("scenario/perm", {"ok": True})
"""

#: The writer's next write-mode ``Path.open`` in ``v/scenario`` (the value file
#: itself or a sibling temp file) writes half its data, flushes, lets the reader
#: in and waits until the reader has read, then writes the rest.
TORN_READ_CONFTEST = (
    BARRIER_PRELUDE
    + """
import pathlib

import pytest

VALUE_DIR = os.path.realpath(str(CACHE_DIR / "v" / "scenario"))


class _HalfWriter:
    def __init__(self, f):
        self._f = f
        self._held = False

    def write(self, data):
        if self._held:
            return self._f.write(data)
        self._held = True
        half = len(data) // 2
        written = self._f.write(data[:half])
        self._f.flush()
        touch("half-written")
        wait_until(lambda: exists("reader-done"), "reader-done")
        return written + self._f.write(data[half:])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return self._f.__exit__(*exc_info)

    def __getattr__(self, name):
        return getattr(self._f, name)


class _Trap:
    armed = False


@pytest.fixture
def half_write(monkeypatch):
    real_open = pathlib.Path.open

    def open_(self, mode="r", *args, **kwargs):
        f = real_open(self, mode, *args, **kwargs)
        writing = any(c in mode for c in "wxa+")
        if _Trap.armed and writing and os.path.realpath(str(self.parent)) == VALUE_DIR:
            _Trap.armed = False
            return _HalfWriter(f)
        return f

    monkeypatch.setattr(pathlib.Path, "open", open_)
    return _Trap
"""
)

TORN_READ_WRITER = """\
OLD = {"generation": "old", "payload": "o" * 4000}
NEW = {"generation": "new", "payload": "n" * 4000}


def test_writer(cache, half_write):
    cache.set("scenario/torn", OLD)
    half_write.armed = True
    cache.set("scenario/torn", NEW)
    assert not half_write.armed, "the write was not intercepted"
    assert cache.get("scenario/torn", None) == NEW
"""

TORN_READ_READER = """\
import json

from conftest import HERE
from conftest import exists
from conftest import touch
from conftest import wait_until


def test_reader(cache):
    wait_until(lambda: exists("half-written"), "half-written")
    value = cache.get("scenario/torn", "DEFAULT")
    seen = value.get("generation", "?") if isinstance(value, dict) else value
    (HERE / "reader-saw.json").write_text(json.dumps(seen))
    touch("reader-done")
"""

#: #6670. Marks every configured worker process, so the harness can prove a
#: replacement worker really started.
LATE_WORKER_CONFTEST = (
    BARRIER_PRELUDE
    + """

def pytest_configure(config):
    if WORKER:
        touch("configured-%s-%d" % (WORKER, os.getpid()))
"""
)

LATE_WORKER_TESTS = """\
import os

from conftest import CACHE_DIR
from conftest import WORKER
from conftest import touch
from conftest import wait_until

VALUE = CACHE_DIR / "v" / "scenario" / "kept"


def test_sets_a_value(cache):
    cache.set("scenario/kept", {"by": WORKER})
    assert VALUE.is_file()


def test_crashes_its_worker_once_the_value_is_on_disk():
    wait_until(VALUE.is_file, "value-on-disk")
    touch("crashing-" + WORKER)
    os._exit(1)
"""

#: Kills the process when the cache dir is being published (``publish``: a
#: rename onto ``.pytest_cache``) or a value is being replaced (``set``: a rename
#: onto a file below ``.pytest_cache/v/``).
CRASH_CONFTEST = (
    BARRIER_PRELUDE
    + """
KILL = os.environ.get("SCENARIO_KILL", "")
KILLED_EXIT = int(os.environ.get("SCENARIO_KILLED_EXIT", "86"))


def _is_target(dst):
    path = os.path.abspath(os.fsdecode(os.fspath(dst)))
    if KILL == "publish":
        return os.path.basename(path) == ".pytest_cache"
    if KILL == "set":
        return (os.sep + ".pytest_cache" + os.sep + "v" + os.sep) in path
    return False


def _kill_on_target(real):
    def rename(src, dst, *args, **kwargs):
        if _is_target(dst):
            touch("killed-" + KILL)
            os._exit(KILLED_EXIT)
        return real(src, dst, *args, **kwargs)

    return rename


if KILL:
    os.rename = _kill_on_target(os.rename)
    os.replace = _kill_on_target(os.replace)
"""
)

#: A value of its own every run: a write of equal bytes may be skipped, and then
#: there would be no write to kill.
CRASH_TESTS = """\
import os


def test_sets_a_value(cache):
    value = {"ok": True, "pid": os.getpid()}
    cache.set("scenario/crash", value)
    assert cache.get("scenario/crash", None) == value
"""

#: #6423. Session A signals it is completely done (its lastfailed written) only in
#: ``pytest_unconfigure``.
LASTFAILED_CONFTEST = (
    BARRIER_PRELUDE
    + """
ROLE = os.environ.get("SCENARIO_ROLE", "")


def pytest_unconfigure(config):
    if ROLE == "A":
        touch("A-done")
"""
)

LASTFAILED_TEST_A = """\
from conftest import exists
from conftest import wait_until


def test_a_fails():
    wait_until(lambda: exists("B-started"), "B-started")
    assert False, "session A fails on purpose"
"""

LASTFAILED_TEST_B = """\
from conftest import exists
from conftest import touch
from conftest import wait_until


def test_b_fails():
    touch("B-started")
    wait_until(lambda: exists("A-done"), "A-done")
    assert False, "session B fails on purpose"
"""

#: Logs every umask change the process makes (pytest itself sets none).
UMASK_FLIP_CONFTEST = """\
import os

_real_umask = os.umask


def _logged_umask(mask):
    with open(os.path.join(os.path.dirname(__file__), "umask-calls"), "a") as log:
        log.write("%o\\n" % mask)
    return _real_umask(mask)


os.umask = _logged_umask
"""

#: A session whose once-failing test now passes, overlapping a session that fails.
LASTFAILED_FIXED_FILES = {
    "test_fixed.py": """\
from conftest import exists
from conftest import touch
from conftest import wait_until


def test_fixed():
    touch("fixed-running")
    wait_until(lambda: exists("other-done"), "other-done")
""",
    "test_other.py": """\
from conftest import exists
from conftest import wait_until


def test_other():
    wait_until(lambda: exists("fixed-running"), "fixed-running")
    assert False, "fails on purpose"
""",
    "test_old.py": "def test_old():\n    assert False\n",
}

#: Every session reads lastfailed, then all write it at the same moment: a write
#: is held until all sessions are writing, or for a while (with a lock nobody else
#: can get there, so that wait ends without a TIMEOUT mark: it is expected).
FINISH_TOGETHER_CONFTEST = (
    BARRIER_PRELUDE
    + """
SESSIONS = int(os.environ["SCENARIO_SESSIONS"])
_real_replace = os.replace


def _held_replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(dst)) == "lastfailed":
        touch("write-%d" % os.getpid())
        deadline = time.monotonic() + 2.0
        while len(names("write-")) < SESSIONS and time.monotonic() < deadline:
            time.sleep(0.01)
    return _real_replace(src, dst, *args, **kwargs)


os.replace = _held_replace
"""
)

FINISH_TOGETHER_TEST = """\
from conftest import SESSIONS
from conftest import names
from conftest import touch
from conftest import wait_until


def test_{i}():
    touch("read-{i}")
    wait_until(lambda: len(names("read-")) >= SESSIONS, "read")
    assert False, "fails on purpose"
"""

#: Counts the write-side filesystem calls that touch the cache (paths holding
#: ``.pytest_cache`` or ``pytest-cache-files-``) and kills the process right
#: before call number ``SCENARIO_KILL_AT`` (0: never; the count is then saved).
KILL_RANDOM_CONFTEST = (
    BARRIER_PRELUDE
    + """
import builtins
import io

import pytest

KILL_AT = int(os.environ.get("SCENARIO_KILL_AT", "0"))
KILLED_EXIT = int(os.environ.get("SCENARIO_KILLED_EXIT", "86"))
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT
_calls = [0]


def _cache_path(path):
    if isinstance(path, int):
        return None
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        return None
    if ".pytest_cache" in text or "pytest-cache-files-" in text:
        return text
    return None


def _count(kind, *paths):
    hits = [p for p in map(_cache_path, paths) if p is not None]
    if not hits:
        return
    _calls[0] += 1
    if _calls[0] == KILL_AT:
        touch("killed-%d-%s" % (_calls[0], kind))
        os._exit(KILLED_EXIT)


def _counting(kind, real, nargs):
    def call(*args, **kwargs):
        _count(kind, *args[:nargs])
        return real(*args, **kwargs)

    return call


def _counting_os_open(real):
    def call(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS:
            _count("os.open", path)
        return real(path, flags, *args, **kwargs)

    return call


def _counting_io_open(real):
    def call(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wxa+"):
            _count("open", file)
        return real(file, mode, *args, **kwargs)

    return call


for _name, _nargs in (
    ("mkdir", 1), ("rename", 2), ("replace", 2), ("link", 2), ("unlink", 1),
    ("rmdir", 1), ("chmod", 1),
):
    setattr(os, _name, _counting("os." + _name, getattr(os, _name), _nargs))
os.open = _counting_os_open(os.open)
io.open = builtins.open = _counting_io_open(io.open)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    touch("fs-calls-%d" % _calls[0])
"""
)

KILL_RANDOM_TESTS = """\
import os


def test_cache_round_trip(cache):
    token = os.environ.get("SCENARIO_TOKEN", "token")
    cache.set("stress/value", {"token": token})
    assert cache.get("stress/value", None) == {"token": token}
    assert cache.mkdir("stressdir").is_dir()
"""


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


Runner = typing.Callable[[RunContext], Outcome]  # typing's: subscriptable on Python 3.8


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One registered race: its name, the upstream issue, and how to run it."""

    name: str
    issue: str
    summary: str
    runner: Runner
    #: Part of the matrix (and of the default bisect choices); stress runs all.
    in_matrix: bool = True


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


def write_project(workdir: Path, files: Mapping[str, str]) -> None:
    """Write ``pytest.ini``, ``files`` and an empty ``barrier/`` into ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "barrier").mkdir(exist_ok=True)
    (workdir / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    for name, text in files.items():
        (workdir / name).write_text(text, encoding="utf-8")


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


def run_mkdir_race(ctx: RunContext) -> Outcome:
    """#12381: N xdist workers create the cache dir at once; the loser must not fail."""
    n = ctx.workers
    write_project(
        ctx.workdir,
        {"conftest.py": MKDIR_RACE_CONFTEST, "test_race.py": MKDIR_RACE_TESTS},
    )
    run = run_pytest(ctx, f"n{n}", ["-n", str(n)], env={"SCENARIO_WORKERS": str(n)})
    f = Findings()
    f.check_run(run)
    counts = run.counts()
    if counts.get("passed") != 2 * n or set(counts) - {"passed"}:
        f.problems.append(
            "outcomes "
            + (", ".join(f"{v} {k}" for k, v in counts.items()) or "unknown")
        )
    f.check_leftovers(ctx.workdir)
    f.check_barriers(ctx.workdir)
    arrived = barrier_ids(ctx.workdir, "arrive-")
    renamed = barrier_ids(ctx.workdir, "rename-")
    if len(arrived) < 2:
        f.errors.append(f"only {len(arrived)} worker(s) reached the fixture, no race")
    f.notes.append(f"{len(arrived)}/{n} workers raced, {len(renamed)} renamed")
    missing = missing_supporting_files(ctx.workdir / ".pytest_cache")
    if missing and run.returncode == 0:
        # A release whose cache.mkdir() never writes them (8.1.x, #12167) lacks them
        # without any race: only a difference from a serial control run counts.
        control = ctx.workdir / "serial-control"
        write_project(
            control,
            {"conftest.py": MKDIR_RACE_CONFTEST, "test_race.py": MKDIR_RACE_TESTS},
        )
        serial = run_pytest(
            ctx, "serial", [], cwd=control, env={"SCENARIO_WORKERS": "1"}
        )
        if (
            missing_supporting_files(control / ".pytest_cache") == missing
            and serial.returncode == 0
        ):
            f.notes.append(
                f"{', '.join(missing)} missing even serially (#12167, not a race)"
            )
        else:
            f.problems.append(f"missing after the race: {', '.join(missing)}")
    return f.outcome()


def run_permissions(ctx: RunContext) -> Outcome:
    """#12308: the cache dir and a value file get the modes the umask implies."""
    f = Findings()
    for umask, dir_mode, file_mode in ((0o022, 0o755, 0o644), (0o077, 0o700, 0o600)):
        project = ctx.workdir / f"umask-{umask:03o}"
        write_project(project, {"test_perm.py": PERMISSIONS_TESTS})
        run = run_pytest(ctx, f"umask{umask:03o}", [], cwd=project, umask=umask)
        f.check_run(run)
        cachedir = project / ".pytest_cache"
        value = cachedir / "v" / "scenario" / "perm"
        if not value.is_file():
            f.problems.append(f"umask {umask:03o}: no value file")
            continue
        got_dir, got_file = (
            cachedir.stat().st_mode & 0o777,
            value.stat().st_mode & 0o777,
        )
        if (got_dir, got_file) != (dir_mode, file_mode):
            f.problems.append(
                f"umask {umask:03o}: dir {got_dir:04o} (want {dir_mode:04o}),"
                f" value {got_file:04o} (want {file_mode:04o})"
            )
        else:
            f.notes.append(f"umask {umask:03o}: {got_dir:04o}/{got_file:04o}")
    return f.outcome()


def run_torn_read(ctx: RunContext) -> Outcome:
    """A reader in another process reads a value while it is half rewritten."""
    write_project(
        ctx.workdir,
        {
            "conftest.py": TORN_READ_CONFTEST,
            "test_writer.py": TORN_READ_WRITER,
            "test_reader.py": TORN_READ_READER,
        },
    )
    writer = start_pytest(ctx, "writer", ["test_writer.py"], cwd=ctx.workdir)
    reader = start_pytest(ctx, "reader", ["test_reader.py"], cwd=ctx.workdir)
    runs = finish([writer, reader], ctx.timeout)
    f = Findings()
    for run in runs:
        f.check_run(run)
    f.check_barriers(ctx.workdir)
    f.check_leftovers(ctx.workdir)
    saw_file = ctx.workdir / "reader-saw.json"
    if not saw_file.is_file():
        f.errors.append("the reader recorded nothing")
    else:
        saw = json.loads(saw_file.read_text(encoding="utf-8"))
        if saw == "DEFAULT":
            f.problems.append("reader got the default mid-write (torn value file)")
        elif saw in ("old", "new"):
            f.notes.append(f"reader saw the {saw} value, complete")
        else:
            f.problems.append(f"reader saw {saw!r}")
    if not barrier_ids(ctx.workdir, "half-written"):
        f.errors.append("the writer never reached the half-written point")
    return f.outcome()


def run_cache_clear_late_worker(ctx: RunContext) -> Outcome:
    """#6670: a replacement worker must not re-run ``--cache-clear`` mid-session."""
    write_project(
        ctx.workdir,
        {"conftest.py": LATE_WORKER_CONFTEST, "test_late.py": LATE_WORKER_TESTS},
    )
    run = run_pytest(
        ctx, "late", ["--cache-clear", "-n", "2", "--max-worker-restart=2"]
    )
    f = Findings()
    f.check_run(run, expect_exit=None)
    for needle in run.found(["rm_rf"]):
        f.problems.append(f"{needle!r} in output")
    if run.returncode not in (0, 1):
        f.problems.append(f"exit {run.returncode}")
    f.check_barriers(ctx.workdir)
    configured = barrier_ids(ctx.workdir, "configured-")
    crashed = barrier_ids(ctx.workdir, "crashing-")
    if (
        not crashed
        or "replacing crashed worker" not in run.output
        or len(configured) < 3
    ):
        f.errors.append(
            f"no replacement worker ({len(configured)} worker processes, crash: {bool(crashed)})"
        )
    if (ctx.workdir / ".pytest_cache" / "v" / "scenario" / "kept").is_file():
        f.notes.append(
            f"value kept across a replacement worker ({len(configured)} worker processes)"
        )
    else:
        f.problems.append(
            "value written before the crash was wiped by the replacement worker"
        )
    return f.outcome()


def run_crash_leftovers(ctx: RunContext) -> Outcome:
    """A process killed while publishing the cache dir or replacing a value, then a rerun."""
    f = Findings()
    project = ctx.workdir
    write_project(
        project, {"conftest.py": CRASH_CONFTEST, "test_crash.py": CRASH_TESTS}
    )
    seen: set[Path] = set()
    for phase in ("publish", "set"):
        killed = run_pytest(ctx, f"kill-{phase}", [], env={"SCENARIO_KILL": phase})
        fired = bool(barrier_ids(project, f"killed-{phase}"))
        if fired:
            note = f"{phase}: killed"
        else:
            f.check_run(killed)
            note = f"{phase}: no rename to kill"
        rerun = run_pytest(ctx, f"rerun-{phase}", [])
        f.check_run(rerun)
        found = [p for p in leftovers(project) if p not in seen]
        seen.update(found)
        if found:
            names = ", ".join(str(p.relative_to(project)) for p in found[:3])
            f.problems.append(
                f"{note}, {len(found)} new leftover(s) after the rerun: {names}"
            )
        else:
            f.notes.append(f"{note}, nothing new left after the rerun")
    return f.outcome()


def _overlapping_sessions(
    ctx: RunContext, tests: Mapping[str, str], expect_exit: int
) -> Findings:
    """Sessions A (``test_a.py``) and B (``test_b.py``): B reads the cache before A
    writes it and writes after A, held by the barriers of ``LASTFAILED_CONFTEST``."""
    write_project(ctx.workdir, {"conftest.py": LASTFAILED_CONFTEST, **tests})
    b = start_pytest(
        ctx, "B", ["test_b.py"], cwd=ctx.workdir, env={"SCENARIO_ROLE": "B"}
    )
    a = start_pytest(
        ctx, "A", ["test_a.py"], cwd=ctx.workdir, env={"SCENARIO_ROLE": "A"}
    )
    f = Findings()
    for run in finish([a, b], ctx.timeout):
        f.check_run(run, expect_exit=expect_exit)
    f.check_barriers(ctx.workdir)
    return f


def run_lastfailed_lost_update(ctx: RunContext) -> Outcome:
    """#6423: two overlapping sessions must both keep their failure in lastfailed."""
    f = _overlapping_sessions(
        ctx, {"test_a.py": LASTFAILED_TEST_A, "test_b.py": LASTFAILED_TEST_B}, 1
    )
    lastfailed_file = ctx.workdir / ".pytest_cache" / "v" / "cache" / "lastfailed"
    try:
        lastfailed = json.loads(lastfailed_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        f.problems.append(f"lastfailed unreadable: {exc}")
        return f.outcome()
    want = {"test_a.py::test_a_fails", "test_b.py::test_b_fails"}
    lost = sorted(want - set(lastfailed))
    if lost:
        f.problems.append(f"lastfailed lost {', '.join(lost)}")
    else:
        f.notes.append("lastfailed keeps both sessions' failures")
    return f.outcome()


_calibration: dict[str, int] = {}
_calibration_lock = threading.Lock()


def _count_cache_calls(ctx: RunContext) -> int:
    """Cache-related write calls of one undisturbed session in a fresh dir, per env."""
    key = str(ctx.python)
    with _calibration_lock:
        if key in _calibration:
            return _calibration[key]
    project = ctx.workdir / "calibrate"
    write_project(
        project,
        {"conftest.py": KILL_RANDOM_CONFTEST, "test_kill.py": KILL_RANDOM_TESTS},
    )
    run = run_pytest(ctx, "calibrate", [], cwd=project)
    counts = barrier_ids(project, "fs-calls-")
    if run.returncode != 0 or not counts:
        raise ScenarioError(f"calibration run failed (exit {run.returncode})")
    calls = int(counts.pop())
    with _calibration_lock:
        _calibration[key] = calls
    return calls


def run_kill_random(ctx: RunContext) -> Outcome:
    """A session killed at a random cache write call, then a rerun that must work."""
    total = _count_cache_calls(ctx)
    kill_at = ctx.rng.randint(1, total)
    project = ctx.workdir / "trial"
    write_project(
        project,
        {"conftest.py": KILL_RANDOM_CONFTEST, "test_kill.py": KILL_RANDOM_TESTS},
    )
    run_pytest(ctx, "killed", [], cwd=project, env={"SCENARIO_KILL_AT": str(kill_at)})
    where = barrier_ids(project, "killed-")
    f = Findings()
    f.notes.append(
        f"killed at {where.pop() if where else 'nothing (' + str(kill_at) + ')'} of {total}"
    )
    rerun = run_pytest(
        ctx, "rerun", [], cwd=project, env={"SCENARIO_TOKEN": f"t{kill_at}"}
    )
    f.check_run(rerun)
    if rerun.counts() != {"passed": 1}:
        f.problems.append("set/get round trip failed after the rerun")
    missing = missing_supporting_files(project / ".pytest_cache")
    if missing:
        f.problems.append(f"missing after the rerun: {', '.join(missing)}")
    f.check_leftovers(project, when=" after the rerun")
    return f.outcome()


def run_umask_flip(ctx: RunContext) -> Outcome:
    """Publishing the cache dir must not change the process umask (8.2.1's fix of #12308 does)."""
    write_project(
        ctx.workdir,
        {"conftest.py": UMASK_FLIP_CONFTEST, "test_perm.py": PERMISSIONS_TESTS},
    )
    run = run_pytest(ctx, "umask", [], umask=0o022)
    f = Findings()
    f.check_run(run)
    if not (ctx.workdir / ".pytest_cache" / "v" / "scenario" / "perm").is_file():
        f.errors.append("no value was written")
    log = ctx.workdir / "umask-calls"
    calls = log.read_text(encoding="utf-8").split() if log.exists() else []
    if calls:
        f.problems.append(f"the process umask was set to {', '.join(calls)}")
    else:
        f.notes.append("umask never changed")
    return f.outcome()


def _read_value(f: Findings, path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        f.problems.append(f"{path.name} unreadable: {exc}")
        return None


def run_lastfailed_fixed_test(ctx: RunContext) -> Outcome:
    """A session whose test now passes removes only that entry; others' stay (#6423)."""
    write_project(
        ctx.workdir, {"conftest.py": BARRIER_PRELUDE, **LASTFAILED_FIXED_FILES}
    )
    lastfailed_file = ctx.workdir / ".pytest_cache" / "v" / "cache" / "lastfailed"
    lastfailed_file.parent.mkdir(parents=True)
    seeded = {"test_fixed.py::test_fixed": True, "test_old.py::test_old": True}
    lastfailed_file.write_text(json.dumps(seeded), encoding="utf-8")
    fixed = start_pytest(ctx, "fixed", ["test_fixed.py"], cwd=ctx.workdir)
    other = start_pytest(ctx, "other", ["test_other.py"], cwd=ctx.workdir)
    f = Findings()
    (other_run,) = finish([other], ctx.timeout)
    touch_barrier(ctx.workdir, "other-done")
    (fixed_run,) = finish([fixed], ctx.timeout)
    f.check_run(fixed_run)
    f.check_run(other_run, expect_exit=1)
    f.check_barriers(ctx.workdir)
    got = _read_value(f, lastfailed_file)
    want = {"test_old.py::test_old": True, "test_other.py::test_other": True}
    if isinstance(got, dict) and got != want:
        f.problems.append(f"lastfailed is {sorted(got)}, want {sorted(want)}")
    return f.outcome()


def run_lastfailed_finish_together(ctx: RunContext) -> Outcome:
    """Sessions that all read lastfailed, then all write it at once, lose nothing."""
    sessions = 4
    files = {"conftest.py": FINISH_TOGETHER_CONFTEST}
    for i in range(sessions):
        files[f"test_{i}.py"] = FINISH_TOGETHER_TEST.format(i=i)
    write_project(ctx.workdir, files)
    env = {"SCENARIO_SESSIONS": str(sessions)}
    started = [
        start_pytest(ctx, f"s{i}", [f"test_{i}.py"], cwd=ctx.workdir, env=env)
        for i in range(sessions)
    ]
    f = Findings()
    for run in finish(started, ctx.timeout):
        f.check_run(run, expect_exit=1)
    f.check_barriers(ctx.workdir)
    got = _read_value(f, ctx.workdir / ".pytest_cache" / "v" / "cache" / "lastfailed")
    want = {f"test_{i}.py::test_{i}" for i in range(sessions)}
    if isinstance(got, dict) and set(got) != want:
        f.problems.append(f"lastfailed kept {len(got)} of {sessions}: {sorted(got)}")
    return f.outcome()


def run_nodeids_lost_update(ctx: RunContext) -> Outcome:
    """``cache/nodeids`` (``--nf``) keeps the node ids of two overlapping sessions."""
    passing = {
        name: text.replace('    assert False, "session A fails on purpose"\n', "")
        .replace('    assert False, "session B fails on purpose"\n', "")
        .replace("_fails", "_passes")
        for name, text in (
            ("test_a.py", LASTFAILED_TEST_A),
            ("test_b.py", LASTFAILED_TEST_B),
        )
    }
    f = _overlapping_sessions(ctx, passing, 0)
    got = _read_value(f, ctx.workdir / ".pytest_cache" / "v" / "cache" / "nodeids")
    want = ["test_a.py::test_a_passes", "test_b.py::test_b_passes"]
    if isinstance(got, list) and got != want:
        f.problems.append(f"nodeids kept {got}, want {want}")
    return f.outcome()


def touch_barrier(workdir: Path, name: str) -> None:
    """Create the barrier file ``name`` from the harness side."""
    (workdir / "barrier" / name).touch()


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "mkdir-race",
            "#12381",
            "xdist workers create the cache dir at once",
            run_mkdir_race,
        ),
        Scenario(
            "permissions",
            "#12308",
            "cache dir and value modes follow the umask",
            run_permissions,
        ),
        Scenario(
            "torn-read", "#12410", "a reader sees a value half rewritten", run_torn_read
        ),
        Scenario(
            "cache-clear-late-worker",
            "#6670",
            "a replacement worker re-runs --cache-clear",
            run_cache_clear_late_worker,
        ),
        Scenario(
            "crash-leftovers",
            "",
            "a kill while publishing leaves temp dirs forever",
            run_crash_leftovers,
        ),
        Scenario(
            "lastfailed-lost-update",
            "#6423",
            "overlapping sessions overwrite lastfailed",
            run_lastfailed_lost_update,
        ),
        Scenario(
            "umask-flip",
            "#12308",
            "publishing the cache dir changes the process umask",
            run_umask_flip,
        ),
        Scenario(
            "lastfailed-fixed-test",
            "#6423",
            "a session that fixed a test erases others' new failures",
            run_lastfailed_fixed_test,
            in_matrix=False,
        ),
        Scenario(
            "lastfailed-finish-together",
            "#6423",
            "sessions writing lastfailed at one moment lose entries",
            run_lastfailed_finish_together,
            in_matrix=False,
        ),
        Scenario(
            "nodeids-lost-update",
            "#6423",
            "overlapping sessions overwrite cache/nodeids",
            run_nodeids_lost_update,
            in_matrix=False,
        ),
        Scenario(
            "kill-random",
            "",
            "a kill at a random cache write, then a rerun",
            run_kill_random,
            in_matrix=False,
        ),
    )
}

#: The scenarios of the matrix (and bisect's choices), in table order.
MATRIX_SCENARIOS: tuple[str, ...] = tuple(
    name for name, s in SCENARIOS.items() if s.in_matrix
)


def add_run_options(
    parser: argparse.ArgumentParser, *, workers: int = DEFAULT_WORKERS
) -> None:
    """The options of every script that runs scenarios: ``--workers``, ``--barrier-timeout``, ``--timeout``."""
    parser.add_argument(
        "--workers",
        type=int,
        default=workers,
        help="xdist workers of mkdir-race (default: %(default)s)",
    )
    parser.add_argument(
        "--barrier-timeout",
        type=float,
        default=DEFAULT_BARRIER_TIMEOUT,
        help="seconds a participant waits at a file barrier (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds per pytest run (default: %(default)s)",
    )


def run_scenario(
    name: str,
    python: Path,
    workdir: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    barrier_timeout: float = DEFAULT_BARRIER_TIMEOUT,
    workers: int = DEFAULT_WORKERS,
    seed: int | None = None,
) -> Outcome:
    """Run scenario ``name`` with the env interpreter ``python`` in a fresh ``workdir``.

    Never raises for a failing harness: a timeout or a crash is verdict "error".
    """
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    workdir = workdir.absolute()
    if workdir.exists() and any(workdir.iterdir()):
        return Outcome("error", f"work dir {workdir} is not empty")
    ctx = RunContext(
        python, workdir, timeout, barrier_timeout, workers, random.Random(seed)
    )
    try:
        return scenario.runner(ctx)
    except ScenarioError as exc:
        return Outcome("error", f"harness: {exc}")
    except Exception as exc:  # A harness bug is "error", never "bad".
        traceback.print_exc()
        return Outcome("error", f"harness crashed: {type(exc).__name__}: {exc}")
