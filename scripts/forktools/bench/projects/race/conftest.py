"""Every creator announces itself in ``barrier/``, waits until all have, then
creates the cache; it records when and how that went in ``results/``."""

from __future__ import annotations

from collections.abc import Iterator
import fcntl
import json
import os
from pathlib import Path
import time

import pytest


HERE = Path(__file__).resolve().parent
ME = os.environ["BENCH_CREATOR_ID"]


def _wait_for_everyone() -> None:
    # The benchmark holds an exclusive lock on the gate until every creator has
    # arrived: the kernel then wakes all the blocked creators at once.
    (HERE / "barrier" / ME).touch()
    with open(HERE / "barrier.lock", "rb") as gate:
        fcntl.flock(gate, fcntl.LOCK_SH)


@pytest.fixture(scope="session", autouse=True)
def _create_the_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    _wait_for_everyone()
    start = time.time()
    error = None
    try:
        request.config.cache.mkdir("bench-race")  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001  (a failed creator is what we count)
        error = f"{type(exc).__name__}: {exc}"
    first_test = time.time()
    record = {"mkdir": first_test - start, "first_test": first_test, "error": error}
    (HERE / "results" / (ME + ".json")).write_text(json.dumps(record))
    if error is not None:
        pytest.fail("cache.mkdir failed: " + error)
    yield
