"""#6670: marks every configured worker process, so the harness can prove a
replacement worker really started."""

from __future__ import annotations

import os

from barriers import touch
from barriers import WORKER

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if WORKER:
        touch(f"configured-{WORKER}-{os.getpid()}")
