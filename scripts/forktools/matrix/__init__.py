"""Which pytest releases have each cache race, and where our build stands.

The README's main job: run ``python scripts/matrix.py`` on any machine with Python
3.11 and registry access (``tox -e matrix`` does the same). By default it takes
every pytest release from 8.1.0 to the newest 9.x on the registry (pre-releases
and yanked releases excluded) plus ``fork`` (this checkout, built by its in-tree
backend), builds or reuses one cached env per version (``forktools.envs``), runs
every racing scenario of ``forktools.scenarios`` against each and prints a table
(versions by scenarios) and a summary per scenario. ``--json FILE`` keeps the
results. Exit status: 0 when every cell has a verdict, 1 when some are "error",
2 on a usage error.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from concurrent.futures import as_completed
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
import dataclasses
import json
import os
from pathlib import Path
import shutil
import sys
import tempfile
import threading
import time

from forktools import envs
from forktools import report
from forktools import scenarios
from forktools.matrix.versions import default_versions
from forktools.matrix.versions import RegistryError
from forktools.matrix.versions import split_list
from forktools.matrix.versions import UsageError
from forktools.matrix.versions import validate_versions
from forktools.scenarios import Verdict


CELL = {"good": "good", "bad": "BAD", "error": "error"}

DESCRIPTION = """\
Run every racing scenario against pytest releases and our fork; print a table
of good/BAD/error and a summary per scenario.
"""

EPILOG = """\
A cell is "good" when the scenario's forced interleaving did no damage, "BAD"
when it did (the detail says what), "error" when the harness could not tell
(env build failed, a timeout, or the race could not be forced). Envs are cached
in $PYTEST_RACE_MATRIX_CACHE or ~/.cache/pytest-race-matrix.
"""


@dataclasses.dataclass(frozen=True)
class Result:
    """One cell of the matrix."""

    version: str
    scenario: str
    verdict: Verdict
    detail: str


def build_parser() -> argparse.ArgumentParser:
    """The command line of the matrix."""
    parser = argparse.ArgumentParser(
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--versions",
        help="comma list, e.g. 8.1.2,8.2.0,fork (default: registry 8.1.0..9.x + fork)",
    )
    parser.add_argument(
        "--scenarios",
        help=f"comma list (default: {','.join(scenarios.MATRIX_SCENARIOS)})",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write the results as JSON"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=max(1, os.cpu_count() or 1),
        help="parallel jobs (default: %(default)s)",
    )
    scenarios.add_run_options(parser)
    envs.add_root_option(parser)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the scenario work dirs and print where",
    )
    return parser


def render_table(
    results: Sequence[Result], versions: Sequence[str], names: Sequence[str]
) -> str:
    """Versions as rows, scenarios as columns, good/BAD/error cells."""
    cells = {(r.version, r.scenario): CELL[r.verdict] for r in results}
    rows = [[v, *(cells.get((v, n), "-") for n in names)] for v in versions]
    return report.table(["version", *names], rows)


def summarize(name: str, verdicts: Sequence[tuple[str, Verdict]]) -> str:
    """One line per scenario: "mkdir-race: first bad 8.2.0, fixed in 8.2.2; fork good".

    ``verdicts`` are (version, verdict) pairs, releases oldest first; ``fork`` may
    appear anywhere and is reported last.
    """
    fork = [v for version, v in verdicts if version == envs.FORK]
    stock = [(version, v) for version, v in verdicts if version != envs.FORK]
    parts = []
    judged = [(version, v) for version, v in stock if v != "error"]
    if len(judged) == 1:
        parts.append(f"{judged[0][1]} in {judged[0][0]}")
    elif judged and all(v == "bad" for _, v in judged):
        parts.append(f"bad in every release tested ({judged[0][0]} to {judged[-1][0]})")
    elif judged and all(v == "good" for _, v in judged):
        parts.append(
            f"good in every release tested ({judged[0][0]} to {judged[-1][0]})"
        )
    else:
        spans: list[tuple[str, str | None]] = []  # (first bad, first good after it)
        previous = "good"
        for version, verdict in judged:
            if verdict == "bad" and previous != "bad":
                spans.append((version, None))
            elif verdict == "good" and previous == "bad":
                spans[-1] = (spans[-1][0], version)
            previous = verdict
        for i, (first_bad, fixed) in enumerate(spans):
            head = "first bad" if i == 0 else "bad again in"
            if fixed:
                parts.append(f"{head} {first_bad}, fixed in {fixed}")
            elif first_bad != judged[-1][0]:
                parts.append(f"{head} {first_bad}, still bad in {judged[-1][0]}")
            else:
                parts.append(f"{head} {first_bad}")
    errors = [version for version, v in stock if v == "error"]
    if errors:
        parts.append(f"error in {', '.join(errors)}")
    if fork:
        parts.append(f"fork {fork[-1]}")
    return f"{name}: {'; '.join(parts) or 'nothing measured'}"


def results_json(results: Sequence[Result]) -> dict[str, list[dict[str, str]]]:
    """The ``--json`` document."""
    return {"results": [dataclasses.asdict(r) for r in results]}


def run_matrix(
    versions: Sequence[str],
    names: Sequence[str],
    *,
    jobs: int,
    root: Path,
    workers: int,
    timeout: float,
    barrier_timeout: float,
    scratch: Path,
    progress: report.Progress,
) -> list[Result]:
    """Build every env and run every scenario; results in table order."""
    total = len(versions) * len(names)
    done: list[Result] = []
    lock = threading.Lock()

    def build(version: str) -> Path:
        started = time.monotonic()
        progress(f"env {version}: building or reusing")
        python = envs.ensure_env(version, root=root)
        label = envs.installed_version(version, root=root) or version
        progress(f"env {version}: ready ({label}, {time.monotonic() - started:.1f}s)")
        return python

    def run_one(version: str, python: Path, name: str) -> Result:
        started = time.monotonic()
        outcome = scenarios.run_scenario(
            name,
            python,
            scratch / f"{version}-{name}",
            timeout=timeout,
            barrier_timeout=barrier_timeout,
            workers=workers,
        )
        result = Result(version, name, outcome.verdict, outcome.detail)
        with lock:
            done.append(result)
            n = len(done)
        took = time.monotonic() - started
        progress(
            f"{n}/{total} {version} {name}: {CELL[result.verdict]} ({took:.1f}s) {result.detail}"
        )
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        env_futures: dict[Future[Path], str] = {
            pool.submit(build, v): v for v in versions
        }
        runs: list[Future[Result]] = []
        for future in as_completed(env_futures):
            version = env_futures[future]
            try:
                python = future.result()
            except envs.EnvError as exc:
                first_line = str(exc).splitlines()[0] if str(exc) else "failed"
                progress(f"env {version}: FAILED: {exc}")
                for name in names:
                    with lock:
                        done.append(
                            Result(version, name, "error", f"env: {first_line}")
                        )
                continue
            runs.extend(pool.submit(run_one, version, python, name) for name in names)
        for run in runs:
            run.result()
    order = {
        (v, n): i for i, (v, n) in enumerate((v, n) for v in versions for n in names)
    }
    return sorted(done, key=lambda r: order[(r.version, r.scenario)])


def main(argv: list[str] | None = None) -> int:
    """Run the matrix as the command line says; see the module docstring for exit statuses."""
    args = build_parser().parse_args(argv)
    # stdout, not stderr: tox shows a command's stderr in red, and these are not errors.
    progress = report.Progress()
    try:
        names = (
            split_list(
                args.scenarios, allowed=list(scenarios.SCENARIOS), what="scenarios"
            )
            if args.scenarios
            else list(scenarios.MATRIX_SCENARIOS)
        )
        if args.versions:
            versions = split_list(args.versions, what="versions")
            validate_versions(versions)
        else:
            progress("asking the registry for pytest releases")
            versions = default_versions()
    except (UsageError, RegistryError) as exc:
        print(f"matrix: {exc}", file=sys.stderr)
        return 2
    progress(
        f"{len(versions)} versions x {len(names)} scenarios, {args.jobs} jobs: {', '.join(versions)}"
    )
    scratch = Path(tempfile.mkdtemp(prefix="race-matrix-"))
    try:
        results = run_matrix(
            versions,
            names,
            jobs=args.jobs,
            root=args.root,
            workers=args.workers,
            timeout=args.timeout,
            barrier_timeout=args.barrier_timeout,
            scratch=scratch,
            progress=progress,
        )
    finally:
        if args.keep:
            progress(f"work dirs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(render_table(results, versions, names))
    print()
    for name in names:
        print(
            summarize(
                name, [(r.version, r.verdict) for r in results if r.scenario == name]
            )
        )
    if args.json:
        args.json.write_text(
            json.dumps(results_json(results), indent=2) + "\n", encoding="utf-8"
        )
        progress(f"results written to {args.json}")
    progress(f"done in {progress.elapsed():.0f}s")
    return 1 if any(r.verdict == "error" for r in results) else 0
