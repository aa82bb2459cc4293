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
overwritten.  As git does for its index ("racily clean"), the timestamps of
a file changed within the coarsest granularity of now are not trusted: its
signature carries a digest of its content instead of its inode, so two
versions are told apart by what they hold, and an unchanged file (a session
started right after another ended) is still known to be unchanged without
being parsed again.
"""

from __future__ import annotations

import hashlib
import itertools


# Signatures of racily clean files that could not be digested: unique.
_UNREADABLE_SERIAL = itertools.count(1)
# FAT's 2 s timestamps, plus a second for clocks that disagree a little (a
# network filesystem stamps with the server's clock).
_RACY_WINDOW_NS = 3_000_000_000
# Bytes read at a time when a racily clean file's content is digested.
_DIGEST_CHUNK = 1 << 20


def _content_digest(path: Path) -> int | None:
    """A 64-bit digest of the file's content, or None if it cannot be read."""
    digest = hashlib.blake2b(digest_size=8)
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_DIGEST_CHUNK), b""):
                digest.update(chunk)
    except OSError:  # ENOENT, EACCES...: removed or unreadable meanwhile.
        return None
    return int.from_bytes(digest.digest(), "big")


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    """Identity of the file at ``path``; equal only if its content did not change.

    A file changed less than ``_RACY_WINDOW_NS`` ago (or stamped in the
    future) is identified by a digest of its content next to its size and
    timestamps: a rewrite in the same timestamp tick, inode reused, could
    otherwise look identical.
    """
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None  # ENOENT/ENOTDIR: no value; EACCES: nor can it be read.
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_WINDOW_NS:
        digest = _content_digest(path)
        # Unreadable now: a signature equal to no other, so it is read again.
        identity = -next(_UNREADABLE_SERIAL) if digest is None else digest
        return (identity, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
