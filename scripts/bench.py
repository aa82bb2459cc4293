"""Benchmark the race-free fork against stock pytest of the same base release.

Run by a developer (``python scripts/bench.py`` or ``tox -e bench``) after any change
to the overlay or the build, and before the README's figures are refreshed; ``--quick``
is the smoke version (under 5 minutes on 2 cores). It builds or reuses two envs with
``scripts/envs.py``: the fork and stock ``pytest===<base>``, both with pytest-xdist
3.8.0, in a root of their own (``--env-root``) so that other tools rebuilding their
envs never pull one out from under a running benchmark.

Every measurement runs the two envs alternately (fork, stock, fork, stock ...) after
one unmeasured warm-up pair, in separate but identical project copies, and reports
the medians and the ratio fork/stock of the medians:

* ``suite-run``: wall and CPU time of whole pytest processes on a generated
  2,000-test project (a session fixture using ``cache.mkdir`` and ``cache.set``, a
  few failures), an emptied cache then ``--lf``, single process and ``-n 2``;
* ``set-cost``: CPU time of one ``Cache.set`` (thread CPU time, the median of
  batches), a different value on every write, overwriting one key and writing new
  keys, on a tmpfs mounted for the run (root) or ``/dev/shm``, and on the project's
  disk, where the user CPU time is the figure and the system time is reported
  beside it;
* ``set-syscalls``: system calls per ``Cache.set``, counted with ``strace``
  (left out, with a note on stderr, where strace is missing);
* ``set-throughput``: ``Cache.set`` operations per second (wall time), for insight;
* ``steady-state-writes``: files rewritten and bytes written in ``.pytest_cache``
  by a session that changes nothing (inode, size and mtime compared before and
  after; with strace, write calls to files under ``.pytest_cache`` counted too);
* ``lastfailed-session-end``: CPU time of the session end (``pytest_sessionfinish``
  and ``pytest_unconfigure``, timed by outermost hook wrappers: merge, lock,
  signature and sweep included) with 1,000 to 1,000,000 lastfailed entries on disk,
  and the peak memory of the process (``lastfailed-memory``);
* ``lastfailed-100k``: the same with 100,000 entries in wall time, with the
  session start and the whole process;
* ``creation-race``: 2, 8, 32 and 64 plain pytest processes started together on
  a fresh directory, held at a barrier (a lock the benchmark releases once all
  have arrived) and then calling ``config.cache.mkdir`` at the same moment:
  failed creators and time from launch to the first test.

The targets of issue 12 are printed as PASS/MISS lines after the table.

The shared machine makes single timings noisy: check ``uptime`` first, rerun when
it is quiet, and trust ratios more than absolute figures (``suite-run`` also
records the CPU seconds of each run, which other users of the machine disturb
far less than wall time). Progress goes to
stderr, a markdown table to stdout, everything to ``--json``; ``--chart`` draws
the creation race as an SVG (also from an earlier JSON with ``--from-json``).
POSIX only (``flock`` for the barrier, ``getrusage`` for CPU time).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
import contextlib
import dataclasses
import datetime
import fcntl
import json
import math
import os
from pathlib import Path
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from xml.sax.saxutils import escape

import envs
import scenarios


FORK = envs.FORK
STOCK = "stock"
#: Order of the envs inside a round: the alternation A B A B ...
ORDER = (FORK, STOCK)
DEFAULT_BASE = "8.2.0"
DEFAULT_ENV_ROOT = Path(
    os.environ.get("PYTEST_BENCH_ENVS")
    or envs.DEFAULT_ROOT.parent / "pytest-bench-envs"
)
NAMES = (
    "suite-run",
    "set-cost",
    "set-syscalls",
    "set-throughput",
    "steady-state-writes",
    "lastfailed-session-end",
    "lastfailed-memory",
    "lastfailed-100k",
    "creation-race",
)
#: What each benchmark name of --only runs (some runs produce two names).
RUNS = (
    "suite-run",
    "set-cost",
    "set-throughput",
    "steady-state-writes",
    "lastfailed-session-end",
    "lastfailed-100k",
    "creation-race",
)
#: Seconds one pytest process (or one group of racing creators) may take.
RUN_TIMEOUT = 600.0
#: Seconds the benchmark waits for every racing creator to reach the barrier.
BARRIER_TIMEOUT = 180.0
RACE_WORKERS = (2, 8, 32, 64)
#: xdist workers of the suite-run's parallel variants.
SUITE_WORKERS = 2
SUITE_FILES = 20
SUITE_TESTS_PER_FILE = 100
SUITE_FAILING = (7, 345, 1001, 1502, 1999)
#: Upper bound of one batch of sets, in seconds (a congested disk can do < 500/s).
SET_BATCH_SECONDS = 1.0
LASTFAILED_ENTRIES = 100_000
#: Sizes of lastfailed for the session-end benchmark.
LASTFAILED_SIZES = (1_000, 10_000, 100_000, 1_000_000)
#: From this size on, a --quick run measures one round without warm-up.
LASTFAILED_BIG = 1_000_000
#: Sets per batch of the set-cost benchmark, and sets counted under strace.
SET_COST_BATCH = 100
SET_STRACE_OPS = 200
#: Size of the tmpfs mounted for the set benchmarks (as root).
TMPFS_SIZE = "64m"
LASTFAILED_TESTS = 20
#: Tests that failed before the timed run (they pass now) and tests that fail in it.
LASTFAILED_WERE_FAILING = (0, 1, 2, 3, 4)
LASTFAILED_NOW_FAILING = (5, 6)
#: Targets of issue 12, on the ratio fork/stock of one field of a result:
#: name -> (field, comparison, bound, noise band, variants it applies to or None for all).
TARGETS: dict[str, tuple[str, str, float, float, frozenset[str] | None]] = {
    "suite-run": ("cpu_ratio", "<=", 1.00, 0.02, None),
    "set-cost": (
        "ratio",
        "<=",
        0.80,
        0.0,
        frozenset(
            {
                "overwrite, tmpfs",
                "new-key, tmpfs",
                "overwrite, disk (user CPU)",
                "new-key, disk (user CPU)",
            }
        ),
    ),
    "set-syscalls": ("ratio", "<=", 1.00, 0.0, None),
    "lastfailed-session-end": ("ratio", "<=", 1.00, 0.02, None),
    "lastfailed-memory": ("ratio", "<=", 1.05, 0.0, None),
}
#: Absolute targets: the fork's figure must be at most this (steady-state writes: none).
FORK_AT_MOST: dict[str, float] = {"steady-state-writes": 0.0}
#: The creation-race target: no failed creator on the fork at this many workers.
RACE_TARGET_WORKERS = 64


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much work each benchmark does."""

    suite_rounds: int
    set_rounds: int
    lastfailed_rounds: int
    race_trials: int
    set_ops: int
    set_batches: int
    #: Batches of SET_COST_BATCH sets per process and variant (set-cost).
    cost_batches: int
    race_workers: tuple[int, ...] = RACE_WORKERS
    #: Rounds (and no warm-up) of the session-end benchmark from LASTFAILED_BIG
    #: entries on; None: as many as the smaller sizes.
    big_lastfailed_rounds: int | None = None


QUICK = Settings(
    suite_rounds=2,
    set_rounds=3,
    lastfailed_rounds=3,
    race_trials=1,
    set_ops=500,
    set_batches=2,
    cost_batches=15,
    big_lastfailed_rounds=1,
)
FULL = Settings(
    suite_rounds=7,
    set_rounds=9,
    lastfailed_rounds=9,
    race_trials=3,
    set_ops=1000,
    set_batches=2,
    cost_batches=40,
)


class BenchError(Exception):
    """A benchmark could not run or produced output that makes its figure meaningless."""


