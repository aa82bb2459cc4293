"""The creation race: many plain pytest processes creating one fresh cache dir at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
import dataclasses
import fcntl
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import time

from forktools.bench.config import BARRIER_TIMEOUT
from forktools.bench.config import BenchError
from forktools.bench.config import FORK
from forktools.bench.config import ORDER
from forktools.bench.config import RUN_TIMEOUT
from forktools.bench.config import STOCK
from forktools.bench.results import median
from forktools.bench.results import Result
from forktools.bench.results import result_from_samples
from forktools.bench.running import Bench
from forktools.bench.running import progress
from forktools.bench.running import write_project
from forktools.scenarios import harness


def creation_race(bench: Bench) -> list[Result]:
    """Failed creators and time to first test, for each number of racing processes."""
    results = []
    for workers in bench.settings.race_workers:
        times: dict[str, list[float]] = {FORK: [], STOCK: []}
        mkdir: dict[str, list[float]] = {FORK: [], STOCK: []}
        failures: dict[str, int] = {FORK: 0, STOCK: 0}
        leftovers: dict[str, int] = {FORK: 0, STOCK: 0}
        errors: dict[str, Counter[str]] = {FORK: Counter(), STOCK: Counter()}
        unreleased = 0
        for trial in range(1, bench.settings.race_trials + 1):
            for env in ORDER:
                race = race_once(bench, env, workers, trial)
                times[env].append(race.time_to_first_test)
                mkdir[env].append(race.mkdir)
                failures[env] += race.failures
                leftovers[env] += race.leftovers
                errors[env].update(race.errors)
                unreleased += race.unreleased
            progress(
                f"creation-race {workers} creators: trial {trial}/{bench.settings.race_trials}: "
                f"fork {times[FORK][-1]:.3g} s ({failures[FORK]} failed so far), "
                f"stock {times[STOCK][-1]:.3g} s ({failures[STOCK]} failed so far)"
            )
        trials = bench.settings.race_trials
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


def race_once(bench: Bench, env: str, workers: int, trial: int) -> RaceOutcome:
    """Start ``workers`` pytest processes together on a fresh project and judge them."""
    project = write_project(bench.workdir / "race" / f"{env}-{workers}-{trial}", "race")
    for sub in ("barrier", "results", "logs"):
        (project / sub).mkdir()
    args = [str(bench.pythons[env]), "-m", "pytest", "-q", "-p", "no:xdist"]
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
                        env=harness.child_env(
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
    ``cache.mkdir`` error, or printed any of :data:`harness.FATAL_OUTPUT`.
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
            or any(s in output for s in harness.FATAL_OUTPUT)
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
    leftovers = len(harness.leftovers(project))
    return RaceOutcome(failures, median(firsts), median(mkdirs), leftovers, errors)
