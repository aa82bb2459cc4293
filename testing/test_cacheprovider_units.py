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
import json
import os
from pathlib import Path
import stat
import subprocess
import sys
import time
import warnings

from _pytest import cacheprovider
from _pytest.cacheprovider import _is_orphan
from _pytest.cacheprovider import _make_cachedir
from _pytest.cacheprovider import _merge_lastfailed
from _pytest.cacheprovider import _merge_nodeids
from _pytest.cacheprovider import _refuse_non_directory
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
    name: str = cacheprovider._private_name(directory).name
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
            _refuse_non_directory(target)
        with pytest.raises(NotADirectoryError):
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
    @pytest.mark.parametrize("step", ["write", "replace"])
    def test_failing_step_keeps_the_old_value_removes_the_temp_file_and_warns(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch, step: str
    ) -> None:
        config = pytester.parseconfigure()
        cache = config.cache
        assert cache is not None
        cache.set("plugin/value", "old")

        def full(*args: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        with monkeypatch.context() as m:
            m.setattr(os, step, full)
            with pytest.warns(
                pytest.PytestCacheWarning,
                match="cache could not write path .*No space left",
            ):
                cache.set("plugin/value", "new")

        assert cache.get("plugin/value", None) == "old"
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
                _write_atomic(target, '"new"')
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
            _write_atomic(tmp_path / "value", "1")
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
                _write_atomic(tmp_path / "value", "1")
        assert len(calls) == 1
        assert list(tmp_path.iterdir()) == []


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


class TestOrphanRule:
    @pytest.fixture
    def dead_pid(self) -> int:
        process = subprocess.Popen([sys.executable, "-c", "pass"])
        process.wait()
        return process.pid

    @pytest.mark.parametrize(
        ("name", "age", "orphan"),
        [
            # Our own name format with a dead pid (the owner id, if any, is ours).
            pytest.param("{own_dead}", 0, True, id="dead-pid"),
            pytest.param("pytest-cache-files-{live}-0a1b2c3d", 0, False, id="live-pid"),
            pytest.param(
                "pytest-cache-files-{live}-0a1b2c3d",
                2 * 3600,
                True,
                id="live-pid-but-old",
            ),
            pytest.param("pytest-cache-files-k3x9_q1z", 0, False, id="upstream-name"),
            pytest.param(
                "pytest-cache-files-k3x9_q1z", 2 * 3600, True, id="upstream-name-old"
            ),
            pytest.param("unrelated-{dead}", 2 * 3600, False, id="not-ours"),
        ],
    )
    def test_rule(
        self, tmp_path: Path, dead_pid: int, name: str, age: float, orphan: bool
    ) -> None:
        own_dead = own_private_name(tmp_path, dead_pid).name
        entry = tmp_path / name.format(
            dead=dead_pid, live=os.getpid(), own_dead=own_dead
        )
        entry.mkdir()
        os.utime(entry, (time.time() - age, time.time() - age))
        (found,) = os.scandir(tmp_path)
        threshold = time.time() - cacheprovider.ORPHAN_TIMEOUT
        assert _is_orphan(found, consider_orphaned_if_older_than=threshold) is orphan

    def test_sweep_spares_symlinks_and_live_entries(
        self, tmp_path: Path, dead_pid: int
    ) -> None:
        cachedir = tmp_path / ".pytest_cache"
        (cachedir / "v" / "plugin").mkdir(parents=True)
        precious = tmp_path / "precious"
        precious.mkdir()
        (precious / "data").write_text("keep me")
        link = tmp_path / f"pytest-cache-files-{dead_pid}-00000000"
        link.symlink_to(precious, target_is_directory=True)
        live = tmp_path / f"pytest-cache-files-{os.getpid()}-11111111"
        live.mkdir()
        orphans = [
            own_private_name(tmp_path, dead_pid),
            own_private_name(cachedir, dead_pid),
            own_private_name(cachedir / "v" / "plugin", dead_pid),
        ]
        orphans[0].mkdir()
        (orphans[0] / "README.md").write_text("half")
        orphans[1].mkdir()
        orphans[2].write_text('{"half": ')

        removed = _sweep_orphans(
            cachedir, consider_orphaned_if_older_than=time.time() - 3600
        )

        assert removed == 3
        assert not any(p.exists() for p in orphans)
        assert link.is_symlink() and (precious / "data").read_text() == "keep me"
        assert live.is_dir()
        assert set(private_entries(tmp_path)) == {link, live}


class TestMerges:
    def test_lastfailed_keeps_entries_the_session_did_not_touch(self) -> None:
        on_disk = {"a": True, "b": True, "other": True}
        at_start = {"a": True, "b": True}
        ours = {"b": True, "new": True}  # a passed now, new failed
        merged = _merge_lastfailed(
            on_disk, ours, at_start=at_start, ran={"a", "b", "new"}
        )
        assert merged == {"b": True, "other": True, "new": True}

    def test_lastfailed_reasserts_a_failure_another_session_removed(self) -> None:
        merged = _merge_lastfailed({}, {"a": True}, at_start={"a": True}, ran={"a"})
        assert merged == {"a": True}

    def test_lastfailed_on_corrupt_disk_value(self) -> None:
        assert _merge_lastfailed(["junk"], {"a": True}, at_start={}, ran={"a"}) == {
            "a": True
        }

    def test_nodeids_union(self) -> None:
        assert _merge_nodeids(["b", "c"], ["a", "b"]) == ["a", "b", "c"]
        assert _merge_nodeids("junk", ["a"]) == ["a"]


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

    def test_merge_skips_rereading_a_value_nobody_rewrote(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The signature taken before the first read proves the file unchanged (compare-and-swap)."""
        # Files written a moment ago count as changed (racily clean); not here.
        monkeypatch.setattr(cacheprovider, "_RACY_WINDOW_NS", 0, raising=False)
        monkeypatch.setattr(cacheprovider, "_FINE_RACY_WINDOW_NS", 0, raising=False)
        cache = pytester.parseconfigure().cache
        assert cache is not None
        seen: list[object] = []

        def policy(on_disk: object, ours: object) -> object:
            seen.append(on_disk)
            return ours

        cache.set("cache/nodeids", ["t.py::1"])
        other = pytester.parseconfigure().cache  # Another session, in effect.
        assert other is not None
        assert other.get("cache/nodeids", None) == ["t.py::1"]
        other._merge_policies["cache/nodeids"] = policy
        other.set("cache/nodeids", ["t.py::2"])
        cache.set("cache/nodeids", ["t.py::3"])  # Rewritten behind the other's back...
        other.set("cache/nodeids", ["t.py::4"])  # ...so this merge must read it again.
        assert seen == [cacheprovider._UNCHANGED, ["t.py::3"]]

    @pytest.mark.layer("silent-fallback")
    def test_filesystem_without_locks_merges_unlocked_silently(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Stock writes unlocked and says nothing; so does the fork (no warning, even as error)."""
        import fcntl

        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache.set("cache/nodeids", ["from-another-session"])
        cache._merge_policies["cache/nodeids"] = _merge_nodeids

        def flock(fd: int, operation: int) -> None:
            raise OSError(errno.ENOLCK, "No locks available")

        with monkeypatch.context() as m, warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            m.setattr(fcntl, "flock", flock)
            cache.set("cache/nodeids", ["ours"])
        assert cache.get("cache/nodeids", None) == ["from-another-session", "ours"]
        assert [str(w.message) for w in seen] == [], (
            "[silent-fallback] the unlocked merge warned where stock is silent"
        )


class TestCacheClearOnce:
    def test_xdist_worker_does_not_clear(self, pytester: Pytester) -> None:
        """A worker (``config.workerinput``) never runs ``--cache-clear`` (#6670)."""
        config = pytester.parseconfigure("--cache-clear")
        value = pytester.path / ".pytest_cache" / "v" / "plugin" / "value"
        value.parent.mkdir(parents=True)
        value.write_text("1")
        config.workerinput = {"workerid": "gw1"}  # type: ignore[attr-defined]
        Cache.for_config(config, _ispytest=True)
        assert value.read_text() == "1"
        del config.workerinput  # type: ignore[attr-defined]
        Cache.for_config(config, _ispytest=True)
        assert not value.exists()
        assert private_entries(pytester.path) == []

    def test_set_writes_merge_policy_keys_under_the_lock(
        self, pytester: Pytester
    ) -> None:
        config = pytester.parseconfigure()
        cache = config.cache
        assert cache is not None
        cache.set("cache/nodeids", ["from-another-session"])
        cache._merge_policies["cache/nodeids"] = _merge_nodeids
        cache.set("cache/nodeids", ["ours"])
        assert cache.get("cache/nodeids", None) == ["from-another-session", "ours"]
        assert json.loads(
            (cache._cachedir / "v" / "cache" / "nodeids").read_text()
        ) == [
            "from-another-session",
            "ours",
        ]
