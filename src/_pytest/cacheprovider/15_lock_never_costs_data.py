"""A lock that cannot be taken drops the merged write of ``lastfailed`` and ``nodeids``.

Fix: lock-never-costs-data
Bug: -  (no upstream release locks; the lock came with the lastfailed-merge layer)
Affects: the lastfailed-merge layer
Needs: lastfailed-merge
Replaces: _locked, _acquire, Cache._store
Drops: _LOCK_ATTEMPTS

The merge of ``lastfailed`` and ``nodeids`` took an OS lock on
``merge.lock`` and gave up the write when it could not: a ``merge.lock``
that is a directory, a dangling symlink, read-only or another user's file
made ``os.open`` fail, and a stopped holder (SIGSTOP, a debugger) made the
next session wait 600 x 50 ms per key and then lose both writes.  The lock
only makes the merge safer; it never decides whether the value is written.
Whatever goes wrong with it, the merged value is written, unlocked if need
be, after a bounded wait that restarts only while the lock keeps changing
hands (a queue of sessions finishing together is waited for, a stopped
holder is not).
"""

from __future__ import annotations

from collections.abc import Callable
import stat


# Seconds waited for one holder that does not let go.  The wait restarts when
# another process takes the lock meanwhile (the queue moves), up to a hard cap.
_LOCK_PATIENCE = 3.0
_LOCK_MAX_WAIT = 30.0
# Times the lock is taken again when merge.lock was replaced or deleted under us.
_LOCK_REOPEN_ATTEMPTS = 5


def _open_lock(lockfile: Path) -> int:
    """Open ``lockfile`` for locking, creating it; never through a symlink.

    ``O_NOFOLLOW`` keeps the lock inside the cache dir (a symlink, dangling or
    not, fails with ELOOP); ``O_NONBLOCK`` keeps a FIFO from blocking the open.
    A file we may not write (read-only, another user's, a read-only mount:
    EACCES/EPERM/EROFS) is opened read-only, which ``flock`` locks just as
    well.  Raises ``OSError`` when it cannot be opened, or is no regular file.
    """
    flags = os.O_CREAT
    for name in ("O_NOFOLLOW", "O_NONBLOCK", "O_CLOEXEC"):
        flags |= getattr(os, name, 0)
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


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (not replaced or deleted since opened)."""
    try:
        at_path = os.stat(path, follow_symlinks=False)
    except OSError:  # ENOENT: deleted; ENOTDIR: its directory replaced.
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def _lock_stamp(fd: int) -> tuple[int, int]:
    """The lock file's timestamps: every holder sets them when it takes the lock."""
    st = os.fstat(fd)
    return (st.st_mtime_ns, st.st_ctime_ns)


def _stamp_lock(fd: int) -> None:
    """Touch the lock we hold, so that waiters see the queue move; its content stays."""
    if os.utime in os.supports_fd:  # Not on Windows: waiters there only have patience.
        # EPERM/EACCES: another user's file, opened read-only (still locked, no stamp).
        with contextlib.suppress(OSError):
            os.utime(fd)


def _acquire(fd: int, lockfile: Path, *, patience: float) -> str | None:
    """Lock ``fd``; None once it is held, otherwise why the caller goes on unlocked.

    Waits while another process holds the lock, for ``patience`` seconds
    since the lock last changed hands (its holder touches it), and never longer
    than ``_LOCK_MAX_WAIT`` in all.  Any error of the lock call means no lock
    on this filesystem: ENOLCK (NFS without a lock daemon), EOPNOTSUPP (some
    FUSE filesystems), EBADF (NFS emulates ``flock`` with write locks, which a
    read-only descriptor cannot take), or anything else.
    """
    start = time.monotonic()
    deadline = start + patience
    stamp = _lock_stamp(fd)
    while True:
        try:
            if _try_lock(fd):
                return None
        except OSError as e:
            return f"locks unavailable ({e})"
        now = time.monotonic()
        seen = _lock_stamp(fd)
        if seen != stamp:  # Another process had its turn: the queue moves.
            stamp, deadline = seen, now + patience
        if now >= min(deadline, start + _LOCK_MAX_WAIT):
            return f"held by another process for {now - start:.1f} s"
        time.sleep(_RETRY_DELAY)


@contextlib.contextmanager
def _locked(lockfile: Path, *, patience: float) -> Iterator[str | None]:
    """Hold an exclusive lock on ``lockfile``; yield None, or why it is not held.

    Either way the caller goes on: unlocked, it does what upstream always
    did.  An OS lock (``flock``, ``msvcrt.locking``) is released by the OS
    when its holder dies.  A lock on a file that is no longer the one at
    ``lockfile`` (replaced or deleted after we opened it) excludes nobody,
    so it is taken again on the new file, a bounded number of times.
    """
    why = f"replaced {_LOCK_REOPEN_ATTEMPTS} times while being locked"
    for _ in range(_LOCK_REOPEN_ATTEMPTS):
        try:
            fd = _open_lock(lockfile)
        except OSError as e:
            yield f"cannot open it ({e})"
            return
        try:
            held = _acquire(fd, lockfile, patience=patience)
            if held is None and not _is_file_at(fd, lockfile):
                continue  # Closing releases the lock on the stale file.
            if held is None:
                _stamp_lock(fd)
            yield held
            return
        finally:
            os.close(fd)  # Closing the descriptor releases the lock.
    yield why


class Cache:
    def _store(self, key: str, path: str, value: object) -> None:
        """Write ``value`` atomically; keys with a merge policy merge with the disk first.

        Those keys are read, merged and written under the cache lock, so that
        sessions finishing together lose nothing.  When the lock cannot be
        had the merge is written all the same, unlocked; a session waits for
        a stuck lock once, its later merges do not wait again.
        """
        merge = self._merge_policies.get(key)
        if merge is None:
            _write_atomic(path, _dumps(value))
        else:
            self._merge_store(key, path, value, merge)

    def _merge_store(
        self,
        key: str,
        path: str,
        value: object,
        merge: Callable[[object, object], object],
        data: str | None = None,
    ) -> None:
        """Merge ``value`` into what is on disk and write it, under the lock if it can be had.

        ``data``, if given, is ``value`` serialized already: written as it is
        when the merge keeps ``value`` (nobody else wrote meanwhile).
        """
        patience = getattr(self, "_lock_patience", _LOCK_PATIENCE)
        with _locked(self._lockfile, patience=patience) as unlocked:
            unchanged = _signature(path) == self._first_seen.get(key, False)
            merged = merge(_UNCHANGED if unchanged else self.get(key, None), value)
            if merged is not value or data is None:
                data = _dumps(merged)
            _write_atomic(path, data)
        if unlocked is not None:
            self._lock_patience = 0.0
            self._note_unlocked(key, f"{self._lockfile}: {unlocked}")

    def _note_unlocked(self, key: str, why: str) -> None:
        """Report a merge written without the lock; called once the value is on disk."""
        self.warn(f"cache could not lock {why}: merged {key} unlocked", _ispytest=True)
