"""The session-end sweep crashes sessions, or never reaches some orphans.

Fix: best-effort-sweep
Bug: -
Affects: the fork's orphan sweep (layer orphan-sweep); no upstream release sweeps
Needs: orphan-sweep
Replaces: _iter_private_entries, _left_for_later

The sweep is housekeeping that stock pytest does not do, so it must never
fail a run that stock finishes: a directory it cannot list (a path longer
than ``PATH_MAX`` below ``v/``, an I/O error) made ``pytest_unconfigure``
raise.  And it looked at the first 10,000 entries of ``v/`` in a fixed
order, so with a plugin keeping more files than that, orphans later in the
walk were never swept, session after session.
"""

from __future__ import annotations


def _listing(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of ``directory``; none when it cannot be listed.

    ENOENT/ENOTDIR: removed or replaced meanwhile; EACCES: not ours to
    sweep; ENAMETOOLONG, ELOOP, EIO and the like: nothing the sweep could
    do about.  Whatever it is, stock pytest never looks there, so the sweep
    must not fail either.
    """
    try:
        with os.scandir(directory) as it:
            return list(it)
    except OSError:
        return []


def _random_below(n: int) -> int:
    """A random integer in ``[0, n)`` (0 for ``n <= 1``)."""
    return random.randrange(n) if n > 1 else 0


def _iter_private_entries(
    directory: Path, *, recursive: bool
) -> Iterator[os.DirEntry[str]]:
    """Private entries in (or, if ``recursive``, below) ``directory``.

    A flat directory (beside and in the cache dir) is listed whole: one
    ``scandir`` is cheap, and its private entries are all looked at.  The
    recursive walk (``v/``, which plugins may fill with any number of
    files) is bounded: it looks at no more than ``_SWEEP_MAX_ENTRIES``
    entries per session, and fairly: it visits the pending directories in a
    random order and starts each listing at a random entry, so every entry
    has a chance in every session and every orphan is reached eventually,
    whatever else the cache holds.  A cache smaller than the bound is walked
    whole every time.  Symlinks are never followed; a directory that cannot
    be listed is skipped (see :func:`_listing`).
    """
    if not recursive:
        for entry in _listing(directory):
            if entry.name.startswith(_PRIVATE_PREFIX):
                yield entry
        return
    pending = [directory]
    budget = _SWEEP_MAX_ENTRIES
    while pending and budget > 0:
        pick = _random_below(len(pending))
        pending[pick], pending[-1] = pending[-1], pending[pick]
        entries = _listing(pending.pop())
        start = _random_below(len(entries))
        for entry in entries[start:] + entries[:start]:
            if budget <= 0:
                break
            budget -= 1
            if entry.name.startswith(_PRIVATE_PREFIX):
                yield entry
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:  # lstat failed (ENOENT: gone meanwhile): not ours to walk.
                continue
            if is_dir:
                pending.append(Path(entry.path))


def _left_for_later(error: OSError) -> bool:
    """Every error leaves the entry for a later session: the sweep is best effort.

    It runs at session end and stock pytest does no such thing, so nothing
    it meets may raise or warn: besides ENOENT and the permission errors,
    EIO, ELOOP, EOVERFLOW or anything else only mean "not now".
    """
    return True
