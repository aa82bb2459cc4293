"""One filesystem step at a time: the cache's primitives, failures simulated.

The races themselves are reproduced with real processes in
``test_cacheprovider_races.py``; here each branch is driven by patching the one
call that fails (``Path.rename``, ``os.replace``, ...), without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import errno
import functools
import json
import os
from pathlib import Path
import stat
import subprocess
import sys
import time
import warnings

from _pytest import cacheprovider
from _pytest.cacheprovider import _clears_here
from _pytest.cacheprovider import _make_cachedir
from _pytest.cacheprovider import _own_dead_pid
from _pytest.cacheprovider import _sweep_orphans
from _pytest.cacheprovider import _try_lock
from _pytest.cacheprovider import _write_atomic
from _pytest.cacheprovider import Cache
from _pytest.pytester import Pytester
import pytest


SUPPORTING_FILES = ("README.md", ".gitignore", "CACHEDIR.TAG")


def private_entries(root: Path) -> list[Path]:
    return sorted(root.rglob("pytest-cache-files-*"))


def own_private_name(directory: Path, pid: int) -> Path:
    """A private name as this build makes them in ``directory``, with ``pid`` in it."""
    name: str = cacheprovider._private_leaf()
    return directory / name.replace(f"-{os.getpid()}-", f"-{pid}-", 1)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def rename_after_winner(error: OSError) -> Callable[[Path, Path], Path]:
    """A ``Path.rename`` that lets a 'winner' publish ``target`` first, then fails with ``error``."""
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        winner = Path(str(target) + ".winner")
        winner.mkdir()
        (winner / "README.md").write_text("the winner's")
        real_rename(winner, target)
        raise error

    return rename


class TestPublishRace:
    @pytest.mark.parametrize(
        "platform, error",
        [
            pytest.param(
                "linux",
                OSError(errno.ENOTEMPTY, "Directory not empty"),
                id="posix-ENOTEMPTY",
            ),
            pytest.param(
                "linux", OSError(errno.EEXIST, "File exists"), id="posix-EEXIST"
            ),
            pytest.param(
                "win32",
                FileExistsError(errno.EEXIST, "Cannot create a file"),
                id="windows-EEXIST",
            ),
            pytest.param(
                "win32",
                PermissionError(errno.EACCES, "Access is denied"),
                id="windows-EACCES",
            ),
        ],
    )
    def test_loser_keeps_the_winners_dir_and_cleans_up(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        platform: str,
        error: OSError,
    ) -> None:
        """The loser of the publish race discards its own dir and carries on (#12381)."""
        target = tmp_path / ".pytest_cache"
        with monkeypatch.context() as m:
            m.setattr(sys, "platform", platform)
            m.setattr(Path, "rename", rename_after_winner(error))
            _make_cachedir(target)

        assert (target / "README.md").read_text() == "the winner's"
        assert private_entries(tmp_path) == []

    def test_access_denied_on_posix_is_an_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """EACCES only means 'lost the race' on Windows; elsewhere it is reported."""
        target = tmp_path / ".pytest_cache"
        with monkeypatch.context() as m:
            m.setattr(sys, "platform", "linux")
            m.setattr(
                Path,
                "rename",
                rename_after_winner(PermissionError(errno.EACCES, "denied")),
            )
            with pytest.raises(PermissionError):
                _make_cachedir(target)
        assert private_entries(tmp_path) == []

    def test_rename_error_without_a_winner_is_reraised(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ENOTEMPTY with no directory in place is not a lost race."""

        def rename(self: Path, target: Path) -> Path:
            raise OSError(errno.ENOTEMPTY, "Directory not empty")

        with monkeypatch.context() as m:
            m.setattr(Path, "rename", rename)
            with pytest.raises(OSError, match="Directory not empty"):
                _make_cachedir(tmp_path / ".pytest_cache")
        assert private_entries(tmp_path) == []

    @pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit, RuntimeError])
    def test_interrupt_between_staging_and_publishing_leaves_nothing(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        interrupt: type[BaseException],
    ) -> None:
        def rename(self: Path, target: Path) -> Path:
            staged = private_entries(tmp_path)
            assert staged == [self], "not called with the staging dir"
            raise interrupt()

        target = tmp_path / ".pytest_cache"
        with monkeypatch.context() as m:
            m.setattr(Path, "rename", rename)
            with pytest.raises(interrupt):
                _make_cachedir(target)
        assert not target.exists()
        assert private_entries(tmp_path) == []

    def test_failure_while_writing_supporting_files_leaves_nothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_open = Path.open

        def open_(
            self: Path, mode: str = "r", *args: object, **kwargs: object
        ) -> object:
            if self.name == "CACHEDIR.TAG":
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_open(self, mode, *args, **kwargs)  # type: ignore[call-overload]

        with monkeypatch.context() as m:
            m.setattr(Path, "open", open_)
            with pytest.raises(OSError, match="No space left"):
                _make_cachedir(tmp_path / ".pytest_cache")
        assert list(tmp_path.iterdir()) == []

    def test_path_that_is_a_file_gives_a_clear_error(self, tmp_path: Path) -> None:
        target = tmp_path / ".pytest_cache"
        target.write_text("precious")
        with pytest.raises(NotADirectoryError, match="exists and is not a directory"):
            _make_cachedir(target)
        assert target.read_text() == "precious"
        assert private_entries(tmp_path) == []


class TestPermissions:
    @pytest.mark.parametrize(
        ("mask", "dir_mode", "file_mode"),
        [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)],
    )
    def test_modes_follow_the_umask_without_changing_it(
        self,
        pytester: Pytester,
        monkeypatch: pytest.MonkeyPatch,
        mask: int,
        dir_mode: int,
        file_mode: int,
    ) -> None:
        """Plain mkdir/open permissions (#12308), and the process umask is never touched."""
        config = pytester.parseconfigure()
        assert config.cache is not None

        def no_umask(mask: int) -> int:
            raise AssertionError("the cache changed the process umask")

        with umask(mask), monkeypatch.context() as m:
            m.setattr(os, "umask", no_umask)
            config.cache.set("plugin/value", 1)
            created = config.cache.mkdir("plugin-dir")

        cachedir = config.cache._cachedir
        for directory in (cachedir, cachedir / "v", cachedir / "v" / "plugin", created):
            assert mode(directory) == dir_mode, directory
        for file in (
            *(cachedir / name for name in SUPPORTING_FILES),
            cachedir / "v" / "plugin" / "value",
        ):
            assert mode(file) == file_mode, file


class TestAtomicWrite:
    def test_failing_replace_keeps_the_old_value_removes_the_private_file_and_warns(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = pytester.parseconfigure()
        cache = config.cache
        assert cache is not None
        cache.set("plugin/value", "old")

        def replace(*args: object) -> None:
            raise OSError(errno.EIO, "Input/output error")

        with monkeypatch.context() as m:
            m.setattr(os, "replace", replace)
            with pytest.warns(
                pytest.PytestCacheWarning,
                match="cache could not write path .*Input/output error",
            ):
                cache.set("plugin/value", "new")

        assert cache.get("plugin/value", None) == "old"
        assert private_entries(cache._cachedir) == []

    @pytest.mark.parametrize("in_place_fails", [False, True])
    def test_full_disk_falls_back_to_the_in_place_write(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch, in_place_fails: bool
    ) -> None:
        """ENOSPC for the private file: rewritten in place, silently as stock; never torn."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache.set("plugin/value", "old")
        real_open = Path.open

        def open_(
            self: Path, mode: str = "r", *args: object, **kwargs: object
        ) -> object:
            if self.name.startswith("pytest-cache-files-"):
                raise OSError(errno.ENOSPC, "No space left on device")
            f = real_open(self, mode, *args, **kwargs)  # type: ignore[call-overload]
            if in_place_fails and "+" in mode:
                real_write = f.write

                def write(data: bytes) -> int:
                    if bytes(data) == b'"a much longer new value"':
                        real_write(bytes(data)[:3])  # Torn, then the disk is full.
                        raise OSError(errno.ENOSPC, "No space left on device")
                    return real_write(data)  # type: ignore[no-any-return]

                f.write = write
            return f

        with monkeypatch.context() as m, warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            m.setattr(Path, "open", open_)
            cache.set("plugin/value", "a much longer new value")

        expected = "old" if in_place_fails else "a much longer new value"
        assert cache.get("plugin/value", None) == expected
        path = cache._getvaluepath("plugin/value")
        warned = (
            f"cache could not write path {path}: [Errno 28] No space left on device"
        )
        assert [str(w.message) for w in seen] == ([warned] if in_place_fails else [])
        assert private_entries(cache._cachedir) == []

    def test_interrupted_write_keeps_the_old_value(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        target = tmp_path / "value"
        target.write_text('"old"')

        def replace(src: object, dst: object) -> None:
            raise KeyboardInterrupt

        with monkeypatch.context() as m:
            m.setattr(os, "replace", replace)
            with pytest.raises(KeyboardInterrupt):
                _write_atomic(target, b'"new"', tmp_path, {})
        assert target.read_text() == '"old"'
        assert list(tmp_path.iterdir()) == [target]

    def test_windows_reader_holding_the_file_is_waited_for(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Windows refuses to replace an open file (EACCES): retried, bounded."""
        real_replace = os.replace
        failures = iter([PermissionError(errno.EACCES, "Access is denied")] * 2)

        def replace(src: str, dst: str) -> None:
            error = next(failures, None)
            if error is not None:
                raise error
            real_replace(src, dst)

        with monkeypatch.context() as m:
            m.setattr(sys, "platform", "win32")
            m.setattr(os, "replace", replace)
            _write_atomic(tmp_path / "value", b"1", tmp_path, {})
        assert (tmp_path / "value").read_text() == "1"

    def test_access_denied_on_posix_is_not_retried(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls = []

        def replace(src: str, dst: str) -> None:
            calls.append(dst)
            raise PermissionError(errno.EACCES, "denied")

        with monkeypatch.context() as m:
            m.setattr(sys, "platform", "linux")
            m.setattr(os, "replace", replace)
            with pytest.raises(PermissionError):
                _write_atomic(tmp_path / "value", b"1", tmp_path, {})
        assert len(calls) == 1
        assert list(tmp_path.iterdir()) == []

    def test_value_file_keeps_its_mode(self, pytester: Pytester) -> None:
        """A replaced file is a new file: it gets the old one's mode, not the umask's."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache.set("plugin/token", "old")
        path = cache._getvaluepath("plugin/token")
        path.chmod(0o600)
        with umask(0o022):
            cache.set("plugin/token", "new")
        assert mode(path) == 0o600
        assert cache.get("plugin/token", None) == "new"

    def test_symlinked_value_is_written_through(self, pytester: Pytester) -> None:
        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache.set("plugin/value", "old")
        shared = pytester.path / "shared.json"
        shared.write_text('"shared"')
        path = cache._getvaluepath("plugin/value")
        path.unlink()
        path.symlink_to(shared)
        cache.set("plugin/value", "new")
        assert path.is_symlink()
        assert json.loads(shared.read_text()) == "new"
        assert private_entries(pytester.path) == []

    def test_lone_surrogates_are_written_as_escapes(self, pytester: Pytester) -> None:
        """A node id from a file name that is not UTF-8 reads back the same."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        nodeid = "test_caf\udce9.py::test_it"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            cache.set("cache/lastfailed", {nodeid: True})
        raw = cache._getvaluepath("cache/lastfailed").read_bytes()
        assert raw.decode("utf-8") and json.loads(raw) == {nodeid: True}

    @pytest.mark.parametrize(
        "raw",
        ['"\\ud800"'.encode("utf-16"), b'\xef\xbb\xbf"bom"', b'"\xed\xa0\x80"'],
        ids=["utf-16", "utf-8-bom", "encoded-surrogate"],
    )
    def test_value_read_as_stock_reads_it(self, pytester: Pytester, raw: bytes) -> None:
        """Strict UTF-8 without a BOM, as stock's text read: anything else is no value."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache.set("plugin/value", "old")
        cache._getvaluepath("plugin/value").write_bytes(raw)
        assert cache.get("plugin/value", "default") == "default"


class TestKeysConfined:
    @pytest.mark.parametrize(
        "key", ["../escaped", "plugin/../../escaped", "/absolute/escaped", "//absolute"]
    )
    def test_escaping_keys_are_rejected(self, pytester: Pytester, key: str) -> None:
        cache = pytester.parseconfigure().cache
        assert cache is not None
        with pytest.raises(
            ValueError, match="not allowed to escape the cache directory"
        ):
            cache.set(key, 1)
        with pytest.raises(
            ValueError, match="not allowed to escape the cache directory"
        ):
            cache.get(key, None)
        assert not (pytester.path / "escaped").exists()

    def test_mkdir_cannot_climb_out_of_its_folder(self, pytester: Pytester) -> None:
        """``..`` is one path part, so the separator check alone lets it through."""
        config = pytester.parseconfigure()
        assert config.cache is not None
        with pytest.raises(ValueError, match="escape"):
            config.cache.mkdir("..")

    def test_separators_are_still_rejected_by_mkdir(self, pytester: Pytester) -> None:
        config = pytester.parseconfigure()
        assert config.cache is not None
        with pytest.raises(ValueError, match="path separators"):
            config.cache.mkdir("a/b")

    def test_dotdot_that_stays_inside_is_allowed(self, pytester: Pytester) -> None:
        config = pytester.parseconfigure()
        assert config.cache is not None
        config.cache.set("plugin/sub/../value", 42)
        assert config.cache.get("plugin/value", None) == 42

    def test_keys_stock_accepts_work(self, pytester: Pytester) -> None:
        """``pathlib.Path`` keys and trailing slashes, as every release accepts them."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            cache.set(Path("plugin") / "path-key", 1)  # type: ignore[arg-type]
            cache.set("plugin/slash/", 2)
            made = cache.mkdir(Path("plugin-dir"))  # type: ignore[arg-type]
        assert cache.get(Path("plugin/path-key"), None) == 1  # type: ignore[arg-type]
        assert cache.get("plugin/slash", None) == 2
        assert made.is_dir() and made.name == "plugin-dir"


class TestOrphanRule:
    @pytest.fixture
    def dead_pid(self) -> int:
        process = subprocess.Popen([sys.executable, "-c", "pass"])
        process.wait()
        return process.pid

    def test_own_names_are_judged_by_pid(self, dead_pid: int) -> None:
        assert _own_dead_pid(own_private_name(Path(), dead_pid).name) is True
        assert _own_dead_pid(own_private_name(Path(), os.getpid()).name) is False
        for foreign in (
            "pytest-cache-files-k3x9_q1z",  # Upstream's tempfile names.
            f"pytest-cache-files-x-{dead_pid}-0a1b2c3d",  # No owner id.
            f"pytest-cache-files-abcdefghij-{dead_pid}-0a1b2c3d",  # Another namespace.
            "pytest-cache-files-"
            + own_private_name(Path(), 1).name.split("-")[3]
            + "-99999999999999999999-x",  # Not a pid.
        ):
            assert _own_dead_pid(foreign) is None, foreign

    def test_sweep_spares_symlinks_live_and_young_entries(
        self, tmp_path: Path, dead_pid: int
    ) -> None:
        cachedir = tmp_path / ".pytest_cache"
        (cachedir / "v" / "plugin").mkdir(parents=True)
        precious = tmp_path / "precious"
        precious.mkdir()
        (precious / "data").write_text("keep me")
        link = own_private_name(tmp_path, dead_pid).with_name(
            own_private_name(tmp_path, dead_pid).name + "-link"
        )
        link.symlink_to(precious, target_is_directory=True)
        live = own_private_name(tmp_path, os.getpid())
        live.mkdir()
        old = time.time() - 2 * cacheprovider.ORPHAN_TIMEOUT
        live_but_old = own_private_name(cachedir, os.getpid())
        live_but_old.mkdir()
        os.utime(live_but_old, (old, old))
        foreign_young = tmp_path / "pytest-cache-files-k3x9_q1z"
        foreign_young.mkdir()
        foreign_old = cachedir / "pytest-cache-files-a1b2c3d4"
        foreign_old.mkdir()
        os.utime(foreign_old, (old, old))
        orphans = [
            own_private_name(tmp_path, dead_pid),
            own_private_name(cachedir, dead_pid),
        ]
        orphans[0].mkdir()
        (orphans[0] / "README.md").write_text("half")
        orphans[1].write_text('{"half": ')

        _sweep_orphans(cachedir)

        assert not any(p.exists() for p in [*orphans, foreign_old])
        assert link.is_symlink() and (precious / "data").read_text() == "keep me"
        assert set(private_entries(tmp_path)) == {
            link,
            live,
            live_but_old,
            foreign_young,
        }


class TestMerges:
    def test_merge_reads_again_only_a_value_somebody_rewrote(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The signature taken before the session read proves the file unchanged (compare-and-swap)."""
        # Files written a moment ago are identified by content (racily clean); fine either way.
        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache._write_steps.clear()  # A plain writer: another session, in effect.
        cache.set("cache/nodeids", ["t.py::1"])
        other = pytester.parseconfigure().cache  # Another session, in effect.
        assert other is not None
        other._signatures["cache/nodeids"] = cacheprovider._signature(
            other._value_file("cache/nodeids")
        )
        seen: list[object] = []

        def merge(on_disk: object, ours: object) -> object:
            seen.append(on_disk)
            return ["merged"]

        other._write_steps["cache/nodeids"] = functools.partial(
            other._merged_write, "cache/nodeids", merge
        )
        other.set("cache/nodeids", ["t.py::2"])
        assert seen == [] and other.get("cache/nodeids", None) == ["t.py::2"]
        cache.set("cache/nodeids", ["t.py::3"])  # Rewritten behind the other's back...
        other.set("cache/nodeids", ["t.py::4"])  # ...so it merges.
        assert seen == [["t.py::3"]]
        assert other.get("cache/nodeids", None) == ["merged"]

    def test_value_read_while_racy_and_unchanged_is_not_merged_once_settled(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A session that starts right after another ended reads a racy file (known by content).

        When it ends, the file's timestamps have settled: unchanged, it must
        not be read and merged again (a megabyte-sized lastfailed, decoded).
        """
        writer = pytester.parseconfigure().cache
        assert writer is not None
        writer._write_steps.clear()  # Another session, writing plainly.
        writer.set("cache/nodeids", ["t.py::1"])
        path = writer._getvaluepath("cache/nodeids")
        mtime = os.stat(path).st_mtime_ns
        monkeypatch.setattr(time, "time_ns", lambda: mtime + 1)  # As it is written.
        session = pytester.parseconfigure().cache
        assert session is not None
        assert session._signatures["cache/nodeids"][-1] is not None  # Racy: a digest.
        monkeypatch.setattr(time, "time_ns", lambda: mtime + 10**10)  # 10 s later.
        seen: list[object] = []

        def merge(on_disk: object, ours: object) -> object:
            seen.append(on_disk)
            return ours

        session._write_steps["cache/nodeids"] = functools.partial(
            session._merged_write, "cache/nodeids", merge
        )
        session.set("cache/nodeids", ["t.py::2"])
        assert seen == [], f"merged with {seen}: nobody rewrote it"
        assert session.get("cache/nodeids", None) == ["t.py::2"]

    def test_merge_of_bytes_already_on_disk_takes_no_lock(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache._write_steps.clear()
        cache.set("cache/nodeids", ["a"])

        def no_lock(*args: object, **kwargs: object) -> object:
            raise AssertionError("locked to write what is on disk already")

        monkeypatch.setattr(cacheprovider, "_locked", no_lock)
        path = cache._getvaluepath("cache/nodeids")
        write = functools.partial(cache._write_value, path)
        cache._merged_write("cache/nodeids", cacheprovider._united, write, ["a"])
        assert not (cache._cachedir / "merge.lock").exists()


class TestLocking:
    def test_lock_held_by_another_process_is_not_taken(self, tmp_path: Path) -> None:
        lockfile = tmp_path / "lock"
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                (
                    "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
                    "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()"
                ),
                str(lockfile),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            fd = os.open(lockfile, os.O_RDWR)
            try:
                assert _try_lock(fd) is False
            finally:
                os.close(fd)
        finally:
            holder.communicate("", timeout=30)
        fd = os.open(lockfile, os.O_RDWR)
        try:
            assert _try_lock(fd) is True, "a dead holder's lock must be free"
        finally:
            os.close(fd)

    def test_filesystem_without_locks_merges_unlocked_silently(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Stock writes unlocked and says nothing; so does the merge (no warning, even as error)."""
        import fcntl

        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache.set("cache/nodeids", ["from-another-session"])

        def flock(fd: int, operation: int) -> None:
            raise OSError(errno.ENOLCK, "No locks available")

        with monkeypatch.context() as m, warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            m.setattr(fcntl, "flock", flock)
            cache._write_steps["cache/nodeids"] = functools.partial(
                cache._merged_write, "cache/nodeids", cacheprovider._united
            )
            cache.set("cache/nodeids", ["ours"])
        assert cache.get("cache/nodeids", None) == ["from-another-session", "ours"]
        assert [str(w.message) for w in seen] == [], "the unlocked merge warned"


class TestCacheClearOnce:
    def test_which_process_clears(self, pytester: Pytester) -> None:
        """The controller; a worker only when asked, and never one sharing its cache (#6670)."""
        config = pytester.parseconfigure("--cache-clear")
        cachedir = pytester.path / ".pytest_cache"
        assert _clears_here(config, cachedir)
        config.workerinput = {"workerid": "gw1"}  # type: ignore[attr-defined]
        assert not _clears_here(config, cachedir)  # Started late, or an old controller.
        asked = cacheprovider._cache_identity(pytester.path / "elsewhere")
        config.workerinput[cacheprovider._CLEAR_UNLESS_CACHE] = asked  # type: ignore[attr-defined]
        assert _clears_here(config, cachedir)  # A cache of its own (--tx popen//chdir).
        same = cacheprovider._cache_identity(cachedir)
        config.workerinput[cacheprovider._CLEAR_UNLESS_CACHE] = same  # type: ignore[attr-defined]
        assert not _clears_here(config, cachedir)  # The controller cleared it.
        del config.workerinput  # type: ignore[attr-defined]

    def test_clear_finishes_an_interrupted_clear(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = pytester.parseconfigure()
        cache = config.cache
        assert cache is not None
        cache.set("plugin/value", 1)
        cachedir = cache._cachedir

        def interrupted(path: Path, *args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt

        with monkeypatch.context() as m:
            m.setattr(cacheprovider, "rm_rf", interrupted)
            with pytest.raises(KeyboardInterrupt):
                Cache.clear_cache(cachedir, _ispytest=True)
        (claim,) = private_entries(cachedir)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        orphaned = claim.with_name(
            claim.name.replace(f"-{os.getpid()}-", f"-{dead.pid}-")
        )
        claim.rename(orphaned)  # As if its owner had died meanwhile.
        Cache.clear_cache(cachedir, _ispytest=True)
        assert private_entries(pytester.path) == []
        assert not (cachedir / "v").exists()
