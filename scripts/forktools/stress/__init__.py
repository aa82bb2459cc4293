"""Run every racing scenario many times against one pytest and count the failures.

Developers run it before closing a concurrency issue, and CI may run a short
version: ``python scripts/stress.py --runs 50 --runs-for mkdir-race=200`` (``tox
-e stress``). It uses one cached env (default ``fork``, i.e. this checkout;
``--version 8.2.0`` shows stock failing), runs each scenario of
``forktools.scenarios`` R times in fresh dirs (the creation race with
``--workers`` xdist workers, 8 by default, plus ``kill-random``: a kill at a
random cache write, then a rerun that must work), prints one progress line per
trial and a table of trials and failures per scenario. Exit status: 0 when no
trial was bad or error, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
import dataclasses
import os
from pathlib import Path
import random
import re
import shutil
import sys
import tempfile
import threading

from forktools import envs
from forktools import report
from forktools import scenarios


DEFAULT_RUNS = 10
DEFAULT_WORKERS = 8
#: How many distinct failure details to print per scenario.
SHOWN_FAILURES = 3

DESCRIPTION = """\
Run each racing scenario R times against one env and print trials and
failures per scenario.
"""


class UsageError(Exception):
    """A command-line value that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of one scenario."""

    scenario: str
    index: int
    seed: int
    verdict: scenarios.Verdict
    detail: str
    workdir: Path


def build_parser() -> argparse.ArgumentParser:
    """The command line of the stress run."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument(
        "--version",
        default=envs.FORK,
        help="pytest release or 'fork' (default: %(default)s)",
    )
    parser.add_argument(
        "--python", type=Path, help="use this interpreter instead of a cached env"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        help="trials per scenario (default: %(default)s)",
    )
    parser.add_argument(
        "--runs-for",
        action="append",
        default=[],
        metavar="NAME=N",
        help="trials for one scenario (repeatable)",
    )
    parser.add_argument(
        "--scenarios",
        help=f"comma list (default: all: {','.join(scenarios.SCENARIOS)})",
    )
    scenarios.add_run_options(parser, workers=DEFAULT_WORKERS)
    parser.add_argument(
        "--jobs", type=int, default=max(1, os.cpu_count() or 1), help="parallel trials"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="base seed of kill-random (default: random)",
    )
    envs.add_root_option(parser)
    parser.add_argument(
        "--keep-failures", action="store_true", help="keep work dirs of failed trials"
    )
    return parser


def plan(names: Sequence[str], runs: int, overrides: Sequence[str]) -> dict[str, int]:
    """Trials per scenario from ``--runs`` and ``--runs-for NAME=N`` items."""
    counts = dict.fromkeys(names, runs)
    for item in overrides:
        name, sep, number = item.partition("=")
        if not sep or name not in scenarios.SCENARIOS or not number.isdigit():
            raise UsageError(
                f"--runs-for wants NAME=N with a known scenario, got {item!r}"
            )
        counts[name] = int(number)
    if any(n < 0 for n in counts.values()) or not any(counts.values()):
        raise UsageError("nothing to run")
    return {name: n for name, n in counts.items() if n > 0}


def render_report(trials: Sequence[Trial], names: Sequence[str]) -> str:
    """Trials and failures per scenario, then the most frequent failure details."""
    rows = []
    for name in names:
        mine = [t for t in trials if t.scenario == name]
        if mine:
            verdicts = Counter(t.verdict for t in mine)
            rows.append(
                [name, len(mine), verdicts["good"], verdicts["bad"], verdicts["error"]]
            )
    lines = [
        report.table(
            ["scenario", "trials", "good", "bad", "error"],
            rows,
            style="plain",
            align=["left", "right", "right", "right", "right"],
        )
    ]
    for name in names:
        details = Counter(
            re.sub(r"pytest-cache-files-[\w.-]+", "pytest-cache-files-*", t.detail)
            for t in trials
            if t.scenario == name and t.verdict != "good"
        )
        for detail, n in details.most_common(SHOWN_FAILURES):
            lines.append(f"  {name}: {n}x {detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the stress trials the command line asks for; see the module docstring."""
    args = build_parser().parse_args(argv)
    try:
        names = [
            n.strip()
            for n in (args.scenarios or ",".join(scenarios.SCENARIOS)).split(",")
            if n.strip()
        ]
        unknown = [n for n in names if n not in scenarios.SCENARIOS]
        if unknown:
            raise UsageError(f"unknown scenarios: {', '.join(unknown)}")
        counts = plan(names, args.runs, args.runs_for)
        if args.workers < 2:
            raise UsageError("--workers must be at least 2")
    except UsageError as exc:
        print(f"stress: {exc}", file=sys.stderr)
        return 2
    say = report.Progress(stderr=True)
    lock = threading.Lock()

    if args.python:
        python = args.python
    else:
        say(f"env {args.version}: building or reusing")
        try:
            python = envs.ensure_env(args.version, root=args.root)
        except envs.EnvError as exc:
            say(f"env {args.version}: FAILED: {exc}")
            return 1
        say(
            f"env {args.version}: {envs.installed_version(args.version, root=args.root) or python}"
        )
    base_seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    say(
        f"base seed {base_seed}; trials: {', '.join(f'{n}={c}' for n, c in counts.items())}"
    )
    scratch = Path(tempfile.mkdtemp(prefix="race-stress-"))
    done: list[Trial] = []
    total = sum(counts.values())

    def trial(name: str, index: int) -> None:
        seed = base_seed + index
        workdir = scratch / f"{name}-{index}"
        began = say.elapsed()
        outcome = scenarios.run_scenario(
            name,
            python,
            workdir,
            timeout=args.timeout,
            barrier_timeout=args.barrier_timeout,
            workers=args.workers,
            seed=seed,
        )
        result = Trial(name, index, seed, outcome.verdict, outcome.detail, workdir)
        with lock:
            done.append(result)
            n = len(done)
        took = say.elapsed() - began
        shown = outcome.detail if outcome.verdict != "good" else ""
        say(
            f"{n}/{total} {name} #{index + 1}: {outcome.verdict} ({took:.1f}s) {shown}".rstrip()
        )
        if outcome.verdict == "good" or not args.keep_failures:
            shutil.rmtree(workdir, ignore_errors=True)

    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [
                pool.submit(trial, name, i)
                for name, n in counts.items()
                for i in range(n)
            ]
            for future in futures:
                future.result()
    finally:
        if not args.keep_failures:
            shutil.rmtree(scratch, ignore_errors=True)
    label = args.version if not args.python else str(args.python)
    print(f"stress against {label}, base seed {base_seed}, {say.elapsed():.0f}s")
    print(render_report(done, list(counts)))
    failed = [t for t in done if t.verdict != "good"]
    if failed and args.keep_failures:
        print(f"work dirs of failed trials kept in {scratch}")
    return 1 if failed else 0
