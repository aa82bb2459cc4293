"""A test that crashed its xdist worker does not count as run, so its failure can be lost.

Fix: crashed-tests-counted
Bug: -  (no upstream release merges)
Affects: the lastfailed-merge layer
Needs: lastfailed-merge
Replaces: LFPlugin.pytest_runtest_logreport
Drops: LFPlugin.pytest_runtest_logfinish

The merge lets a session own the lastfailed entries of the tests it ran.
Those were collected in ``pytest_runtest_logfinish``, which xdist's
controller never calls for a test that crashed its worker (it only sends
the crash report to ``pytest_runtest_logreport``): when another session had
meanwhile removed that test's old entry, the crash was merged away.  The
tests are now counted where LFPlugin already sees every report, which also
saves a hook call per test.
"""

from __future__ import annotations


class LFPlugin:
    def pytest_runtest_logreport(self, report: TestReport) -> None:
        """Record the outcome of one test phase, and that this session ran the test.

        Every report counts, crash reports of xdist included.  pytest 9.2
        keys ``lastfailed`` by ``report.id`` (a ``NodeId``), earlier releases
        by ``report.nodeid``.
        """
        key = getattr(report, "id", report.nodeid)
        self._lastfailed_ran.add(report.nodeid)
        if report.skipped or (report.passed and report.when == "call"):
            self.lastfailed.pop(key, None)
        elif report.failed:
            self.lastfailed[key] = True
