"""Bad input gets a clear error or a ``PytestCacheWarning``: never a crash, never lost data."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
import shutil
import sys
from typing import Any

from _pytest.pytester import Pytester
from _pytest.pytester import RunResult
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from envs import DROP_DAC
from race_harness import require
from race_harness import unavailable


ONE_FAILURE_ONE_CACHE_WRITE = """
def test_fails():
    assert 0

def test_passes(cache):
    cache.set("plugin/value", 1)
"""


def no_crash(result: RunResult) -> str:
    text = "\n".join(result.outlines + result.errlines)
    assert "INTERNALERROR" not in text and "Traceback" not in text, text
    return text


def run_unprivileged(pytester: Pytester, *args: str) -> RunResult:
    """Run pytest so that file permissions apply: as root, without DAC capabilities."""
    command: tuple[str, ...] = (sys.executable, "-m", "pytest", "-p", "no:xdist", *args)
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            unavailable("as root, permissions only apply with setpriv (util-linux)")
        command = (*DROP_DAC, *command)
    return pytester.run(*command, timeout=120)


def tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.mark.layer("publish-race")
def test_cache_dir_path_is_a_regular_file(pytester: Pytester) -> None:
    cachefile = pytester.path / ".pytest_cache"
    cachefile.write_text("not a directory")
    pytester.makepyfile(
        ONE_FAILURE_ONE_CACHE_WRITE
        + """
import pytest

def test_mkdir_error_is_clear(cache):
    with pytest.raises(NotADirectoryError, match="exists and is not a directory"):
        cache.mkdir("plugin")
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    text = no_crash(result)
    assert result.parseoutcomes().get("passed") == 2, (
        f"[publish-race] cache.mkdir gave no clear error:\n{text}"
    )
    result.assert_outcomes(failed=1, passed=2)
    assert "PytestCacheWarning: could not create cache path" in text
    assert cachefile.read_text() == "not a directory"

    rerun = pytester.runpytest_subprocess("-p", "no:xdist", "--lf")
    no_crash(rerun)
    rerun.assert_outcomes(failed=1, passed=2)


def test_unwritable_cache_folders_with_writable_files_behave_as_stock(
    pytester: Pytester,
) -> None:
    """No new file fits in the folders, but the value files are writable.

    Stock rewrites the values in place and says nothing; so must the fork,
    which cannot write atomically there (no room for a sibling file).
    """
    pytester.makepyfile(ONE_FAILURE_ONE_CACHE_WRITE)
    pytester.runpytest_subprocess("-p", "no:xdist")
    cachedir = pytester.path / ".pytest_cache"
    before = tree(cachedir)
    assert "v/cache/lastfailed" in before
    pytester.makepyfile(test_more="def test_new_failure(): assert 0")
    dirs = [cachedir, *(p for p in cachedir.rglob("*") if p.is_dir())]
    for d in dirs:
        d.chmod(0o555)
    try:
        result = run_unprivileged(pytester)
    finally:
        for d in dirs:
            d.chmod(0o755)
    text = no_crash(result)
    assert result.ret == 1
    assert "PytestCacheWarning" not in text
    after = tree(cachedir)
    assert sorted(after) == sorted(before)  # No file added, none left behind.
    lastfailed = json.loads(after["v/cache/lastfailed"])
    assert "test_more.py::test_new_failure" in lastfailed


def test_cache_clear_of_an_unwritable_cache_dir_is_a_clear_error(
    pytester: Pytester,
) -> None:
    """Stock deletes what it can and ends in INTERNALERROR; this build says why it stops."""
    pytester.makepyfile(ONE_FAILURE_ONE_CACHE_WRITE)
    pytester.runpytest_subprocess("-p", "no:xdist")
    cachedir = pytester.path / ".pytest_cache"
    cachedir.chmod(0o555)
    try:
        result = run_unprivileged(pytester, "--cache-clear", "-W", "error")
    finally:
        cachedir.chmod(0o755)
    text = no_crash(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert f"ERROR: --cache-clear could not clear {cachedir}" in text


def test_read_only_location_warns(pytester: Pytester) -> None:
    # The project, not pytester's folder: pytester keeps the run's output there.
    project = pytester.mkdir("project")
    (project / "test_it.py").write_text(ONE_FAILURE_ONE_CACHE_WRITE)
    project.chmod(0o555)
    try:
        result = run_unprivileged(pytester, f"--rootdir={project}", str(project))
    finally:
        project.chmod(0o755)
    text = no_crash(result)
    result.assert_outcomes(failed=1, passed=1)
    assert "PytestCacheWarning: could not create cache path" in text
    assert not (project / ".pytest_cache").exists()


@pytest.mark.parametrize("content", ['{"test_x.py::test_a": tr', "", "\x00\x01garbage"])
def test_corrupt_lastfailed_behaves_as_no_cache(
    pytester: Pytester, content: str
) -> None:
    pytester.makepyfile(test_x="def test_a(): pass\ndef test_b(): pass")
    pytester.runpytest_subprocess("-p", "no:xdist")
    lastfailed = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
    lastfailed.write_text(content)

    result = pytester.runpytest_subprocess("-p", "no:xdist", "--lf")

    no_crash(result)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["run-last-failure: no previously failed tests, not deselecting items."]
    )
    config = pytester.parseconfigure()
    assert config.cache is not None
    assert config.cache.get("cache/lastfailed", "default") in ("default", {})