@dataclasses.dataclass
class Result:
    """One figure: the medians of both envs, their samples and anything else worth keeping."""

    name: str
    unit: str
    fork: float
    stock: float
    variant: str = ""
    extra: dict[str, object] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return compute_ratio(self.fork, self.stock)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name,
            "variant": self.variant,
            "fork": round(self.fork, 6),
            "stock": round(self.stock, 6),
            "unit": self.unit,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
        }
        data.update(self.extra)
        data["target_met"] = target_met(data)
        return data


def compute_ratio(fork: float, stock: float) -> float | None:
    """The ratio fork/stock, or None when it has no meaning (stock zero, a value not finite)."""
    if stock == 0 or not math.isfinite(fork) or not math.isfinite(stock):
        return None
    return fork / stock


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (NaN for none, so that an empty figure shows up as such)."""
    data = list(values)
    return statistics.median(data) if data else math.nan


def paired_ratio_spread(
    fork: Sequence[float], stock: Sequence[float]
) -> tuple[float, float] | None:
    """Lowest and highest ratio of the fork/stock pairs of the same round (None without pairs)."""
    ratios = [
        r
        for f, s in zip(fork, stock, strict=False)
        if (r := compute_ratio(f, s)) is not None
    ]
    return (min(ratios), max(ratios)) if ratios else None


def target_met(entry: Mapping[str, object]) -> bool | None:
    """Whether a result entry (as in the JSON) meets issue 12's target; None if it has none.

    Ratio targets allow their noise band (``suite-run``: CPU 1.00 within 2%). The
    creation race is judged at 64 workers only: no failed creator on the fork.
    """
    name = entry.get("name")
    if name == "creation-race":
        if entry.get("workers") != RACE_TARGET_WORKERS:
            return None
        return entry.get("fork_failures") == 0
    if isinstance(name, str) and name in FORK_AT_MOST:
        fork = entry.get("fork")
        if not isinstance(fork, (int, float)) or not math.isfinite(fork):
            return None
        return fork <= FORK_AT_MOST[name]
    if not isinstance(name, str) or name not in TARGETS:
        return None
    field, op, bound, band, variants = TARGETS[name]
    if variants is not None and entry.get("variant") not in variants:
        return None
    ratio = entry.get(field)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        return None
    return ratio <= bound + band if op == "<=" else ratio >= bound - band


def target_text(entry: Mapping[str, object]) -> str:
    """What the target of ``entry`` asks, in words ('' when it has none)."""
    name = str(entry.get("name"))
    if target_met(entry) is None:
        return ""
    if name == "creation-race":
        return f"0 fork failures at {RACE_TARGET_WORKERS}"
    if name in FORK_AT_MOST:
        return f"fork <= {FORK_AT_MOST[name]:g}"
    field, op, bound, band, _ = TARGETS[name]
    what = "CPU fork/stock" if field == "cpu_ratio" else "fork/stock"
    return f"{what} {op} {bound:.2f}" + (f" (±{band:.0%})" if band else "")


def target_lines(document: Mapping[str, object]) -> list[str]:
    """One PASS/MISS line per result that has a target, with its measured figure."""
    lines = []
    entries = document.get("results")
    for entry in entries if isinstance(entries, list) else []:
        met = target_met(entry)
        if met is None:
            continue
        name = str(entry.get("name"))
        label = f"{name} {entry.get('variant') or ''}".strip()
        if name == "creation-race":
            figure = f"fork {entry.get('fork_failures')}/{entry.get('creators')} failed"
        elif name in FORK_AT_MOST:
            figure = f"fork {format_number(entry.get('fork'))}, stock {format_number(entry.get('stock'))}"
        else:
            field = TARGETS[name][0]
            figure = f"{format_number(entry.get(field))}"
            if field == "cpu_ratio":
                figure = f"CPU {figure} (wall {format_number(entry.get('ratio'))}"
                spread = entry.get("ratio_range")
                if isinstance(spread, list) and len(spread) == 2:
                    # The rounds' own wall ratios: how far one pair moves by itself.
                    low, high = (format_number(v) for v in spread)
                    figure += f"; rounds {low}-{high}"
                figure += ")"
        lines.append(
            f"{'PASS' if met else 'MISS'}  {label}: {figure}; target {target_text(entry)}"
        )
    return lines


def result_from_samples(
    name: str,
    unit: str,
    samples: Mapping[str, Sequence[float]],
    *,
    variant: str = "",
    **extra: object,
) -> Result:
    """A :class:`Result` with the medians of ``samples`` (per env) and the samples kept."""
    fork, stock = list(samples[FORK]), list(samples[STOCK])
    info: dict[str, object] = {"rounds": min(len(fork), len(stock))}
    spread = paired_ratio_spread(fork, stock)
    if spread is not None:
        info["ratio_range"] = [round(spread[0], 4), round(spread[1], 4)]
    info["fork_samples"] = [round(v, 6) for v in fork]
    info["stock_samples"] = [round(v, 6) for v in stock]
    info.update(extra)
    return Result(name, unit, median(fork), median(stock), variant, info)


_STARTED = time.monotonic()


def cpu_figures(cpu: Mapping[str, Sequence[float]], rounds: int) -> dict[str, object]:
    """Extra fields for a wall-time result: the medians of the measured rounds' CPU seconds."""
    fork, stock = median(cpu[FORK][-rounds:]), median(cpu[STOCK][-rounds:])
    ratio = compute_ratio(fork, stock)
    return {
        "fork_cpu": round(fork, 4),
        "stock_cpu": round(stock, 4),
        "cpu_ratio": None if ratio is None else round(ratio, 4),
    }


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since the benchmark started."""
    elapsed = time.monotonic() - _STARTED
    print(f"[bench {elapsed:5.0f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- projects

SUITE_CONFTEST = """\
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _bench_uses_the_cache(request):
    cache = request.config.cache
    data = cache.mkdir("bench-suite")
    (data / ("worker-%s" % os.environ.get("PYTEST_XDIST_WORKER", "main"))).write_text("x")
    seen = cache.get("bench/suite", {"sessions": 0})
    cache.set("bench/suite", {"sessions": seen["sessions"] + 1, "pid": os.getpid()})
    yield
"""

SET_TEST = """\
import json
import os
import time


def _rate(cache, keys, value, budget):
    # At most len(keys) sets, and no more than `budget` seconds: a slow shared
    # disk makes the batch shorter, not the benchmark longer. Every set writes
    # a different value (a counter), as a plugin updating its state does.
    start = time.perf_counter()
    done = 0
    for done, key in enumerate(keys, 1):
        value["count"] = done
        cache.set(key, value)
        if done % 50 == 0 and time.perf_counter() - start > budget:
            break
    return done / (time.perf_counter() - start)


def test_set_throughput(request):
    cache = request.config.cache
    ops = int(os.environ["BENCH_SET_OPS"])
    batches = int(os.environ["BENCH_SET_BATCHES"])
    budget = float(os.environ["BENCH_SET_SECONDS"])
    value = {"answer": 42, "items": [1, 2, 3], "name": "bench"}
    cache.set("bench/warm-up", value)
    # All overwrites first: writeback of the many new files must not slow them down.
    rates = {"overwrite": [], "new-key": []}
    for batch in range(batches):
        rates["overwrite"].append(_rate(cache, ["bench/value"] * ops, value, budget))
    for batch in range(batches):
        keys = ["bench/new/%d-%d" % (batch, i) for i in range(ops)]
        rates["new-key"].append(_rate(cache, keys, value, budget))
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump(rates, f)
"""

#: Per-set costs: thread CPU time per batch (its median is the figure), the
#: process's user and system time over all batches, and markers for strace
#: (a stat of a path that does not exist) around a counted stretch of sets.
SET_COST_TEST = """\
import json
import os
import resource
import statistics
import time


