"""The cost of one ``Cache.set``: CPU time, system calls, throughput."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import functools
import json
import os
from pathlib import Path
import shutil
import statistics

from forktools.bench.config import FORK
from forktools.bench.config import ORDER
from forktools.bench.config import SET_BATCH_SECONDS
from forktools.bench.config import SET_COST_BATCH
from forktools.bench.config import SET_STRACE_OPS
from forktools.bench.config import STOCK
from forktools.bench.results import median
from forktools.bench.results import Result
from forktools.bench.results import result_from_samples
from forktools.bench.running import alternate
from forktools.bench.running import Bench
from forktools.bench.running import expect
from forktools.bench.running import progress
from forktools.bench.running import run_pytest
from forktools.bench.traces import callgrind_stretches
from forktools.bench.traces import memory_filesystem
from forktools.bench.traces import memory_place
from forktools.bench.traces import syscalls_between


def set_throughput(bench: Bench) -> list[Result]:
    """``Cache.set`` operations per second, timed inside a session of each env."""
    ops, batches = bench.settings.set_ops, bench.settings.set_batches
    per_variant: dict[str, dict[str, list[float]]] = {}

    memory = memory_filesystem()

    def measure(env: str) -> float:
        project = bench.project("set", env, "set")
        out = project / "rates.json"
        extra = {
            "BENCH_SET_OPS": str(ops),
            "BENCH_SET_SECONDS": str(SET_BATCH_SECONDS),
            "BENCH_SET_BATCHES": str(batches),
            "BENCH_OUT": str(out),
        }
        # The project's own disk (where a cache lives), then a memory
        # filesystem: no writeback, so only the code and the syscalls count.
        places = {"": project / ".pytest_cache"}
        if memory is not None:
            places[", tmpfs"] = memory / f"pytest-bench-{os.getpid()}-{env}"
        for suffix, cachedir in places.items():
            shutil.rmtree(cachedir, ignore_errors=True)
            args = ["-q", "-p", "no:xdist", "-o", f"cache_dir={cachedir}"]
            done = run_pytest(bench.pythons[env], args, cwd=project, env=extra)
            shutil.rmtree(cachedir, ignore_errors=True)
            expect(
                done,
                returncode=0,
                summary=r"\b1 passed",
                what=f"set-throughput{suffix} ({env})",
            )
            rates: dict[str, list[float]] = json.loads(out.read_text(encoding="utf-8"))
            for variant, values in rates.items():
                per_variant.setdefault(variant + suffix, {FORK: [], STOCK: []})[
                    env
                ].append(median(values))
        return per_variant["overwrite"][env][-1]

    progress(f"set-throughput: {ops} sets x {batches} batches per process and variant")
    alternate(
        "set-throughput overwrite",
        bench.settings.set_rounds,
        measure,
        unit="ops/s",
        warmup=True,
    )
    rounds = bench.settings.set_rounds
    results = []
    for variant, samples in per_variant.items():
        measured = {
            env: values[-rounds:] for env, values in samples.items()
        }  # drop the warm-up
        results.append(
            result_from_samples(
                "set-throughput", "ops/s", measured, variant=variant, ops=ops
            )
        )
    return results


def set_cost(bench: Bench) -> list[Result]:
    """CPU time and system calls per ``Cache.set``, tmpfs and disk, overwrite and new key."""
    batches = bench.settings.cost_batches
    rounds = bench.settings.set_rounds
    figures: dict[str, dict[str, list[float]]] = {}
    extra: dict[str, dict[str, dict[str, list[float]]]] = {}
    with memory_place(bench.workdir / "tmpfs") as memory:
        places = {"disk": bench.workdir / "set-cost-disk"}
        if memory is None:
            progress("set-cost: no tmpfs (not root, no /dev/shm): tmpfs not measured")
        else:
            places["tmpfs"] = memory

        def measure(env: str) -> float:
            project = bench.project("set-cost", env, "set_cost")
            for place, root in places.items():
                data = _set_cost_run(bench, env, project, root / env, batches)
                for variant in ("overwrite", "new-key"):
                    figure = data[variant]
                    key = (
                        f"{variant}, tmpfs"
                        if place == "tmpfs"
                        else f"{variant}, disk (user CPU)"
                    )
                    figures.setdefault(key, {FORK: [], STOCK: []})[env].append(
                        figure["cpu_us"] if place == "tmpfs" else figure["user_us"]
                    )
                    side = extra.setdefault(key, {})
                    for field in ("cpu_us", "wall_us", "user_us", "sys_us"):
                        side.setdefault(field, {FORK: [], STOCK: []})[env].append(
                            figure[field]
                        )
            return figures["overwrite, disk (user CPU)"][env][-1]

        progress(
            f"set-cost: {batches} x {SET_COST_BATCH} sets per process, variant and place"
            f" ({', '.join(places)})"
        )
        alternate("set-cost overwrite, disk", rounds, measure, unit="us user CPU")
        syscalls = _set_syscalls(bench, places)
        instructions = _set_instructions(bench, places)
    results = []
    for key, samples in figures.items():
        measured = {env: values[-rounds:] for env, values in samples.items()}
        side = {
            f"{env}_{field}": round(median(values[env][-rounds:]), 3)
            for field, values in extra[key].items()
            for env in ORDER
        }
        result = result_from_samples(
            "set-cost",
            "us/set",
            measured,
            variant=key,
            sets=batches * SET_COST_BATCH,
            **side,
        )
        if "disk" in key:
            # User time is sampled at the scheduler's ticks: the mean of the
            # rounds pools their samples (a median would keep one round's).
            result.fork = statistics.mean(measured[FORK])
            result.stock = statistics.mean(measured[STOCK])
            result.extra["figure"] = "mean of the rounds (user time is tick-sampled)"
        results.append(result)
    return results + syscalls + instructions


def _set_cost_run(
    bench: Bench,
    env: str,
    project: Path,
    cachedir: Path,
    batches: int,
    *,
    prefix: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """One pytest process of SET_COST_TEST with its cache dir at ``cachedir`` (under
    ``prefix``: strace or callgrind)."""
    out = project / "cost.json"
    extra = {
        "BENCH_SET_BATCHES": str(batches),
        "BENCH_SET_BATCH": str(SET_COST_BATCH),
        "BENCH_OUT": str(out),
    }
    shutil.rmtree(cachedir, ignore_errors=True)
    args = ["-q", "-p", "no:xdist", "-o", f"cache_dir={cachedir}"]
    done = run_pytest(bench.pythons[env], args, cwd=project, env=extra, prefix=prefix)
    shutil.rmtree(cachedir, ignore_errors=True)
    expect(done, returncode=0, summary=r"\b1 passed", what=f"set-cost ({env})")
    data: dict[str, dict[str, float]] = json.loads(out.read_text(encoding="utf-8"))
    return data


def _set_instructions(bench: Bench, places: Mapping[str, Path]) -> list[Result]:
    """Instructions per set, counted by callgrind between the test's markers, one run per env.

    The user-space work of a set, exact: what the user CPU time on disk is meant
    to show, without the kernel's work that its tick sampling lets in.
    """
    results = []
    ops = max(1, SET_STRACE_OPS // SET_COST_BATCH)
    sets = ops * SET_COST_BATCH
    for place, root in places.items():
        counts: dict[str, dict[str, list[float]]] = {}
        for env in ORDER:
            project = bench.project("set-cost", env, "set_cost")
            found = callgrind_stretches(
                project / "callgrind.out",
                2,
                f"set-instructions ({env})",
                functools.partial(_set_cost_run, bench, env, project, root / env, ops),
            )
            if found is None:
                return []
            for variant, count in zip(("overwrite", "new-key"), found, strict=True):
                counts.setdefault(variant, {FORK: [], STOCK: []})[env].append(
                    count / sets
                )
        for variant, samples in counts.items():
            results.append(
                result_from_samples(
                    "set-instructions",
                    "instructions/set",
                    samples,
                    variant=f"{variant}, {place}",
                    sets=sets,
                )
            )
        progress(
            f"set-instructions {place}: "
            + ", ".join(
                f"{v} fork {c[FORK][0]:,.0f} stock {c[STOCK][0]:,.0f}"
                for v, c in counts.items()
            )
        )
    return results


def _set_syscalls(bench: Bench, places: Mapping[str, Path]) -> list[Result]:
    """System calls per set, counted with strace between the test's markers."""
    if shutil.which("strace") is None:
        progress("set-syscalls: strace not found: system calls not measured")
        return []
    results = []
    ops = max(1, SET_STRACE_OPS // SET_COST_BATCH)
    for place, root in places.items():
        counts: dict[str, dict[str, list[float]]] = {}
        for env in ORDER:
            project = bench.project("set-cost", env, "set_cost")
            trace = project / "strace.txt"
            strace = ["strace", "-f", "-qq", "-o", str(trace)]
            _set_cost_run(bench, env, project, root / env, ops, prefix=strace)
            text = trace.read_text(encoding="utf-8", errors="replace")
            trace.unlink()
            for variant in ("overwrite", "new-key"):
                calls = syscalls_between(text, f"start-{variant}", f"end-{variant}")
                counts.setdefault(variant, {FORK: [], STOCK: []})[env].append(
                    calls / (ops * SET_COST_BATCH)
                )
        for variant, samples in counts.items():
            results.append(
                result_from_samples(
                    "set-syscalls",
                    "syscalls/set",
                    samples,
                    variant=f"{variant}, {place}",
                    sets=ops * SET_COST_BATCH,
                )
            )
        progress(
            f"set-syscalls {place}: "
            + ", ".join(
                f"{v} fork {c[FORK][0]:.2f} stock {c[STOCK][0]:.2f}"
                for v, c in counts.items()
            )
        )
    return results
