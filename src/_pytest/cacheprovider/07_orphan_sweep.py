"""Orphans: ``pytest-cache-files-*`` left by a killed process stay for ever.

Fix: orphan-sweep
Bug: -
Affects: 8.2.0 and later (the private directories of the publish step)
Needs: permissions
Replaces: Cache.clear_cache

A process killed between creating its private directory (or value file)
and renaming it leaves the private entry behind; nothing upstream ever
removes it.  A session sweeps such orphans when it ends.  ``--cache-clear``
claims ``d/`` and ``v/`` by a rename before deleting them, so no reader ever
walks a half-deleted tree under its live name, and what cannot be deleted is
swept later.
"""

from __future__ import annotations

from collections.abc import Iterator
import time
import warnings

from .pathlib import rm_rf
from _pytest.warning_types import PytestCacheWarning


# A private entry whose owner pid still runs (possibly a reused pid), or whose
# name carries no pid (left by an upstream pytest), is only swept when it is
# older than this many seconds.
ORPHAN_TIMEOUT = 3600.0
_SWEEP_MAX_ENTRIES = 10_000
# Errors that mean an entry is not ours to remove: a read-only or foreign cache.
_NOT_OURS_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.EBUSY})


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


def _left_for_later(error: OSError) -> bool:
    """Whether the sweep leaves an entry alone after ``error`` instead of raising it.

    ENOENT: another process removed it first; EACCES, EPERM, EROFS, EBUSY:
    a read-only or foreign cache, not ours to remove.
    """
    return error.errno == errno.ENOENT or error.errno in _NOT_OURS_ERRNOS


def _sweep_entry(
    entry: os.DirEntry[str], *, consider_orphaned_if_older_than: float
) -> bool:
    """Remove the private entry ``entry`` if it is an orphan; return whether it did."""
    try:
        if _is_orphan(
            entry, consider_orphaned_if_older_than=consider_orphaned_if_older_than
        ):
            _discard(Path(entry.path), warn=False)
            return True
    except OSError as e:
        if not _left_for_later(e):
            raise
    return False


def _sweep_orphans(cachedir: Path, *, consider_orphaned_if_older_than: float) -> int:
    """Remove private entries abandoned by killed processes; return how many.

    It looks beside the cache dir (directories of unpublished cache dirs),
    in it (claimed remains of ``--cache-clear``) and below ``v/`` (value
    files being written).  Which entries are orphans :func:`_is_orphan`
    decides (a live creator's only by age), symlinks are not followed, the
    walk is bounded (see :func:`_iter_private_entries`), and each entry is
    judged and removed by :func:`_sweep_entry`.
    """
    removed = 0
    for directory, recursive in (
        (cachedir.parent, False),
        (cachedir, False),
        (cachedir / Cache._CACHE_PREFIX_VALUES, True),
    ):
        for entry in _iter_private_entries(directory, recursive=recursive):
            removed += _sweep_entry(
                entry, consider_orphaned_if_older_than=consider_orphaned_if_older_than
            )
    return removed


class Cache:
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

    def _sweep(self) -> None:
        """Remove what killed processes left in or beside the cache dir."""
        _sweep_orphans(
            self._cachedir,
            consider_orphaned_if_older_than=time.time() - ORPHAN_TIMEOUT,
        )


def pytest_unconfigure(config: Config) -> None:
    # The owning process sweeps once per run; workers and --cache-show do not write.
    cache = getattr(config, "cache", None)  # None if configuring failed early.
    if cache is None or hasattr(config, "workerinput") or config.option.cacheshow:
        return
    cache._sweep()
