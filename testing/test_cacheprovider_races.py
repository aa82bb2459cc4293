"""Races on the cache between real processes: xdist workers and concurrent sessions.

Every test forces its interleaving with file barriers written into the project
under test (each participant announces itself, then waits, bounded, for the
others), so it fails on every release that has the race, every time.  The
tests are black-box: they use the cache only through pytest runs, so they can
be run against any pytest release.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

from race_harness import require

from _pytest.pytester import Pytester
from _pytest.pytester import RunResult
import pytest


pytestmark = pytest.mark.slow

RUN_TIMEOUT = 240.0
WORKERS = 4

# Written into each project's conftest: bounded file barriers shared by processes.
BARRIERS = '''
import os
import time
from pathlib import Path

ROOT = Path(__file__).parent
WAIT = 60.0


def arrive_and_wait(name, who, parties, wait=WAIT):
    """Announce `who` at barrier `name`; wait until `parties` arrived. False on timeout."""
    folder = ROOT / f"barrier-{name}"
    folder.mkdir(exist_ok=True)
    (folder / who).touch()
    deadline = time.monotonic() + wait
    while len(os.listdir(folder)) < parties:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_for(path, wait=WAIT):
    deadline = time.monotonic() + wait
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def worker_id():
    return os.environ.get("PYTEST_XDIST_WORKER", "main")
'''

# Every xdist worker holds its private cache dir at the rename that would
# publish it until all workers are there: they all publish at the same moment.
HOLD_PUBLISH = """
import pytest

_real = {"rename": os.rename, "replace": os.replace}


