"""Racing scenarios for pytest's cache plugin: the one definition every tool shares.

The matrix (releases by scenarios), stress (one env, many trials), the bisect
predicate (one checkout, one verdict for ``git bisect run``), the benchmarks and
our race tests (``testing/test_cacheprovider_races.py``) run them through
:func:`run_scenario`. Interleavings are forced with file barriers, never with
sleeps; a harness timeout or crash is always "error", never "bad". The projects
the scenarios run are real files in ``projects/``; ``harness`` copies them into
each trial directory, ``races`` holds one runner per scenario.

Standard library only, and Python 3.8 syntax: the race tests import this in the
env under test.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
import random
import traceback
import typing

from forktools.scenarios import races
from forktools.scenarios.harness import DEFAULT_BARRIER_TIMEOUT
from forktools.scenarios.harness import DEFAULT_TIMEOUT
from forktools.scenarios.harness import DEFAULT_WORKERS
from forktools.scenarios.harness import Outcome
from forktools.scenarios.harness import RunContext
from forktools.scenarios.harness import ScenarioError
from forktools.scenarios.harness import Verdict


__all__ = [
    "DEFAULT_BARRIER_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WORKERS",
    "MATRIX_SCENARIOS",
    "SCENARIOS",
    "Outcome",
    "Scenario",
    "Verdict",
    "add_run_options",
    "run_scenario",
]

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


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "mkdir-race",
            "#12381",
            "xdist workers create the cache dir at once",
            races.run_mkdir_race,
        ),
        Scenario(
            "permissions",
            "#12308",
            "cache dir and value modes follow the umask",
            races.run_permissions,
        ),
        Scenario(
            "torn-read",
            "#12410",
            "a reader sees a value half rewritten",
            races.run_torn_read,
        ),
        Scenario(
            "cache-clear-late-worker",
            "#6670",
            "a replacement worker re-runs --cache-clear",
            races.run_cache_clear_late_worker,
        ),
        Scenario(
            "crash-leftovers",
            "",
            "a kill while publishing leaves temp dirs forever",
            races.run_crash_leftovers,
        ),
        Scenario(
            "lastfailed-lost-update",
            "#6423",
            "overlapping sessions overwrite lastfailed",
            races.run_lastfailed_lost_update,
        ),
        Scenario(
            "umask-flip",
            "#12308",
            "publishing the cache dir changes the process umask",
            races.run_umask_flip,
        ),
        Scenario(
            "lastfailed-fixed-test",
            "#6423",
            "a session that fixed a test erases others' new failures",
            races.run_lastfailed_fixed_test,
            in_matrix=False,
        ),
        Scenario(
            "lastfailed-finish-together",
            "#6423",
            "sessions writing lastfailed at one moment lose entries",
            races.run_lastfailed_finish_together,
            in_matrix=False,
        ),
        Scenario(
            "nodeids-lost-update",
            "#6423",
            "overlapping sessions overwrite cache/nodeids",
            races.run_nodeids_lost_update,
            in_matrix=False,
        ),
        Scenario(
            "kill-random",
            "",
            "a kill at a random cache write, then a rerun",
            races.run_kill_random,
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
    except Exception as exc:  # noqa: BLE001  (a harness bug is "error", never "bad")
        traceback.print_exc()
        return Outcome("error", f"harness crashed: {type(exc).__name__}: {exc}")