def test_private_entry_that_is_a_symlink_is_left_alone(pytester: Pytester) -> None:
    precious = pytester.path / "precious"
    precious.mkdir()
    (precious / "data.json").write_text(json.dumps({"keep": True}))
    link = (
        pytester.path / "pytest-cache-files-1-deadbeef"
    )  # pid 1 runs: that alone spares it
    link.symlink_to(precious, target_is_directory=True)
    stale_link = pytester.path / "pytest-cache-files-999999999-deadbeef"  # no such pid
    stale_link.symlink_to(precious, target_is_directory=True)
    pytester.makepyfile(ONE_FAILURE_ONE_CACHE_WRITE)

    for _ in range(2):
        no_crash(pytester.runpytest_subprocess("-p", "no:xdist"))

    assert link.is_symlink() and stale_link.is_symlink()
    assert json.loads((precious / "data.json").read_text()) == {"keep": True}


def escaping_keys_written(pytester: Pytester) -> list[str]:
    """What ``set`` of keys with ``..`` or absolute keys wrote outside the cache."""
    outside = pytester.path / "outside"
    keys = [
        "../../outside/up",  # Relative to .pytest_cache/v/: lands in outside/.
        "plugin/../../../outside/deep",
        f"{outside}/absolute",
    ]
    config = pytester.parseconfigure()
    assert config.cache is not None
    refused = []
    for key in keys:
        try:
            config.cache.set(key, 1)
        except ValueError as e:
            assert "not allowed to escape the cache directory" in str(e)
            refused.append(key)
    written = sorted(str(p) for p in outside.rglob("*")) if outside.exists() else []
    assert written or refused == keys
    return written


def dotdot_cache_dir_outcome(pytester: Pytester) -> str | None:
    """Run a project whose ``cache_dir`` is ``../shared_cache``; what went wrong, if anything."""
    project = pytester.mkdir("project")
    (project / "pytest.ini").write_text("[pytest]\ncache_dir = ../shared_cache\n")
    (project / "test_it.py").write_text(
        ONE_FAILURE_ONE_CACHE_WRITE
        + """
def test_mkdir(cache):
    assert cache.mkdir("plugin").is_dir()
"""
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:xdist",
        f"--rootdir={project}",
        "-c",
        str(project / "pytest.ini"),
        str(project),
    )
    text = "\n".join(result.outlines + result.errlines)
    outcomes = {} if "INTERNALERROR" in text else result.parseoutcomes()
    if (outcomes.get("passed"), outcomes.get("failed")) != (2, 1):
        return text
    lastfailed = pytester.path / "shared_cache" / "v" / "cache" / "lastfailed"
    assert json.loads(lastfailed.read_text()) == {"test_it.py::test_fails": True}
    return None


@pytest.mark.layer("keys-confined")
def test_keys_stay_in_the_cache_dir_and_a_dotdot_cache_dir_works(
    pytester: Pytester,
) -> None:
    """``../x`` and absolute keys are refused instead of written where they point
    (8.2.0 to 9.1.1 write them), and every key of ``cache_dir = ../shared_cache``
    works (9.2.0 takes them all for escaping and stops at configure)."""
    written = escaping_keys_written(pytester)
    broken = dotdot_cache_dir_outcome(pytester)
    assert (written, broken) == ([], None), (
        f"[keys-confined] set() wrote outside the cache: {written}; "
        f"a cache_dir with '..' broke the run:\n{broken}"
    )


def refuse_opening(
    monkeypatch: pytest.MonkeyPatch, target: Path, times: int
) -> list[Path]:
    """``Path.open`` of ``target`` fails with access denied ``times`` times (a Windows reader
    during another process's ``os.replace``); returns the list of refused opens."""
    real_open = Path.open
    refused: list[Path] = []

    def open_(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == target and len(refused) < times:
            refused.append(self)
            raise PermissionError(
                errno.EACCES, "sharing violation (simulated)", str(self)
            )
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    return refused


def get_while_refused(
    pytester: Pytester, monkeypatch: pytest.MonkeyPatch, *, platform: str, times: int
) -> tuple[object, int]:
    """``get`` of a saved value on ``platform`` while opening it is refused ``times`` times."""
    config = pytester.parseconfigure()
    assert config.cache is not None
    config.cache.set("plugin/value", {"v": 1})
    target = pytester.path / ".pytest_cache" / "v" / "plugin" / "value"
    with monkeypatch.context() as m:
        m.setattr(sys, "platform", platform)
        refused = refuse_opening(m, target, times=times)
        value = config.cache.get("plugin/value", "default")
    return value, len(refused)


@pytest.mark.layer("atomic-set")
def test_windows_get_during_a_replace_gets_the_value(
    pytester: Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    value, refused = get_while_refused(pytester, monkeypatch, platform="win32", times=3)
    require(refused, "the simulated sharing violation never happened")
    assert value == {"v": 1}, (
        f"[atomic-set] get returned {value!r} during another process's replace"
    )


def test_posix_unreadable_value_is_the_default_at_once(
    pytester: Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = get_while_refused(pytester, monkeypatch, platform="linux", times=100)
    assert got == ("default", 1)
