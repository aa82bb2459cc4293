"""Per-set costs: thread CPU time per batch (its median is the figure), the
process's user and system time over all batches, and markers around a counted
stretch of sets: for strace a stat of a path that does not exist, for callgrind
``os.getppid()`` at the start and ``os.getpgrp()`` at the end, both outside
strace's stretch."""

from __future__ import annotations

from collections.abc import Callable
import json
import os
import resource
import statistics
import time

import pytest


def _mark(name: str) -> None:
    if name.startswith("start"):
        os.getppid()
    try:
        os.stat("/pytest-bench-marker/" + name)
    except OSError:
        pass
    if name.startswith("end"):
        os.getpgrp()


def _measure(
    cache: pytest.Cache,
    keys_of_batch: Callable[[int], list[str]],
    batches: int,
    size: int,
    counter: list[int],
) -> dict[str, float]:
    value = {"answer": 42, "items": [1, 2, 3], "name": "bench", "count": 0}
    cpu, wall = [], []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for batch in range(batches):
        keys = keys_of_batch(batch)
        t0, c0 = time.perf_counter(), time.thread_time()
        for key in keys:
            counter[0] += 1
            value["count"] = counter[0]  # A different value on every write.
            cache.set(key, value)
        cpu.append((time.thread_time() - c0) / size)
        wall.append((time.perf_counter() - t0) / size)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    sets = batches * size
    return {
        "cpu_us": 1e6 * statistics.median(cpu),
        "wall_us": 1e6 * statistics.median(wall),
        "user_us": 1e6 * (r1.ru_utime - r0.ru_utime) / sets,
        "sys_us": 1e6 * (r1.ru_stime - r0.ru_stime) / sets,
    }


def test_set_cost(cache: pytest.Cache) -> None:
    batches = int(os.environ["BENCH_SET_BATCHES"])
    size = int(os.environ["BENCH_SET_BATCH"])
    counter = [0]
    cache.set("bench/value", 0)
    cache.set("bench/new/warm-up", 0)
    out: dict[str, object] = {}
    _mark("start-overwrite")
    out["overwrite"] = _measure(
        cache, lambda b: ["bench/value"] * size, batches, size, counter
    )
    _mark("end-overwrite")
    _mark("start-new-key")
    out["new-key"] = _measure(
        cache,
        lambda b: [f"bench/new/{b}-{i}" for i in range(size)],
        batches,
        size,
        counter,
    )
    _mark("end-new-key")
    out["sets"] = batches * size
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump(out, f)
