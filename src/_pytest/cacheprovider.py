"""Overlay: the definitions the race-free cache adds to or changes in upstream's module.

This file is not importable on its own.  The build (``backend/``) merges every
definition below by name into ``_pytest/cacheprovider.py`` of the upstream base
release: top-level names and the members of the partial classes replace
upstream's definitions of the same name, the others are added.

The concurrency rules, for every process sharing one cache directory (xdist
workers, several pytest sessions on one checkout):

* the cache directory and each value file only ever appear complete: they are
  written under a private ``pytest-cache-files-<pid>-<token>`` name and then
  published with a single rename;
* ``--cache-clear`` happens once per run, in the process that owns the run;
* values that several sessions update (``cache/lastfailed``, ``cache/nodeids``)
  are merged into what is on disk under a lock, never overwritten blindly;
* a private entry left by a killed process is swept by a later session.
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
import shutil
import sys
import time
from typing import Any
import warnings

from .pathlib import rm_rf
from _pytest.config import Config
from _pytest.deprecated import check_ispytest
from _pytest.warning_types import PytestCacheWarning


# Every private entry the cache creates starts with this, followed by
# "<pid>-<token>": directories beside the cache dir while it is being
# published, files beside a value while it is being written.
_PRIVATE_PREFIX = "pytest-cache-files-"
# A private entry whose owner pid still runs (possibly a reused pid), or whose
# name carries no pid (left by an upstream pytest), is only swept when it is
# older than this many seconds.
ORPHAN_TIMEOUT = 3600.0
# Bounds for the work one session does on shared directories.
_SWEEP_MAX_ENTRIES = 10_000
_UNIQUE_NAME_ATTEMPTS = 10
_LOCK_ATTEMPTS = 600
_WINDOWS_REPLACE_ATTEMPTS = 20
_RETRY_DELAY = 0.05
# Errors that mean an entry is not ours to remove: a read-only or foreign cache.
_NOT_OURS_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.EBUSY})

CACHEDIR_FILES: dict[str, bytes] = {
    "README.md": README_CONTENT.encode("utf-8"),
    ".gitignore": b"# Created by pytest automatically.\n*\n",
    "CACHEDIR.TAG": CACHEDIR_TAG_CONTENT,
}


def _private_name(directory: Path) -> Path:
    """A fresh private name in ``directory``, carrying our pid for the sweep."""
    # os.urandom, not secrets: importing secrets costs every pytest start ~3 ms.
    return directory / f"{_PRIVATE_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"


def _make_private_dir(parent: Path) -> Path:
    """Create an empty private directory in ``parent``.

    It is created with a plain ``mkdir`` (mode 0o777 filtered by the umask),
    unlike ``tempfile.mkdtemp``'s 0o700, so that once published it has the
    permissions any directory made by the user would have (#12308).
    """
    for _ in range(_UNIQUE_NAME_ATTEMPTS):
        path = _private_name(parent)
        try:
            path.mkdir()
        except FileExistsError:  # EEXIST: token collision, draw another one.
            continue
        return path
    raise FileExistsError(
        errno.EEXIST,
        f"no unused private name after {_UNIQUE_NAME_ATTEMPTS} attempts",
        str(parent),
    )


def _write_new_file(path: Path, content: bytes) -> None:
    """Write a file that must not exist yet, with plain ``open`` permissions."""
    with path.open("xb") as f:
        f.write(content)


def _lost_publish_race(error: OSError, target: Path) -> bool:
    """Whether renaming a directory onto ``target`` failed because another process won.

    POSIX ``rename(2)`` refuses to replace a non-empty directory with ENOTEMPTY
    (Linux, macOS) or EEXIST (other systems allowed by POSIX); Windows refuses
    any existing target with EEXIST, or with access denied while the winner's
    directory is being used.  Either way the error only means a lost race when
    ``target`` now is a directory: the winner's, complete.
    """
    lost_race_errnos = {errno.ENOTEMPTY, errno.EEXIST}
    if sys.platform == "win32":
        lost_race_errnos.add(errno.EACCES)
    return error.errno in lost_race_errnos and target.is_dir()


def _make_cachedir(target: Path) -> None:
    """Create the cache directory ``target`` with its supporting files, atomically.

    Concurrency invariant: ``target`` only ever appears complete.  Every
    process fills a private sibling directory and publishes it with a single
    rename, and the first rename wins.  A process that loses the race discards
    its own directory and goes on with the winner's (#12381).  However this
    function ends, an exception or ``KeyboardInterrupt`` included, the private
    directory is gone when it returns; only a killed process leaves one
    behind, and a later session sweeps it (:func:`_sweep_orphans`).

    The process umask is never changed (it is process-wide and not
    thread-safe): the directory and files simply get the permissions a plain
    ``mkdir`` and ``open`` would get.
    """
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR,
            "the cache directory path exists and is not a directory",
            str(target),
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _make_private_dir(target.parent)
    published = False
    try:
        for name, content in CACHEDIR_FILES.items():
            _write_new_file(staging / name, content)
        try:
            staging.rename(target)
            published = True
        except OSError as e:
            if not _lost_publish_race(e, target):
                raise
    finally:
        if not published:
            shutil.rmtree(staging, ignore_errors=True)


def _replace_file(source: Path, target: Path) -> None:
    """``os.replace``, retried while a Windows reader holds ``target`` open.

    Windows refuses to replace a file another process has open (EACCES); the
    reader closes it within moments, so a bounded number of retries suffices.
    Everywhere else ``os.replace`` is atomic and never needs a retry.
    """
    if sys.platform == "win32":
        for _ in range(_WINDOWS_REPLACE_ATTEMPTS - 1):
            try:
                os.replace(source, target)
            except PermissionError:
                time.sleep(_RETRY_DELAY)
            else:
                return
    os.replace(source, target)  # Last attempt (or only one): errors propagate.


def _write_atomic(path: Path, data: str) -> None:
    """Replace the content of ``path`` with ``data`` in one step.

    Concurrency invariant: a reader in any process sees the previous complete
    content or the new complete content, never a part.  The data goes to a
    private sibling (same directory, hence same filesystem), which then
    replaces ``path``; of concurrent writers the last one wins, whole.  The
    sibling never survives a failure; a killed process leaves it for
    :func:`_sweep_orphans`.  The file gets plain ``open`` permissions.

    Not a durability guarantee: nothing is fsync'ed, as upstream never did.
    """
    private = _private_name(path.parent)
    done = False
    try:
        # Path.open, so that failures can be simulated as upstream's tests do.
        with private.open("xb") as f:  # Binary: no newline or codec layer.
            f.write(data.encode("UTF-8"))
        _replace_file(private, path)
        done = True
    finally:
        if not done:
            with contextlib.suppress(FileNotFoundError):
                private.unlink()


def _confined_path(base: Path, name: str) -> Path:
    """Join ``name`` onto ``base``, refusing a result outside ``base``.

    ``base / name`` discards ``base`` for an absolute (or drive-qualified)
    ``name`` and keeps ``..`` parts as they are; normalizing first catches
    both, while a ``..`` that stays inside ``base`` remains allowed.
    """
    root = os.path.normpath(base)
    path = os.path.normpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(
            f"{name!r} is not allowed to escape the cache directory ({root})"
        )
    return Path(path)


def _pid_is_running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (True when we cannot tell)."""
    if sys.platform == "win32":
        # os.kill(pid, 0) would terminate the process there; let age decide.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:  # ESRCH: no such process.
        return False
    except PermissionError:  # EPERM: it exists, owned by someone else.
        return True
    return True


def _is_orphan(
    entry: os.DirEntry[str], *, consider_orphaned_if_older_than: float
) -> bool:
    """Whether the private entry ``entry`` was abandoned by its creator.

    The name carries the creator's pid: once that pid no longer runs here the
    entry can never be published or completed, so it is an orphan at once.
    A running pid may be a reused one, and names from upstream pytest carry
    no pid at all: those entries are orphans only when their mtime is older
    than ``consider_orphaned_if_older_than`` (a timestamp).  Symlinks are
    never ours: they are never orphans, never followed.
    """
    if not entry.name.startswith(_PRIVATE_PREFIX) or entry.is_symlink():
        return False
    pid, sep, _ = entry.name[len(_PRIVATE_PREFIX) :].partition("-")
    if sep and pid.isdigit() and not _pid_is_running(int(pid)):
        return True
    return entry.stat(follow_symlinks=False).st_mtime < consider_orphaned_if_older_than


def _discard(path: Path, *, warn: bool) -> None:
    """Remove the file or tree at ``path`` without ever leaving it half-deleted.

    It is first renamed to a private name of ours, then removed.  The rename
    is the claim: of processes discarding the same path one succeeds and the
    others see ENOENT and leave it alone.  What a deletion cannot remove keeps
    the private name and is swept later.  ``warn`` reports failures of the
    deletion as upstream's ``rm_rf`` does (for ``--cache-clear``).
    """
    claimed = _private_name(path.parent)
    try:
        path.rename(claimed)
    except FileNotFoundError:  # ENOENT: gone, or claimed by another process.
        return
    if claimed.is_dir() and not claimed.is_symlink():
        if warn:
            rm_rf(claimed)
        else:
            shutil.rmtree(claimed, ignore_errors=True)
    else:
        claimed.unlink()


def _iter_private_entries(
    directory: Path, *, recursive: bool
) -> Iterator[os.DirEntry[str]]:
    """Private entries below ``directory``, looking at a bounded number of entries."""
    pending = [directory]
    seen = 0
    while pending and seen < _SWEEP_MAX_ENTRIES:
        try:
            it = os.scandir(pending.pop())
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue  # ENOENT/ENOTDIR/EACCES: nothing we may sweep there.
        with it:
            for entry in it:
                seen += 1
                if seen > _SWEEP_MAX_ENTRIES:
                    break
                if entry.name.startswith(_PRIVATE_PREFIX):
                    yield entry
                elif recursive and entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))


