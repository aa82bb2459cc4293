"""``Cache.set`` operations per second, overwriting one key and writing new keys."""

from __future__ import annotations

import json
import os
import time

import pytest


def _rate(
    cache: pytest.Cache, keys: list[str], value: dict[str, object], budget: float
) -> float:
    # At most len(keys) sets, and no more than `budget` seconds: a slow shared
    # disk makes the batch shorter, not the benchmark longer. Every set writes
    # a different value (a counter), as a plugin updating its state does.
    start = time.perf_counter()
    done = 0
    for done, key in enumerate(keys, 1):
        value["count"] = done
        cache.set(key, value)
        if done % 50 == 0 and time.perf_counter() - start > budget:
            break
    return done / (time.perf_counter() - start)


def test_set_throughput(cache: pytest.Cache) -> None:
    ops = int(os.environ["BENCH_SET_OPS"])
    batches = int(os.environ["BENCH_SET_BATCHES"])
    budget = float(os.environ["BENCH_SET_SECONDS"])
    value: dict[str, object] = {"answer": 42, "items": [1, 2, 3], "name": "bench"}
    cache.set("bench/warm-up", value)
    # All overwrites first: writeback of the many new files must not slow them down.
    rates: dict[str, list[float]] = {"overwrite": [], "new-key": []}
    for _ in range(batches):
        rates["overwrite"].append(_rate(cache, ["bench/value"] * ops, value, budget))
    for batch in range(batches):
        keys = [f"bench/new/{batch}-{i}" for i in range(ops)]
        rates["new-key"].append(_rate(cache, keys, value, budget))
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump(rates, f)
