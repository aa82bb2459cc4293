"""A session whose once-failing test now passes, overlapping a session that fails."""

from __future__ import annotations

from barriers import exists
from barriers import touch
from barriers import wait_until


def test_fixed() -> None:
    touch("fixed-running")
    wait_until(lambda: exists("other-done"), "other-done")
