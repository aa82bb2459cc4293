"""Which pytest releases have each cache race, and where our build stands.

The README's main job: run ``python scripts/matrix.py`` on any machine with Python
3.11 and registry access (``tox -e matrix`` does the same). By default it takes
every pytest release from 8.1.0 to the newest 9.x on the registry (pre-releases
and yanked releases excluded) plus ``fork`` (this checkout, built by its in-tree
backend), builds or reuses one cached env per version (``scripts/envs.py``), runs
every racing scenario of ``scripts/scenarios.py`` against each and prints a table
(versions by scenarios) and a summary per scenario. ``--json FILE`` keeps the
results. Exit status: 0 when every cell has a verdict, 1 when some are "error",
2 on a usage error.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from collections.abc import Sequence
from concurrent.futures import as_completed
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
import dataclasses
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import envs
import scenarios


#: Oldest release in the default matrix (the last one before the 8.2.0 regression
#: series); the newest major included.
MIN_VERSION = (8, 1, 0)
MAX_MAJOR = 9
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


class UsageError(Exception):
    """A command-line value that cannot be used."""


class RegistryError(Exception):
    """The list of pytest releases could not be read from the registry."""


@dataclasses.dataclass(frozen=True)
class Result:
    """One cell of the matrix."""

    version: str
    scenario: str
    verdict: scenarios.Verdict
    detail: str


def release_key(version: str) -> tuple[int, ...] | None:
    """The numeric key of a final release ("8.2.0"), None for anything else (rc, dev, local)."""
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        return None
    return tuple(int(part) for part in version.split("."))


def select_versions(
    available: Iterable[str],
    *,
    minimum: tuple[int, ...] = MIN_VERSION,
    max_major: int = MAX_MAJOR,
) -> list[str]:
    """Final releases from ``minimum`` to the newest ``max_major``.x, oldest first."""
    keyed = {}
    for version in available:
        key = release_key(version.strip())
        if key is not None and minimum <= key and key[0] <= max_major:
            keyed[key] = version.strip()
    return [keyed[key] for key in sorted(keyed)]


def parse_pip_index(output: str) -> list[str]:
    """The versions listed by ``pip index versions`` ("Available versions: a, b")."""
    for line in output.splitlines():
        if line.strip().startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    raise RegistryError("no 'Available versions:' line in pip's answer")


def registry_versions(package: str = "pytest") -> list[str]:
    """Ask the registry (through pip, which skips yanked releases) for ``package``'s versions."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "index",
        "versions",
        package,
        "--disable-pip-version-check",
    ]
    try:
        done = subprocess.run(
            cmd,
            check=False,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegistryError(f"{' '.join(cmd)}: {exc}") from exc
    if done.returncode != 0:
        raise RegistryError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    return parse_pip_index(done.stdout)


def default_versions() -> list[str]:
    """Every release in range on the registry, plus ``fork``."""
    versions = select_versions(registry_versions())
    if not versions:
        raise RegistryError("the registry lists no pytest release in range")
    return [*versions, envs.FORK]


def split_list(
    text: str, *, allowed: Sequence[str] | None = None, what: str
) -> list[str]:
    """Split a comma list, rejecting empty items and names outside ``allowed``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError(f"no {what} given")
    unknown = [item for item in items if allowed is not None and item not in allowed]
    if unknown:
        raise UsageError(
            f"unknown {what}: {', '.join(unknown)} (known: {', '.join(allowed or [])})"
        )
    return items


def validate_versions(versions: Sequence[str]) -> None:
    """Accept final or pre-release version strings and ``fork``; reject anything else."""
    bad = [
        v
        for v in versions
        if v != envs.FORK
        and not re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.dev\d+)?", v)
    ]
    if bad:
        raise UsageError(f"not a pytest version: {', '.join(bad)}")


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
    parser.add_argument(
        "--root",
        type=Path,
        default=envs.DEFAULT_ROOT,
        help="env cache (default: %(default)s)",
    )
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
    first = max([len("version"), *map(len, versions)])
    widths = [max(len(n), 5) for n in names]
    lines = [
        "  ".join(
            [
                "version".ljust(first),
                *(n.ljust(w) for n, w in zip(names, widths, strict=True)),
            ]
        )
    ]
    lines.append("  ".join(["-" * first, *("-" * w for w in widths)]))
    for version in versions:
        row = [
            cells.get((version, n), "-").ljust(w)
            for n, w in zip(names, widths, strict=True)
        ]
        lines.append("  ".join([version.ljust(first), *row]).rstrip())
    return "\n".join(lines)


def summarize(name: str, verdicts: Sequence[tuple[str, scenarios.Verdict]]) -> str:
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


class Progress:
    """Progress lines on stdout, stamped with the seconds since the start.

    Not stderr: tox shows a command's stderr in red, and these are not errors.
    """

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self.lock:
            print(
                f"[{time.monotonic() - self.start:6.1f}s] {message}",
                flush=True,
            )


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
    progress: Progress,
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
    progress = Progress()
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
    progress(f"done in {time.monotonic() - progress.start:.0f}s")
    return 1 if any(r.verdict == "error" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
