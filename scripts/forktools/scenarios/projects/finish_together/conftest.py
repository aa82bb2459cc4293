"""Every session reads lastfailed, then all write it at the same moment.

A write is held until all sessions are writing, or for a while (with a lock
nobody else can get there, so that wait ends without a TIMEOUT mark: it is
expected).
"""

from __future__ import annotations

import os
import time
from typing import Any

from barriers import names
from barriers import touch


SESSIONS = int(os.environ["SCENARIO_SESSIONS"])
_real_replace = os.replace


def _held_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    if os.path.basename(os.fspath(dst)) == "lastfailed":
        touch(f"write-{os.getpid()}")
        deadline = time.monotonic() + 2.0
        while len(names("write-")) < SESSIONS and time.monotonic() < deadline:
            time.sleep(0.01)
    return _real_replace(src, dst, *args, **kwargs)


os.replace = _held_replace
