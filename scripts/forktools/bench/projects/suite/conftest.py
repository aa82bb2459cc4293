"""The suite project's session fixture: a ``cache.mkdir`` and a ``cache.set`` per session."""

from __future__ import annotations

from collections.abc import Iterator
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _bench_uses_the_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    cache = request.config.cache
    assert cache is not None
    data = cache.mkdir("bench-suite")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (data / f"worker-{worker}").write_text("x")
    seen = cache.get("bench/suite", {"sessions": 0})
    cache.set("bench/suite", {"sessions": seen["sessions"] + 1, "pid": os.getpid()})
    yield
