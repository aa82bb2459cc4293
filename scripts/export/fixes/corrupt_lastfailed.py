"""A corrupt ``lastfailed`` stays on disk once every test passes."""

from __future__ import annotations

from export.material import IssueText


FIX = IssueText(
    slug="corrupt-lastfailed",
    order=14,
    layer="lastfailed-merge",
    title="An unreadable cache/lastfailed is never rewritten once all tests pass",
    text="""\
**Problem.** `Cache.get` returns the default for a value that is not valid
JSON, so a torn or truncated `cache/lastfailed` reads as `{}`.  At session
end `LFPlugin` writes lastfailed back only when its view differs from what
`get` returns; once every test passes both are `{}`, and the unreadable file
stays as it is for good.

**Reproducer.** Run a passing test once, write `{"test_a.py::test` (or any
invalid JSON) to `.pytest_cache/v/cache/lastfailed`, run again: the file is
unchanged after any number of passing runs.

**On pytest 9.2.0:** follows from `LFPlugin.pytest_sessionfinish`, which
writes only `if saved_lastfailed != self.lastfailed`; every release has the
same test.  Not yet measured by a run for this report.

**Cost of the fix:** not measured separately.  The repair reads the file's
bytes once more, and only when `get` returned the default.

**Proposed design.** When `get` found a value that exists but does not parse,
count it as different and write lastfailed back.  The repair stays silent (a
failed write of a repair warns no one, since the read was silent too).

**Earlier discussion.** None found.""",
)
