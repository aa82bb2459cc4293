"""Times of the hooks where the cache plugin reads lastfailed (configure: the
plugin reads it as it registers; session start), writes it (session finish) and
sweeps (unconfigure): wall and CPU seconds of each, and the peak memory of the
process, written to ``BENCH_OUT`` at the very end.  For callgrind the same
stretches (the session start, then each hook of the session end) are marked by
two calls the cache plugin never makes: ``os.getppid()`` where one begins
(``--zero-before=os_getppid``), ``os.getpgrp()`` where it ends
(``--dump-before=os_getpgrp``).

Outermost wrappers time the session hooks. ``pytest_configure`` is a historic
hook, which takes no wrapper: the session start is timed from its first
implementation to the end of ``pytest_sessionstart``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Generator
import json
import os
import resource
import time
from typing import Any

import pytest


TIMES: dict[str, float] = {}


def _timed(name: str) -> Callable[..., Generator[None, Any, Any]]:
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def hook(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
        if name != "sessionstart":  # The session start's began in pytest_configure.
            os.getppid()
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return (yield)
        finally:
            os.getpgrp()
            TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - start
            TIMES[name + "_cpu"] = (
                TIMES.get(name + "_cpu", 0.0) + time.process_time() - cpu
            )
            if name == "sessionstart":
                # The session start: configure, the session, pytest_sessionstart.
                TIMES["start"] = time.perf_counter() - TIMES["began"]
                TIMES["start_cpu"] = time.process_time() - TIMES["began_cpu"]
            if name == "unconfigure":
                usage = resource.getrusage(resource.RUSAGE_SELF)
                TIMES["maxrss_kb"] = usage.ru_maxrss
                with open(os.environ["BENCH_OUT"], "w") as f:
                    json.dump(TIMES, f)

    return hook


@pytest.hookimpl(tryfirst=True)
def pytest_configure() -> None:
    # Registered after pytest's own plugins, so called before their tryfirst ones.
    os.getppid()
    TIMES["began"] = time.perf_counter()
    TIMES["began_cpu"] = time.process_time()


pytest_sessionstart = _timed("sessionstart")
pytest_sessionfinish = _timed("sessionfinish")
pytest_unconfigure = _timed("unconfigure")
