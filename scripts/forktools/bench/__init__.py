"""Benchmark the race-free fork against stock pytest of the same base release.

Run by a developer (``python scripts/bench.py`` or ``tox -e bench``) after any change
to the overlay or the build, and before the README's figures are refreshed; ``--quick``
is the smoke version (under 5 minutes on 2 cores, 3 more for callgrind's counts where
valgrind is installed). It builds or reuses two envs with
``forktools.envs``: the fork and stock ``pytest===<base>``, both with pytest-xdist
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
* ``set-instructions``: instructions per ``Cache.set``, counted by callgrind in
  one run per env and place (left out where valgrind is missing);
* ``set-throughput``: ``Cache.set`` operations per second (wall time), for insight;
* ``steady-state-writes``: files rewritten and bytes written in ``.pytest_cache``
  by a session that changes nothing (inode, size and mtime compared before and
  after; with strace, write calls to files under ``.pytest_cache`` counted too);
* ``lastfailed-session-end``: CPU time of the session end (``pytest_sessionfinish``
  and ``pytest_unconfigure``, timed by outermost hook wrappers: merge, lock,
  signature and sweep included) with 1,000 to 1,000,000 lastfailed entries on disk,
  in the cache that the same build's previous session left, and the peak memory of
  the process (``lastfailed-memory``); ``switch-session-end``: the same at 1,000
  entries in the cache stock left (the fork's first session after stock's);
* ``lastfailed-100k``: the same with 100,000 entries in wall time, with the
  session start and the whole process; ``session-start``: the CPU time of the
  session start (``pytest_configure``, where lastfailed is read, and
  ``pytest_sessionstart``) with 100,000 entries; ``session-start-instructions``
  and ``session-end-instructions``: the instructions they execute, counted by
  callgrind in one run per env, the session end also at 1,000 entries (left
  out, with a note on stderr, where valgrind is missing);
* ``creation-race``: 2, 8, 32 and 64 plain pytest processes started together on
  a fresh directory, held at a barrier (a lock the benchmark releases once all
  have arrived) and then calling ``config.cache.mkdir`` at the same moment:
  failed creators and time from launch to the first test.

The targets of issues 12 and 17 are printed as PASS/MISS lines after the table.

The shared machine makes single timings noisy: check ``uptime`` first, rerun when
it is quiet, and trust ratios more than absolute figures (``suite-run`` also
records the CPU seconds of each run, which other users of the machine disturb
far less than wall time). Progress goes to
stderr, a markdown table to stdout, everything to ``--json``; ``--chart`` draws
the creation race as an SVG with matplotlib (also from an earlier JSON with ``--from-json``).
POSIX only (``flock`` for the barrier, ``getrusage`` for CPU time).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Mapping
import dataclasses
import datetime
import json
import os
from pathlib import Path
import shutil
import tempfile
import time

from forktools import envs
from forktools import REPO_ROOT
from forktools.bench.config import BenchError
from forktools.bench.config import DEFAULT_BASE
from forktools.bench.config import DEFAULT_ENV_ROOT
from forktools.bench.config import FORK
from forktools.bench.config import FULL
from forktools.bench.config import QUICK
from forktools.bench.config import RUNS
from forktools.bench.config import Settings
from forktools.bench.config import STOCK
from forktools.bench.lastfailed import lastfailed_100k
from forktools.bench.lastfailed import lastfailed_session_end
from forktools.bench.output import format_table
from forktools.bench.output import machine_info
from forktools.bench.output import render_chart
from forktools.bench.race import creation_race
from forktools.bench.results import Result
from forktools.bench.results import to_document
from forktools.bench.running import Bench
from forktools.bench.running import progress
from forktools.bench.setcost import set_cost
from forktools.bench.setcost import set_throughput
from forktools.bench.suite import steady_state_writes
from forktools.bench.suite import suite_run
from forktools.bench.targets import target_lines
from forktools.bench.traces import filesystem_of


#: What each name of ``--only`` runs.
RUNNERS: dict[str, Callable[[Bench], list[Result]]] = {
    "suite-run": suite_run,
    "set-cost": set_cost,
    "set-throughput": set_throughput,
    "steady-state-writes": steady_state_writes,
    "lastfailed-session-end": lastfailed_session_end,
    "lastfailed-100k": lastfailed_100k,
    "creation-race": creation_race,
}


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
        help="fewer rounds and operations (< 5 minutes on 2 cores; callgrind's counts, with valgrind, add about 3)",
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
        help="run only this benchmark (repeatable; set-cost also counts syscalls and, with valgrind, instructions)",
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
        default=REPO_ROOT,
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
    base: str, root: Path, *, repo: Path = REPO_ROOT
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
        print("\nTargets (issues 12 and 17):")
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
        results: list[Result] = []
        try:
            for name in args.only or RUNS:
                results += RUNNERS[name](bench)
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
