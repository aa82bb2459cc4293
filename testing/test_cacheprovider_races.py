"""Races on the cache between real processes: xdist workers and concurrent sessions.

Every race is defined once, in ``scripts/scenarios.py``, and serves these tests,
the verdict table (``scripts/matrix.py``), stress, bisect and the benchmarks.
A scenario writes a small project, runs ``python -m pytest`` of this interpreter
in subprocesses (real pytest-xdist workers, plugin autoload on), forces its
interleaving with file barriers and judges what is left on disk: "good", "bad"
(the damage, named) or "error" (the interleaving could not be forced).

The tests are black-box, so ``test_stock_releases.py`` runs this file against
stock releases and checks that each test fails exactly where its race is; and
each test guards one layer of the overlay, so ``scripts/mutations.py`` checks
that it fails without that layer, for the damage it names.
"""

from __future__ import annotations

from pathlib import Path
import sys

from race_harness import require

import pytest


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import scenarios


pytestmark = pytest.mark.slow

RUN_TIMEOUT = 240.0
WORKERS = 4


def assert_good(scenario: str, fix: str, workdir: Path) -> str:
    """Run ``scenario`` with this interpreter; the damage it finds fails as ``[fix]``."""
    outcome = scenarios.run_scenario(
        scenario, Path(sys.executable), workdir, timeout=RUN_TIMEOUT, workers=WORKERS
    )
    require(outcome.verdict != "error", f"{scenario}: {outcome.detail}")
    assert outcome.verdict == "good", f"[{fix}] {scenario}: {outcome.detail}"
    return outcome.detail


class TestConcurrentCreation:
    @pytest.mark.layer("publish-race")
    def test_workers_publishing_the_cache_dir_at_once_all_succeed_with_plain_modes(
        self, tmp_path: Path
    ) -> None:
        """Every xdist worker creates the cache dir at the same moment (#12381), with plain modes (#12308).

        The losers of the publish race keep the winner's directory: no
        "Directory not empty", every session fixture calling
        ``config.cache.mkdir()`` succeeds, and nothing private is left over.
        Under umask 022 and 077 the modes follow the umask, which is never set:
        8.2.0 published a ``tempfile`` directory (0700); 8.2.1 and later set the
        process-wide umask twice to compute the mode, which races with any
        thread creating files meanwhile.  Every release has one of the three.
        """
        detail = assert_good("mkdir-race", "publish-race", tmp_path / "race")
        require(f"{WORKERS}/{WORKERS} workers raced" in detail, detail)
        assert_good("permissions", "publish-race", tmp_path / "modes")
        assert_good("umask-flip", "publish-race", tmp_path / "umask")


class TestAtomicSet:
    @pytest.mark.layer("atomic-set")
    def test_reader_never_sees_a_partly_written_value(self, tmp_path: Path) -> None:
        """A session reads a value while another session is half-way through rewriting it."""
        assert_good("torn-read", "atomic-set", tmp_path / "torn")


class TestCacheClearUnderXdist:
    @pytest.mark.layer("cache-clear")
    def test_worker_started_late_does_not_clear_what_others_wrote(
        self, tmp_path: Path
    ) -> None:
        """``--cache-clear`` runs once, not again in a worker xdist starts late.

        One worker writes a value, then another worker dies after seeing it on
        disk; the replacement worker xdist starts must not wipe it.
        """
        assert_good("cache-clear-late-worker", "cache-clear", tmp_path / "clear")


class TestOrphanSweep:
    @pytest.mark.layer("orphan-sweep")
    def test_entry_of_a_killed_process_is_swept_by_the_next_session(
        self, tmp_path: Path
    ) -> None:
        """A process killed while publishing the cache dir or writing a value, then a rerun."""
        assert_good("crash-leftovers", "orphan-sweep", tmp_path / "crash")


class TestLastFailedAcrossSessions:
    @pytest.mark.layer("lastfailed-merge")
    def test_overlapping_sessions_keep_each_others_failures(
        self, tmp_path: Path
    ) -> None:
        """B reads lastfailed before A writes it and writes after A: both failures stay (#6423)."""
        assert_good("lastfailed-lost-update", "lastfailed-merge", tmp_path / "lf")

    @pytest.mark.layer("lastfailed-merge")
    def test_session_that_now_passes_a_test_removes_only_that_entry(
        self, tmp_path: Path
    ) -> None:
        """A fixed test leaves lastfailed; entries another session added meanwhile stay."""
        assert_good("lastfailed-fixed-test", "lastfailed-merge", tmp_path / "fixed")

    @pytest.mark.layer("lastfailed-merge")
    def test_sessions_finishing_at_once_lose_nothing(self, tmp_path: Path) -> None:
        """Sessions that all read lastfailed, then all write it at the same moment."""
        assert_good(
            "lastfailed-finish-together", "lastfailed-merge", tmp_path / "together"
        )

    @pytest.mark.layer("lastfailed-merge")
    def test_overlapping_sessions_keep_each_others_node_ids(
        self, tmp_path: Path
    ) -> None:
        """``cache/nodeids`` (``--nf``) keeps the node ids of both overlapping sessions."""
        assert_good("nodeids-lost-update", "lastfailed-merge", tmp_path / "nodeids")