def _sweep_orphans(cachedir: Path, *, consider_orphaned_if_older_than: float) -> int:
    """Remove private entries abandoned by killed processes; return how many.

    It looks beside the cache dir (directories of unpublished cache dirs),
    in it (claimed remains of ``--cache-clear``) and below ``v/`` (value
    files being written).  Live entries are never touched (see
    :func:`_is_orphan`), symlinks are not followed, the number of entries
    looked at is bounded, and an entry another process removes first, or
    that we may not remove, is left alone.
    """
    removed = 0
    for directory, recursive in (
        (cachedir.parent, False),
        (cachedir, False),
        (cachedir / Cache._CACHE_PREFIX_VALUES, True),
    ):
        for entry in _iter_private_entries(directory, recursive=recursive):
            try:
                if _is_orphan(
                    entry,
                    consider_orphaned_if_older_than=consider_orphaned_if_older_than,
                ):
                    _discard(Path(entry.path), warn=False)
                    removed += 1
            except OSError as e:
                # ENOENT: removed meanwhile by another process.
                if e.errno != errno.ENOENT and e.errno not in _NOT_OURS_ERRNOS:
                    raise
    return removed


@contextlib.contextmanager
def _locked(lockfile: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``lockfile`` across processes; yield whether it is held.

    An OS lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) is
    released by the OS when its holder dies, so a killed session never
    leaves a stale lock.  Where the filesystem has no locks (ENOLCK, e.g.
    NFS without a lock daemon; EOPNOTSUPP, some FUSE filesystems) it yields
    False and the caller goes on unlocked, as upstream always did.
    """
    fd = os.open(lockfile, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        yield _acquire(fd, lockfile)
    finally:
        os.close(fd)  # Closing the descriptor releases the lock.


def _acquire(fd: int, lockfile: Path) -> bool:
    """Lock ``fd``, retrying a bounded number of times; False if locks are unsupported."""
    for _ in range(_LOCK_ATTEMPTS):
        try:
            if _try_lock(fd):
                return True
        except OSError as e:
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
                return False
            raise
        time.sleep(_RETRY_DELAY)
    raise TimeoutError(
        errno.ETIMEDOUT,
        f"lock still held by another process after {_LOCK_ATTEMPTS} attempts",
        str(lockfile),
    )


def _try_lock(fd: int) -> bool:
    """Try once to lock ``fd`` exclusively; False if another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EDEADLK):  # Windows: locked elsewhere.
                return False
            raise
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # EWOULDBLOCK/EAGAIN: locked elsewhere.
        return False
    return True


