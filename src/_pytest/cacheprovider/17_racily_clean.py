"""On filesystems with coarse timestamps the merge takes a rewritten value for unchanged.

Fix: racily-clean
Bug: -  (no upstream release merges)
Affects: the lastfailed-merge layer
Needs: lastfailed-merge
Replaces: _signature

The merge skips re-reading ``lastfailed`` when the file's signature (inode,
size, mtime, ctime) is what it was when the session first read it.  ext4
hands a freed inode number straight back, so two versions differ by their
timestamps alone, and on filesystems with 1 or 2 s timestamps (ext4 with
128-byte inodes, FAT/exFAT, HFS+, some SMB and FUSE mounts) a same-size
rewrite within one tick looks unchanged: another session's failure is
overwritten.  As git does for its index ("racily clean"), a file whose
timestamps are within the coarsest granularity of now is never trusted to
be unchanged; it is read and merged again, which is always correct.
"""

from __future__ import annotations

import itertools


# FAT's 2 s timestamps, plus a second for clocks that disagree a little (a
# network filesystem stamps with the server's clock).
_RACY_WINDOW_NS = 3_000_000_000
# Signatures of racily clean files: unique, so they never compare equal.
_RACY_SERIAL = itertools.count(1)


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    """Identity of the file at ``path``; equal only if no write happened in between.

    A file changed less than ``_RACY_WINDOW_NS`` ago (or stamped in the
    future) gets a signature equal to no other: a rewrite in the same
    timestamp tick could otherwise look identical.
    """
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None  # ENOENT/ENOTDIR: no value; EACCES: nor can it be read.
    changed = max(st.st_mtime_ns, st.st_ctime_ns)
    if time.time_ns() - changed < _RACY_WINDOW_NS:
        return (-next(_RACY_SERIAL), st.st_size, changed, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
