"""Overlapping sessions overwrite each other's ``lastfailed`` and ``nodeids``.

Fix: lastfailed-merge
Bug: #6423 (closed upstream: "a concurrent cache should be a separate plugin")
Affects: every release
Needs: atomic-set, keys-confined
Replaces: Cache.__init__, Cache._value_file, Cache._getvaluepath, Cache._store

Each session reads ``cache/lastfailed`` when it starts and writes its whole
view when it ends, so of two overlapping sessions (IDE and terminal, tox
envs in parallel) the last to finish erases the other's failures.  Keys with
a merge policy are read, merged and written under an OS lock on
``merge.lock``: a session owns the entries it ran or changed, every other
entry stays as it is on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import functools
from typing import Any


_LOCK_ATTEMPTS = 600


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


# The keys that get a merge policy (LFPlugin and NFPlugin below): only theirs
# need a first signature, so a plugin's get is not stat'ed (or digested) twice.
_MERGED_KEYS = frozenset({"cache/lastfailed", "cache/nodeids"})
# Passed to a merge policy instead of the value on disk when the file has not been
# rewritten since this session first read it (see Cache._getvaluepath).
_UNCHANGED = object()


def _signature(path: Path | str) -> tuple[int, int, int, int] | None:
    """Identity of the file at ``path``; every write of a value (a rename) changes it."""
    try:
        st = os.stat(path)
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
        # Per key, how a write merges (value on disk, value being set); see _merge_store().
        self._merge_policies: dict[str, Callable[[object, object], object]] = {}
        self._lockfile = cachedir / "merge.lock"
        # Per key, the value file's signature before this session first read it.
        self._first_seen: dict[str, tuple[int, int, int, int] | None] = {}
        # Per key, its confined file name and path (a session asks for the same
        # keys again); bounded, as plugins may use any number of keys.
        self._value_files: dict[str, str] = {}
        self._value_paths: dict[str, Path] = {}
        self._values_dir = os.fspath(cachedir / self._CACHE_PREFIX_VALUES)

    def _value_file(self, key: str) -> str:
        name = self._value_files.get(key)
        if name is None:
            if len(self._value_files) >= _CONFINED_MAX:
                self._value_files.clear()
            name = self._value_files[key] = _confined_name(self._values_dir, key)
        return name

    def _getvaluepath(self, key: str) -> Path:
        path = self._value_paths.get(key)
        if path is None:
            if len(self._value_paths) >= _CONFINED_MAX:
                self._value_paths.clear()
            path = self._value_paths[key] = Path(self._value_file(key))
        if key in _MERGED_KEYS and key not in self._first_seen:
            # Taken before the caller reads: if the signature is the same when a
            # merge writes, nobody rewrote the file since (compare-and-swap).
            self._first_seen[key] = _signature(path)
        return path

    def _store(self, key: str, path: str, value: object) -> None:
        """Write ``value`` atomically; keys with a merge policy merge with the disk first.

        Those keys are read, merged and written under the cache lock, so that
        sessions finishing together lose nothing.
        """
        merge = self._merge_policies.get(key)
        if merge is None:
            _write_atomic(path, _dumps(value))
            return
        with _locked(self._lockfile) as locked:
            if not locked:
                self.warn(
                    f"cache could not lock {self._lockfile}: merging {key} unlocked",
                    _ispytest=True,
                )
            unchanged = _signature(path) == self._first_seen.get(key, False)
            value = merge(_UNCHANGED if unchanged else self.get(key, None), value)
            _write_atomic(path, _dumps(value))


class LFPlugin:
    def pytest_sessionstart(self) -> None:
        # Writing lastfailed at the end merges only this session's changes.
        assert self.config.cache is not None
        self._lastfailed_ran: set[str] = set()
        self._lastfailed_at_start = dict(self.lastfailed)
        self.config.cache._merge_policies["cache/lastfailed"] = functools.partial(
            _merge_lastfailed,
            at_start=self._lastfailed_at_start,
            ran=self._lastfailed_ran,
        )

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self._lastfailed_ran.add(nodeid)


class NFPlugin:
    def pytest_sessionstart(self) -> None:
        assert self.config.cache is not None
        self.config.cache._merge_policies["cache/nodeids"] = _merge_nodeids
