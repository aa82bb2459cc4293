"""The merged writes of ``lastfailed`` and ``nodeids`` on hostile ground (issues 10 and 19).

Whatever goes wrong with ``merge.lock`` (it cannot be opened, the filesystem
has no locks, its holder is stopped, it is replaced under us) the merged value
is still written, and silently, as stock pytest writes it; a holder that
resumes after another session went ahead keeps that session's entries; the
compare-and-swap holds on a real filesystem with 1 s timestamps; a corrupt
lastfailed is repaired; a test that crashed its xdist worker counts as run.
Tests without a ``layer`` marker guard against harm the merge itself could do.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import errno
import functools
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
import warnings

from race_harness import require
from race_harness import unavailable

from _pytest import cacheprovider
from _pytest.cacheprovider import Cache
from _pytest.pytester import Pytester
from _pytest.pytester import RunResult
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from envs import DROP_DAC


RUN_TIMEOUT = 240.0
WAIT = 60.0
# How a run turns warnings into errors: on the command line, or as pytest's own ini does.
WARNINGS_AS_ERRORS = ["-W error", "filterwarnings = error"]

FAILING_AND_PASSING = """
def test_fails():
    assert 0

def test_passes():
    pass
"""


def value(root: Path, key: str) -> object:
    """The JSON value of ``key`` in ``root``'s cache, or None when it is missing or invalid."""
    try:
        return json.loads((root / ".pytest_cache" / "v" / key).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def run(pytester: Pytester, *args: str, mode: str = "") -> RunResult:
    """A pytest session in its own process; ``mode`` is one of WARNINGS_AS_ERRORS, or ''."""
    if mode == "-W error":
        args = ("-W", "error", *args)
    elif mode:
        pytester.makeini(f"[pytest]\n{mode}\n")
    command = (sys.executable, "-m", "pytest", "-p", "no:xdist", *args)
    return pytester.run(*command, timeout=RUN_TIMEOUT)


def output(result: RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def cache_read_before_another_session_wrote(pytester: Pytester, key: str) -> Cache:
    """A session's cache in effect, whose ``key`` another session rewrote since it was read."""
    cache = pytester.parseconfigure().cache
    assert cache is not None
    cache._write_steps.clear()  # Written as another session, plainly.
    cache.set(key, ["from-another-session"])
    return cache


def merge_write(
    cache: Cache, key: str, value: object, merge: Callable[[object], object]
) -> None:
    """``cache.set(key, value)`` as the session's plugins write ``key``: merged by ``merge``."""
    cache._write_steps[key] = functools.partial(
        cache._merged_write, key, lambda on_disk, ours: merge(on_disk)
    )
    cache.set(key, value)


def union(on_disk: object) -> object:
    """Merge ``["ours"]`` into the node ids on disk, as the new-first plugin does."""
    known = on_disk if isinstance(on_disk, list) else []
    return sorted({*known, "ours"})


def merge_recording_warnings(
    cache: Cache, key: str, merge: Callable[[object], object] = union
) -> list[str]:
    """Write ``["ours"]`` for ``key`` as a session ends, merged by ``merge``."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        merge_write(cache, key, ["ours"], merge)
    return [str(w.message) for w in seen]


def lock_is_held_by_someone(lockfile: Path) -> bool:
    """Whether the file at ``lockfile`` is locked (by any open file description, ours included)."""
    import fcntl

    fd = os.open(lockfile, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


needs_posix_locks = pytest.mark.skipif(
    sys.platform == "win32", reason="flock and symlinks without privileges: POSIX"
)


def root_on_linux(what: str) -> None:
    """Skip unless root on Linux (CI runs as root on Linux: there, fail instead)."""
    if sys.platform.startswith("linux") and os.geteuid() == 0:
        return
    unavailable(f"{what} needs root on Linux")


@needs_posix_locks
class TestLockNeverCostsData:
    @pytest.mark.parametrize(
        "kind", ["directory", "dangling symlink", "symlink out of the cache dir"]
    )
    def test_unusable_lock_file_still_merges_and_writes(
        self, pytester: Pytester, kind: str
    ) -> None:
        key = "cache/nodeids"
        cache = cache_read_before_another_session_wrote(pytester, key)
        lockfile = cache._cachedir / "merge.lock"
        outside = pytester.path / "outside-the-cache"
        if kind == "directory":
            lockfile.mkdir()
        elif kind == "dangling symlink":
            lockfile.symlink_to(pytester.path / "nowhere")
        else:
            lockfile.symlink_to(outside)
        outside.write_text("not the cache's")

        outside_locked: list[bool] = []

        def merge(on_disk: object) -> object:
            outside_locked.append(outside.exists() and lock_is_held_by_someone(outside))
            return union(on_disk)

        merge_recording_warnings(cache, key, merge)

        written = value(pytester.path, key)
        assert written == ["from-another-session", "ours"], (
            f"merge.lock a {kind}: nodeids is {written!r}"
        )
        assert not (pytester.path / "nowhere").exists(), (
            "a dangling merge.lock symlink was followed"
        )
        assert outside_locked == [False], "merge.lock was followed out of the cache dir"
        assert outside.read_text() == "not the cache's"

    @pytest.mark.parametrize(
        "error",
        [
            "ENOLCK",
            "EOPNOTSUPP",
            "EBADF",
            "EIO",
        ],
        ids=str.lower,
    )
    def test_any_lock_error_merges_unlocked(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch, error: str
    ) -> None:
        """No locks on this filesystem, whatever the errno (EBADF: NFS and a read-only fd)."""
        import fcntl

        key = "cache/nodeids"
        cache = cache_read_before_another_session_wrote(pytester, key)

        def flock(fd: int, operation: int) -> None:
            raise OSError(getattr(errno, error), os.strerror(getattr(errno, error)))

        monkeypatch.setattr(fcntl, "flock", flock)
        merge_recording_warnings(cache, key)
        monkeypatch.undo()
        written = value(pytester.path, key)
        assert written == ["from-another-session", "ours"], (
            f"flock failing with {error}: nodeids is {written!r}"
        )

    @pytest.mark.parametrize("change", ["replaced", "deleted"])
    def test_lock_file_changed_while_locking_is_locked_again(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch, change: str
    ) -> None:
        """Another process replaces or deletes merge.lock just as we lock it: ours would exclude nobody."""
        key = "cache/nodeids"
        cache = cache_read_before_another_session_wrote(pytester, key)
        lockfile = cache._cachedir / "merge.lock"
        real_try_lock = cacheprovider._try_lock
        changed: list[bool] = []

        def try_lock(fd: int) -> bool:
            locked: bool = real_try_lock(fd)
            if locked and not changed:
                changed.append(True)
                if change == "replaced":
                    fresh = lockfile.with_name("merge.lock.new")
                    fresh.write_bytes(b"")
                    os.replace(fresh, lockfile)
                else:
                    lockfile.unlink()
            return locked

        held_during_merge: list[bool] = []

        def merge(on_disk: object) -> object:
            held_during_merge.append(
                lockfile.exists() and lock_is_held_by_someone(lockfile)
            )
            return union(on_disk)

        monkeypatch.setattr(cacheprovider, "_try_lock", try_lock)
        merge_recording_warnings(cache, key, merge)
        monkeypatch.undo()

        require(changed, "the lock was never taken, so never changed under it")
        assert held_during_merge == [True], (
            f"merged under a lock on a merge.lock that was {change}: "
            "the file at the path was not locked"
        )
        assert value(pytester.path, key) == ["from-another-session", "ours"]

    @pytest.mark.parametrize("owner", ["read-only", "another user's"])
    def test_lock_file_we_may_not_write_still_locks(
        self, pytester: Pytester, owner: str
    ) -> None:
        """As root without DAC capabilities: O_RDWR fails, a read-only descriptor locks."""
        root_on_linux("dropping DAC capabilities")
        if shutil.which("setpriv") is None:
            pytest.fail("setpriv (util-linux) is needed to drop DAC capabilities")
        pytester.makeconftest(
            """
            import fcntl
            import os
            import pathlib

            _real = {"replace": os.replace, "rename": os.rename, "open": pathlib.Path.open}

            def _record_lock(value):
                # Writing lastfailed: by a rename onto it, or by creating it (a new one).
                if os.path.basename(os.fspath(value)) != "lastfailed":
                    return
                cachedir = os.path.dirname(os.path.dirname(os.path.dirname(value)))
                fd = os.open(os.path.join(cachedir, "merge.lock"), os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = False
                except BlockingIOError:
                    held = True
                finally:
                    os.close(fd)
                with open("lock-seen", "w") as f:
                    f.write(str(held))

            def _checked(name):
                def write(src, dst, *args, **kwargs):
                    _record_lock(dst)
                    return _real[name](src, dst, *args, **kwargs)
                return write

            def _open(self, mode="r", *args, **kwargs):
                if set(mode) & set("wx"):
                    _record_lock(self)
                return _real["open"](self, mode, *args, **kwargs)

            os.replace = _checked("replace")
            os.rename = _checked("rename")
            pathlib.Path.open = _open
            """
        )
        pytester.makepyfile(test_it=FAILING_AND_PASSING)
        cachedir = pytester.path / ".pytest_cache"
        cachedir.mkdir()
        lockfile = cachedir / "merge.lock"
        lockfile.write_bytes(b"")
        if owner == "read-only":
            lockfile.chmod(0o444)
        else:
            os.chown(lockfile, 65534, 65534)
            lockfile.chmod(0o644)
        result = pytester.run(
            *DROP_DAC, sys.executable, "-m", "pytest", "-p", "no:xdist",
            timeout=RUN_TIMEOUT,
        )  # fmt: skip
        result.assert_outcomes(failed=1, passed=1)

        written = value(pytester.path, "cache/lastfailed")
        assert written == {"test_it.py::test_fails": True}, (
            f"merge.lock {owner}: lastfailed is {written!r}"
        )
        seen = (pytester.path / "lock-seen").read_text()
        assert seen == "True", f"merge.lock {owner}: merged without holding the lock"


@pytest.fixture
def stopped_holder(pytester: Pytester) -> Iterator[subprocess.Popen[bytes]]:
    """A session stopped (SIGSTOP) inside its locked write, just after lastfailed hit the disk."""
    pytester.makeconftest(
        """
        import os
        import signal
        from pathlib import Path

        _real = {"replace": os.replace, "rename": os.rename, "open": Path.open}

        def _stop(value):
            if os.environ.get("STOP_IN_LOCKED_WRITE") and (
                os.path.basename(os.fspath(value)) == "lastfailed"
            ):
                Path(__file__).with_name("holder-stopped").touch()
                os.kill(os.getpid(), signal.SIGSTOP)

        def _stopping(name):
            def write(src, dst, *args, **kwargs):
                result = _real[name](src, dst, *args, **kwargs)
                _stop(dst)
                return result
            return write

        def _open(self, mode="r", *args, **kwargs):
            f = _real["open"](self, mode, *args, **kwargs)
            if "x" in mode:  # A new value, created whole: stop once it is closed.
                close = f.close
                f.close = lambda: (close(), _stop(self))
            return f

        os.replace = _stopping("replace")
        os.rename = _stopping("rename")
        Path.open = _open
        """
    )
    pytester.makepyfile(
        test_a="def test_a(): assert 0", test_b="def test_b(): assert 0"
    )
    log = (pytester.path / "holder.log").open("wb")
    holder = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "test_a.py"],
        cwd=pytester.path,
        env={**os.environ, "STOP_IN_LOCKED_WRITE": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield holder
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        holder.wait(timeout=RUN_TIMEOUT)
        log.close()


def wait_until_stopped(pytester: Pytester, process: subprocess.Popen[bytes]) -> bool:
    import time

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and process.poll() is None:
        if (pytester.path / "holder-stopped").exists():
            with open(f"/proc/{process.pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
            if state == "T":
                return True
        time.sleep(0.01)
    return False


@pytest.mark.slow
class TestStoppedLockHolder:
    def test_next_session_writes_both_values_despite_a_stopped_holder(
        self, pytester: Pytester, stopped_holder: subprocess.Popen[bytes]
    ) -> None:
        """A holder stopped inside the locked write (SIGSTOP, a debugger) costs a bounded wait, no data."""
        root_on_linux("reading a process state from /proc")
        require(
            wait_until_stopped(pytester, stopped_holder),
            "the holder never stopped inside its locked write",
        )
        result = run(pytester, "test_b.py")
        result.assert_outcomes(failed=1)
        require(stopped_holder.poll() is None, "the holder went on meanwhile")

        lastfailed = value(pytester.path, "cache/lastfailed")
        assert lastfailed == {"test_a.py::test_a": True, "test_b.py::test_b": True}, (
            f"with the lock holder stopped, lastfailed is {lastfailed!r}"
        )
        nodeids = value(pytester.path, "cache/nodeids")
        assert isinstance(nodeids, list) and "test_b.py::test_b" in nodeids, (
            f"with the lock holder stopped, nodeids is {nodeids!r}"
        )


# A session (HOLDER set) that stops itself just before lastfailed is written:
# before the fork's os.replace or its creating open (a new lastfailed), or
# before stock's in-place open for writing.
STOPS_BEFORE_WRITING_LASTFAILED = """
import os
import pathlib
import signal

BARRIER = pathlib.Path(__file__).with_name("holder-stopped")
_real_replace = os.replace
_real_open = pathlib.Path.open


def _stop_once():
    if os.environ.get("HOLDER") and not BARRIER.exists():
        BARRIER.touch()
        os.kill(os.getpid(), signal.SIGSTOP)


def _replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(dst)) == "lastfailed":
        _stop_once()
    return _real_replace(src, dst, *args, **kwargs)


def _open(self, mode="r", *args, **kwargs):
    if self.name == "lastfailed" and set(mode) & set("wx"):
        _stop_once()
    return _real_open(self, mode, *args, **kwargs)


os.replace = _replace
pathlib.Path.open = _open
"""


def wait_for_stop(barrier: Path, process: subprocess.Popen[bytes]) -> None:
    """Return once ``process`` has stopped itself after creating ``barrier`` (a file barrier)."""
    import time

    deadline = time.monotonic() + WAIT
    while not barrier.exists():
        require(process.poll() is None, "the holder ended without stopping")
        require(time.monotonic() < deadline, f"no {barrier.name} after {WAIT} s")
        time.sleep(0.01)
    # Blocks for the instant between the barrier and SIGSTOP; keeps it waitable.
    status = os.waitid(os.P_PID, process.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
    require(
        status is not None
        and status.si_code
        == getattr(os, "CLD_STOPPED", 5),  # Python 3.8 lacks the name.
        f"the holder did not stop: {status}",
    )


@pytest.mark.slow
class TestResumedLockHolder:
    @pytest.mark.layer("lastfailed-merge")
    def test_holder_resumed_after_another_session_went_ahead_keeps_its_failure(
        self, pytester: Pytester
    ) -> None:
        """Issue 19: A stops (SIGSTOP, a debugger) just before writing lastfailed.

        A holds merge.lock meanwhile (stock has none); B waits its bounded
        patience, goes ahead and writes {a, d}; then A resumes and writes its
        {a, b}.  B's failure d must survive A's late write.
        """
        if not hasattr(signal, "SIGSTOP") or not hasattr(os, "waitid"):
            unavailable("stopping a process with SIGSTOP needs POSIX")
        pytester.makeconftest(STOPS_BEFORE_WRITING_LASTFAILED)
        pytester.makepyfile(
            test_a="def test_a(): assert 0",
            test_b="def test_b(): assert 0",
            test_d="def test_d(): assert 0",
        )
        a, b, d = (f"test_{n}.py::test_{n}" for n in "abd")
        path = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({a: True}))

        log = (pytester.path / "holder.log").open("wb")
        holder = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:xdist", "test_b.py"],
            cwd=pytester.path,
            env={**os.environ, "HOLDER": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_stop(pytester.path / "holder-stopped", holder)
            run(pytester, "test_d.py").assert_outcomes(failed=1)
            require(holder.poll() is None, "the holder went on meanwhile")
            went_ahead = value(pytester.path, "cache/lastfailed")
            require(went_ahead == {a: True, d: True}, f"B wrote {went_ahead!r}")
        finally:
            holder.send_signal(signal.SIGCONT)
            try:
                holder.wait(timeout=RUN_TIMEOUT)
            finally:
                holder.kill()
                log.close()
        require(holder.returncode == 1, (pytester.path / "holder.log").read_text())

        lastfailed = value(pytester.path, "cache/lastfailed")
        assert lastfailed == {a: True, b: True, d: True}, (
            f"[lastfailed-merge] the lock holder resumed after another session went "
            f"ahead and wrote over its failure: lastfailed is {lastfailed!r}"
        )
        # (B's copy of nodeids, left while A held the lock for lastfailed, goes
        # when the next session takes the lock to write nodeids.)
        assert not path.with_name("lastfailed.ahead").exists()


class TestSilentFallback:
    @pytest.mark.parametrize("mode", WARNINGS_AS_ERRORS)
    @pytest.mark.parametrize("why", ["ENOLCK", "merge.lock is a directory"])
    def test_unlocked_merge_is_silent_with_warnings_as_errors(
        self, pytester: Pytester, mode: str, why: str
    ) -> None:
        """Stock writes lastfailed and nodeids silently where the cache cannot lock (NFS without lockd)."""
        if why == "ENOLCK":
            pytester.makeconftest(
                """
                import errno
                import fcntl

                def _no_locks(fd, operation):
                    raise OSError(errno.ENOLCK, "No locks available")

                fcntl.flock = _no_locks
                """
            )
        else:
            (pytester.path / ".pytest_cache" / "merge.lock").mkdir(parents=True)
        pytester.makepyfile(test_it=FAILING_AND_PASSING)
        result = run(pytester, mode=mode)
        text = output(result)

        lastfailed = value(pytester.path, "cache/lastfailed")
        assert lastfailed == {"test_it.py::test_fails": True}, (
            f"{why}, {mode}: lastfailed is {lastfailed!r}\n{text}"
        )
        assert value(pytester.path, "cache/nodeids") == [
            "test_it.py::test_fails",
            "test_it.py::test_passes",
        ]
        for needle in ("Traceback", "INTERNALERROR", "Warning"):
            assert needle not in text, (
                f"{why}, {mode}: {needle!r} in the output\n{text}"
            )
        result.assert_outcomes(failed=1, passed=1)


@pytest.fixture
def coarse_fs(tmp_path: Path) -> Iterator[Path]:
    """A real ext4 with 128-byte inodes (1 s timestamps), loop-mounted, unmounted afterwards."""
    root_on_linux("loop-mounting a filesystem")
    image, mountpoint = tmp_path / "coarse.img", tmp_path / "coarse"
    mountpoint.mkdir()
    steps = [
        ["truncate", "-s", "64M", str(image)],
        ["mkfs.ext4", "-q", "-F", "-I", "128", str(image)],
        ["mount", "-o", "loop", str(image), str(mountpoint)],
    ]
    for step in steps:
        try:
            done = subprocess.run(
                step, check=False, capture_output=True, text=True, timeout=60
            )
        except FileNotFoundError as e:
            done = subprocess.CompletedProcess(step, 127, "", str(e))
        if done.returncode != 0:
            reason = (
                f"cannot make a coarse-timestamp filesystem: {step[0]}: {done.stderr}"
            )
            unavailable(reason)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], timeout=60, check=True)


def identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What the compare-and-swap of the lastfailed-merge layer compared."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class TestRacilyClean:
    @pytest.mark.parametrize("ends", ["within the window", "after it"])
    def test_same_size_rewrite_within_one_tick_is_merged(
        self,
        pytester: Pytester,
        coarse_fs: Path,
        monkeypatch: pytest.MonkeyPatch,
        ends: str,
    ) -> None:
        """ext4 reuses the inode at once; with 1 s timestamps only the tick could tell two versions apart.

        Session S reads lastfailed; within the same second another session
        rewrites it twice with values of the same size, the second time on
        the first version's inode number.  S's merge must still see the rewrite,
        also when S ends after the timestamps have settled.
        """
        key = "cache/lastfailed"
        cachedir = coarse_fs / "cache"
        option = ("-o", f"cache_dir={cachedir}")
        path = cachedir / "v" / "cache" / "lastfailed"
        for _ in range(10):
            shutil.rmtree(cachedir, ignore_errors=True)
            writer = pytester.parseconfigure(*option).cache
            assert writer is not None
            writer._write_steps.clear()  # Another session, writing plainly.
            writer.set(key, {"t.py::x": True})
            first = os.stat(path)
            # Configuring reads lastfailed (LFPlugin), as a session starts.
            session = pytester.parseconfigure(*option).cache
            assert session is not None
            assert session.get(key, {}) == {"t.py::x": True}
            writer.set(key, {"t.py::y": True})
            writer.set(key, {"t.py::z": True})
            last = os.stat(path)
            if identity(first) == identity(last):
                break
        else:
            require(False, "no rewrite looked identical (tick crossed, no inode reuse)")
        assert session is not None
        if ends == "after it":
            later = time.time_ns() + 10**10
            monkeypatch.setattr(time, "time_ns", lambda: later)

        def merge(on_disk: object) -> object:
            """As the session that ran only ``t.py::s`` (which failed) merges."""
            assert isinstance(on_disk, dict)
            return {**on_disk, "t.py::s": True}

        merge_write(session, key, {"t.py::x": True, "t.py::s": True}, merge)

        written = json.loads(path.read_text())
        assert "t.py::z" in written, (
            f"lastfailed lost t.py::z, rewritten within one 1 s tick: {written}"
        )
        assert written == {"t.py::z": True, "t.py::s": True}


class TestCorruptLastfailed:
    @pytest.mark.layer("lastfailed-merge")
    @pytest.mark.parametrize("mode", WARNINGS_AS_ERRORS)
    def test_corrupt_lastfailed_is_repaired_when_every_test_passes(
        self, pytester: Pytester, mode: str
    ) -> None:
        path = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
        path.parent.mkdir(parents=True)
        path.write_bytes(b'{"test_it.py::test_passes": tr')  # Torn by a full disk, say.
        pytester.makepyfile(test_it="def test_passes(): pass")
        result = run(pytester, mode=mode)
        text = output(result)
        result.assert_outcomes(passed=1)

        repaired = value(pytester.path, "cache/lastfailed")
        assert repaired is not None, (
            f"[lastfailed-merge] lastfailed still holds {path.read_bytes()!r}"
        )
        assert repaired == {}
        assert "Warning" not in text and "Traceback" not in text, text

    def test_passing_run_creates_no_lastfailed(self, pytester: Pytester) -> None:
        """As upstream: a run where nothing failed and nothing was recorded writes no lastfailed."""
        pytester.makepyfile(test_it="def test_passes(): pass")
        run(pytester, mode="-W error").assert_outcomes(passed=1)
        assert not (
            pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
        ).exists()


@pytest.mark.slow
class TestCrashedTestsCounted:
    def test_failure_of_a_test_that_crashed_its_worker_is_kept(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Session B's test crashes its xdist worker after session A passed it and wrote lastfailed.

        B ran the test after A: its crash is the newest result and must stay
        in lastfailed, although B's view of the entry is what B read at start.
        """
        pytest.importorskip("xdist")
        monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
        pytester.makeconftest(
            """
            import os
            import time
            from pathlib import Path

            ROOT = Path(__file__).parent

            def wait_for(path, wait=60.0):
                deadline = time.monotonic() + wait
                while not path.exists():
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.01)
                return True

            def pytest_unconfigure(config):
                if not os.environ.get("CRASH"):
                    (ROOT / "a-done").touch()
            """
        )
        pytester.makepyfile(
            test_crash="""
            import os
            from conftest import ROOT, wait_for

            def test_crash():
                if os.environ.get("CRASH"):
                    (ROOT / "b-running").touch()
                    assert wait_for(ROOT / "a-done")
                    os._exit(1)
                assert wait_for(ROOT / "b-running")
            """
        )
        nodeid = "test_crash.py::test_crash"
        path = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({nodeid: True}))

        b = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-n", "1", "--max-worker-restart=1"],
            cwd=pytester.path,
            env={**os.environ, "CRASH": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            a = run(pytester)
        finally:
            b_out, _ = b.communicate(timeout=RUN_TIMEOUT)
        require(a.ret == 0, output(a))
        require("crashed" in b_out and b.returncode == 1, b_out)

        lastfailed = value(pytester.path, "cache/lastfailed")
        assert lastfailed == {nodeid: True}, (
            f"lastfailed lost the failure of the test that "
            f"crashed its worker: {lastfailed!r}"
        )
