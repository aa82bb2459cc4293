"""One of SCENARIO_SESSIONS sessions, copied as ``test_<i>.py``: it fails once all have read."""

from __future__ import annotations

import os

from barriers import names
from barriers import touch
from barriers import wait_until


SESSIONS = int(os.environ["SCENARIO_SESSIONS"])
ME = os.path.splitext(os.path.basename(__file__))[0]


def test_fails_on_purpose() -> None:
    touch("read-" + ME)
    wait_until(lambda: len(names("read-")) >= SESSIONS, "read")
    raise AssertionError("fails on purpose")
