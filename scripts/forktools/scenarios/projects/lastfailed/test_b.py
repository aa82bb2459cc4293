from __future__ import annotations

from barriers import exists
from barriers import touch
from barriers import wait_until


def test_b_fails() -> None:
    touch("B-started")
    wait_until(lambda: exists("A-done"), "A-done")
    raise AssertionError("session B fails on purpose")
