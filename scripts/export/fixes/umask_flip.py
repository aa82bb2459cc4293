"""8.2.1 and later set the process umask twice to read it (#12308)."""

from __future__ import annotations

from export.material import IssueText


FIX = IssueText(
    slug="umask-flip",
    order=13,
    layer="publish-race",
    title="Creating the cache directory changes the process umask for other threads",
    text="""\
**Problem.** `_make_cachedir` computes the mode of the new cache directory by
setting the umask and setting it back (the fix of #12308: "there's no way to
get the current umask atomically, eek").  For that moment the umask of the
whole process is 022: a thread of the test session (a plugin's server, a
fixture's background writer) that creates a file meanwhile gets mode bits
its umask forbids, for example a group- or world-readable file under umask
077.

**Reproducer.** Set the umask to 077, start a thread that creates files in a
loop, create the cache directory (`pytest --cache-clear` with no cache
directory yet, or `_make_cachedir(target)`), and look for files with mode
0644 among the thread's.

**Measured on pytest 9.2.0** (2026-12-02): the forced interleaving changes
the thread's file modes on every release from 8.2.1 to 9.2.0; 8.2.0 and
earlier did not touch the umask.

**Cost of the fix:** not measured separately; the change removes two `umask`
calls and a `chmod`.

**Proposed design.** Create the private directory with a plain `os.mkdir`
(it then gets exactly what the umask gives any directory, as before 8.2.0)
instead of `tempfile.mkdtemp` (mode 0700) followed by a `chmod` computed from
the umask; its random name can come from `secrets` or `os.urandom`.

**Earlier discussion.** #12308 (fixed in 8.2.1) chose the umask flip and
noted its non-atomicity in the code comment quoted above.""",
)