def _mark(name):
    try:
        os.stat("/pytest-bench-marker/" + name)
    except OSError:
        pass


def _measure(cache, keys_of_batch, batches, size, counter):
    value = {"answer": 42, "items": [1, 2, 3], "name": "bench", "count": 0}
    cpu, wall = [], []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for batch in range(batches):
        keys = keys_of_batch(batch)
        t0, c0 = time.perf_counter(), time.thread_time()
        for key in keys:
            counter[0] += 1
            value["count"] = counter[0]  # A different value on every write.
            cache.set(key, value)
        cpu.append((time.thread_time() - c0) / size)
        wall.append((time.perf_counter() - t0) / size)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    sets = batches * size
    return {
        "cpu_us": 1e6 * statistics.median(cpu),
        "wall_us": 1e6 * statistics.median(wall),
        "user_us": 1e6 * (r1.ru_utime - r0.ru_utime) / sets,
        "sys_us": 1e6 * (r1.ru_stime - r0.ru_stime) / sets,
    }


def test_set_cost(request):
    cache = request.config.cache
    batches = int(os.environ["BENCH_SET_BATCHES"])
    size = int(os.environ["BENCH_SET_BATCH"])
    counter = [0]
    cache.set("bench/value", 0)
    cache.set("bench/new/warm-up", 0)
    out = {}
    _mark("start-overwrite")
    out["overwrite"] = _measure(
        cache, lambda b: ["bench/value"] * size, batches, size, counter
    )
    _mark("end-overwrite")
    _mark("start-new-key")
    out["new-key"] = _measure(
        cache,
        lambda b: ["bench/new/%d-%d" % (b, i) for i in range(size)],
        batches,
        size,
        counter,
    )
    _mark("end-new-key")
    out["sets"] = batches * size
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump(out, f)
"""

#: Outermost wrappers around the hooks where the cache plugin reads (session
#: start) and writes (session finish) lastfailed, and sweeps (unconfigure).
LASTFAILED_CONFTEST = """\
import json
import os
import resource
import time

import pytest

TIMES = {}


