"""Overlapping sessions overwrite each other's ``lastfailed`` (#6423)."""

from __future__ import annotations

from export.material import IssueText


FIX = IssueText(
    slug="lastfailed-merge",
    order=11,
    layer="lastfailed-merge",
    title="Overlapping sessions lose each other's lastfailed entries",
    text="""\
**Problem.** The cache's `lastfailed` is read when a session starts and
written back whole when it ends.  Two sessions that overlap (an IDE run and a
terminal run, tox environments in parallel on one checkout) each write their
own view: the failures the first one recorded are gone once the second one
ends, and `--lf` reruns the wrong tests.  `cache/nodeids` (used by `--nf`)
behaves the same.

**Reproducer.** Two test files with one failing test each.  Start session A
on the first file, start session B on the second, let A end, then B.
`.pytest_cache/v/cache/lastfailed` holds only B's failure; `pytest --lf`
reruns only that one.

**Measured on pytest 9.2.0** (2026-12-02): the forced interleaving loses an
entry on every release from 8.1.1 to 9.2.0, 5 of 5 trials each.

**Cost of the fix, measured** (paired runs against an unpatched build of the
same release): whole runs at parity within noise (0.996 plain, 1.003 `--lf`,
1.04 `-n 2`); the merge costs about 1 to 1.5 ms per session (a lock, about
0.05 ms; a check of the file's signature).  Session end with 1k / 10k / 100k
/ 1M lastfailed entries: 1.66 ms / 3.4 ms / 25 ms / 0.38 s of CPU against
1.87 ms / 6.7 ms / 61 ms / 0.95 s, because the file is not parsed again when
nobody rewrote it since the session read it and the JSON is written with the
C encoder.

**Proposed design.** At session end, merge this session's changes (entries
it added for tests that failed, entries it removed for tests that passed)
into what is on disk instead of writing its start-of-session view, under a
lock on a file in the cache directory (`flock`, `msvcrt.locking` on
Windows).  A lock never costs data: when it cannot be had, the value is
written unlocked, silently, as today.  Only sessions that changed something
take the lock.

**Earlier discussion.** #6423 was closed with "currently the cache is only
read at the start of the session, and then written back at the end" and
later "a concurrent cache should be a seperate plugin, because it'd very
likely come with some performance costs for normal non-concurrent use".  The
figures above are that cost, measured; the question is whether they are low
enough for the core.""",
)
