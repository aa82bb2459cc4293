"""File barriers of the scenario projects, copied into every trial directory.

A participant touches ``barrier/<name>`` and polls until the names it waits for
exist, for at most ``SCENARIO_BARRIER_TIMEOUT`` seconds; a wait that times out
leaves ``barrier/TIMEOUT-<label>-<worker>-<pid>``, so the harness knows the
interleaving was not forced. The real ``os.open`` and ``os.close`` are kept at
import, so the barrier still works when a conftest patches the filesystem.
"""

from __future__ import annotations

from collections.abc import Callable
import os
from pathlib import Path
import time


HERE = Path(__file__).resolve().parent
BARRIER = HERE / "barrier"
CACHE_DIR = HERE / ".pytest_cache"
TIMEOUT = float(os.environ.get("SCENARIO_BARRIER_TIMEOUT", "30"))
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_REAL_OS_OPEN = os.open
_REAL_OS_CLOSE = os.close


def touch(name: str) -> None:
    fd = _REAL_OS_OPEN(str(BARRIER / name), os.O_WRONLY | os.O_CREAT, 0o644)
    _REAL_OS_CLOSE(fd)


def exists(name: str) -> bool:
    return os.path.exists(str(BARRIER / name))


def names(prefix: str) -> set[str]:
    return {n[len(prefix) :] for n in os.listdir(str(BARRIER)) if n.startswith(prefix)}


def wait_until(predicate: Callable[[], bool], label: str) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            touch(f"TIMEOUT-{label}-{WORKER or 'main'}-{os.getpid()}")
            return False
        time.sleep(0.01)
    return True
