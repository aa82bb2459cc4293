from __future__ import annotations

from barriers import exists
from barriers import wait_until


def test_a_fails() -> None:
    wait_until(lambda: exists("B-started"), "B-started")
    raise AssertionError("session A fails on purpose")