def _held(name):
    def publish(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == ".pytest_cache":
            complete = arrive_and_wait("publish", worker_id(), PARTIES)
            with open(ROOT / "publish-log", "a") as log:
                log.write(f"{worker_id()} {complete}\\n")
        return _real[name](src, dst, *args, **kwargs)
    return publish


if "PYTEST_XDIST_WORKER" in os.environ:
    os.rename = _held("rename")
    os.replace = _held("replace")


@pytest.fixture(scope="session", autouse=True)
def cache_user(pytestconfig):
    (ROOT / "touched").mkdir(exist_ok=True)
    pytestconfig.cache.mkdir("race")
    (ROOT / "touched" / worker_id()).touch()
"""


@pytest.fixture(autouse=True)
def _plugins_autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs under test need pytest-xdist: autoloaded, and named with ``-p xdist``
    too, for test suites whose ``pytester`` sets PYTEST_DISABLE_PLUGIN_AUTOLOAD."""
    pytest.importorskip("xdist")
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def leftovers(root: Path) -> list[Path]:
    """Private cache entries of any pytest release left anywhere below ``root``."""
    return sorted(root.rglob("pytest-cache-files-*"))


def assert_clean_output(result: RunResult, layer: str) -> None:
    text = "\n".join(result.outlines + result.errlines)
    for needle in (
        "Directory not empty",
        "INTERNALERROR",
        "PytestCacheWarning",
        "Traceback",
    ):
        assert needle not in text, f"[{layer}] {needle!r} in the output of the run"


def start_session(pytester: Pytester, *args: str) -> subprocess.Popen[str]:
    """A pytest session in its own process, running concurrently with the test."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", *args],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = process.communicate(timeout=RUN_TIMEOUT)
    return process.returncode, out


def lastfailed(pytester: Pytester) -> dict[str, bool]:
    path = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
    value: dict[str, bool] = json.loads(path.read_text(encoding="utf-8"))
    return value


class TestConcurrentCreation:
    @pytest.mark.layer("publish-race")
    def test_workers_publishing_the_cache_dir_at_once_all_succeed(
        self, pytester: Pytester
    ) -> None:
        """Every xdist worker creates the cache dir at the same moment (#12381).

        The losers of the publish race must keep the winner's directory: no
        "Directory not empty", every session fixture calling
        ``config.cache.mkdir()`` succeeds, and nothing private is left over.
        """
        pytester.makeconftest(BARRIERS + f"PARTIES = {WORKERS}\n" + HOLD_PUBLISH)
        pytester.makepyfile(
            **{f"test_{i}": "def test(): pass" for i in range(2 * WORKERS)}
        )

        result = pytester.runpytest_subprocess(
            "-p", "xdist", "-n", str(WORKERS), timeout=RUN_TIMEOUT
        )

        cachedir = pytester.path / ".pytest_cache"
        publish_log = pytester.path / "publish-log"
        # Releases before 8.2 create the dir in place, never publish, and add
        # no supporting files on this path: only publishing releases race here.
        if publish_log.exists():
            lines = publish_log.read_text().split()
            require(
                lines[1::2] == ["True"] * WORKERS, f"workers not held together: {lines}"
            )
        assert_clean_output(result, "publish-race")
        result.assert_outcomes(passed=2 * WORKERS)
        assert result.ret == 0
        touched = set(os.listdir(pytester.path / "touched"))
        require(len(touched) >= 2, f"only {touched} used the cache: no race took place")
        if publish_log.exists():
            for name in ("README.md", ".gitignore", "CACHEDIR.TAG"):
                assert (cachedir / name).is_file()
        assert (cachedir / "d" / "race").is_dir()
        assert leftovers(pytester.path) == []


class TestPermissions:
    # Logs every umask change made while pytest runs (pytest itself sets none).
    UMASK_LOG = """
import os

_real_umask = os.umask


def logged_umask(mask):
    with open(os.path.join(os.path.dirname(__file__), "umask-log"), "a") as log:
        log.write(f"{mask:o}\\n")
    return _real_umask(mask)


os.umask = logged_umask
"""

    @pytest.mark.layer("permissions")
    def test_cache_dir_gets_the_umask_modes_without_the_umask_being_changed(
        self, pytester: Pytester
    ) -> None:
        """Under umask 022 the cache dir is 0755 and a value 0644 (#12308), umask untouched.

        8.2.0 published a ``tempfile`` directory (0700); 8.2.1 and later set
        the process-wide umask twice to compute the mode, which races with any
        thread creating files meanwhile.
        """
        pytester.makeconftest(self.UMASK_LOG)
        pytester.makepyfile('def test(cache): cache.set("perm/value", 1)')
        old = os.umask(0o022)
        try:
            result = pytester.runpytest_subprocess(
                "-p", "no:xdist", timeout=RUN_TIMEOUT
            )
        finally:
            os.umask(old)

        result.assert_outcomes(passed=1)
        log = pytester.path / "umask-log"
        changes = log.read_text().split() if log.exists() else []
        assert changes == [], f"[permissions] the process umask was set to {changes}"
        cachedir = pytester.path / ".pytest_cache"
        modes = {
            "cache dir": cachedir.stat().st_mode & 0o777,
            "value": (cachedir / "v" / "perm" / "value").stat().st_mode & 0o777,
        }
        assert modes == {"cache dir": 0o755, "value": 0o644}, (
            f"[permissions] modes under umask 022: { {k: oct(v) for k, v in modes.items()} }"
        )


class TestAtomicSet:
    @pytest.mark.layer("atomic-set")
    def test_reader_never_sees_a_partly_written_value(self, pytester: Pytester) -> None:
        """A session reads a value while another session is half-way through rewriting it.

        The writer's file object writes half of the data, then waits until the
        reader has read: an in-place write shows the reader a torn file, which
        it silently takes for "no value".
        """
        pytester.makeconftest(
            BARRIERS
            + """
import pathlib

_real_open = pathlib.Path.open


class HalfThenWait:
    def __init__(self, f):
        self._f = f

    def write(self, data):
        half = len(data) // 2
        self._f.write(data[:half])
        self._f.flush()
        (ROOT / "half-written").touch()
        wait_for(ROOT / "reader-done")
        return self._f.write(data[half:])

    def __enter__(self):
        self._f.__enter__()
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._f, name)


def held_open(self, mode="r", *args, **kwargs):
    f = _real_open(self, mode, *args, **kwargs)
    if os.environ.get("HOLD_WRITES") and "v" in self.parts and ("w" in mode or "x" in mode):
        return HalfThenWait(f)
    return f


pathlib.Path.open = held_open
"""
        )
        pytester.makepyfile(
            test_writer="""
            import os
            def test_writer(cache):
                cache.set("race/value", {"version": "old", "padding": "x" * 4000})
                os.environ["HOLD_WRITES"] = "1"
                cache.set("race/value", {"version": "new", "padding": "y" * 4000})
            """,
            test_reader="""
            import json
            from conftest import ROOT, wait_for
            def test_reader(cache):
                assert wait_for(ROOT / "half-written")
                value = cache.get("race/value", {"version": "missing"})
                (ROOT / "reader-done").touch()
                assert value["version"] in ("old", "new"), "read a torn value"
            """,
        )
        writer = start_session(pytester, "test_writer.py")
        reader = start_session(pytester, "test_reader.py")
        reader_ret, reader_out = finish(reader)
        writer_ret, writer_out = finish(writer)

        assert writer_ret == 0, writer_out
        require(
            reader_ret == 0 or "read a torn value" in reader_out,
            f"the reader did not get to read during the write:\n{reader_out}",
        )
        assert reader_ret == 0, (
            f"[atomic-set] the reader got a torn value:\n{reader_out}"
        )
        assert leftovers(pytester.path) == []


class TestCacheClearUnderXdist:
    @pytest.mark.layer("cache-clear-once")
    def test_worker_started_late_does_not_clear_what_others_wrote(
        self, pytester: Pytester
    ) -> None:
        """``--cache-clear`` runs once, not again in a worker xdist restarts (#6670).

        One worker writes a value, then another worker dies after seeing it on
        disk; the replacement worker xdist starts must not wipe it.
        """
        stale = pytester.path / ".pytest_cache" / "v" / "stale" / "entry"
        stale.parent.mkdir(parents=True)
        stale.write_text("1")
        pytester.makeconftest(BARRIERS)
        pytester.makepyfile(
            test_write="""
            import pytest
            @pytest.mark.xdist_group("write")
            def test_write(cache):
                cache.set("race/kept", "written during the run")
            """,
            test_crash="""
            import os
            import pytest
            from conftest import ROOT, wait_for
            @pytest.mark.xdist_group("crash")
            def test_crash():
                if (ROOT / "crashed-once").exists():
                    return  # xdist hands the item to the replacement worker.
                if not wait_for(ROOT / ".pytest_cache" / "v" / "race" / "kept"):
                    pytest.fail("the value was never written by another worker")
                (ROOT / "crashed-once").touch()
                os._exit(1)
            """,
        )

        result = pytester.runpytest_subprocess(
            "-p",
            "xdist",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "--max-worker-restart=2",
            "--cache-clear",
            timeout=RUN_TIMEOUT,
        )

        text = "\n".join(result.outlines)
        require(
            "replacing crashed worker" in text, "no worker crashed and was replaced"
        )
        require(
            "the value was never written" not in text,
            "the worker meant to crash never saw the value",
        )
        kept = pytester.path / ".pytest_cache" / "v" / "race" / "kept"
        assert kept.is_file(), (
            "[cache-clear-once] the late worker cleared the cache again"
        )
        result.assert_outcomes(
            passed=2, failed=1
        )  # The crashed item reruns on the replacement.
        assert not stale.exists(), "--cache-clear did not clear the stale entry"
        text = "\n".join(result.outlines + result.errlines)
        assert "rm_rf" not in text and "PytestCacheWarning" not in text
        assert leftovers(pytester.path) == []


class TestOrphanSweep:
    KILL_AT = """
import os
import sys

_real = {"rename": os.rename, "replace": os.replace}


def _killing(name):
    def publish(src, dst, *args, **kwargs):
        kill_at = os.environ.get("KILL_AT")
        if kill_at and kill_at in os.fspath(dst):
            sys.stdout.flush()
            os._exit(9)
        return _real[name](src, dst, *args, **kwargs)
    return publish


os.rename = _killing("rename")
os.replace = _killing("replace")
"""

    @pytest.mark.parametrize(
        "kill_at",
        [
            pytest.param(".pytest_cache", id="publishing-cache-dir"),
            pytest.param("kept", id="writing-value"),
        ],
    )
    @pytest.mark.layer("orphan-sweep")
    def test_entry_of_a_killed_process_is_swept_by_the_next_session(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch, kill_at: str
    ) -> None:
        """A process killed while publishing leaves a private entry; the next run removes it."""
        pytester.makeconftest(self.KILL_AT)
        pytester.makepyfile('def test(cache): cache.set("race/kept", 1)')
        if kill_at == "kept":
            pytester.runpytest_subprocess(
                timeout=RUN_TIMEOUT
            )  # The cache dir exists already.
        monkeypatch.setenv("KILL_AT", kill_at)
        killed = pytester.runpytest_subprocess(timeout=RUN_TIMEOUT)
        require(killed.ret == 9, f"the run was not killed: rc {killed.ret}")
        require(leftovers(pytester.path), "the kill did not happen where it should")

        monkeypatch.delenv("KILL_AT")
        result = pytester.runpytest_subprocess(timeout=RUN_TIMEOUT)

        result.assert_outcomes(passed=1)
        left = leftovers(pytester.path)
        assert left == [], f"[orphan-sweep] the next session left {left}"
        assert (
            pytester.path / ".pytest_cache" / "v" / "race" / "kept"
        ).read_text() == "1"


class TestLastFailedAcrossSessions:
    FAILING = """
    from conftest import ROOT, wait_for
    def test_{name}():
        {wait}
        assert 0
    """

    # Session A announces, after its cache plugin has written, that it is done.
    A_DONE_AT_EXIT = (
        BARRIERS
        + """
import sys

def pytest_unconfigure(config):
    if "test_a.py" in sys.argv:
        (ROOT / "a-done").touch()
"""
    )

    @pytest.mark.layer("lastfailed-merge")
    def test_overlapping_sessions_keep_each_others_failures(
        self, pytester: Pytester
    ) -> None:
        """B reads lastfailed before A writes it and writes after A: both failures stay (#6423)."""
        pytester.makeconftest(self.A_DONE_AT_EXIT)
        pytester.makepyfile(
            test_a=self.FAILING.format(
                name="a", wait='assert wait_for(ROOT / "b-started")'
            ),
            test_b=self.FAILING.format(
                name="b",
                wait='(ROOT / "b-started").touch(); assert wait_for(ROOT / "a-done")',
            ),
        )
        a = start_session(pytester, "test_a.py")
        b = start_session(pytester, "test_b.py")
        (a_ret, a_out), (b_ret, b_out) = finish(a), finish(b)

        require((a_ret, b_ret) == (1, 1), a_out + b_out)
        require("timeout" not in a_out + b_out, a_out + b_out)
        kept = lastfailed(pytester)
        assert kept == {
            "test_a.py::test_a": True,
            "test_b.py::test_b": True,
        }, f"[lastfailed-merge] lastfailed kept only {sorted(kept)}"

    @pytest.mark.layer("lastfailed-merge")
    def test_session_that_now_passes_a_test_removes_only_that_entry(
        self, pytester: Pytester
    ) -> None:
        """A fixed test leaves lastfailed; entries another session added meanwhile stay."""
        pytester.makeconftest(BARRIERS)
        pytester.makepyfile(
            test_fixed="""
            from conftest import ROOT, wait_for
            def test_fixed():
                (ROOT / "fixed-running").touch()
                assert wait_for(ROOT / "other-done")
            """,
            test_other=self.FAILING.format(
                name="other", wait='assert wait_for(ROOT / "fixed-running")'
            ),
            test_old="def test_old(): assert 0",
        )
        lf = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
        lf.parent.mkdir(parents=True)
        lf.write_text(
            json.dumps(
                {"test_fixed.py::test_fixed": True, "test_old.py::test_old": True}
            )
        )
        fixed = start_session(pytester, "test_fixed.py")
        other = start_session(pytester, "test_other.py")
        other_ret, other_out = finish(other)
        (pytester.path / "other-done").touch()
        fixed_ret, fixed_out = finish(fixed)

        require((fixed_ret, other_ret) == (0, 1), fixed_out + other_out)
        kept = lastfailed(pytester)
        assert kept == {
            "test_old.py::test_old": True,
            "test_other.py::test_other": True,
        }, f"[lastfailed-merge] lastfailed is {sorted(kept)}"

    @pytest.mark.layer("lastfailed-merge")
    def test_sessions_finishing_at_once_lose_nothing(self, pytester: Pytester) -> None:
        """Sessions that all read lastfailed, then all write it at the same moment.

        Every session holds its write until the others reach theirs (bounded):
        without mutual exclusion all of them merge into the same old content.
        """
        sessions = 4
        pytester.makeconftest(
            BARRIERS
            + f"PARTIES = {sessions}\n"
            + """
import sys

_real_replace = os.replace


def held_replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(dst)) == "lastfailed":
        # With a lock nobody else can get here meanwhile; give up after a while.
        arrive_and_wait("write", str(os.getpid()), PARTIES, wait=2.0)
    return _real_replace(src, dst, *args, **kwargs)


os.replace = held_replace
"""
        )
        for i in range(sessions):
            pytester.makepyfile(
                **{
                    f"test_{i}": f"""
                    from conftest import arrive_and_wait, PARTIES
                    def test_{i}():
                        assert arrive_and_wait('read', '{i}', PARTIES)
                        assert 0
                    """
                }
            )
        running = [start_session(pytester, f"test_{i}.py") for i in range(sessions)]
        outcomes = [finish(p) for p in running]

        require(
            [ret for ret, _ in outcomes] == [1] * sessions,
            "\n".join(out for _, out in outcomes),
        )
        kept = lastfailed(pytester)
        assert kept == {f"test_{i}.py::test_{i}": True for i in range(sessions)}, (
            f"[lastfailed-merge] lastfailed kept only {sorted(kept)}"
        )

    @pytest.mark.layer("lastfailed-merge")
    def test_overlapping_sessions_keep_each_others_node_ids(
        self, pytester: Pytester
    ) -> None:
        """``cache/nodeids`` (``--nf``) keeps the node ids of both overlapping sessions."""
        pytester.makeconftest(self.A_DONE_AT_EXIT)
        pytester.makepyfile(
            test_a='from conftest import ROOT, wait_for\ndef test_a(): assert wait_for(ROOT / "b-started")',
            test_b="from conftest import ROOT, wait_for\n"
            'def test_b():\n    (ROOT / "b-started").touch()\n    assert wait_for(ROOT / "a-done")',
        )
        a = start_session(pytester, "test_a.py")
        b = start_session(pytester, "test_b.py")
        (a_ret, a_out), (b_ret, b_out) = finish(a), finish(b)

        require((a_ret, b_ret) == (0, 0), a_out + b_out)
        nodeids = json.loads(
            (pytester.path / ".pytest_cache/v/cache/nodeids").read_text()
        )
        assert nodeids == ["test_a.py::test_a", "test_b.py::test_b"], (
            f"[lastfailed-merge] nodeids kept only {nodeids}"
        )
