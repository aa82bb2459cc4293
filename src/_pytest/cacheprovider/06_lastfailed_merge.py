"""Overlapping sessions overwrite each other's ``lastfailed`` and ``nodeids``.

Fix: lastfailed-merge
Bug: #6423 (closed upstream: "a concurrent cache should be a separate plugin")
Affects: every release
Needs: atomic-set
Replaces: LFPlugin.pytest_sessionfinish, pytest_configure

Each session reads ``cache/lastfailed`` when it starts and writes its whole
view when it ends, so of two overlapping sessions (IDE and terminal, tox envs
in parallel) the last to finish erases the other's failures, and a test that
crashed its xdist worker is forgotten the same way.  Here a session owns the
entries of the tests it ran or collected; every other entry stays as it is on
disk.  Every write of the two keys (``set``, from any plugin) is a
compare-and-swap under an OS lock on ``merge.lock``: the file is merged only
when its signature changed since the session read it.
A lock never costs data: when it cannot be had the value is written unlocked
and silently, as every release writes it, and a holder that resumes late
merges what the sessions that went ahead meanwhile left for it.  A corrupt
``lastfailed``, which every release keeps for ever once all tests pass, is
rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import functools
import stat
import time


# A merge waits this long in all, however often the lock changes hands.
_LOCK_MAX_WAIT = 30.0
_LOCK_DELAY = 0.05
# Why a merge goes on unlocked when another process holds the lock too long.
_HELD_ELSEWHERE = "held by another process"
# Times the lock is taken again when merge.lock was replaced or deleted under us.
_LOCK_REOPEN_ATTEMPTS = 5
# How long after its last change a file's timestamps cannot tell two versions
# apart: whole-second mtimes (FAT's 2 s and some clock skew), finer ones (a
# clock tick many times over): git's "racily clean" rule.
_RACY_WINDOW_NS = 3_000_000_000
_FINE_RACY_WINDOW_NS = 100_000_000


def _signature(path: Path, like: tuple[object, ...] = (None,)) -> tuple[object, ...]:
    """Identity of the file at ``path``: equal only if its content did not change.

    Its status, and a digest of its content while the status cannot tell:
    ext4 hands a freed inode number straight back, and coarse timestamps make
    a same-size rewrite within one tick look identical.  Taken ``like`` an
    earlier signature: a file racy then is compared by content, however
    settled it is now (git's "racily clean" rule).  ``(None,)`` for no file;
    an unreadable racy file gets a signature equal to no other.
    """
    try:
        st = os.stat(path)
    except OSError:  # ENOENT/ENOTDIR: no value; EACCES: nor can it be read.
        return (None,)
    # An mtime of whole seconds may come from a coarse clock: the wide window.
    window = _RACY_WINDOW_NS if st.st_mtime_ns % 10**9 == 0 else _FINE_RACY_WINDOW_NS
    settled = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) >= window
    if settled and like[-1] is None:
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, None)
    try:
        with path.open("rb") as f:
            digest = hash(f.read())  # Compared within this process only.
    except OSError:
        return (object(),)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)


def _open_lock(lockfile: Path) -> int:
    """Open ``lockfile`` for locking, creating it; never through a symlink.

    ``O_NOFOLLOW`` keeps the lock in the cache dir, ``O_NONBLOCK`` keeps a FIFO
    from blocking (``os.open`` makes descriptors non-inheritable itself).  A
    file we may not write (read-only, another user's) is opened read-only,
    which ``flock`` locks just as well.  ``OSError`` when it cannot be opened
    or is no regular file.
    """
    flags = os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(lockfile, os.O_RDWR | flags, 0o666)
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        fd = os.open(lockfile, os.O_RDONLY | flags, 0o666)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(lockfile))
    return fd


def _try_lock(fd: int) -> bool:
    """Try once to lock ``fd`` exclusively; False if another process holds it."""
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        # Locked elsewhere: EWOULDBLOCK from flock, EACCES or EDEADLK from msvcrt.
        if e.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK):
            return False
        raise
    return True


def _acquire(fd: int, *, patience: float) -> str | None:
    """Lock ``fd``; None once it is held, otherwise why the caller goes on unlocked.

    Waits ``patience`` seconds since the lock last changed hands (the queue
    moves), and never longer than ``_LOCK_MAX_WAIT`` in all.  Any error of the
    lock call means no locks here: ENOLCK (NFS without a lock daemon),
    EOPNOTSUPP (some FUSE filesystems), EBADF (NFS emulates flock with write
    locks), or anything else.
    """
    start = time.monotonic()
    # The lock file's mtime: every holder touches it as it takes the lock.
    stamp: int | None = None
    while True:
        try:
            if _try_lock(fd):
                with contextlib.suppress(OSError, NotImplementedError):  # Read-only.
                    os.utime(fd)  # Waiters see the queue move (no fd times: Windows).
                return None
        except OSError as e:
            return f"locks unavailable ({e})"
        now = time.monotonic()
        if (seen := os.fstat(fd).st_mtime_ns) != stamp:  # First, or another's turn.
            stamp, deadline = seen, now + patience
        if now >= min(deadline, start + _LOCK_MAX_WAIT):
            return f"{_HELD_ELSEWHERE} for {now - start:.1f} s"
        time.sleep(_LOCK_DELAY)


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (not replaced or deleted since opened)."""
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except OSError:
        return False


@contextlib.contextmanager
def _locked(lockfile: Path, *, patience: float) -> Iterator[str | None]:
    """Hold an exclusive lock on ``lockfile``; yield None, or why it is not held.

    Either way the caller goes on: unlocked, it does what every release does.
    An OS lock (``flock``, ``msvcrt.locking``) is released when its holder
    dies.  A lock on a file no longer at ``lockfile`` excludes nobody, so it is
    taken again on the new file, a bounded number of times.
    """
    for _ in range(_LOCK_REOPEN_ATTEMPTS):
        try:
            fd = _open_lock(lockfile)
        except OSError as e:
            yield f"cannot open it ({e})"
            return
        try:
            why = _acquire(fd, patience=patience)
            if why is None and not _is_file_at(fd, lockfile):
                continue  # Closing releases the lock on the stale file.
            yield why
            return
        finally:
            os.close(fd)
    yield f"replaced {_LOCK_REOPEN_ATTEMPTS} times while being locked"


class Cache:
    @functools.cached_property
    def _signatures(self) -> dict[str, tuple[object, ...]]:
        """Per merged key, the value file's signature before this session read it."""
        return {}

    # Seconds a merge waits for a lock holder that does not let go (while the
    # lock changes hands the wait restarts): once per session, then not again.
    _lock_patience = 3.0

    def _merged_write(
        self,
        key: str,
        merge: Callable[[object, object], object],
        write: Callable[[bytes], None],
        value: object,
    ) -> None:
        """The step of every write of ``key`` (see ``Cache.set``): merged with the disk, locked.

        Concurrency invariant: under the lock, a file whose signature is what it
        was before this session read it is replaced by ``value``; otherwise by
        ``merge(value on disk, value)``, so that of sessions finishing together
        none loses what it owns.  A file that holds these bytes already is left
        alone, unlocked.  Without the lock the same is written unlocked, traced
        for ``PYTEST_DEBUG=1`` and never warned about: every release writes
        unlocked, silently.

        A holder that is stopped or slow (SIGSTOP, a debugger, a huge value)
        may write after sessions that went ahead unlocked, over what they
        wrote.  Rule: a session that goes ahead past a held lock first leaves
        a copy of what it writes under ``<key>.ahead``.  A holder removes any
        copy when it takes the lock (the holder it was left for is done) and,
        after its own write, merges into a copy left meanwhile, writes again
        and removes it.  So a holder never removes the entries of a session
        that finished its write before the holder wrote.
        """
        path = self._value_file(key)
        data = _encode(value)
        if _content_is(path, data):
            return
        with contextlib.suppress(OSError):  # Else write() says why it cannot write.
            self._ensure_cache_dir_and_supporting_files()
        ahead, lock = self._value_file(f"{key}.ahead"), self._cachedir / "merge.lock"
        with _locked(lock, patience=self._lock_patience) as why:
            if why is None:
                with contextlib.suppress(OSError):  # ENOENT: no copy, as a rule.
                    os.unlink(ahead)
            # Rewritten since this session read it: merge with the disk.
            if _signature(path, like=self._signatures[key]) != self._signatures[key]:
                data = _encode(merge(self.get(key, None), value))
            if (why or "").startswith(_HELD_ELSEWHERE):  # First: the holder sees it.
                self._write_value(ahead, data)
            write(data)
            if why is None and (left := self.get(f"{key}.ahead", None)) is not None:
                write(_encode(merge(left, value)))
                with contextlib.suppress(OSError):  # Else the next holder removes it.
                    os.unlink(ahead)
        if why is not None:
            self._lock_patience = 0.0
            self._config.trace.root.get("cache")(f"merged {key} unlocked: {why}")


class LFPlugin:
    @functools.cached_property
    def _owned(self) -> set[str]:
        """Node ids whose lastfailed entry this session decided: its own in a merge."""
        return set()

    @hookimpl(specname="pytest_runtest_logreport")
    def pytest_runtest_logreport_owned(self, report: TestReport) -> None:
        # Every report, an xdist worker's crash included: this session decided it.
        self._owned.add(report.nodeid)

    @hookimpl(specname="pytest_collectreport", tryfirst=True)
    def pytest_collectreport_owned(self, report: CollectReport) -> None:
        # Before the plugin's own hook: a collector that failed, or one whose
        # entry gives way to its items (pytest 9.2 keys lastfailed by NodeId).
        if report.outcome not in ("passed", "skipped"):
            self._owned.add(report.nodeid)
        elif getattr(report, "id", report.nodeid) in self.lastfailed:
            self._owned.update([report.nodeid, *(i.nodeid for i in report.result)])

    def _merged(self, on_disk: object, ours: object) -> object:
        """Lastfailed as on disk, with the entries this session owns as it has them."""
        merged = dict(on_disk) if isinstance(on_disk, dict) else {}
        assert isinstance(ours, dict)
        for nodeid in self._owned:
            if nodeid in ours:
                merged[nodeid] = ours[nodeid]
            else:
                merged.pop(nodeid, None)
        return merged

    def pytest_sessionfinish(self, session: Session) -> None:
        """Write the entries this session owns into lastfailed; repair a corrupt one."""
        config = self.config
        if config.getoption("cacheshow") or hasattr(config, "workerinput"):
            return
        cache = config.cache
        assert cache is not None
        key = "cache/lastfailed"
        if not self.lastfailed and not os.path.exists(cache._value_file(key)):
            return  # Nothing failed, nothing to remove: no file, as every release.
        if not self._owned and (self.lastfailed or cache.get(key, None) is not None):
            return  # Nothing of ours to write; only a file holding no JSON is replaced.
        cache.set(
            key, {str(nodeid): failed for nodeid, failed in self.lastfailed.items()}
        )


def _united(on_disk: object, ours: object) -> object:
    """The node ids on disk and those this session knows (``--nf``)."""
    known = on_disk if isinstance(on_disk, list) else []
    assert isinstance(ours, list)
    return sorted({n for n in known if isinstance(n, str)}.union(ours))


@hookimpl(tryfirst=True)
def pytest_configure(config: Config) -> None:
    """Create the cache and register the last-failed and new-first plugins."""
    config.cache = cache = Cache.for_config(config, _ispytest=True)

    def merged_lastfailed(on_disk: object, ours: object) -> object:
        # The plugin registered when the write happens: it may have been made anew.
        lfplugin = config.pluginmanager.get_plugin("lfplugin")
        return lfplugin._merged(on_disk, ours) if lfplugin is not None else ours

    merges = {"cache/lastfailed": merged_lastfailed, "cache/nodeids": _united}
    for key, merge in merges.items():
        # Taken before the plugins read them: equal at the end, nobody rewrote them.
        cache._signatures[key] = _signature(cache._value_file(key))
        cache._write_steps[key] = functools.partial(cache._merged_write, key, merge)
    config.pluginmanager.register(LFPlugin(config), "lfplugin")
    config.pluginmanager.register(NFPlugin(config), "nfplugin")
