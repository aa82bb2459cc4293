"""Session start, session end and memory with large lastfailed files (1k to 1M entries)."""

from __future__ import annotations

import json
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
from forktools.bench.running import expect
from forktools.bench.running import lastfailed_expected
from forktools.bench.running import lastfailed_seed
from forktools.bench.running import progress
from forktools.bench.running import run_pytest


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
        hooks, seconds = _lastfailed_run(bench, env, seed_text, expected)
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
    return results


def lastfailed_session_end(bench: Bench) -> list[Result]:
    """Session end CPU time and peak memory for each size of lastfailed."""
    results = []
    for entries in LASTFAILED_SIZES:
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
        ) -> float:
            hooks, _ = _lastfailed_run(bench, env, seed_text, expected)
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
    bench: Bench, env: str, seed_text: str, expected: set[str]
) -> tuple[dict[str, float], float]:
    """One run of the lastfailed project on ``seed_text``: the hook times it recorded
    and the whole process's seconds."""
    project = bench.project("lastfailed", env, "lastfailed")
    cachedir = project / ".pytest_cache"
    shutil.rmtree(cachedir, ignore_errors=True)
    value = cachedir / "v" / "cache" / "lastfailed"
    value.parent.mkdir(parents=True)
    value.write_text(seed_text, encoding="utf-8")
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
