"""Tables and progress lines, the same in every tool.

Tables come from tabulate: ``columns`` (a header row and a rule of dashes, the
verdict table's look), ``plain`` (no rule), ``markdown``. Progress lines are kept
by hand: one stamped line per step is what a CI log or ``tox`` output can show,
where a redrawn progress bar shows nothing until the end.
"""

from __future__ import annotations

from collections.abc import Sequence
import sys
import threading
import time

import tabulate as _tabulate
from tabulate import tabulate


# tabulate pads every header by two; without that a column is as wide as its
# widest cell, the look of the tables the README shows.
_tabulate.MIN_PADDING = 0
#: Our names for tabulate's formats.
STYLES = {"columns": "simple", "plain": "plain", "markdown": "github"}


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    style: str = "columns",
    align: Sequence[str] | None = None,
) -> str:
    """``rows`` under ``headers``; cells are shown as they are (no number parsing)."""
    text = tabulate(
        [list(row) for row in rows],
        headers=list(headers),
        tablefmt=STYLES[style],
        disable_numparse=True,
        colalign=None if align is None else list(align),
    )
    return "\n".join(line.rstrip() for line in str(text).splitlines())


class Progress:
    """Progress lines stamped with the seconds since the start; safe from threads."""

    def __init__(self, *, stderr: bool = False, tag: str = "") -> None:
        self.start = time.monotonic()
        self.stderr = stderr
        self.tag = tag
        self.lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def __call__(self, message: str) -> None:
        with self.lock:
            print(
                f"[{self.tag}{self.elapsed():6.1f}s] {message}",
                file=sys.stderr if self.stderr else sys.stdout,
                flush=True,
            )
