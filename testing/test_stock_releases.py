"""A race test proves something only if it fails where the race is.

``test_cacheprovider_races.py`` is run, unchanged, with stock pytest releases
installed instead of the fork; every test must fail exactly on the releases
that have its race and pass on the others.
"""

from __future__ import annotations

from pathlib import Path
import re
import subprocess
import sys

import pytest


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import envs  # noqa: E402


RACES = ROOT / "testing" / "test_cacheprovider_races.py"
ALL = ("8.1.2", "8.2.0", "8.2.1", "8.2.2", "9.2.0")
# Test name -> the stock releases on which it must fail (the others must pass).
MUST_FAIL: dict[str, tuple[str, ...]] = {
    "TestConcurrentCreation::test_workers_publishing_the_cache_dir_at_once_all_succeed": (
        "8.2.0",
        "8.2.1",
    ),
    "TestPermissions::test_cache_dir_gets_the_umask_modes_without_the_umask_being_changed": ALL[
        1:
    ],
    "TestAtomicSet::test_reader_never_sees_a_partly_written_value": ALL,
    "TestCacheClearUnderXdist::test_worker_started_late_does_not_clear_what_others_wrote": ALL,
    "TestOrphanSweep::test_entry_of_a_killed_process_is_swept_by_the_next_session[publishing-cache-dir]": ALL[
        1:
    ],
    "TestLastFailedAcrossSessions::test_overlapping_sessions_keep_each_others_failures": ALL,
    "TestLastFailedAcrossSessions::test_session_that_now_passes_a_test_removes_only_that_entry": ALL,
    "TestLastFailedAcrossSessions::test_sessions_finishing_at_once_lose_nothing": ALL,
    "TestLastFailedAcrossSessions::test_overlapping_sessions_keep_each_others_node_ids": ALL,
}
# Not applicable to stock: 8.1.2 never publishes by rename, and stock writes
# values in place, so the kill these tests aim at never happens there.
NOT_APPLICABLE = {
    "TestOrphanSweep::test_entry_of_a_killed_process_is_swept_by_the_next_session[writing-value]": ALL,
    "TestOrphanSweep::test_entry_of_a_killed_process_is_swept_by_the_next_session[publishing-cache-dir]": (
        "8.1.2",
    ),
}
OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR) \S*?::(Test\S+?)(?: - .*)?$")


def outcomes(output: str) -> dict[str, str]:
    return {
        m.group(2): m.group(1)
        for line in output.splitlines()
        if (m := OUTCOME.match(line))
    }


@pytest.mark.slow
@pytest.mark.parametrize("version", ALL)
def test_racing_tests_fail_exactly_where_the_races_are(
    version: str, tmp_path: Path
) -> None:
    python = envs.ensure_env(version)
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            str(RACES),
            "-p",
            "pytester",
            "-rA",
            "-q",
            "-p",
            "no:cacheprovider",
            "--durations=5",
            f"--basetemp={tmp_path / 'basetemp'}",
            f"--rootdir={tmp_path}",
            "-c",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        check=False,
    )
    seen = outcomes(result.stdout)
    expected = {
        name: "FAILED" if version in must_fail else "PASSED"
        for name, must_fail in MUST_FAIL.items()
        if version not in NOT_APPLICABLE.get(name, ())
    }
    assert {name: seen.get(name) for name in expected} == expected, result.stdout[
        -5000:
    ]
    assert set(seen) == set(MUST_FAIL) | set(NOT_APPLICABLE), (
        "the racing tests changed: update MUST_FAIL"
    )
