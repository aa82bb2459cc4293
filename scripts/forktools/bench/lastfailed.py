"""Session start, session end and memory with large lastfailed files (1k to 1M entries)."""

from __future__ import annotations

from collections.abc import Sequence
import functools
import json
from pathlib import Path
import shutil

from forktools.bench.config import BenchError
from forktools.bench.config import FORK
from forktools.bench.config import LASTFAILED_BIG
from forktools.bench.config import LASTFAILED_NOW_FAILING
from forktools.bench.config import LASTFAILED_SIZES
from forktools.bench.config import LASTFAILED_TESTS
from forktools.bench.config import STOCK
from forktools.bench.results import median
from forktools.bench.results import Result
from forktools.bench.results import result_from_samples
from forktools.bench.running import alternate
from forktools.bench.running import Bench
from forktools.bench.running import Completed
from forktools.bench.running import expect
from forktools.bench.running import lastfailed_expected
from forktools.bench.running import lastfailed_seed
from forktools.bench.running import progress
from forktools.bench.running import run_pytest
from forktools.bench.traces import callgrind_stretches


def lastfailed_100k(bench: Bench) -> list[Result]:
    """Session start and end, and the whole process, with 100,000 lastfailed entries.

    ``session-start`` is the CPU time from the first ``pytest_configure``
    implementation (the cache plugin reads lastfailed in its own) to the end of
    ``pytest_sessionstart``: the target of issue 17.
    The wall times are kept for insight.
    """
    seed = lastfailed_seed()
    expected = lastfailed_expected(seed)
    seed_text = json.dumps(seed, ensure_ascii=False, indent=2)
    parts: dict[str, dict[str, list[float]]] = {}

    def measure(env: str) -> float:
        previous = _previous_cache(bench, env)
        hooks, seconds = _lastfailed_run(bench, env, seed_text, expected, previous)
        figures = {
            "session-end": hooks["sessionfinish"] + hooks["unconfigure"],
            "session-start": hooks["start"],
            "session-start-cpu": hooks["start_cpu"],
            "whole-process": seconds,
        }
        for variant, figure in figures.items():
            parts.setdefault(variant, {FORK: [], STOCK: []})[env].append(figure)
        return figures["session-start-cpu"]

    progress(f"lastfailed-100k: {len(seed):,} entries on disk")
    rounds = bench.settings.lastfailed_rounds
    alternate("lastfailed-100k session start", rounds, measure, unit="s CPU")
    last = {
        variant: {env: v[-rounds:] for env, v in samples.items()}
        for variant, samples in parts.items()
    }
    start_cpu = last.pop("session-start-cpu")
    results = [
        result_from_samples(
            "lastfailed-100k", "s", samples, variant=variant, entries=len(seed)
        )
        for variant, samples in last.items()
    ]
    wall = last["session-start"]
    results.append(
        result_from_samples(
            "session-start",
            "s CPU",
            start_cpu,
            variant=f"{len(seed):,} entries",
            entries=len(seed),
            fork_wall=round(median(wall[FORK]), 4),
            stock_wall=round(median(wall[STOCK]), 4),
        )
    )
    return results + _instructions(
        bench, seed_text, expected, len(seed), "start", "end"
    )


def _instructions(
    bench: Bench, seed_text: str, expected: set[str], entries: int, *stretches: str
) -> list[Result]:
    """The session's ``start`` and ``end`` in instructions under callgrind, one run per env.

    Exact where times are not: the same count run after run, so a difference
    of 1% is a fact on any machine.  The project's conftest marks both stretches
    (see :func:`callgrind_stretches`).  No results without valgrind.
    """
    counts: dict[str, dict[str, list[float]]] = {}
    for env in (FORK, STOCK):
        previous = _previous_cache(bench, env)
        stretched = callgrind_stretches(
            bench.project("lastfailed", env, "lastfailed") / "callgrind.out",
            3,
            f"session instructions ({env})",
            functools.partial(
                _lastfailed_run, bench, env, seed_text, expected, previous
            ),
        )
        if stretched is None:
            return []
        # The start; the end as timed: pytest_sessionfinish plus pytest_unconfigure.
        found = {"start": stretched[0], "end": stretched[1] + stretched[2]}
        for stretch in stretches:
            counts.setdefault(stretch, {})[env] = [float(found[stretch])]
            progress(f"session-{stretch}-instructions ({env}): {found[stretch]:,}")
    return [
        result_from_samples(
            f"session-{stretch}-instructions",
            "instructions",
            samples,
            variant=f"{entries:,} entries",
            entries=entries,
        )
        for stretch, samples in counts.items()
    ]


