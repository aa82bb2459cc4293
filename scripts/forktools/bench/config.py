"""What the benchmark measures and how much: names, sizes, rounds."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from forktools import envs


FORK = envs.FORK
STOCK = "stock"
#: Order of the envs inside a round: the alternation A B A B ...
ORDER = (FORK, STOCK)
DEFAULT_BASE = "8.2.0"
DEFAULT_ENV_ROOT = Path(
    os.environ.get("PYTEST_BENCH_ENVS")
    or envs.DEFAULT_ROOT.parent / "pytest-bench-envs"
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
