from __future__ import annotations

from barriers import exists
from barriers import wait_until


def test_other() -> None:
    wait_until(lambda: exists("fixed-running"), "fixed-running")
    raise AssertionError("fails on purpose")
