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
a file changed within its filesystem's granularity of now (3 s where mtimes
are whole seconds, 0.1 s where they are finer) are not trusted: its
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
# For coarse timestamps (whole seconds): FAT's 2 s, plus a second for clocks
# that disagree a little (a network filesystem stamps with the server's clock).
_RACY_WINDOW_NS = 3_000_000_000
# For sub-second timestamps: a clock tick (1-16 ms: Linux's coarse clock,
# Windows, exFAT's 10 ms) many times over, and some skew.
_FINE_RACY_WINDOW_NS = 100_000_000
# Bytes read at a time when a racily clean file's content is digested.
_DIGEST_CHUNK = 1 << 20


def _content_digest(path: Path | str) -> int | None:
    """A 64-bit digest of the file's content, or None if it cannot be read."""
    digest = hashlib.blake2b(digest_size=8)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError:  # ENOENT, EACCES...: removed or unreadable meanwhile.
        return None
    try:
        # Read what the file holds, not a whole chunk's buffer for a small file.
        want = min(os.fstat(fd).st_size + 1, _DIGEST_CHUNK)
        while chunk := os.read(fd, want):
            digest.update(chunk)
            want = _DIGEST_CHUNK
    except OSError:  # EIO, EISDIR...
        return None
    finally:
        os.close(fd)
    return int.from_bytes(digest.digest(), "big")


def _racy_window_ns(st: os.stat_result) -> int:
    """How long after its last change a file's timestamps cannot tell two versions apart.

    A filesystem that stamps whole seconds (FAT, ext4 with 128-byte inodes,
    HFS+, some network filesystems) leaves the sub-second part of every
    mtime zero; one that stamps finer almost never does.
    """
    return (
        _RACY_WINDOW_NS if st.st_mtime_ns % 1_000_000_000 == 0 else _FINE_RACY_WINDOW_NS
    )


def _signature(path: Path | str) -> tuple[int, int, int, int] | None:
    """Identity of the file at ``path``; equal only if its content did not change.

    A file changed less than its racy window ago (or stamped in the future)
    is identified by a digest of its content next to its size and
    timestamps: a rewrite in the same timestamp tick, inode reused, could
    otherwise look identical.
    """
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None  # ENOENT/ENOTDIR: no value; EACCES: nor can it be read.
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _racy_window_ns(st):
        digest = _content_digest(path)
        # Unreadable now: a signature equal to no other, so it is read again.
        identity = -next(_UNREADABLE_SERIAL) if digest is None else digest
        return (identity, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