# Passed to a merge policy instead of the value on disk when the file has not been
# rewritten since this session first read it (see Cache._getvaluepath).
_UNCHANGED = object()


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    """Identity of the file at ``path``; every write of a value (a rename) changes it."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None  # ENOENT/ENOTDIR: no value; EACCES: nor can it be read.
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _merge_lastfailed(
    on_disk: object,
    ours: object,
    *,
    at_start: dict[Any, bool],
    ran: set[str],
) -> object:
    """Apply one session's lastfailed changes to what is on disk now (#6423).

    The session owns the entries it ran or changed (``at_start`` is what it
    read, ``ours`` what it holds at the end); every other entry stays as it
    is on disk, so sessions that overlap keep each other's results.
    """
    if on_disk is _UNCHANGED or not isinstance(ours, dict):
        return ours  # Nobody else wrote meanwhile: ours is the merge.
    at_start = {str(k): v for k, v in at_start.items()}  # pytest 9.2 keys are NodeIds.
    if on_disk == at_start:
        return ours
    merged = dict(on_disk) if isinstance(on_disk, dict) else {}
    for nodeid in (at_start.keys() | ran) - ours.keys():
        merged.pop(nodeid, None)  # Passed, or gone from this session's tests.
    for nodeid, failed in ours.items():
        if nodeid in ran or at_start.get(nodeid) != failed:
            merged[nodeid] = failed
    return merged


def _merge_nodeids(on_disk: object, ours: object) -> object:
    """Union of the node ids on disk and those this session knows (``--nf``)."""
    if (
        on_disk is _UNCHANGED
        or not isinstance(ours, list)
        or not isinstance(on_disk, list)
    ):
        return ours
    return sorted(set(on_disk).union(ours))


class Cache:
    def __init__(
        self, cachedir: Path, config: Config, *, _ispytest: bool = False
    ) -> None:
        check_ispytest(_ispytest)
        self._cachedir = cachedir
        self._config = config
        # Per key, how a write merges (value on disk, value being set); see set().
        self._merge_policies: dict[str, Callable[[object, object], object]] = {}
        self._lockfile = cachedir / "merge.lock"
        # Per key, the value file's signature before this session first read it.
        self._first_seen: dict[str, tuple[int, int, int, int] | None] = {}

    @classmethod
    def for_config(cls, config: Config, *, _ispytest: bool = False) -> Cache:
        """Create the Cache instance for a Config, honouring ``--cache-clear``.

        The clear runs only in the process that owns the run, never in an
        xdist worker: workers share the controller's cache, and one started
        late (replacing a crashed worker) would wipe what the others already
        wrote (#6670).

        :meta private:
        """
        check_ispytest(_ispytest)
        cachedir = cls.cache_dir_from_config(config, _ispytest=True)
        clear = config.getoption("cacheclear") and not hasattr(config, "workerinput")
        if clear and cachedir.is_dir():
            cls.clear_cache(cachedir, _ispytest=True)
        return cls(cachedir, config, _ispytest=True)

    @classmethod
    def clear_cache(cls, cachedir: Path, _ispytest: bool = False) -> None:
        """Remove the directories holding cached values and directories.

        Each is claimed by a rename before it is deleted (see :func:`_discard`),
        so a concurrent reader never walks a half-deleted tree under a live name.

        :meta private:
        """
        check_ispytest(_ispytest)
        for prefix in (cls._CACHE_PREFIX_DIRS, cls._CACHE_PREFIX_VALUES):
            try:
                _discard(cachedir / prefix, warn=True)
            except OSError as e:
                if e.errno not in _NOT_OURS_ERRNOS:
                    raise
                warnings.warn(
                    PytestCacheWarning(f"could not clear {cachedir / prefix}: {e}"),
                    stacklevel=2,
                )

    def mkdir(self, name: str) -> Path:
        """Return the cache's directory called ``name``, creating it if needed.

        Plugins keep data there that outlives a test session, database dumps
        for instance.  Put your plugin's or application's name into ``name``,
        so that it does not clash with other users of the cache.

        .. versionadded:: 7.0

        :param name:
            One path component: a name with a ``/`` separator, or one that
            would resolve outside the cache directory, raises ``ValueError``.
        """
        if len(Path(name).parts) > 1:
            raise ValueError("name is not allowed to contain path separators")
        path = _confined_path(self._cachedir / self._CACHE_PREFIX_DIRS, name)
        self._mkdir(path)
        return path

    def _getvaluepath(self, key: str) -> Path:
        path = _confined_path(self._cachedir / self._CACHE_PREFIX_VALUES, key)
        if key not in self._first_seen:
            # Taken before the caller reads: if the signature is the same when a
            # merge writes, nobody rewrote the file since (compare-and-swap).
            self._first_seen[key] = _signature(path)
        return path

    def set(self, key: str, value: object) -> None:
        """Save ``value`` under ``key``, replacing the file in one step.

        A reader in another process, such as an xdist worker or a concurrent
        session, gets the old value or the new one, never a partial file.
        Failing to write is reported as a ``PytestCacheWarning``.

        :param key:
            A ``/`` separated name that stays inside the cache directory;
            start it with your plugin's or application's name.
        :param value:
            Anything the :mod:`json` module can encode: basic types and
            nested lists and dicts of them.
        """
        path = self._getvaluepath(key)
        try:
            self._mkdir(path.parent)
        except OSError as exc:
            self.warn(f"could not create cache path {path}: {exc}", _ispytest=True)
            return
        merge = self._merge_policies.get(key)
        # Keys with a merge policy are read, merged and written under the
        # cache lock, so that sessions finishing together lose nothing.
        lock = (
            contextlib.nullcontext(True) if merge is None else _locked(self._lockfile)
        )
        try:
            with lock as locked:
                if not locked:
                    self.warn(
                        f"cache could not lock {self._lockfile}: merging {key} unlocked",
                        _ispytest=True,
                    )
                if merge is not None:
                    unchanged = _signature(path) == self._first_seen.get(key, False)
                    value = merge(
                        _UNCHANGED if unchanged else self.get(key, None), value
                    )
                _write_atomic(path, json.dumps(value, ensure_ascii=False, indent=2))
        except OSError as exc:
            self.warn(f"cache could not write path {path}: {exc}", _ispytest=True)

    def _ensure_cache_dir_and_supporting_files(self) -> None:
        """Publish the cache dir, unless it exists (it never gets boilerplate added)."""
        if not self._cachedir.is_dir():
            _make_cachedir(self._cachedir)

    def _sweep(self) -> None:
        """Remove what killed processes left in or beside the cache dir."""
        _sweep_orphans(
            self._cachedir,
            consider_orphaned_if_older_than=time.time() - ORPHAN_TIMEOUT,
        )


class LFPlugin:
    def pytest_sessionstart(self) -> None:
        # Writing lastfailed at the end merges only this session's changes.
        assert self.config.cache is not None
        self._lastfailed_ran: set[str] = set()
        self.config.cache._merge_policies["cache/lastfailed"] = functools.partial(
            _merge_lastfailed,
            at_start=dict(self.lastfailed),
            ran=self._lastfailed_ran,
        )

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self._lastfailed_ran.add(nodeid)


class NFPlugin:
    def pytest_sessionstart(self) -> None:
        assert self.config.cache is not None
        self.config.cache._merge_policies["cache/nodeids"] = _merge_nodeids


def pytest_unconfigure(config: Config) -> None:
    # The owning process sweeps once per run; workers and --cache-show do not write.
    cache = getattr(config, "cache", None)  # None if configuring failed early.
    if cache is None or hasattr(config, "workerinput") or config.option.cacheshow:
        return
    cache._sweep()
