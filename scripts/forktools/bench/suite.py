"""Whole pytest processes: the 2,000-test suite, and what a session that changes nothing writes."""

from __future__ import annotations

from pathlib import Path
import shutil

from forktools.bench.config import FORK
from forktools.bench.config import ORDER
from forktools.bench.config import STOCK
from forktools.bench.config import SUITE_FAILING
from forktools.bench.config import SUITE_FILES
from forktools.bench.config import SUITE_TESTS_PER_FILE
from forktools.bench.config import SUITE_WORKERS
from forktools.bench.results import cpu_figures
from forktools.bench.results import Result
from forktools.bench.results import result_from_samples
from forktools.bench.running import alternate
from forktools.bench.running import Bench
from forktools.bench.running import expect
from forktools.bench.running import progress
from forktools.bench.running import run_pytest
from forktools.bench.running import suite_tests
from forktools.bench.traces import cache_snapshot
from forktools.bench.traces import cache_writes


def suite_run(bench: Bench) -> list[Result]:
    """Whole-process time of the 2,000-test project: emptied cache, then ``--lf``."""
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
                project = bench.project("suite", env, "suite", suite_tests())
                cachedir = project / ".pytest_cache"
                needed = cachedir / "v" / "cache" / "lastfailed" if lf else cachedir
                if not needed.exists():
                    _seed(bench, env, project)
                if not lf:
                    # Empty the cache but keep its directory: creating it
                    # with -n 2 is the creation race, which stock 8.2.0 can
                    # lose (#12381) and which creation-race measures.
                    for sub in ("v", "d"):
                        shutil.rmtree(cachedir / sub, ignore_errors=True)
                args = ["-q", *xdist, *(["--lf"] if lf else [])]
                done = run_pytest(bench.pythons[env], args, cwd=project)
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
                bench.settings.suite_rounds,
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
                    **cpu_figures(cpu[variant], bench.settings.suite_rounds),
                )
            )
    return results


def _seed(bench: Bench, env: str, project: Path) -> None:
    """Make the cache dir and a lastfailed with an unmeasured single-process run."""
    done = run_pytest(bench.pythons[env], ["-q", "-p", "no:xdist"], cwd=project)
    expect(
        done,
        returncode=1,
        summary=r"\bfailed",
        what=f"suite-run seeding --lf ({env})",
    )


def steady_state_writes(bench: Bench) -> list[Result]:
    """Files rewritten and bytes written in ``.pytest_cache`` by a session that changes nothing."""
    strace = shutil.which("strace") is not None
    rewritten: dict[str, list[float]] = {FORK: [], STOCK: []}
    written: dict[str, list[float]] = {FORK: [], STOCK: []}
    calls: dict[str, list[float]] = {FORK: [], STOCK: []}
    progress(
        "steady-state-writes: a third session of the 2,000-test project"
        + ("" if strace else " (strace not found: write calls not counted)")
    )
    for env in ORDER:
        project = bench.project("steady", env, None, suite_tests())
        cachedir = project / ".pytest_cache"
        shutil.rmtree(cachedir, ignore_errors=True)
        args = ["-q", "-p", "no:xdist"]
        for _ in range(2):  # The first creates everything, the second settles.
            run_pytest(bench.pythons[env], args, cwd=project)
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
            bench.pythons[env], args, cwd=project, prefix=prefix if strace else []
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
            count, _ = cache_writes(trace.read_text(encoding="utf-8", errors="replace"))
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
