"""lastfailed's session B, passing: copied over it for nodeids-lost-update."""

from __future__ import annotations

from barriers import exists
from barriers import touch
from barriers import wait_until


def test_b_passes() -> None:
    touch("B-started")
    wait_until(lambda: exists("A-done"), "A-done")
