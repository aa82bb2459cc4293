"""``Cache.set`` fails when a concurrent ``--cache-clear`` removes its folder mid-write.

Fix: vanishing-parent
Bug: -
Affects: every release (stock: the same ENOENT, as "cache could not write path")
Needs: atomic-set
Replaces: _VANISHED_FOLDER_RETRIES

``set`` creates the value's folder, then writes the value into it.  When
another session's ``--cache-clear`` (or the removal of an orphaned folder)
takes ``v/`` between the two steps, the write fails with ENOENT, the value
is lost and a ``PytestCacheWarning`` turns up in a run that did nothing
wrong, an error under ``filterwarnings = error``.  The two steps are retried
instead: the value is written after the clear, as if ``set`` had come a
moment later.
"""

from __future__ import annotations


# How many times set() makes the value's folder again when it vanished between
# creating it and writing into it; each time another process removed it again.
_VANISHED_FOLDER_RETRIES = 4
