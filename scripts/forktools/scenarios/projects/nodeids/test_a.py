"""lastfailed's session A, passing: copied over it for nodeids-lost-update."""

from __future__ import annotations

from barriers import exists
from barriers import wait_until


def test_a_passes() -> None:
    wait_until(lambda: exists("B-started"), "B-started")