def lastfailed_session_end(bench: Bench) -> list[Result]:
    """Session end CPU time and peak memory for each size of lastfailed.

    Each build meets the cache its own previous session left; one more case,
    ``switch-session-end``, is the first session after stock's (the fork makes
    ``merge.lock`` and ``cache/lastrun`` once): stock meets its own cache there.
    """
    results = []
    cases = [(entries, None) for entries in LASTFAILED_SIZES]
    for entries, left_by in [*cases, (LASTFAILED_SIZES[0], STOCK)]:
        seed = lastfailed_seed(entries)
        expected = lastfailed_expected(seed)
        seed_text = json.dumps(seed, ensure_ascii=False, indent=2)
        rounds = bench.settings.lastfailed_rounds
        warmup = True
        big_rounds = bench.settings.big_lastfailed_rounds
        if entries >= LASTFAILED_BIG and big_rounds is not None:
            rounds, warmup = big_rounds, False
        parts: dict[str, dict[str, list[float]]] = {}

        def measure(
            env: str,
            seed_text: str = seed_text,
            expected: set[str] = expected,
            parts: dict[str, dict[str, list[float]]] = parts,
            left_by: str | None = left_by,
        ) -> float:
            previous = _previous_cache(bench, left_by or env)
            hooks, _ = _lastfailed_run(bench, env, seed_text, expected, previous)
            figures = {
                "cpu": hooks["sessionfinish_cpu"] + hooks["unconfigure_cpu"],
                "wall": hooks["sessionfinish"] + hooks["unconfigure"],
                "rss": hooks["maxrss_kb"] / 1024,
            }
            for part, value in figures.items():
                parts.setdefault(part, {FORK: [], STOCK: []})[env].append(value)
            return figures["cpu"]

        name = "lastfailed-session-end" if left_by is None else "switch-session-end"
        label = f"{entries:,} entries"
        progress(f"{name}: {label}")
        alternate(f"{name} {label}", rounds, measure, unit="s CPU", warmup=warmup)

        def last(
            part: str,
            rounds: int = rounds,
            parts: dict[str, dict[str, list[float]]] = parts,
        ) -> dict[str, list[float]]:
            return {env: v[-rounds:] for env, v in parts[part].items()}

        wall = last("wall")
        results.append(
            result_from_samples(
                name,
                "s CPU",
                last("cpu"),
                variant=label,
                entries=entries,
                fork_wall=round(median(wall[FORK]), 4),
                stock_wall=round(median(wall[STOCK]), 4),
            )
        )
        if left_by is None:
            results.append(
                result_from_samples(
                    "lastfailed-memory",
                    "MB",
                    last("rss"),
                    variant=label,
                    entries=entries,
                )
            )
        if left_by is None and entries == LASTFAILED_SIZES[0]:
            # The size where the two builds' session ends are closest.
            results += _instructions(bench, seed_text, expected, entries, "end")
    return results


def _previous_cache(bench: Bench, env: str) -> Path:
    """The cache that the first session of ``env`` leaves in the lastfailed project, saved once.

    Timed runs start from a copy of it with the seed as lastfailed.  A cache in
    use holds what the sessions before wrote: the supporting files, nodeids
    (every session writes it; 8.x writes stepwise too), the fork's
    ``merge.lock`` and ``cache/lastrun``.  No release leaves lastfailed alone.
    """
    saved = bench.workdir / "lastfailed" / f"previous-session-{env}"
    if not saved.is_dir():
        project = bench.project("lastfailed", env, "lastfailed")
        shutil.rmtree(project / ".pytest_cache", ignore_errors=True)
        _run_project(bench, env)
        shutil.copytree(project / ".pytest_cache", saved, symlinks=True)
    return saved


def _lastfailed_run(
    bench: Bench,
    env: str,
    seed_text: str,
    expected: set[str],
    previous: Path,
    prefix: Sequence[str] = (),
) -> tuple[dict[str, float], float]:
    """One run of the lastfailed project in a copy of the cache ``previous`` with
    ``seed_text`` as lastfailed: the hook times it recorded and the whole
    process's seconds (under ``prefix``: callgrind)."""
    project = bench.project("lastfailed", env, "lastfailed")
    cachedir = project / ".pytest_cache"
    shutil.rmtree(cachedir, ignore_errors=True)
    shutil.copytree(previous, cachedir, symlinks=True)
    value = cachedir / "v" / "cache" / "lastfailed"
    value.write_text(seed_text, encoding="utf-8")
    done = _run_project(bench, env, prefix)
    stored = json.loads(value.read_text(encoding="utf-8"))
    if set(stored) != expected:
        raise BenchError(
            f"lastfailed ({env}): {len(stored)} entries after the run, wanted {len(expected)}"
        )
    hooks: dict[str, float] = json.loads(
        (project / "hooks.json").read_text(encoding="utf-8")
    )
    return hooks, done.seconds


def _run_project(bench: Bench, env: str, prefix: Sequence[str] = ()) -> Completed:
    """Run the lastfailed project of ``env``, which records its hook times in ``hooks.json``."""
    project = bench.project("lastfailed", env, "lastfailed")
    out = project / "hooks.json"
    out.unlink(missing_ok=True)
    done = run_pytest(
        bench.pythons[env],
        ["-q", "-p", "no:xdist"],
        cwd=project,
        env={
            "BENCH_OUT": str(out),
            "BENCH_TESTS": str(LASTFAILED_TESTS),
            "BENCH_NOW_FAILING": ",".join(map(str, LASTFAILED_NOW_FAILING)),
        },
        prefix=prefix,
    )
    failing = len(LASTFAILED_NOW_FAILING)
    expect(
        done,
        returncode=1,
        summary=rf"\b{failing} failed",
        what=f"lastfailed ({env})",
    )
    return done
