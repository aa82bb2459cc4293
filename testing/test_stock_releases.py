"""A race test proves something only if it fails where the race is.

``test_cacheprovider_races.py`` is run, unchanged, with stock pytest releases
installed instead of the fork; every test must fail exactly on the releases
that have its race and pass on the others.
"""

from __future__ import annotations

import os
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
    # 8.2.0-8.2.1: "Directory not empty"; 8.2.0: mode 0700; 8.2.1 and later: the
    # umask is set to compute the mode.  8.1.2 publishes no directory by rename.
    "TestConcurrentCreation::test_workers_publishing_the_cache_dir_at_once_all_succeed_with_plain_modes": ALL[
        1:
    ],
    "TestAtomicSet::test_reader_never_sees_a_partly_written_value": ALL,
    "TestCacheClearUnderXdist::test_worker_started_late_does_not_clear_what_others_wrote": ALL,
    # 8.1.2 never publishes by rename: nothing to leave behind.
    "TestOrphanSweep::test_entry_of_a_killed_process_is_swept_by_the_next_session": ALL[
        1:
    ],
    "TestLastFailedAcrossSessions::test_overlapping_sessions_keep_each_others_failures": ALL,
    "TestLastFailedAcrossSessions::test_session_that_now_passes_a_test_removes_only_that_entry": ALL,
    "TestLastFailedAcrossSessions::test_sessions_finishing_at_once_lose_nothing": ALL,
    "TestLastFailedAcrossSessions::test_overlapping_sessions_keep_each_others_node_ids": ALL,
}
OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR) \S*?::(Test\S+?)(?: - (.*))?$")


def outcomes(output: str) -> dict[str, str]:
    """Per test, PASSED, FAILED (for the damage: an ``[fix]`` assertion) or what else happened."""
    found = {}
    for line in output.splitlines():
        m = OUTCOME.match(line)
        if m is None:
            continue
        outcome = m.group(1)
        if outcome == "FAILED" and not (m.group(3) or "").startswith(
            "AssertionError: ["
        ):
            outcome = f"FAILED, not for the damage: {m.group(3)}"
        found[m.group(2)] = outcome
    return found


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
            # Our marker is registered in our config, which this run does not read.
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
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
        # Wide enough that the short summary keeps each failure's message.
        env={**os.environ, "COLUMNS": "400"},
    )
    seen = outcomes(result.stdout)
    expected = {
        name: "FAILED" if version in must_fail else "PASSED"
        for name, must_fail in MUST_FAIL.items()
    }
    assert {name: seen.get(name) for name in expected} == expected, result.stdout[
        -5000:
    ]
    assert set(seen) == set(MUST_FAIL), "the racing tests changed: update MUST_FAIL"