def _timed(name):
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def hook(*args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return (yield)
        finally:
            TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - start
            TIMES[name + "_cpu"] = TIMES.get(name + "_cpu", 0.0) + time.process_time() - cpu
            if name == "unconfigure":
                TIMES["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                with open(os.environ["BENCH_OUT"], "w") as f:
                    json.dump(TIMES, f)

    return hook


pytest_sessionstart = _timed("sessionstart")
pytest_sessionfinish = _timed("sessionfinish")
pytest_unconfigure = _timed("unconfigure")
"""

LASTFAILED_TEST = """\
import pytest

NOW_FAILING = {now_failing!r}


@pytest.mark.parametrize("i", range({tests}))
def test_case(i):
    assert i not in NOW_FAILING
"""

#: Every creator announces itself in ``barrier/``, waits until all have, then
#: creates the cache; it records when and how that went in ``results/``.
RACE_CONFTEST = """\
import fcntl
import json
import os
from pathlib import Path
import time

import pytest

HERE = Path(__file__).resolve().parent
ME = os.environ["BENCH_CREATOR_ID"]


def _wait_for_everyone():
    # The benchmark holds an exclusive lock on the gate until every creator has
    # arrived: the kernel then wakes all the blocked creators at once.
    (HERE / "barrier" / ME).touch()
    with open(HERE / "barrier.lock", "rb") as gate:
        fcntl.flock(gate, fcntl.LOCK_SH)


@pytest.fixture(scope="session", autouse=True)
def _create_the_cache(request):
    _wait_for_everyone()
    start = time.time()
    error = None
    try:
        request.config.cache.mkdir("bench-race")
    except Exception as exc:
        error = "%s: %s" % (type(exc).__name__, exc)
    first_test = time.time()
    record = {"mkdir": first_test - start, "first_test": first_test, "error": error}
    (HERE / "results" / (ME + ".json")).write_text(json.dumps(record))
    if error is not None:
        pytest.fail("cache.mkdir failed: " + error)
    yield
"""

RACE_TEST = """\
import pytest


@pytest.mark.parametrize("i", range(3))
def test_after_the_cache_exists(i):
    pass
"""


def suite_test_file(index: int) -> str:
    """Test module ``index`` of the suite project: plain functions, a few failing."""
    lines = []
    for i in range(SUITE_TESTS_PER_FILE):
        number = index * SUITE_TESTS_PER_FILE + i
        body = "assert 0, 'planted failure'" if number in SUITE_FAILING else "pass"
        lines += [f"def test_{number:04d}():", f"    {body}", "", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_files(directory: Path, files: Mapping[str, str]) -> Path:
    """Write a project: a ``pytest.ini`` that pins the rootdir, and ``files``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text(scenarios.PYTEST_INI, encoding="utf-8")
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def suite_files() -> dict[str, str]:
    """The 2,000-test project."""
    files = {f"test_suite_{i:02d}.py": suite_test_file(i) for i in range(SUITE_FILES)}
    files["conftest.py"] = SUITE_CONFTEST
    return files


def lastfailed_files() -> dict[str, str]:
    """The small project whose run changes a few of the 100,000 lastfailed entries."""
    test = LASTFAILED_TEST.format(
        now_failing=set(LASTFAILED_NOW_FAILING), tests=LASTFAILED_TESTS
    )
    return {"conftest.py": LASTFAILED_CONFTEST, "test_lastfailed.py": test}


def steady_files() -> dict[str, str]:
    """The 2,000-test project without the conftest that sets a new value every session."""
    return {f"test_suite_{i:02d}.py": suite_test_file(i) for i in range(SUITE_FILES)}


def lastfailed_seed(entries: int = LASTFAILED_ENTRIES) -> dict[str, bool]:
    """What ``cache/lastfailed`` holds before the timed run: ``entries`` others plus ours."""
    seed = {
        f"tests/gen/test_mod{i // 100:04d}.py::test_case_{i:06d}": True
        for i in range(entries)
    }
    for i in LASTFAILED_WERE_FAILING:
        seed[f"test_lastfailed.py::test_case[{i}]"] = True
    return seed


def lastfailed_expected(seed: Mapping[str, bool]) -> set[str]:
    """The keys ``cache/lastfailed`` must hold after the run (stock and fork alike)."""
    keys = {k for k in seed if not k.startswith("test_lastfailed.py::")}
    return keys | {
        f"test_lastfailed.py::test_case[{i}]" for i in LASTFAILED_NOW_FAILING
    }


# --------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class Completed:
    """A finished pytest process."""

    returncode: int
    output: str
    seconds: float
    #: User plus system CPU seconds of the process and every child it waited for
    #: (xdist workers): far less sensitive to other users of the machine.
    cpu_seconds: float = 0.0


def children_cpu() -> float:
    """CPU seconds used so far by the children (and their waited-for children) of this process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pytest(
    python: Path,
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> Completed:
    """Run ``python -m pytest args`` in ``cwd`` (under ``prefix``, e.g. strace) and time it."""
    cpu = children_cpu()
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [*prefix, str(python), "-m", "pytest", *args],
            cwd=cwd,
            env=scenarios.child_env(env, write_bytecode=True),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(
            f"pytest {' '.join(args)} in {cwd}: still running after {RUN_TIMEOUT:.0f}s"
        ) from exc
    seconds = time.perf_counter() - start
    output = done.stdout.decode("utf-8", "replace")
    return Completed(done.returncode, output, seconds, children_cpu() - cpu)


def expect(done: Completed, *, returncode: int, summary: str, what: str) -> None:
    """Refuse a run whose exit status or summary line is not what the project must give."""
    if done.returncode != returncode or not re.search(summary, done.output):
        tail = "\n".join(done.output.strip().splitlines()[-15:])
        raise BenchError(
            f"{what}: exit {done.returncode}, wanted {returncode} and /{summary}/:\n{tail}"
        )


def alternate(
    what: str,
    rounds: int,
    measure: Callable[[str], float],
    *,
    unit: str,
    warmup: bool = True,
) -> dict[str, list[float]]:
    """Measure fork, stock, fork, stock ... for ``rounds`` rounds after one warm-up pair."""
    samples: dict[str, list[float]] = {FORK: [], STOCK: []}
    if warmup:
        for env in ORDER:
            measure(env)
    for n in range(1, rounds + 1):
        for env in ORDER:
            samples[env].append(measure(env))
        fork, stock = samples[FORK][-1], samples[STOCK][-1]
        progress(
            f"{what}: round {n}/{rounds}: fork {fork:.4g} {unit}, stock {stock:.4g} {unit}"
        )
    return samples


class Bench:
    """The two envs, a scratch directory and the settings: runs each benchmark."""

    def __init__(
        self, pythons: Mapping[str, Path], workdir: Path, settings: Settings
    ) -> None:
        self.pythons = dict(pythons)
        self.workdir = workdir
        self.settings = settings

    def project(self, kind: str, env: str, files: Mapping[str, str]) -> Path:
        """The project copy of ``env`` for benchmark ``kind`` (written on first use)."""
        directory = self.workdir / kind / env
        if not directory.is_dir():
            write_files(directory, files)
        return directory

    # ---------------------------------------------------------------- suite-run

    def suite_run(self) -> list[Result]:
        """Whole-process time of the 2,000-test project: emptied cache, then ``--lf``."""
        files = suite_files()
        total = SUITE_FILES * SUITE_TESTS_PER_FILE
        failed = len(SUITE_FAILING)
        results = []
        cpu: dict[str, dict[str, list[float]]] = {}
        for workers in (None, SUITE_WORKERS):
            xdist = [] if workers is None else ["-n", str(workers)]
            label = "1 process" if workers is None else f"-n {workers}"
            for lf in (False, True):
                variant = f"{'--lf' if lf else 'full'}, {label}"

                def measure(
                    env: str,
                    lf: bool = lf,
                    xdist: list[str] = xdist,
                    variant: str = variant,
                ) -> float:
                    project = self.project("suite", env, files)
                    cachedir = project / ".pytest_cache"
                    needed = cachedir / "v" / "cache" / "lastfailed" if lf else cachedir
                    if not needed.exists():
                        self._seed(env, project)
                    if not lf:
                        # Empty the cache but keep its directory: creating it
                        # with -n 2 is the creation race, which stock 8.2.0 can
                        # lose (#12381) and which creation-race measures.
                        for sub in ("v", "d"):
                            shutil.rmtree(cachedir / sub, ignore_errors=True)
                    args = ["-q", *xdist, *(["--lf"] if lf else [])]
                    done = run_pytest(self.pythons[env], args, cwd=project)
                    summary = rf"\b{failed} failed" + (
                        "" if lf else rf", {total - failed} passed"
                    )
                    expect(
                        done,
                        returncode=1,
                        summary=summary,
                        what=f"suite-run {variant} ({env})",
                    )
                    cpu[variant][env].append(done.cpu_seconds)
                    return done.seconds

                cpu[variant] = {FORK: [], STOCK: []}
                progress(f"suite-run: {variant}")
                samples = alternate(
                    f"suite-run {variant}",
                    self.settings.suite_rounds,
                    measure,
                    unit="s",
                )
                results.append(
                    result_from_samples(
                        "suite-run",
                        "s",
                        samples,
                        variant=variant,
                        tests=failed if lf else total,
                        workers=workers or 1,
                        **cpu_figures(cpu[variant], self.settings.suite_rounds),
                    )
                )
        return results

    def _seed(self, env: str, project: Path) -> None:
        """Make the cache dir and a lastfailed with an unmeasured single-process run."""
        done = run_pytest(self.pythons[env], ["-q", "-p", "no:xdist"], cwd=project)
        expect(
            done,
            returncode=1,
            summary=r"\bfailed",
            what=f"suite-run seeding --lf ({env})",
        )

    # ---------------------------------------------------------------- set-throughput

    def set_throughput(self) -> list[Result]:
        """``Cache.set`` operations per second, timed inside a session of each env."""
        ops, batches = self.settings.set_ops, self.settings.set_batches
        per_variant: dict[str, dict[str, list[float]]] = {}

        memory = memory_filesystem()

        def measure(env: str) -> float:
            project = self.project("set", env, {"test_set.py": SET_TEST})
            out = project / "rates.json"
            extra = {
                "BENCH_SET_OPS": str(ops),
                "BENCH_SET_SECONDS": str(SET_BATCH_SECONDS),
                "BENCH_SET_BATCHES": str(batches),
                "BENCH_OUT": str(out),
            }
            # The project's own disk (where a cache lives), then a memory
            # filesystem: no writeback, so only the code and the syscalls count.
            places = {"": project / ".pytest_cache"}
            if memory is not None:
                places[", tmpfs"] = memory / f"pytest-bench-{os.getpid()}-{env}"
            for suffix, cachedir in places.items():
                shutil.rmtree(cachedir, ignore_errors=True)
                args = ["-q", "-p", "no:xdist", "-o", f"cache_dir={cachedir}"]
                done = run_pytest(self.pythons[env], args, cwd=project, env=extra)
                shutil.rmtree(cachedir, ignore_errors=True)
                expect(
                    done,
                    returncode=0,
                    summary=r"\b1 passed",
                    what=f"set-throughput{suffix} ({env})",
                )
                rates: dict[str, list[float]] = json.loads(
                    out.read_text(encoding="utf-8")
                )
                for variant, values in rates.items():
                    per_variant.setdefault(variant + suffix, {FORK: [], STOCK: []})[
                        env
                    ].append(median(values))
            return per_variant["overwrite"][env][-1]

        progress(
            f"set-throughput: {ops} sets x {batches} batches per process and variant"
        )
        alternate(
            "set-throughput overwrite",
            self.settings.set_rounds,
            measure,
            unit="ops/s",
            warmup=True,
        )
        rounds = self.settings.set_rounds
        results = []
        for variant, samples in per_variant.items():
            measured = {
                env: values[-rounds:] for env, values in samples.items()
            }  # drop the warm-up
            results.append(
                result_from_samples(
                    "set-throughput", "ops/s", measured, variant=variant, ops=ops
                )
            )
        return results

    # ---------------------------------------------------------------- lastfailed-100k

    def lastfailed_100k(self) -> list[Result]:
        """Session start and end, and the whole process, with 100,000 lastfailed entries."""
        seed = lastfailed_seed()
        expected = lastfailed_expected(seed)
        seed_text = json.dumps(seed, ensure_ascii=False, indent=2)
        parts: dict[str, dict[str, list[float]]] = {}

        def measure(env: str) -> float:
            hooks, seconds = self._lastfailed_run(env, seed_text, expected)
            figures = {
                "session-end": hooks["sessionfinish"] + hooks["unconfigure"],
                "session-start": hooks["sessionstart"],
                "whole-process": seconds,
            }
            for variant, figure in figures.items():
                parts.setdefault(variant, {FORK: [], STOCK: []})[env].append(figure)
            return figures["session-end"]

        progress(f"lastfailed-100k: {len(seed):,} entries on disk")
        rounds = self.settings.lastfailed_rounds
        alternate("lastfailed-100k session end", rounds, measure, unit="s")
        return [
            result_from_samples(
                "lastfailed-100k",
                "s",
                {env: v[-rounds:] for env, v in samples.items()},
                variant=variant,
                entries=len(seed),
            )
            for variant, samples in parts.items()
        ]

    # ---------------------------------------------------------------- set-cost

    def set_cost(self) -> list[Result]:
        """CPU time and system calls per ``Cache.set``, tmpfs and disk, overwrite and new key."""
        batches = self.settings.cost_batches
        rounds = self.settings.set_rounds
        figures: dict[str, dict[str, list[float]]] = {}
        extra: dict[str, dict[str, dict[str, list[float]]]] = {}
        with memory_place(self.workdir / "tmpfs") as memory:
            places = {"disk": self.workdir / "set-cost-disk"}
            if memory is None:
                progress(
                    "set-cost: no tmpfs (not root, no /dev/shm): tmpfs not measured"
                )
            else:
                places["tmpfs"] = memory

            def measure(env: str) -> float:
                project = self.project(
                    "set-cost", env, {"test_set_cost.py": SET_COST_TEST}
                )
                for place, root in places.items():
                    data = self._set_cost_run(env, project, root / env, batches)
                    for variant in ("overwrite", "new-key"):
                        figure = data[variant]
                        key = (
                            f"{variant}, tmpfs"
                            if place == "tmpfs"
                            else f"{variant}, disk (user CPU)"
                        )
                        figures.setdefault(key, {FORK: [], STOCK: []})[env].append(
                            figure["cpu_us"] if place == "tmpfs" else figure["user_us"]
                        )
                        side = extra.setdefault(key, {})
                        for field in ("cpu_us", "wall_us", "user_us", "sys_us"):
                            side.setdefault(field, {FORK: [], STOCK: []})[env].append(
                                figure[field]
                            )
                return figures["overwrite, disk (user CPU)"][env][-1]

            progress(
                f"set-cost: {batches} x {SET_COST_BATCH} sets per process, variant and place"
                f" ({', '.join(places)})"
            )
            alternate("set-cost overwrite, disk", rounds, measure, unit="us user CPU")
            syscalls = self._set_syscalls(places)
        results = []
        for key, samples in figures.items():
            measured = {env: values[-rounds:] for env, values in samples.items()}
            side = {
                f"{env}_{field}": round(median(values[env][-rounds:]), 3)
                for field, values in extra[key].items()
                for env in ORDER
            }
            result = result_from_samples(
                "set-cost",
                "us/set",
                measured,
                variant=key,
                sets=batches * SET_COST_BATCH,
                **side,
            )
            if "disk" in key:
                # User time is sampled at the scheduler's ticks: the mean of the
                # rounds pools their samples (a median would keep one round's).
                result.fork = statistics.mean(measured[FORK])
                result.stock = statistics.mean(measured[STOCK])
                result.extra["figure"] = (
                    "mean of the rounds (user time is tick-sampled)"
                )
            results.append(result)
        return results + syscalls

    def _set_cost_run(
        self,
        env: str,
        project: Path,
        cachedir: Path,
        batches: int,
        *,
        strace: Path | None = None,
    ) -> dict[str, dict[str, float]]:
        """One pytest process of SET_COST_TEST with its cache dir at ``cachedir``."""
        out = project / "cost.json"
        extra = {
            "BENCH_SET_BATCHES": str(batches),
            "BENCH_SET_BATCH": str(SET_COST_BATCH),
            "BENCH_OUT": str(out),
        }
        shutil.rmtree(cachedir, ignore_errors=True)
        args = ["-q", "-p", "no:xdist", "-o", f"cache_dir={cachedir}"]
        prefix = ["strace", "-f", "-qq", "-o", str(strace)] if strace else []
        done = run_pytest(
            self.pythons[env], args, cwd=project, env=extra, prefix=prefix
        )
        shutil.rmtree(cachedir, ignore_errors=True)
        expect(done, returncode=0, summary=r"\b1 passed", what=f"set-cost ({env})")
        data: dict[str, dict[str, float]] = json.loads(out.read_text(encoding="utf-8"))
        return data

    def _set_syscalls(self, places: Mapping[str, Path]) -> list[Result]:
        """System calls per set, counted with strace between the test's markers."""
        if shutil.which("strace") is None:
            progress("set-syscalls: strace not found: system calls not measured")
            return []
        results = []
        ops = max(1, SET_STRACE_OPS // SET_COST_BATCH)
        for place, root in places.items():
            counts: dict[str, dict[str, list[float]]] = {}
            for env in ORDER:
                project = self.project(
                    "set-cost", env, {"test_set_cost.py": SET_COST_TEST}
                )
                trace = project / "strace.txt"
                self._set_cost_run(env, project, root / env, ops, strace=trace)
                text = trace.read_text(encoding="utf-8", errors="replace")
                trace.unlink()
                for variant in ("overwrite", "new-key"):
                    calls = syscalls_between(text, f"start-{variant}", f"end-{variant}")
                    counts.setdefault(variant, {FORK: [], STOCK: []})[env].append(
                        calls / (ops * SET_COST_BATCH)
                    )
            for variant, samples in counts.items():
                results.append(
                    result_from_samples(
                        "set-syscalls",
                        "syscalls/set",
                        samples,
                        variant=f"{variant}, {place}",
                        sets=ops * SET_COST_BATCH,
                    )
                )
            progress(
                f"set-syscalls {place}: "
                + ", ".join(
                    f"{v} fork {c[FORK][0]:.2f} stock {c[STOCK][0]:.2f}"
                    for v, c in counts.items()
                )
            )
        return results

    # ---------------------------------------------------------------- steady-state-writes

    def steady_state_writes(self) -> list[Result]:
        """Files rewritten and bytes written in ``.pytest_cache`` by a session that changes nothing."""
        files = steady_files()
        strace = shutil.which("strace") is not None
        rewritten: dict[str, list[float]] = {FORK: [], STOCK: []}
        written: dict[str, list[float]] = {FORK: [], STOCK: []}
        calls: dict[str, list[float]] = {FORK: [], STOCK: []}
        progress(
            "steady-state-writes: a third session of the 2,000-test project"
            + ("" if strace else " (strace not found: write calls not counted)")
        )
        for env in ORDER:
            project = self.project("steady", env, files)
            cachedir = project / ".pytest_cache"
            shutil.rmtree(cachedir, ignore_errors=True)
            args = ["-q", "-p", "no:xdist"]
            for _ in range(2):  # The first creates everything, the second settles.
                run_pytest(self.pythons[env], args, cwd=project)
            before = cache_snapshot(cachedir)
            trace = project / "strace.txt"
            prefix = [
                "strace",
                "-f",
                "-qq",
                "-e",
                "trace=write,pwrite64,writev",
                "-y",
                "-o",
                str(trace),
            ]
            done = run_pytest(
                self.pythons[env], args, cwd=project, prefix=prefix if strace else []
            )
            expect(
                done,
                returncode=1,
                summary=rf"\b{len(SUITE_FAILING)} failed",
                what=f"steady-state-writes ({env})",
            )
            after = cache_snapshot(cachedir)
            changed = [k for k, v in after.items() if before.get(k) != v]
            rewritten[env].append(float(len(changed)))
            written[env].append(float(sum(after[k][1] for k in changed)))
            if strace:
                count, _ = cache_writes(
                    trace.read_text(encoding="utf-8", errors="replace")
                )
                calls[env].append(float(count))
                trace.unlink()
            progress(
                f"steady-state-writes ({env}): {len(changed)} files rewritten"
                + (f": {', '.join(sorted(changed))}" if changed else "")
            )
        results = [
            result_from_samples(
                "steady-state-writes", "files", rewritten, variant="files rewritten"
            ),
            result_from_samples(
                "steady-state-writes", "bytes", written, variant="bytes written"
            ),
        ]
        if strace:
            results.append(
                result_from_samples(
                    "steady-state-writes",
                    "calls",
                    calls,
                    variant="write calls to .pytest_cache (strace)",
                )
            )
        return results

    # ---------------------------------------------------------------- lastfailed-session-end

    def lastfailed_session_end(self) -> list[Result]:
        """Session end CPU time and peak memory for each size of lastfailed."""
        results = []
        for entries in LASTFAILED_SIZES:
            seed = lastfailed_seed(entries)
            expected = lastfailed_expected(seed)
            seed_text = json.dumps(seed, ensure_ascii=False, indent=2)
            rounds = self.settings.lastfailed_rounds
            warmup = True
            big_rounds = self.settings.big_lastfailed_rounds
            if entries >= LASTFAILED_BIG and big_rounds is not None:
                rounds, warmup = big_rounds, False
            parts: dict[str, dict[str, list[float]]] = {}

            def measure(
                env: str,
                seed_text: str = seed_text,
                expected: set[str] = expected,
                parts: dict[str, dict[str, list[float]]] = parts,
            ) -> float:
                hooks, _ = self._lastfailed_run(env, seed_text, expected)
                figures = {
                    "cpu": hooks["sessionfinish_cpu"] + hooks["unconfigure_cpu"],
                    "wall": hooks["sessionfinish"] + hooks["unconfigure"],
                    "rss": hooks["maxrss_kb"] / 1024,
                }
                for part, value in figures.items():
                    parts.setdefault(part, {FORK: [], STOCK: []})[env].append(value)
                return figures["cpu"]

            label = f"{entries:,} entries"
            progress(f"lastfailed-session-end: {label}")
            alternate(
                f"lastfailed-session-end {label}",
                rounds,
                measure,
                unit="s CPU",
                warmup=warmup,
            )

            def last(
                part: str,
                rounds: int = rounds,
                parts: dict[str, dict[str, list[float]]] = parts,
            ) -> dict[str, list[float]]:
                return {env: v[-rounds:] for env, v in parts[part].items()}

            wall = last("wall")
            results.append(
                result_from_samples(
                    "lastfailed-session-end",
                    "s CPU",
                    last("cpu"),
                    variant=label,
                    entries=entries,
                    fork_wall=round(median(wall[FORK]), 4),
                    stock_wall=round(median(wall[STOCK]), 4),
                )
            )
            results.append(
                result_from_samples(
                    "lastfailed-memory",
                    "MB",
                    last("rss"),
                    variant=label,
                    entries=entries,
                )
            )
        return results

    def _lastfailed_run(
        self, env: str, seed_text: str, expected: set[str]
    ) -> tuple[dict[str, float], float]:
        """One run of the lastfailed project on ``seed_text``: the hook times it recorded
        and the whole process's seconds."""
        project = self.project("lastfailed", env, lastfailed_files())
        cachedir = project / ".pytest_cache"
        shutil.rmtree(cachedir, ignore_errors=True)
        value = cachedir / "v" / "cache" / "lastfailed"
        value.parent.mkdir(parents=True)
        value.write_text(seed_text, encoding="utf-8")
        out = project / "hooks.json"
        out.unlink(missing_ok=True)
        done = run_pytest(
            self.pythons[env],
            ["-q", "-p", "no:xdist"],
            cwd=project,
            env={"BENCH_OUT": str(out)},
        )
        failing = len(LASTFAILED_NOW_FAILING)
        expect(
            done,
            returncode=1,
            summary=rf"\b{failing} failed",
            what=f"lastfailed ({env})",
        )
        stored = json.loads(value.read_text(encoding="utf-8"))
        if set(stored) != expected:
            raise BenchError(
                f"lastfailed ({env}): {len(stored)} entries after the run, wanted {len(expected)}"
            )
        hooks: dict[str, float] = json.loads(out.read_text(encoding="utf-8"))
        return hooks, done.seconds

    # ---------------------------------------------------------------- creation-race

    def creation_race(self) -> list[Result]:
        """Failed creators and time to first test, for each number of racing processes."""
        results = []
        for workers in self.settings.race_workers:
            times: dict[str, list[float]] = {FORK: [], STOCK: []}
            mkdir: dict[str, list[float]] = {FORK: [], STOCK: []}
            failures: dict[str, int] = {FORK: 0, STOCK: 0}
            leftovers: dict[str, int] = {FORK: 0, STOCK: 0}
            errors: dict[str, Counter[str]] = {FORK: Counter(), STOCK: Counter()}
            unreleased = 0
            for trial in range(1, self.settings.race_trials + 1):
                for env in ORDER:
                    race = self.race_once(env, workers, trial)
                    times[env].append(race.time_to_first_test)
                    mkdir[env].append(race.mkdir)
                    failures[env] += race.failures
                    leftovers[env] += race.leftovers
                    errors[env].update(race.errors)
                    unreleased += race.unreleased
                progress(
                    f"creation-race {workers} creators: trial {trial}/{self.settings.race_trials}: "
                    f"fork {times[FORK][-1]:.3g} s ({failures[FORK]} failed so far), "
                    f"stock {times[STOCK][-1]:.3g} s ({failures[STOCK]} failed so far)"
                )
            trials = self.settings.race_trials
            results.append(
                result_from_samples(
                    "creation-race",
                    "s",
                    times,
                    variant=f"{workers} creators",
                    workers=workers,
                    trials=trials,
                    creators=workers * trials,
                    fork_failures=failures[FORK],
                    stock_failures=failures[STOCK],
                    fork_leftovers=leftovers[FORK],
                    stock_leftovers=leftovers[STOCK],
                    fork_mkdir_ms=round(1000 * median(mkdir[FORK]), 3),
                    stock_mkdir_ms=round(1000 * median(mkdir[STOCK]), 3),
                    fork_errors=dict(errors[FORK].most_common(3)),
                    stock_errors=dict(errors[STOCK].most_common(3)),
                    barrier_timeouts=unreleased,
                )
            )
        return results

    def race_once(self, env: str, workers: int, trial: int) -> RaceOutcome:
        """Start ``workers`` pytest processes together on a fresh project and judge them."""
        files = {"conftest.py": RACE_CONFTEST, "test_race.py": RACE_TEST}
        project = write_files(self.workdir / "race" / f"{env}-{workers}-{trial}", files)
        for sub in ("barrier", "results", "logs"):
            (project / sub).mkdir()
        args = [str(self.pythons[env]), "-m", "pytest", "-q", "-p", "no:xdist"]
        started = []
        with (project / "barrier.lock").open("wb") as gate:
            fcntl.flock(gate, fcntl.LOCK_EX)
            launch = time.time()
            for i in range(workers):
                with (project / "logs" / f"{i}.txt").open("wb") as log:
                    started.append(
                        subprocess.Popen(
                            args,
                            cwd=project,
                            env=scenarios.child_env(
                                {"BENCH_CREATOR_ID": str(i)}, write_bytecode=True
                            ),
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            in_time = wait_for_arrivals(project / "barrier", started)
            fcntl.flock(gate, fcntl.LOCK_UN)
        deadline = time.monotonic() + RUN_TIMEOUT
        codes = []
        for popen in started:
            try:
                codes.append(popen.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                for p in started:
                    p.kill()
                    p.wait()
                raise BenchError(
                    f"creation-race {env} x{workers}: still running after {RUN_TIMEOUT:.0f}s"
                ) from None
        outcome = dataclasses.replace(
            judge_race(project, codes, launch=launch), unreleased=int(not in_time)
        )
        shutil.rmtree(project, ignore_errors=True)
        return outcome


def wait_for_arrivals(
    barrier: Path, started: Sequence[subprocess.Popen[bytes]]
) -> bool:
    """Wait until every creator announced itself in ``barrier``; False after a timeout.

    A creator that exits before it arrives (a crash at startup) ends the wait
    too: it will never arrive, and the others must not wait for it.
    """
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while len(os.listdir(barrier)) < len(started):
        if time.monotonic() > deadline or any(p.poll() is not None for p in started):
            return False
        time.sleep(0.01)
    return True


@dataclasses.dataclass(frozen=True)
class RaceOutcome:
    """What one group of racing creators did."""

    failures: int
    time_to_first_test: float
    mkdir: float
    leftovers: int
    errors: Counter[str]
    #: 1 when the barrier's timeout, not the last arrival, released the group.
    unreleased: int = 0


def judge_race(project: Path, codes: Sequence[int], *, launch: float) -> RaceOutcome:
    """Count the failed creators of a finished race (exit status, record, output) and time them.

    A creator failed when it exited non-zero, left no record, recorded a
    ``cache.mkdir`` error, or printed any of :data:`scenarios.FATAL_OUTPUT`.
    """
    failures = 0
    firsts, mkdirs = [], []
    errors: Counter[str] = Counter()
    for i, code in enumerate(codes):
        output = (project / "logs" / f"{i}.txt").read_text(
            encoding="utf-8", errors="replace"
        )
        try:
            record = json.loads(
                (project / "results" / f"{i}.json").read_text(encoding="utf-8")
            )
        except (OSError, ValueError):
            record = None
        failed = (
            code != 0
            or record is None
            or any(s in output for s in scenarios.FATAL_OUTPUT)
        )
        if record is not None:
            firsts.append(float(record["first_test"]) - launch)
            mkdirs.append(float(record["mkdir"]))
            if record["error"]:
                failed = True
                errors[re.sub(r"'[^']*'", "'...'", str(record["error"]))] += 1
        elif code != 0:
            errors[f"exit {code} before the fixture"] += 1
        failures += failed
    leftovers = len(scenarios.leftovers(project))
    return RaceOutcome(failures, median(firsts), median(mkdirs), leftovers, errors)


@contextlib.contextmanager
def memory_place(mountpoint: Path) -> Iterator[Path | None]:
    """A tmpfs directory for the run: one mounted at ``mountpoint`` (root), else ``/dev/shm``.

    The mount is private to the benchmark (other users of ``/dev/shm`` do not
    disturb it) and unmounted afterwards; None where neither is possible.
    """
    mounted = False
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
        mountpoint.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={TMPFS_SIZE}",
                "tmpfs",
                str(mountpoint),
            ],
            capture_output=True,
            check=False,
        )
        mounted = done.returncode == 0
        if not mounted:
            progress(
                f"could not mount a tmpfs ({done.stderr.decode().strip()}): using /dev/shm"
            )
    try:
        if mounted:
            yield mountpoint
        else:
            shm = memory_filesystem()
            yield None if shm is None else shm / f"pytest-bench-{os.getpid()}"
    finally:
        if mounted:
            subprocess.run(
                ["umount", str(mountpoint)], capture_output=True, check=False
            )
        else:
            shutil.rmtree(
                Path("/dev/shm") / f"pytest-bench-{os.getpid()}", ignore_errors=True
            )


#: A line of ``strace -f`` output: optional pid, then the call's name.
STRACE_CALL = re.compile(r"^(?:\d+\s+)?([a-z_0-9]+)\(")


def syscalls_between(trace: str, start: str, end: str) -> int:
    """System calls in an strace log between the marker stats ``start`` and ``end`` (exclusive)."""
    inside = False
    count = 0
    for line in trace.splitlines():
        if "/pytest-bench-marker/" in line:
            if "/pytest-bench-marker/" + start + '"' in line:
                inside, count = True, 0
            elif inside and "/pytest-bench-marker/" + end + '"' in line:
                return count
            continue
        if inside and STRACE_CALL.match(line) and "resumed>" not in line:
            count += 1
    raise BenchError(f"strace log without the markers {start}/{end}")


#: A write call in ``strace -y`` output, on a descriptor of a file in ``.pytest_cache``.
STRACE_CACHE_WRITE = re.compile(
    r"^(?:\d+\s+)?(?:write|pwrite64|writev)\(\d+<[^>]*/\.pytest_cache/[^>]*>.*= (\d+)$"
)


def cache_writes(trace: str) -> tuple[int, int]:
    """Write calls to files under ``.pytest_cache`` in an ``strace -y`` log, and their bytes."""
    calls = written = 0
    for line in trace.splitlines():
        match = STRACE_CACHE_WRITE.match(line)
        if match:
            calls += 1
            written += int(match.group(1))
    return calls, written


def cache_snapshot(cachedir: Path) -> dict[str, tuple[int, int, int]]:
    """Inode, size and mtime of every file below ``cachedir``: a rewrite changes one of them."""
    out = {}
    for dirpath, _, filenames in os.walk(cachedir):
        for name in filenames:
            path = Path(dirpath, name)
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            out[str(path.relative_to(cachedir))] = (
                st.st_ino,
                st.st_size,
                st.st_mtime_ns,
            )
    return out


# --------------------------------------------------------------------------- output


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from ``/proc/mounts``), or ``?``."""
    best, kind = "", "?"
    target = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return kind
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def memory_filesystem() -> Path | None:
    """A writable tmpfs directory (``/dev/shm``), or None where there is none."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and filesystem_of(shm) == "tmpfs":
        return shm
    return None


def machine_info() -> dict[str, object]:
    """Where the figures come from: CPU, cores, OS, Python, and the load now."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def to_document(results: Sequence[Result], **meta: object) -> dict[str, object]:
    """The JSON document: ``{"results": [...]}`` plus what the run was made of."""
    document: dict[str, object] = {"results": [r.to_json() for r in results]}
    document.update(meta)
    return document


def format_number(value: object) -> str:
    """A figure for the table: 4 significant digits, or a dash."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
    ):
        return "-"
    return f"{value:.4g}"


def format_table(document: Mapping[str, object]) -> str:
    """A markdown table of the results (one row per name and variant)."""
    rows = [
        "| benchmark | variant | fork | stock | unit | fork/stock | target | CPU fork/stock |",
        "|---|---|---|---|---|---|---|---|",
    ]
    entries = document.get("results")
    for entry in entries if isinstance(entries, list) else []:
        name = str(entry.get("name"))
        variant = str(entry.get("variant") or "")
        fork, stock = (
            format_number(entry.get("fork")),
            format_number(entry.get("stock")),
        )
        if name == "creation-race":
            fork += f" ({entry.get('fork_failures')}/{entry.get('creators')} failed)"
            stock += f" ({entry.get('stock_failures')}/{entry.get('creators')} failed)"
        met = target_met(entry)
        wanted = target_text(entry)
        verdict = {True: "met", False: "MISSED", None: ""}[met]
        target = f"{wanted}: {verdict}" if wanted and verdict else ""
        ratio = format_number(entry.get("ratio"))
        rows.append(
            f"| {name} | {variant} | {fork} | {stock} | {entry.get('unit')} | {ratio} | {target} "
            f"| {format_number(entry.get('cpu_ratio')) if 'cpu_ratio' in entry else ''} |"
        )
    return "\n".join(rows)


def _nice_step(span: float, ticks: int = 5) -> float:
    """A round axis step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


CHART_TITLE = "Creation race: time from launch to first test"
CHART_X_LABEL = "concurrent creators of a fresh cache (processes, log scale)"


def render_chart(document: Mapping[str, object]) -> str:
    """An SVG line chart of the creation race: time to first test against creators, fork and stock."""
    entries = document.get("results")
    race = sorted(
        (
            e
            for e in (entries if isinstance(entries, list) else [])
            if e.get("name") == "creation-race"
        ),
        key=lambda e: int(e["workers"]),
    )
    if not race:
        raise BenchError("no creation-race results to chart")
    width, height = 720, 440
    left, right, top, bottom = 70, 110, 60, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    workers = [int(e["workers"]) for e in race]
    lo, hi = math.log2(min(workers)), math.log2(max(workers))
    values = [
        float(e[env]) for e in race for env in ORDER if math.isfinite(float(e[env]))
    ]
    step = _nice_step(max(values, default=1.0))
    y_max = step * math.ceil(max(values, default=1.0) / step) or step

    def x(n: int) -> float:
        return left + (
            plot_w * (math.log2(n) - lo) / (hi - lo) if hi > lo else plot_w / 2
        )

    def y(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    machine = (
        document.get("machine") if isinstance(document.get("machine"), dict) else {}
    )
    assert isinstance(machine, dict)
    envs_info = document.get("envs") if isinstance(document.get("envs"), dict) else {}
    assert isinstance(envs_info, dict)
    load = machine.get("load")
    subtitle = (
        f"{race[0].get('trials', '?')} trial(s) per point, median of all creators; "
        f"{machine.get('cores', '?')} cores ({machine.get('cpu', '?')})"
        + (f", load {load[0]}" if isinstance(load, list) and load else "")
    )
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
        ),
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="24" font-size="16" font-weight="bold">{escape(CHART_TITLE)}</text>',
        f'<text x="{left}" y="44" fill="#555">{escape(subtitle)}</text>',
    ]
    tick = 0.0
    while tick <= y_max + step / 2:
        ty = y(tick)
        out.append(
            f'<line x1="{left}" y1="{ty:.1f}" x2="{left + plot_w}" y2="{ty:.1f}" stroke="#ddd"/>'
        )
        out.append(
            f'<text x="{left - 8}" y="{ty + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
        tick += step
    for n in workers:
        out.append(
            f'<text x="{x(n):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{n}</text>'
        )
    out += [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>',
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 16}" text-anchor="middle">{escape(CHART_X_LABEL)}</text>',
        f'<text transform="translate(18 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">seconds</text>',
    ]
    styles = {FORK: ("#1f77b4", ""), STOCK: ("#d62728", ' stroke-dasharray="6 4"')}
    for n_env, env in enumerate(ORDER):
        color, dash = styles[env]
        points = [
            (x(int(e["workers"])), y(float(e[env])))
            for e in race
            if math.isfinite(float(e[env]))
        ]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
        )
        for e, (px, py) in zip(race, points, strict=False):
            out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{color}"/>')
            failed = e.get(f"{env}_failures")
            if failed:
                dy = 16 if env == STOCK else -10
                note = f"{failed}/{e.get('creators')} failed"
                out.append(
                    f'<text x="{px + 6:.1f}" y="{py + dy:.1f}" fill="{color}">{note}</text>'
                )
        failed = sum(int(str(e.get(f"{env}_failures") or 0)) for e in race)
        creators = sum(int(str(e.get("creators") or 0)) for e in race)
        legend = f"{env} {envs_info.get(env, '')}: {failed}/{creators} creators failed"
        lx, ly = left + 16, top + 14 + 20 * n_env
        out.append(
            f'<line x1="{lx}" y1="{ly}" x2="{lx + 24}" y2="{ly}" '
            f'stroke="{color}" stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{lx + 30}" y="{ly + 4}">{escape(legend)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark the race-free fork against stock pytest of the same base (issue 12).",
    )
    parser.add_argument(
        "--base",
        default=DEFAULT_BASE,
        help="base release of both envs (default: %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer rounds and operations (< 5 minutes on 2 cores)",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        help="measured rounds (race: trials) of every benchmark",
    )
    parser.add_argument(
        "--workers",
        type=worker_counts,
        help="creation-race creators, comma-separated (default: 2,8,32,64)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=RUNS,
        help="run only this benchmark (repeatable; set-cost also counts syscalls)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write the results as JSON"
    )
    parser.add_argument(
        "--chart", type=Path, metavar="FILE", help="draw the creation race as SVG"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="run nothing: print the table (and --chart) of an earlier JSON",
    )
    parser.add_argument(
        "--env-root",
        type=Path,
        default=DEFAULT_ENV_ROOT,
        help="where the two envs live (default: %(default)s)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="scratch directory (default: a fresh temporary one, removed)",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=envs.REPO_ROOT,
        help="checkout the fork is built from (default: this one; or a 'git archive' export of a commit)",
    )
    return parser


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def worker_counts(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated numbers of creators, each at least 1."""
    try:
        return tuple(positive_int(part) for part in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from exc


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings the command line asks for."""
    settings = QUICK if args.quick else FULL
    if args.rounds:
        settings = dataclasses.replace(
            settings,
            suite_rounds=args.rounds,
            set_rounds=args.rounds,
            lastfailed_rounds=args.rounds,
            race_trials=args.rounds,
        )
    if args.workers:
        settings = dataclasses.replace(settings, race_workers=args.workers)
    return settings


def prepare_envs(
    base: str, root: Path, *, repo: Path = envs.REPO_ROOT
) -> tuple[dict[str, Path], dict[str, str]]:
    """Build or reuse the fork and stock envs; return their interpreters and pytest versions."""
    pythons = {}
    versions = {}
    for env, version in ((FORK, f"{envs.FORK}@{base}"), (STOCK, base)):
        progress(
            f"env {env}: building or reusing pytest {version} + pytest-xdist {envs.XDIST_VERSION} in {root}"
        )
        try:
            pythons[env] = envs.ensure_env(version, root=root, repo=repo.resolve())
        except envs.EnvError as exc:
            raise BenchError(f"env {env}: {exc}") from exc
        versions[env] = envs.probe_versions(pythons[env])["pytest"]
    if not versions[FORK].startswith(f"{base}+"):
        raise BenchError(
            f"the fork env holds pytest {versions[FORK]}, not a build of base {base}"
        )
    return pythons, versions


def emit(document: Mapping[str, object], args: argparse.Namespace) -> None:
    """Print the table; write the JSON and the chart where asked."""
    print(format_table(document))
    lines = target_lines(document)
    if lines:
        print("\nTargets (issue 12):")
        print("\n".join(lines))
    if args.json and not args.from_json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        progress(f"wrote {args.json}")
    if args.chart:
        args.chart.parent.mkdir(parents=True, exist_ok=True)
        args.chart.write_text(render_chart(document), encoding="utf-8")
        progress(f"wrote {args.chart}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks the command line selects; 0 when every one produced its figures."""
    args = build_parser().parse_args(argv)
    try:
        if args.from_json:
            emit(json.loads(args.from_json.read_text(encoding="utf-8")), args)
            return 0
        settings = settings_for(args)
        started = time.monotonic()
        machine = machine_info()
        progress(
            f"load average {machine['load']} on {machine['cores']} cores (rerun when the machine is quiet)"
        )
        pythons, versions = prepare_envs(args.base, args.env_root, repo=args.repo)
        scratch = args.workdir or Path(tempfile.mkdtemp(prefix="pytest-bench-"))
        bench = Bench(pythons, scratch, settings)
        runners: dict[str, Callable[[], list[Result]]] = {
            "suite-run": bench.suite_run,
            "set-cost": bench.set_cost,
            "set-throughput": bench.set_throughput,
            "steady-state-writes": bench.steady_state_writes,
            "lastfailed-session-end": bench.lastfailed_session_end,
            "lastfailed-100k": bench.lastfailed_100k,
            "creation-race": bench.creation_race,
        }
        results: list[Result] = []
        try:
            for name in args.only or RUNS:
                results += runners[name]()
        finally:
            if args.workdir is None:
                shutil.rmtree(scratch, ignore_errors=True)
        document = to_document(
            results,
            base=args.base,
            envs={**versions, "pytest-xdist": envs.XDIST_VERSION},
            machine={
                **machine,
                "load_after": [round(x, 2) for x in os.getloadavg()],
                "filesystem": filesystem_of(scratch),
            },
            settings=dataclasses.asdict(settings),
            quick=args.quick,
            date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            duration_s=round(time.monotonic() - started, 1),
        )
        emit(document, args)
    except (BenchError, OSError, ValueError) as exc:
        progress(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
